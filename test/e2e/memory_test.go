//go:build e2e

package e2e

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// miniWS is a small WebSocket client (RFC 6455): a handshake, masked text messages out, single-frame
// messages in, pings answered.
type miniWS struct {
	c  net.Conn
	br *bufio.Reader
}

// newMiniWS opens a WebSocket session on path; it is closed at the end of t.
func newMiniWS(t *testing.T, addr, path string) *miniWS {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(waitLimit))
	var key [16]byte
	_, _ = rand.Read(key[:])
	k := base64.StdEncoding.EncodeToString(key[:])
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", path, addr, k)
	w := &miniWS{c: c, br: bufio.NewReader(c)}
	r := readResponse(t, c, w.br, "GET", false)
	sum := sha1.Sum([]byte(k + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if r.StatusCode != 101 || r.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		t.Fatalf("WebSocket handshake on %s: %d\n%s", path, r.StatusCode, r.head)
	}
	return w
}

// writeFrame sends one masked frame.
func (w *miniWS) writeFrame(op byte, payload []byte) error {
	hdr := make([]byte, 0, 14)
	hdr = append(hdr, 0x80|op)
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n < 1<<16:
		hdr = append(hdr, 0x80|126, byte(n>>8), byte(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	hdr = append(hdr, mask[:]...)
	masked := make([]byte, len(payload))
	for i, b := range payload {
		masked[i] = b ^ mask[i%4]
	}
	_, err := w.c.Write(append(hdr, masked...))
	return err
}

// send sends a text message.
func (w *miniWS) send(t *testing.T, msg string) {
	t.Helper()
	if err := w.writeFrame(0x1, []byte(msg)); err != nil {
		t.Fatalf("WebSocket send: %v", err)
	}
}

// receive returns the next data message (single frame), answering pings on the way.
func (w *miniWS) receive(t *testing.T) string {
	t.Helper()
	_ = w.c.SetDeadline(time.Now().Add(waitLimit))
	for {
		var h [2]byte
		if _, err := io.ReadFull(w.br, h[:]); err != nil {
			t.Fatalf("WebSocket receive: %v", err)
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			_, _ = io.ReadFull(w.br, b[:])
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			_, _ = io.ReadFull(w.br, b[:])
			n = binary.BigEndian.Uint64(b[:])
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(w.br, payload); err != nil {
			t.Fatalf("WebSocket receive: %v", err)
		}
		switch op := h[0] & 0x0f; op {
		case 0x1, 0x2:
			if h[0]&0x80 == 0 {
				t.Fatalf("fragmented message: miniWS reads single frames only")
			}
			return string(payload)
		case 0x8:
			t.Fatalf("WebSocket closed by the server: %x", payload)
		case 0x9:
			_ = w.writeFrame(0xA, payload)
		}
	}
}

var (
	noRaceOnce sync.Once
	noRaceBin  string
	noRaceErr  error
)

// edgedNoRace returns a build of edged without the race detector, whose shadow memory would swamp
// any RSS figure: edgedBin itself when the tests run without -race.
func edgedNoRace(t *testing.T) string {
	t.Helper()
	if !raceEnabled {
		return edgedBin
	}
	noRaceOnce.Do(func() {
		noRaceBin = filepath.Join(filepath.Dir(edgedBin), "edged-norace")
		cmd := exec.Command("go", "build", "-trimpath", "-o", noRaceBin, "github.com/edged/edged/cmd/edged")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			noRaceErr = fmt.Errorf("building edged without -race: %v\n%s", err, out)
		}
	})
	if noRaceErr != nil {
		t.Fatal(noRaceErr)
	}
	return noRaceBin
}

// procKB returns a field of /proc/PID/status in KiB (VmRSS, VmHWM).
func procKB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("%s: %q", field, line)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// memorySlack is what the bound of TestD8_RSSUnderLoad allows above the idle RSS plus the budget: the
// garbage collector's headroom over the live heap (GOGC=100 lets the heap grow to twice what a scrape
// or a burst leaves live), goroutine stacks of the sessions, and allocator fragmentation.
const memorySlack = 8 << 20

// TestD8_RSSUnderLoad: under 5,000 HTTP requests on 8 keep-alive connections (health checks, echoes,
// topic writes filling every topic to --topic-max-bytes, scrapes) and 16 WebSocket sessions moving
// messages near --ws-max-message, the peak RSS stays within the idle RSS at start (the Go runtime and
// the binary) plus the memory budget plus memorySlack (CONTRACT D8).
func TestD8_RSSUnderLoad(t *testing.T) {
	bin := edgedNoRace(t)
	// Sessions hold their sockets (CONTRACT W9): the queue must take them besides the 8 HTTP clients.
	d := startDaemonCmd(t, []string{bin}, nil, "--enable-echo", "--socket-queue", "32")
	rec := d.waitLog("edged started")
	budget := int64(rec["memory_budget"].(float64))
	topicsMax := int(rec["topics_max"].(float64))
	topicMax := int(rec["topic_max_bytes"].(float64))
	wsMax := int(rec["ws_max_conns"].(float64))
	wsMsg := int(rec["ws_max_message"].(float64))
	pid := d.cmd.Process.Pid
	idleKB := procKB(t, pid, "VmRSS")

	const (
		requests = 5000
		conns    = 8
	)
	value := strings.Repeat("v", topicMax)
	echoBody := strings.Repeat("e", 16<<10)
	var wg sync.WaitGroup
	errs := make(chan error, conns+wsMax)
	for ci := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", d.addr, waitLimit)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(waitLimit))
			br := bufio.NewReader(c)
			for i := ci; i < requests; i += conns {
				var req string
				switch i % 10 {
				case 0, 1, 2, 3:
					req = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
				case 4, 5:
					req = fmt.Sprintf("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s", len(echoBody), echoBody)
				case 6, 7, 8:
					// topics-max topics besides the status topic, each filled to the largest value.
					req = fmt.Sprintf("PUT /topics/load/%d HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s",
						i%topicsMax, len(value), value)
				case 9:
					req = "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n"
				}
				if _, err := io.WriteString(c, req); err != nil {
					errs <- err
					return
				}
				resp, err := readHTTP(br)
				if err != nil || resp >= 300 {
					errs <- fmt.Errorf("request %d: status %d, %v", i, resp, err)
					return
				}
			}
		}()
	}
	sessions := make([]*miniWS, wsMax)
	for i := range sessions {
		sessions[i] = newMiniWS(t, d.addr, "/echo")
	}
	msg := strings.Repeat("w", wsMsg-16)
	for round := range 4 {
		for _, s := range sessions {
			s.send(t, msg)
		}
		for i, s := range sessions {
			if got := s.receive(t); len(got) != len(msg) {
				t.Fatalf("round %d, session %d: %d bytes back, want %d", round, i, len(got), len(msg))
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The load reached the pools' limits; a request is counted when its exchange ends, which may be
	// just after its client has read the response.
	var s map[string]float64
	if !poll(func() bool {
		s = scrape(t, d.url("/metrics"))
		return s["edged_http_request_duration_seconds_count"] >= requests
	}, d.exited) {
		t.Fatalf("%v requests counted, want at least %d", s["edged_http_request_duration_seconds_count"], requests)
	}
	if s["edged_websocket_sessions_active"] != float64(wsMax) || s["edged_topics"] != float64(topicsMax+1) {
		t.Fatalf("load did not reach the pools' limits: %v sessions, %v topics", s["edged_websocket_sessions_active"], s["edged_topics"])
	}

	t.Logf("Go runtime after the load: heap in use %.1f MiB, heap from the OS %.1f MiB, stacks %.1f MiB, next GC at %.1f MiB, %v goroutines",
		s["go_memstats_heap_inuse_bytes"]/(1<<20), s["go_memstats_heap_sys_bytes"]/(1<<20),
		s["go_memstats_stack_sys_bytes"]/(1<<20), s["go_memstats_next_gc_bytes"]/(1<<20), s["go_goroutines"])
	peakKB, rssKB := procKB(t, pid, "VmHWM"), procKB(t, pid, "VmRSS")
	bound := idleKB<<10 + budget + memorySlack
	t.Logf("RSS: idle %d KiB at start; after the load %d KiB, peak (VmHWM) %d KiB; budget %d KiB; bound %d KiB",
		idleKB, rssKB, peakKB, budget>>10, bound>>10)
	if peakKB<<10 > bound {
		t.Errorf("peak RSS %d KiB above idle RSS %d KiB + budget %d KiB + slack %d KiB",
			peakKB, idleKB, budget>>10, memorySlack>>10)
	}
}

// readHTTP reads one response and returns its status.
func readHTTP(br *bufio.Reader) (int, error) {
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}
