//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// readTyped reads one message from a gorilla connection and fails the test unless it has the type
// and payload wanted.
func readTyped(t *testing.T, name string, c *websocket.Conn, typ int, want []byte) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitLimit))
	gotType, got, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("%s: read: %v", name, err)
	}
	if gotType != typ || !bytes.Equal(got, want) {
		t.Fatalf("%s: got type %d %q, want type %d %q", name, gotType, clip(got), typ, clip(want))
	}
}

// TestD4_TopicOverWebSocket: a subscriber gets the retained value first, then every publish, a
// text/plain PUT as a text message and an application/octet-stream PUT as a binary one; a message a
// client sends publishes it, to the other subscribers and to GET (CONTRACT D4).
func TestD4_TopicOverWebSocket(t *testing.T) {
	d := startDaemon(t, nil)
	hc := &http.Client{Timeout: waitLimit}
	url := d.url("/topics/site/sensor-1.temp")

	if code, _, _ := httpDo(t, hc, "PUT", url, "text/plain; charset=utf-8", []byte("21.5")); code != 201 {
		t.Fatalf("first PUT: %d, want 201", code)
	}
	a := d.gorillaDial(t, "/topics/site/sensor-1.temp")
	readTyped(t, "retained value", a, websocket.TextMessage, []byte("21.5"))
	b := d.gorillaDial(t, "/topics/site/sensor-1.temp")
	readTyped(t, "retained value, second subscriber", b, websocket.TextMessage, []byte("21.5"))

	if code, _, _ := httpDo(t, hc, "PUT", url, "text/plain", []byte("22.0 °C")); code != 204 {
		t.Fatalf("second PUT: %d, want 204", code)
	}
	raw := []byte{0, 1, 2, 0xFF, 0xFE}
	if code, _, _ := httpDo(t, hc, "POST", url, "application/octet-stream", raw); code != 204 {
		t.Fatalf("binary POST: %d, want 204", code)
	}
	for name, c := range map[string]*websocket.Conn{"a": a, "b": b} {
		readTyped(t, name+": text publish", c, websocket.TextMessage, []byte("22.0 °C"))
		readTyped(t, name+": binary publish", c, websocket.BinaryMessage, raw)
	}

	// A message from a subscriber publishes it: the other subscriber gets it with its type, and GET
	// returns it as the retained value, with the Content-Type of its type.
	for _, m := range []struct {
		typ   int
		data  []byte
		ctype string
	}{
		{websocket.TextMessage, []byte("from a websocket ✓"), "text/plain; charset=utf-8"},
		{websocket.BinaryMessage, []byte{9, 8, 7, 0}, "application/octet-stream"},
	} {
		if err := a.WriteMessage(m.typ, m.data); err != nil {
			t.Fatalf("publish from a: %v", err)
		}
		readTyped(t, "b: publish from a", b, m.typ, m.data)
		readTyped(t, "a: its own publish", a, m.typ, m.data)
		code, hdr, body := httpDo(t, hc, "GET", url, "", nil)
		if code != 200 || !bytes.Equal(body, m.data) || hdr.Get("ETag") == "" || hdr.Get("Content-Type") != m.ctype {
			t.Errorf("GET after a WebSocket publish: %d %q ETag %q Content-Type %q, want 200 %q with an ETag and %q",
				code, body, hdr.Get("ETag"), hdr.Get("Content-Type"), m.data, m.ctype)
		}
	}

	// A subscriber of a topic without a value gets nothing until the first publish.
	e := d.gorillaDial(t, "/topics/empty")
	if code, _, _ := httpDo(t, hc, "PUT", d.url("/topics/empty"), "text/plain", []byte("first")); code != 201 {
		t.Fatalf("PUT /topics/empty: %d", code)
	}
	readTyped(t, "first publish of an empty topic", e, websocket.TextMessage, []byte("first"))
}

