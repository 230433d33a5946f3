//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// RFC 6455 opcodes, for the raw-socket client.
const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

// wsRaw is a WebSocket client written on a bare TCP socket, so that a test controls every byte: when
// it reads, whether it answers pings, what it sends in the handshake.
type wsRaw struct {
	c  net.Conn
	br *bufio.Reader
}

// wsKey returns a fresh Sec-WebSocket-Key.
func wsKey() string {
	var k [16]byte
	_, _ = rand.Read(k[:])
	return base64.StdEncoding.EncodeToString(k[:])
}

// wsHandshake sends an upgrade request for path with the given extra header lines (each ending in
// CRLF) and returns the connection and the response. The request carries a valid key and version 13
// unless extra overrides them (then the defaults are left out).
func (d *daemon) wsHandshake(t *testing.T, path, extra string) (*wsRaw, rawResponse) {
	t.Helper()
	c := d.dial(t)
	var req strings.Builder
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", path, d.addr)
	if !strings.Contains(strings.ToLower(extra), "sec-websocket-key:") {
		fmt.Fprintf(&req, "Sec-WebSocket-Key: %s\r\n", wsKey())
	}
	if !strings.Contains(strings.ToLower(extra), "sec-websocket-version:") {
		req.WriteString("Sec-WebSocket-Version: 13\r\n")
	}
	req.WriteString(extra)
	req.WriteString("\r\n")
	if _, err := io.WriteString(c, req.String()); err != nil {
		t.Fatalf("write upgrade request: %v", err)
	}
	br := bufio.NewReader(c)
	// A 101 has no body; readResponse would wait for a close-delimited one, so read its head only.
	r := readResponse(t, c, br, "HEAD", false)
	return &wsRaw{c: c, br: br}, r
}

// wsDialRaw opens a WebSocket session on path with a raw socket and fails the test unless it gets 101.
func (d *daemon) wsDialRaw(t *testing.T, path string) *wsRaw {
	t.Helper()
	w, r := d.wsHandshake(t, path, "")
	if r.StatusCode != 101 {
		t.Fatalf("upgrade %s: status %d\n%s", path, r.StatusCode, r.head)
	}
	return w
}

// writeFrame sends one masked frame (RFC 6455 5.3: clients mask).
func (w *wsRaw) writeFrame(fin bool, op byte, payload []byte) error {
	var hdr [14]byte
	hdr[0] = op
	if fin {
		hdr[0] |= 0x80
	}
	n := 2
	switch l := len(payload); {
	case l <= 125:
		hdr[1] = 0x80 | byte(l)
	case l <= 0xFFFF:
		hdr[1] = 0x80 | 126
		binary.BigEndian.PutUint16(hdr[2:], uint16(l))
		n = 4
	default:
		hdr[1] = 0x80 | 127
		binary.BigEndian.PutUint64(hdr[2:], uint64(l))
		n = 10
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	copy(hdr[n:], mask[:])
	n += 4
	buf := append(hdr[:n:n], payload...)
	for i := range payload {
		buf[n+i] ^= mask[i&3]
	}
	_, err := w.c.Write(buf)
	return err
}

// closeFrame returns a close payload with code.
func closeFrame(code int) []byte {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], uint16(code))
	return b[:]
}

