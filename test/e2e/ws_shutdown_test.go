//go:build e2e

package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestS9_WebSocketSessionsGetGoingAway: SIGTERM while sessions are open (echo and topic sessions with
// gorilla, one raw client): each client receives close 1001, and once they have answered, the daemon
// exits 0 well within the grace period (CONTRACT S9, D7, W6).
func TestS9_WebSocketSessionsGetGoingAway(t *testing.T) {
	const grace = 10 * time.Second
	d := startDaemon(t, nil, "--enable-echo", "--shutdown-grace", grace.String())
	clients := map[string]*websocket.Conn{
		"echo 1": d.gorillaDial(t, "/echo"),
		"echo 2": d.gorillaDial(t, "/echo"),
		"topic":  d.gorillaDial(t, "/topics/s9"),
	}
	raw := d.wsDialRaw(t, "/topics/s9")
	// Every session is live before the signal.
	if err := clients["echo 1"].WriteMessage(websocket.TextMessage, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := clients["echo 1"].ReadMessage(); err != nil || string(msg) != "ping" {
		t.Fatalf("echo before SIGTERM: %q %v", msg, err)
	}
	d.waitMetric(t, "edged_websocket_sessions_active", 4)

	start := time.Now()
	d.signal(syscall.SIGTERM)
	for name, c := range clients {
		_ = c.SetReadDeadline(time.Now().Add(waitLimit))
		_, _, err := c.ReadMessage() // gorilla answers the close frame itself
		if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Errorf("%s: %v, want close 1001", name, err)
		}
	}
	_ = raw.c.SetReadDeadline(time.Now().Add(waitLimit))
	_, _, err := raw.readMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Errorf("raw client: %v, want close 1001", err)
	} else if err := raw.writeFrame(true, opClose, closeFrame(websocket.CloseGoingAway)); err != nil {
		t.Errorf("raw client: answer the close: %v", err)
	}
	// After the close handshake edged closes TCP (RFC 6455 7.1.1: the server closes first).
	if _, _, _, err := raw.readFrame(); err == nil {
		t.Error("raw client: a frame after the close handshake")
	} else if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		t.Error("raw client: TCP still open after the close handshake")
	}

	if code := d.wait(); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0; stderr:\n%s", code, d.stderrText())
	}
	took := time.Since(start)
	t.Logf("exited %v after SIGTERM", took)
	if took >= grace {
		t.Errorf("exited %v after SIGTERM: not within the %v grace", took, grace)
	}
	if strings.Contains(d.stderrText(), "grace period over") {
		t.Errorf("sessions that answered their close were force-closed:\n%s", d.stderrText())
	}
}

// TestS9_WebSocketSilentSessionForceClosed: a client that never answers the close 1001 (it does not
// read) does not hold the daemon past --shutdown-grace: its connection is closed and the daemon exits
// 0 soon after the grace ends (CONTRACT S9).
func TestS9_WebSocketSilentSessionForceClosed(t *testing.T) {
	const grace = 1500 * time.Millisecond
	d := startDaemon(t, nil, "--enable-echo", "--shutdown-grace", grace.String())
	raw := d.wsDialRaw(t, "/echo")
	d.waitMetric(t, "edged_websocket_sessions_active", 1)
	// /healthz still answers with a session open (and the session does not count as a request).
	if code, _, _ := httpDo(t, &http.Client{Timeout: waitLimit}, "GET", d.url("/healthz"), "", nil); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	start := time.Now()
	d.signal(syscall.SIGTERM)
	if code := d.wait(); code != 0 {
		t.Errorf("exit status %d, want 0; stderr:\n%s", code, d.stderrText())
	}
	took := time.Since(start)
	t.Logf("exited %v after SIGTERM (grace %v)", took, grace)
	if took < grace*3/4 {
		t.Errorf("exited after %v: the silent session was not given the grace period %v", took, grace)
	}
	// Read what edged sent: the close 1001, then the end of the connection.
	_ = raw.c.SetReadDeadline(time.Now().Add(waitLimit))
	_, op, p, err := raw.readFrame()
	if err != nil || op != opClose || len(p) < 2 || int(p[0])<<8|int(p[1]) != 1001 {
		t.Errorf("silent client: frame %#x %x %v, want close 1001", op, p, err)
	}
	if _, _, _, err := raw.readFrame(); err == nil {
		t.Error("silent client: another frame after the close")
	}
}