// TestW9_DashboardsDoNotHoldWorkers: four dashboards subscribed to one topic with --workers 2, while
// /healthz keeps answering promptly on new connections and every publish reaches every dashboard:
// sessions run in the session pool, not on HTTP workers (CONTRACT W9, D4).
func TestW9_DashboardsDoNotHoldWorkers(t *testing.T) {
	d := startDaemon(t, nil, "--workers", "2")
	const dashboards = 4
	var subs []*websocket.Conn
	for range dashboards {
		subs = append(subs, d.gorillaDial(t, "/topics/plant/line-1"))
	}
	d.waitMetric(t, "edged_websocket_sessions_active", dashboards)

	// Generous: a healthz takes about a millisecond; a worker held by a session would never answer.
	bound := 5 * time.Second
	if raceEnabled {
		bound *= 3
	}
	health := &http.Client{Timeout: waitLimit, Transport: &http.Transport{DisableKeepAlives: true}}
	pub := &http.Client{Timeout: waitLimit}
	var slowest time.Duration
	for i := range 20 {
		start := time.Now()
		code, _, body := httpDo(t, health, "GET", d.url("/healthz"), "", nil)
		took := time.Since(start)
		slowest = max(slowest, took)
		if code != 200 || string(body) != "ok" || took > bound {
			t.Fatalf("/healthz %d with %d dashboards open: %d %q in %v (bound %v)", i, dashboards, code, body, took, bound)
		}
		v := []byte(fmt.Sprintf(`{"seq":%d,"kw":%d.5}`, i, 40+i))
		if code, _, _ := httpDo(t, pub, "PUT", d.url("/topics/plant/line-1"), "application/json", v); code != 201 && code != 204 {
			t.Fatalf("publish %d: %d", i, code)
		}
		for j, c := range subs {
			readTyped(t, fmt.Sprintf("dashboard %d, publish %d", j, i), c, websocket.TextMessage, v)
		}
	}
	t.Logf("slowest /healthz with %d dashboards on 2 workers: %v", dashboards, slowest)
}

// TestD4_SlowSubscriberDropped: a subscriber that stops reading is dropped (close 1008, or its TCP
// closed) while publishers keep publishing at full speed, and the daemon's RSS stays within its
// memory budget of where it was, though far more than that is published meanwhile (CONTRACT D4, D8).
// The daemon is built without -race, whose shadow memory would swamp the RSS figures.
func TestD4_SlowSubscriberDropped(t *testing.T) {
	// With the subscriber's socket full, the write timeout (--io-timeout) is what ends its session.
	d := startDaemonCmd(t, []string{edgedNoRace(t)}, nil, "--io-timeout", "2s")
	budget := int64(d.waitLog("edged started")["memory_budget"].(float64)) >> 10 // kB
	const topic = "/topics/firehose"
	value := pattern(16<<10, 3)
	pub := &http.Client{Timeout: waitLimit}

	// Warm up every pool the publishing touches, then take the baseline.
	if code, _, _ := httpDo(t, pub, "PUT", d.url(topic), "application/octet-stream", value); code != 201 {
		t.Fatalf("first publish: %d", code)
	}
	rssBefore := d.procStatus(t, "VmRSS")

	// The slow subscriber never reads (until the end).
	slow := d.wsDialRaw(t, topic)
	d.waitMetric(t, "edged_websocket_sessions_active", 1)

	// Publishers at full speed until the subscriber is dropped, each request timed.
	var (
		stop      atomic.Bool
		published atomic.Int64
		slowest   atomic.Int64
		wg        sync.WaitGroup
		errMu     sync.Mutex
		pubErr    error
	)
	// Each request leaves in one write on a keep-alive connection, so that a stall of this process
	// cannot cut a body in two for longer than the daemon's short --io-timeout.
	req := append([]byte("PUT "+topic+" HTTP/1.1\r\nHost: e2e\r\nContent-Type: application/octet-stream\r\n"+
		"Content-Length: "+strconv.Itoa(len(value))+"\r\n\r\n"), value...)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail := func(err error) {
				errMu.Lock()
				pubErr = err
				errMu.Unlock()
			}
			c, err := net.DialTimeout("tcp", d.addr, waitLimit)
			if err != nil {
				fail(err)
				return
			}
			defer c.Close()
			br := bufio.NewReader(c)
			for !stop.Load() {
				start := time.Now()
				_ = c.SetDeadline(start.Add(waitLimit))
				if _, err := c.Write(req); err != nil {
					fail(err)
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 204 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					fail(err)
					return
				}
				published.Add(1)
				if took := int64(time.Since(start)); took > slowest.Load() {
					slowest.Store(took)
				}
			}
		}()
	}
	start := time.Now()
	dropped := poll(func() bool { return d.metric(t, "edged_websocket_sessions_active") == 0 }, d.exited)
	droppedAfter, beforeDrop := time.Since(start), published.Load()
	// Keep publishing a while after the drop: nothing may pile up for the gone subscriber.
	poll(func() bool { return published.Load() > beforeDrop+500 }, d.exited)
	stop.Store(true)
	wg.Wait()
	if pubErr != nil {
		t.Fatalf("publisher: %v; daemon stderr:\n%s", pubErr, d.stderrText())
	}
	if !dropped {
		t.Fatalf("the subscriber that does not read was not dropped within %v (%d publishes)", waitLimit, published.Load())
	}
	rssAfter, peak := d.procStatus(t, "VmRSS"), d.procStatus(t, "VmHWM")
	t.Logf("dropped after %v; %d publishes of %d bytes (%d before the drop), slowest %v; VmRSS %d kB -> %d kB, peak %d kB; budget %d kB",
		droppedAfter, published.Load(), len(value), beforeDrop, time.Duration(slowest.Load()), rssBefore, rssAfter, peak, budget)

	// Generous bounds: a publish takes about a millisecond.
	bound := 2 * time.Second
	if raceEnabled {
		bound *= 3
	}
	if s := time.Duration(slowest.Load()); s > bound {
		t.Errorf("a publish took %v while a subscriber did not read (bound %v)", s, bound)
	}
	margin := budget + 8<<10 // the budget, plus the garbage collector's headroom
	if total := beforeDrop * int64(len(value)) >> 10; total < 2*margin {
		t.Errorf("only %d kB published before the drop: too little to tell a bounded queue from an unbounded one (margin %d kB)", total, margin)
	}
	if int64(peak-rssBefore) > margin {
		t.Errorf("peak RSS %d kB, %d kB above the %d kB before the slow subscriber (margin %d kB)", peak, peak-rssBefore, rssBefore, margin)
	}

	// The subscriber, reading at last, finds what was sent before the drop, then close 1008 or the
	// end of the TCP connection.
	_ = slow.c.SetReadDeadline(time.Now().Add(waitLimit))
	frames := 0
	for {
		_, op, p, err := slow.readFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the dropped subscriber's connection is still open after %d frames", frames)
			}
			t.Logf("dropped subscriber: TCP closed after %d frames (%v)", frames, err)
			break
		}
		if op == opClose {
			if len(p) < 2 || int(p[0])<<8|int(p[1]) != 1008 {
				t.Errorf("dropped subscriber: close payload %x, want code 1008", p)
			}
			t.Logf("dropped subscriber: close 1008 after %d frames", frames)
			break
		}
		frames++
	}
}

