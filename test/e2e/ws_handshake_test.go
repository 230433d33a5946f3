//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
)

// TestW1_HandshakeRefusals sends upgrade requests the daemon must refuse, on raw sockets, to /echo
// and to a topic: a version other than 13 gets 426 with Sec-WebSocket-Version: 13 and Upgrade: websocket, a key that is not
// base64 of 16 bytes 400, a cross-origin request 403 (CONTRACT W1, W2).
func TestW1_HandshakeRefusals(t *testing.T) {
	d := startDaemon(t, nil, "--enable-echo")
	for _, path := range []string{"/echo", "/topics/w1"} {
		for _, tc := range []struct {
			name, extra string
			status      int
		}{
			{"version 8", "Sec-WebSocket-Version: 8\r\n", 426},
			{"no version", "Sec-WebSocket-Version: \r\n", 426},
			{"key of 15 bytes", "Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(make([]byte, 15)) + "\r\n", 400},
			{"key not base64", "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\r\n", 400},
			{"empty key", "Sec-WebSocket-Key: \r\n", 400},
			{"other origin", "Origin: http://evil.example\r\n", 403},
			{"same host, other port", "Origin: http://127.0.0.1:1\r\n", 403},
		} {
			w, r := d.wsHandshake(t, path, tc.extra)
			if r.StatusCode != tc.status {
				t.Errorf("%s %s: status %d, want %d\n%s", path, tc.name, r.StatusCode, tc.status, r.head)
			}
			if tc.status == 426 && r.Header.Get("Sec-WebSocket-Version") != "13" {
				t.Errorf("%s %s: 426 without Sec-WebSocket-Version: 13\n%s", path, tc.name, r.head)
			}
			// Only a 426 names the protocol to upgrade to (RFC 9110 15.5.22), and no refusal accepts.
			wantUpgrade := ""
			if tc.status == 426 {
				wantUpgrade = "websocket"
			}
			if r.Header.Get("Sec-WebSocket-Accept") != "" || r.Header.Get("Upgrade") != wantUpgrade {
				t.Errorf("%s %s: a refusal with Sec-WebSocket-Accept %q, Upgrade %q (want %q)\n%s", path, tc.name,
					r.Header.Get("Sec-WebSocket-Accept"), r.Header.Get("Upgrade"), wantUpgrade, r.head)
			}
			w.c.Close()
		}
	}
	// Nothing was upgraded.
	if n := d.metric(t, "edged_websocket_sessions_active"); n != 0 {
		t.Errorf("edged_websocket_sessions_active = %v after refusals only", n)
	}
}

// TestW2_HandshakeAccept checks the 101 itself (the RFC 6455 4.2.2 accept value, no Content-Length,
// token lists matched case-insensitively) and the Origin policy: same origin is accepted, and
// --ws-allowed-origins lets a listed Origin through while others still get 403 (CONTRACT W1, W2).
func TestW2_HandshakeAccept(t *testing.T) {
	const allowed = "https://dashboard.example:8443"
	d := startDaemon(t, nil, "--enable-echo", "--ws-allowed-origins", "http://other.example, "+allowed)
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	wantAccept := base64.StdEncoding.EncodeToString(sum[:])

	for _, tc := range []struct {
		name, extra string
		status      int
	}{
		{"no Origin", "Sec-WebSocket-Key: " + key + "\r\n", 101},
		{"same origin", "Sec-WebSocket-Key: " + key + "\r\nOrigin: http://" + d.addr + "\r\n", 101},
		{"allowed origin", "Sec-WebSocket-Key: " + key + "\r\nOrigin: " + allowed + "\r\n", 101},
		{"allowed origin, other case", "Sec-WebSocket-Key: " + key + "\r\nOrigin: " + strings.ToUpper(allowed) + "\r\n", 101},
		{"not listed", "Sec-WebSocket-Key: " + key + "\r\nOrigin: https://dashboard.example\r\n", 403},
	} {
		w, r := d.wsHandshake(t, "/echo", tc.extra)
		if r.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d\n%s", tc.name, r.StatusCode, tc.status, r.head)
			w.c.Close()
			continue
		}
		if tc.status != 101 {
			w.c.Close()
			continue
		}
		if got := r.Header.Get("Sec-WebSocket-Accept"); got != wantAccept {
			t.Errorf("%s: Sec-WebSocket-Accept %q, want %q", tc.name, got, wantAccept)
		}
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || !strings.EqualFold(r.Header.Get("Connection"), "upgrade") ||
			r.Header.Get("Content-Length") != "" || !strings.HasPrefix(r.head, "HTTP/1.1 101 Switching Protocols\r\n") {
			t.Errorf("%s: bad 101 head\n%s", tc.name, r.head)
		}
		// The session works: a text message comes back.
		if err := w.writeFrame(true, opText, []byte(tc.name)); err != nil {
			t.Fatalf("%s: write: %v", tc.name, err)
		}
		if op, msg, err := w.readMessage(); err != nil || op != opText || string(msg) != tc.name {
			t.Errorf("%s: echo %d %q %v", tc.name, op, msg, err)
		}
		_ = w.writeFrame(true, opClose, closeFrame(1000))
		w.c.Close()
	}

	// Token lists, in any case (CONTRACT W1, fixes R6.1).
	c := d.dial(t)
	w := &wsRaw{c: c}
	_, _ = c.Write([]byte("GET /echo HTTP/1.1\r\nHost: " + d.addr + "\r\nConnection: keep-alive, UPGRADE\r\nUpgrade: WebSocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\n\r\n"))
	w.br = bufio.NewReader(c)
	if r := readResponse(t, c, w.br, "HEAD", false); r.StatusCode != 101 {
		t.Errorf("Connection: keep-alive, UPGRADE / Upgrade: WebSocket: status %d\n%s", r.StatusCode, r.head)
	}
	d.waitMetric(t, "edged_websocket_sessions_active", 1)
}

