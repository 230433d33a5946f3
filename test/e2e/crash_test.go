//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Crash safety: a panic in an HTTP handler or a WebSocket session handler costs the one exchange or
// session, is logged with its stack and counted, and leaves every other client served and every pool
// whole; memory pressure slows the daemon but does not stop it (CONTRACT H17, W9, D8). The panicking
// routes exist only in a build with -tags testroutes (internal/routes/debug_testroutes.go).

// countLogs returns the log records with msg.
func (d *daemon) countLogs(msg string) (n int, recs []map[string]any) {
	for _, r := range d.logLines() {
		if r["msg"] == msg {
			n++
			recs = append(recs, r)
		}
	}
	return n, recs
}

// TestH17_HandlerPanicKeepsServing: while a keep-alive client on another connection sends request after
// request, handlers panic 20 times before responding (each answered 500 with Connection: close, then
// closed) and once after the head and part of the body went out (the connection is closed, the body
// visibly short of its Content-Length). Every panic is logged with its stack and counted in
// edged_handler_panics_total; the other client is never disturbed; nothing leaks.
func TestH17_HandlerPanicKeepsServing(t *testing.T) {
	const panics = 20
	d := startDaemonCmd(t, []string{edgedTestRoutes(t)}, nil, "--workers", "2", "--metrics-listen", "127.0.0.1:0")
	base := d.baseline(t)

	stop := make(chan struct{})
	var served int
	otherErr := make(chan error, 1)
	go func() {
		c, err := net.DialTimeout("tcp", d.addr, waitLimit)
		if err != nil {
			otherErr <- err
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for i := 0; i < 10000; i++ {
			select {
			case <-stop:
				otherErr <- nil
				return
			default:
			}
			_ = c.SetDeadline(time.Now().Add(waitLimit))
			if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: e2e\r\n\r\n"); err != nil {
				otherErr <- err
				return
			}
			if code, err := readResponseErr(br); err != nil || code != 200 {
				otherErr <- fmt.Errorf("request %d: %d %v", i, code, err)
				return
			}
			served++
		}
		otherErr <- nil
	}()

	for range panics {
		r, extra, closed := d.exchangeRaw(t, "GET /debug/panic HTTP/1.1\r\nHost: e2e\r\n\r\nGET /healthz HTTP/1.1\r\nHost: e2e\r\n\r\n", "GET")
		if r.StatusCode != 500 || !r.Close || len(r.body) == 0 || extra != "" || !closed {
			t.Fatalf("GET /debug/panic: %d close=%v body %q, then %q closed=%v; want 500 with Connection: close, then the close",
				r.StatusCode, r.Close, r.body, extra, closed)
		}
	}
	// A panic after the head went out: the response is cut, and the connection closed.
	c := d.dial(t)
	io.WriteString(c, "GET /debug/panic-after-head HTTP/1.1\r\nHost: e2e\r\n\r\n")
	raw, err := io.ReadAll(c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the connection of a handler that panicked mid-response stayed open")
	}
	head, body, _ := strings.Cut(string(raw), "\r\n\r\n")
	if !strings.HasPrefix(head, "HTTP/1.1 200 ") || !strings.Contains(head, "Content-Length: 1048576") || body != "partial" {
		t.Errorf("panic after the head: %q then %d body bytes %q; want the 200 head, the partial body and the close", head, len(body), clip([]byte(body)))
	}
	c.Close()

	close(stop)
	if err := <-otherErr; err != nil {
		t.Fatalf("the other client was disturbed: %v", err)
	}
	d.waitValue(t, "edged_handler_panics_total", panics+1)
	n, recs := d.countLogs("handler panicked")
	if n != panics+1 {
		t.Errorf("%d \"handler panicked\" log records, want %d", n, panics+1)
	}
	for _, r := range recs {
		if stack, _ := r["stack"].(string); !strings.Contains(stack, "serveDebug") || r["level"] != "ERROR" {
			t.Errorf("panic record without the handler's stack: %v", r)
			break
		}
	}
	t.Logf("%d handler panics; the other client was served %d requests meanwhile", panics+1, served)
	d.healthz(t)
	d.checkLeaks(t, base)
}