// TestW9_PoolFullGets503: with --ws-max-conns 2 the third upgrade gets 503 with Retry-After, and once
// a session closes, an upgrade succeeds again (CONTRACT W9).
func TestW9_PoolFullGets503(t *testing.T) {
	d := startDaemon(t, nil, "--enable-echo", "--ws-max-conns", "2")
	first := d.gorillaDial(t, "/topics/pool")
	d.gorillaDial(t, "/echo")
	for _, path := range []string{"/echo", "/topics/pool"} {
		w, r := d.wsHandshake(t, path, "")
		if r.StatusCode != 503 || r.Header.Get("Retry-After") == "" {
			t.Errorf("%s with the pool full: status %d, Retry-After %q; want 503 with Retry-After\n%s",
				path, r.StatusCode, r.Header.Get("Retry-After"), r.head)
		}
		w.c.Close()
	}
	// The refused upgrades did not take a session.
	if n := d.metric(t, "edged_websocket_sessions_active"); n != 2 {
		t.Errorf("edged_websocket_sessions_active = %v, want 2", n)
	}

	// Close one session with the close handshake; its pool entry comes back.
	if err := first.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := first.ReadMessage(); !websocket.IsCloseError(err, 1000) {
		t.Fatalf("close handshake: %v", err)
	}
	var last rawResponse
	if !poll(func() bool {
		w, r := d.wsHandshake(t, "/echo", "")
		last = r
		if r.StatusCode != 101 {
			w.c.Close()
			return false
		}
		if err := w.writeFrame(true, opText, []byte("again")); err != nil {
			t.Fatal(err)
		}
		_, msg, err := w.readMessage()
		if err != nil || string(msg) != "again" {
			t.Fatalf("echo on the new session: %q %v", msg, err)
		}
		return true
	}, d.exited) {
		t.Fatalf("no upgrade succeeded after a session closed; last status %d\n%s", last.StatusCode, last.head)
	}
	if strings.Contains(d.stderrText(), `"level":"ERROR"`) {
		t.Errorf("errors logged:\n%s", d.stderrText())
	}
}