// readFrame reads one frame from the server, which must be unmasked (RFC 6455 5.1).
func (w *wsRaw) readFrame() (fin bool, op byte, payload []byte, err error) {
	var hdr [2]byte
	if _, err = io.ReadFull(w.br, hdr[:]); err != nil {
		return
	}
	fin, op = hdr[0]&0x80 != 0, hdr[0]&0x0F
	if hdr[1]&0x80 != 0 {
		return fin, op, nil, errors.New("server frame is masked")
	}
	n := uint64(hdr[1] & 0x7F)
	switch n {
	case 126:
		var ext [2]byte
		if _, err = io.ReadFull(w.br, ext[:]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err = io.ReadFull(w.br, ext[:]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if n > 1<<24 {
		return fin, op, nil, fmt.Errorf("frame of %d bytes", n)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(w.br, payload)
	return
}

// readMessage reads the next data message, answering pings on the way, and returns a close frame as a
// *websocket.CloseError.
func (w *wsRaw) readMessage() (op byte, msg []byte, err error) {
	for {
		fin, fop, p, err := w.readFrame()
		if err != nil {
			return 0, nil, err
		}
		switch fop {
		case opPing:
			if err := w.writeFrame(true, opPong, p); err != nil {
				return 0, nil, err
			}
			continue
		case opPong:
			continue
		case opClose:
			code := websocket.CloseNoStatusReceived
			if len(p) >= 2 {
				code = int(binary.BigEndian.Uint16(p))
			}
			return 0, nil, &websocket.CloseError{Code: code, Text: string(p[min(len(p), 2):])}
		case opText, opBinary:
			op = fop
		}
		msg = append(msg, p...)
		if fin {
			return op, msg, nil
		}
	}
}

// wsURL returns ws://ADDR/path.
func (d *daemon) wsURL(path string) string { return "ws://" + d.addr + path }

// gorillaDial opens a session with gorilla/websocket; it is closed at the end of t.
func (d *daemon) gorillaDial(t *testing.T, path string) *websocket.Conn {
	t.Helper()
	dialer := websocket.Dialer{HandshakeTimeout: waitLimit}
	c, resp, err := dialer.Dial(d.wsURL(path), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", path, err, status)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(waitLimit))
	_ = c.SetWriteDeadline(time.Now().Add(waitLimit))
	return c
}

// metric returns the value of an unlabelled series from /metrics, or -1 when it is absent.
// metricsMatching returns the lines of the daemon's /metrics that start with one of the prefixes, for
// a failure's message; an error reading them is returned as the text.
func (d *daemon) metricsMatching(t *testing.T, prefixes ...string) string {
	t.Helper()
	c := http.Client{Timeout: waitLimit, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(d.url("/metrics"))
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for line := range strings.SplitSeq(string(body), "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) {
				b.WriteString(line + "\n")
				break
			}
		}
	}
	return b.String()
}

func (d *daemon) metric(t *testing.T, name string) float64 {
	t.Helper()
	// A connection per scrape, so that no keep-alive socket stays behind to count in the daemon's fds.
	c := http.Client{Timeout: waitLimit, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(d.url("/metrics"))
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read /metrics: %v", err)
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %q", name, line)
			}
			return f
		}
	}
	return -1
}

// waitMetric polls /metrics until name has the value want.
func (d *daemon) waitMetric(t *testing.T, name string, want float64) {
	t.Helper()
	var got float64
	if !poll(func() bool { got = d.metric(t, name); return got == want }, d.exited) {
		t.Fatalf("%s is %v, want %v within %v", name, got, want, waitLimit)
	}
}

// procStatus returns a numeric field of /proc/PID/status (VmRSS in kB, Threads).
func (d *daemon) procStatus(t *testing.T, field string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(d.cmd.Process.Pid), "status"))
	if err != nil {
		t.Fatalf("read status: %v", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("status field %s: %q", field, line)
			}
			return n
		}
	}
	t.Fatalf("no field %s in /proc/%d/status", field, d.cmd.Process.Pid)
	return 0
}

// fdCount returns the number of open descriptors of the daemon.
func (d *daemon) fdCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(d.cmd.Process.Pid), "fd"))
	if err != nil {
		t.Fatalf("read fds: %v", err)
	}
	return len(ents)
}

// httpDo sends a request with a client of its own and returns status, headers and body.
func httpDo(t *testing.T, c *http.Client, method, url, ctype string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, b
}

// pattern returns n bytes of (i*7+seed) mod 251: a period that no power of two divides, so that a
// misplaced or dropped chunk shows.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((i*7 + int(seed)) % 251)
	}
	return b
}