// TestW9_FramesRightAfterHandshake: frames that arrive in the same segment as the upgrade request
// (read by the HTTP worker along with the head) are handed to the session and answered, on /echo and
// on a topic (CONTRACT W9, H1: nothing read from the socket is lost).
func TestW9_FramesRightAfterHandshake(t *testing.T) {
	d := startDaemon(t, nil, "--enable-echo")
	for _, path := range []string{"/echo", "/topics/eager"} {
		c := d.dial(t)
		frames := &bytes.Buffer{}
		w := &wsRaw{c: writerConn{c, frames}}
		for i := range 3 {
			if err := w.writeFrame(true, opText, []byte(fmt.Sprintf("%s eager %d", path, i))); err != nil {
				t.Fatal(err)
			}
		}
		req := "GET " + path + " HTTP/1.1\r\nHost: " + d.addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + wsKey() + "\r\n\r\n"
		if _, err := c.Write(append([]byte(req), frames.Bytes()...)); err != nil {
			t.Fatal(err)
		}
		w = &wsRaw{c: c, br: bufio.NewReader(c)}
		if r := readResponse(t, c, w.br, "HEAD", false); r.StatusCode != 101 {
			t.Fatalf("%s: status %d\n%s", path, r.StatusCode, r.head)
		}
		for i := range 3 {
			want := fmt.Sprintf("%s eager %d", path, i)
			if op, msg, err := w.readMessage(); err != nil || op != opText || string(msg) != want {
				t.Errorf("%s: message %d: %d %q %v, want %q", path, i, op, msg, err, want)
			}
		}
	}
}

// writerConn is a net.Conn whose writes go to w, so that frames can be built before they are sent.
type writerConn struct {
	net.Conn
	w io.Writer
}

func (c writerConn) Write(p []byte) (int, error) { return c.w.Write(p) }