// TestH17_SessionPanicKeepsServing: a WebSocket session whose handler panics is closed with 1011
// (internal error), the panic is logged with its stack and counted, and its pool entry comes back: more
// sessions than --ws-max-conns panic one after the other and each new upgrade still succeeds. An /echo
// session open all along keeps echoing. Before this was fixed, a panic in a session handler killed
// the daemon.
func TestH17_SessionPanicKeepsServing(t *testing.T) {
	const rounds = 5
	d := startDaemonCmd(t, []string{edgedTestRoutes(t)}, nil, "--enable-echo", "--ws-max-conns", "2", "--socket-queue", "16",
		"--metrics-listen", "127.0.0.1:0")
	base := d.baseline(t)
	echo := d.gorillaDial(t, "/echo")
	for i := range rounds {
		w := d.wsDialRaw(t, "/debug/ws-panic")
		if err := w.writeFrame(true, opText, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		if _, msg, err := w.readMessage(); err != nil || string(msg) != "hi" {
			t.Fatalf("round %d: echo before the panic: %q %v", i, msg, err)
		}
		if err := w.writeFrame(true, opText, []byte("panic")); err != nil {
			t.Fatal(err)
		}
		_, _, err := w.readMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 1011 {
			t.Fatalf("round %d: after the panic: %v, want close 1011", i, err)
		}
		if err := w.writeFrame(true, opClose, closeFrame(1011)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, w.br); errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("round %d: the session's connection stayed open", i)
		}
		w.c.Close()
		msg := fmt.Sprintf("still here %d", i)
		if err := echo.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if _, got, err := echo.ReadMessage(); err != nil || string(got) != msg {
			t.Fatalf("round %d: the /echo session: %q %v", i, got, err)
		}
	}
	d.waitValue(t, "edged_handler_panics_total", rounds)
	n, recs := d.countLogs("WebSocket session handler panicked")
	if n != rounds {
		t.Errorf("%d session panic log records, want %d", n, rounds)
	}
	if len(recs) > 0 {
		if stack, _ := recs[0]["stack"].(string); !strings.Contains(stack, "panicSessions") {
			t.Errorf("session panic record without the handler's stack: %v", recs[0])
		}
	}
	echo.Close()
	d.waitValue(t, "edged_websocket_sessions_active", 0)
	d.checkLeaks(t, base)
}

// TestD8_MemoryPressure: the daemon runs with GOMEMLIMIT=8MiB, about its live heap, so the collector
// runs all the time, under a bounded mixed load: 1 MiB static files, 256 KiB echoes, 64 KiB topic values,
// 60 KB WebSocket messages, 4 clients at once. Every response is intact (checksums), /healthz stays
// answered within a bound, and the daemon is alive at the end. Built without -race, for the figures.
func TestD8_MemoryPressure(t *testing.T) {
	const (
		clients = 4
		rounds  = 25
	)
	root := t.TempDir()
	file := pattern(1<<20, 5)
	if err := os.WriteFile(filepath.Join(root, "one.bin"), file, 0o644); err != nil {
		t.Fatal(err)
	}
	fileSum := sha256.Sum256(file)
	d := startDaemonCmd(t, []string{edgedNoRace(t)}, []string{"GOMEMLIMIT=8MiB"}, "--webroot", root, "--enable-echo",
		"--socket-queue", "32", "--max-body", "1MiB")
	if got := d.waitLog("edged started")["go_memory_limit"]; got != float64(8<<20) {
		t.Fatalf("go_memory_limit %v, want 8 MiB from GOMEMLIMIT", got)
	}
	gcBefore := d.value(t, "go_gc_duration_seconds_count")

	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for g := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: waitLimit}
			defer hc.CloseIdleConnections()
			ws, _, err := (&websocket.Dialer{HandshakeTimeout: waitLimit}).Dial(d.wsURL("/echo"), nil)
			if err != nil {
				errs <- err
				return
			}
			defer ws.Close()
			body := pattern(256<<10, byte(g))
			value := pattern(64<<10, byte(g+7))
			msg := pattern(60000, byte(g+3))
			topic := d.url(fmt.Sprintf("/topics/pressure-%d", g))
			for i := range rounds {
				resp, err := hc.Get(d.url("/one.bin"))
				if err != nil {
					errs <- err
					return
				}
				h := sha256.New()
				_, err = io.Copy(h, resp.Body)
				resp.Body.Close()
				if err != nil || [32]byte(h.Sum(nil)) != fileSum {
					errs <- fmt.Errorf("client %d round %d: static file corrupt (%v)", g, i, err)
					return
				}
				resp, err = hc.Post(d.url("/echo"), "application/octet-stream", bytes.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || !bytes.Equal(got, body) {
					errs <- fmt.Errorf("client %d round %d: echo corrupt (%d bytes, %v)", g, i, len(got), err)
					return
				}
				req, _ := http.NewRequest("PUT", topic, bytes.NewReader(value))
				if resp, err = hc.Do(req); err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp, err = hc.Get(topic); err != nil {
					errs <- err
					return
				}
				got, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || !bytes.Equal(got, value) {
					errs <- fmt.Errorf("client %d round %d: topic value corrupt (%d bytes, %v)", g, i, len(got), err)
					return
				}
				_ = ws.SetReadDeadline(time.Now().Add(waitLimit))
				if err := ws.WriteMessage(websocket.BinaryMessage, msg); err != nil {
					errs <- err
					return
				}
				if _, got, err = ws.ReadMessage(); err != nil || !bytes.Equal(got, msg) {
					errs <- fmt.Errorf("client %d round %d: WebSocket echo corrupt (%v)", g, i, err)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var slowest time.Duration
	for loop := true; loop; {
		select {
		case <-done:
			loop = false
		default:
			slowest = max(slowest, d.healthzWithin(t, time.Second, "under memory pressure"))
		}
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s := d.series(t)
	t.Logf("GOMEMLIMIT=8MiB, %d clients x %d rounds: %v GC cycles, heap %.1f MiB, VmHWM %d kB, VmRSS %d kB, slowest /healthz %v",
		clients, rounds, s["go_gc_duration_seconds_count"]-gcBefore, s["go_memstats_heap_alloc_bytes"]/(1<<20),
		d.procStatus(t, "VmHWM"), d.procStatus(t, "VmRSS"), slowest)
	d.healthz(t)
}