// TestS9_WebSocketSIGTERMDuringUpgrades: SIGTERM while 12 clients keep opening short sessions (upgrade, one
// echo, close handshake): every session that got its 101 ends with its own close handshake or a close
// 1001 from edged, none with a bare TCP close, and the daemon exits 0 long before the grace ends
// (CONTRACT S9, W9: a session reserved during the drain is not forgotten).
func TestS9_WebSocketSIGTERMDuringUpgrades(t *testing.T) {
	const (
		grace   = 10 * time.Second
		clients = 12
	)
	d := startDaemon(t, nil, "--enable-echo", "--ws-max-conns", "32", "--socket-queue", "64",
		"--shutdown-grace", grace.String())
	var (
		stop                atomic.Bool
		wg                  sync.WaitGroup
		upgraded, goingAway atomic.Int64
		mu                  sync.Mutex
		bad                 []string
	)
	for g := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if msg := churnSession(d, &upgraded, &goingAway); msg != "" {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("client %d: %s", g, msg))
					mu.Unlock()
				}
			}
		}()
	}
	// Let the churn run, then signal in the middle of it.
	poll(func() bool { return upgraded.Load() >= 200 }, d.exited)
	start := time.Now()
	d.signal(syscall.SIGTERM)
	code := d.wait()
	took := time.Since(start)
	stop.Store(true)
	wg.Wait()
	t.Logf("exit %d %v after SIGTERM; %d sessions, %d ended by close 1001", code, took, upgraded.Load(), goingAway.Load())
	if code != 0 {
		t.Errorf("exit status %d, want 0; stderr:\n%s", code, d.stderrText())
	}
	if took > grace/2 {
		t.Errorf("exited %v after SIGTERM: a session kept the daemon (grace %v)", took, grace)
	}
	for _, b := range bad {
		t.Error(b)
	}
}

// churnSession runs one short session on /echo with a raw socket and returns what went wrong with a
// session that got its 101, or "" (a refused or failed upgrade is not an error once the daemon drains).
func churnSession(d *daemon, upgraded, goingAway *atomic.Int64) string {
	c, err := net.DialTimeout("tcp", d.addr, waitLimit)
	if err != nil {
		return ""
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(waitLimit))
	fmt.Fprintf(c, "GET /echo HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", d.addr, wsKey())
	w := &wsRaw{c: c, br: bufio.NewReader(c)}
	if line, err := w.br.ReadString('\n'); err != nil || line != "HTTP/1.1 101 Switching Protocols\r\n" {
		return ""
	}
	for {
		if line, err := w.br.ReadString('\n'); err != nil {
			return "101 head cut: " + err.Error()
		} else if line == "\r\n" {
			break
		}
	}
	upgraded.Add(1)
	if err := w.writeFrame(true, opText, []byte("x")); err != nil {
		return "write: " + err.Error()
	}
	for {
		_, op, p, err := w.readFrame()
		switch {
		case err != nil:
			return "the session ended without a close frame: " + err.Error()
		case op == opText:
			_ = w.writeFrame(true, opClose, closeFrame(1000))
		case op == opClose && len(p) >= 2 && int(p[0])<<8|int(p[1]) == 1000:
			return "" // the answer to our close
		case op == opClose && len(p) >= 2 && int(p[0])<<8|int(p[1]) == 1001:
			goingAway.Add(1)
			_ = w.writeFrame(true, opClose, p[:2])
			return ""
		default:
			return fmt.Sprintf("unexpected frame %#x %x", op, p)
		}
	}
}
