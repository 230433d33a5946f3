//go:build e2e

package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Slow and hostile clients: each holds what it can (a worker, a slot, a session) for as long as the
// configured deadline allows and no longer, and a well-behaved client keeps being served meanwhile,
// within a bound derived from those deadlines (CONTRACT S5, S6, S11, D4).

// TestS6_SlowlorisHeads: 2P clients send a request head a byte every 100 ms. Each is answered 408 with
// Connection: close once --header-timeout has passed since the daemon read its first byte, and closed.
// A head in progress holds a worker, so with 2P of them a well-behaved client waits at most for two
// rounds of header timeouts (2P/P + 1 = 3 here): the bound this test holds /healthz to.
func TestS6_SlowlorisHeads(t *testing.T) {
	const (
		workers       = 2
		lorises       = 2 * workers
		headerTimeout = time.Second
	)
	d := startDaemon(t, nil, "--workers", strconv.Itoa(workers), "--socket-queue", "64", "--header-timeout", headerTimeout.String(),
		"--metrics-listen", "127.0.0.1:0")
	base := d.baseline(t)
	type result struct {
		status int
		took   time.Duration
		err    error
	}
	results := make(chan result, lorises)
	for range lorises {
		c := d.dial(t)
		go func() {
			start := time.Now()
			if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: e2e\r\nX-Slow: "); err != nil {
				results <- result{err: err}
				return
			}
			stop := make(chan struct{})
			defer close(stop)
			go func() { // one byte every 100 ms, at most 200 of them, until the answer came
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				for range 200 {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					if _, err := c.Write([]byte("z")); err != nil {
						return
					}
				}
			}()
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				results <- result{err: err}
				return
			}
			resp.Body.Close()
			if !resp.Close {
				err = errors.New("no Connection: close")
			}
			results <- result{status: resp.StatusCode, took: time.Since(start), err: err}
		}()
	}
	// Every worker is held by a slow head and the other heads wait in the queue (the metrics listener
	// has a worker of its own); then a well-behaved client asks.
	if !poll(func() bool {
		s := d.series(t)
		return s["edged_workers_busy"] == workers && s["edged_socket_queue_length"] == lorises-workers
	}, d.exited) {
		t.Fatalf("the slow heads do not hold the %d workers", workers)
	}
	bound := scaledBound(time.Duration(lorises/workers+1)*headerTimeout + 500*time.Millisecond)
	slowest := d.healthzWithin(t, bound, "while slow heads hold the workers")
	if slowest < headerTimeout/2 {
		t.Errorf("/healthz answered after %v while every worker was held: the slow heads held nothing", slowest)
	}
	for range 2 {
		slowest = max(slowest, d.healthzWithin(t, bound, "after slow heads held the workers"))
	}
	for range lorises {
		r := <-results
		if r.err != nil || r.status != 408 {
			t.Errorf("slow head: status %d, %v; want 408 with Connection: close", r.status, r.err)
			continue
		}
		if r.took < headerTimeout*9/10 || r.took > bound {
			t.Errorf("slow head answered after %v; want between the header timeout %v and %v", r.took, headerTimeout, bound)
		}
	}
	s := d.series(t)
	if n := s[`edged_connections_closed_total{reason="header_timeout"}`]; n != lorises {
		t.Errorf("closed with reason header_timeout: %v, want %d", n, lorises)
	}
	t.Logf("slowest /healthz while %d slow heads held %d workers: %v (bound %v)", lorises, workers, slowest, bound)
	d.checkLeaks(t, base)
}

// TestS6_SlowBodies: a body that stops arriving is answered 408 once --io-timeout passes without a
// byte; a body that trickles in (a byte every 200 ms, so no read waits long) is ended by
// --handler-timeout with 503. One worker stays free, and /healthz is answered meanwhile.
func TestS6_SlowBodies(t *testing.T) {
	const ioTimeout, handlerTimeout = time.Second, 3 * time.Second
	d := startDaemon(t, nil, "--enable-echo", "--workers", "3", "--io-timeout", ioTimeout.String(),
		"--handler-timeout", handlerTimeout.String(), "--header-timeout", "1s", "--metrics-listen", "127.0.0.1:0")
	base := d.baseline(t)

	type result struct {
		r    rawResponse
		took time.Duration
	}
	stalled, trickled := make(chan result, 1), make(chan result, 1)
	cs, ct := d.dial(t), d.dial(t)
	go func() {
		start := time.Now()
		_, _ = io.WriteString(cs, "POST /echo HTTP/1.1\r\nHost: e2e\r\nContent-Length: 100000\r\n\r\n0123456789")
		stalled <- result{readResponse(t, cs, bufio.NewReader(cs), "POST", true), time.Since(start)}
	}()
	go func() {
		start := time.Now()
		_, _ = io.WriteString(ct, "POST /echo HTTP/1.1\r\nHost: e2e\r\nContent-Length: 100\r\n\r\n")
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for range 99 { // one short of the body: it never completes
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := ct.Write([]byte("t")); err != nil {
					return
				}
			}
		}()
		trickled <- result{readResponse(t, ct, bufio.NewReader(ct), "POST", true), time.Since(start)}
	}()
	if !poll(func() bool { return d.value(t, "edged_workers_busy") == 2 }, d.exited) {
		t.Fatal("the slow bodies do not hold two workers")
	}
	healthBound := scaledBound(500 * time.Millisecond)
	d.healthzWithin(t, healthBound, "while two workers wait for slow bodies")

	s := <-stalled
	if s.r.StatusCode != 408 || !s.r.Close || !s.r.closed {
		t.Errorf("stalled body: %d close=%v closed=%v, want 408 and the connection closed", s.r.StatusCode, s.r.Close, s.r.closed)
	}
	if s.took < ioTimeout*9/10 || s.took > scaledBound(ioTimeout+time.Second) {
		t.Errorf("stalled body answered after %v, want about the io timeout %v", s.took, ioTimeout)
	}
	tr := <-trickled
	if tr.r.StatusCode != 503 || !tr.r.Close || !tr.r.closed {
		t.Errorf("trickled body: %d close=%v closed=%v, want 503 and the connection closed", tr.r.StatusCode, tr.r.Close, tr.r.closed)
	}
	if tr.took < handlerTimeout*9/10 || tr.took > scaledBound(handlerTimeout+time.Second) {
		t.Errorf("trickled body answered after %v, want about the handler timeout %v", tr.took, handlerTimeout)
	}
	t.Logf("stalled body: 408 after %v; trickled body: 503 after %v", s.took, tr.took)
	d.healthz(t)
	d.checkLeaks(t, base)
}

// dialRcvBuf dials addr with a receive buffer of size bytes set before connecting, so that the TCP
// window stays small: a client that does not read then holds little in flight.
func dialRcvBuf(t *testing.T, addr string, size int) net.Conn {
	t.Helper()
	dl := net.Dialer{Timeout: waitLimit, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, size)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := dl.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestS6_SlowReadersOfLargeResponses: P clients ask for a 16 MiB file and never read. Each holds its
// worker until --io-timeout passes without the socket draining, then its connection is closed (reason
// io_timeout) and what it reads at last is cut short. Meanwhile /healthz waits at most for one io
// timeout, and a client that reads gets the whole file intact.
func TestS6_SlowReadersOfLargeResponses(t *testing.T) {
	const (
		workers   = 2
		ioTimeout = time.Second
		size      = 16 << 20
	)
	root := t.TempDir()
	huge := pattern(size, 9)
	if err := os.WriteFile(filepath.Join(root, "huge.bin"), huge, 0o644); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(huge)
	d := startDaemon(t, nil, "--webroot", root, "--workers", strconv.Itoa(workers), "--io-timeout", ioTimeout.String(),
		"--metrics-listen", "127.0.0.1:0")
	base := d.baseline(t)
	var readers []net.Conn
	start := time.Now()
	for range workers {
		c := dialRcvBuf(t, d.addr, 4096)
		if _, err := io.WriteString(c, "GET /huge.bin HTTP/1.1\r\nHost: e2e\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		readers = append(readers, c)
	}
	d.healthzWithin(t, scaledBound(ioTimeout+time.Second), "while slow readers hold every worker")
	if !poll(func() bool {
		return d.series(t)[`edged_connections_closed_total{reason="io_timeout"}`] == workers
	}, d.exited) {
		t.Fatalf("the slow readers were not closed for io_timeout")
	}
	closedAfter := time.Since(start)
	if closedAfter < ioTimeout*9/10 {
		t.Errorf("slow readers closed after %v, before the io timeout %v", closedAfter, ioTimeout)
	}
	for i, c := range readers {
		_ = c.SetReadDeadline(time.Now().Add(waitLimit))
		n, err := io.Copy(io.Discard, c)
		if errors.Is(err, os.ErrDeadlineExceeded) || n >= size {
			t.Errorf("slow reader %d: read %d bytes, %v; want a cut response and the connection closed", i, n, err)
		}
	}
	resp, err := http.Get(d.url("/huge.bin"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil || n != size || [32]byte(h.Sum(nil)) != want {
		t.Errorf("a reading client: %d bytes, %v, checksum ok %v", n, err, [32]byte(h.Sum(nil)) == want)
	}
	http.DefaultClient.CloseIdleConnections()
	t.Logf("%d slow readers closed %v after their request (io timeout %v)", workers, closedAfter, ioTimeout)
	d.checkLeaks(t, base)
}

// TestD4_NonReadingSubscribersDropped: three subscribers with small receive buffers never read; a
// fourth reads everything. A publisher sends numbered 16 KiB values, each once the reading subscriber
// has the previous one, about 500 a second. The non-readers are dropped: their queue overflows at once
// (they are unsubscribed, close 1008), and their sessions end when the write blocked on their full
// socket times out (--io-timeout). The reader gets every value, in order, and no publish waits on the
// non-readers (CONTRACT D4, W9).
func TestD4_NonReadingSubscribersDropped(t *testing.T) {
	const ioTimeout = time.Second
	d := startDaemon(t, nil, "--io-timeout", ioTimeout.String(), "--ws-max-conns", "8", "--socket-queue", "32",
		"--metrics-listen", "127.0.0.1:0")
	const topic = "/topics/telemetry"
	base := d.baseline(t)
	var slow []*wsRaw
	for range 3 {
		c := dialRcvBuf(t, d.addr, 4096)
		slow = append(slow, wsHandshakeOn(t, d, c, topic))
	}
	reader := d.wsDialRaw(t, topic)
	d.waitValue(t, "edged_websocket_sessions_active", 4)

	got := make(chan uint64, 16)
	readErr := make(chan error, 1)
	go func() {
		_ = reader.c.SetReadDeadline(time.Now().Add(3 * waitLimit))
		for {
			_, msg, err := reader.readMessage()
			if err != nil {
				readErr <- err
				return
			}
			got <- binary.BigEndian.Uint64(msg)
		}
	}()

	pub := d.dial(t)
	pbr := bufio.NewReader(pub)
	value := pattern(16<<10, 1)
	var (
		seq, afterDrop uint64
		slowest        time.Duration
		droppedAfter   time.Duration
	)
	bound := scaledBound(500 * time.Millisecond)
	begin := time.Now()
	pace := time.NewTicker(2 * time.Millisecond) // paces the load, bounded below by count and time
	defer pace.Stop()
	for seq = 1; seq <= 20000 && afterDrop < 50 && time.Since(begin) < waitLimit; seq++ {
		<-pace.C
		binary.BigEndian.PutUint64(value, seq)
		start := time.Now()
		fmt.Fprintf(pub, "PUT %s HTTP/1.1\r\nHost: e2e\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", topic, len(value))
		if _, err := pub.Write(value); err != nil {
			t.Fatal(err)
		}
		r := readResponse(t, pub, pbr, "PUT", false)
		slowest = max(slowest, time.Since(start))
		if r.StatusCode != 201 && r.StatusCode != 204 {
			t.Fatalf("publish %d: %d", seq, r.StatusCode)
		}
		select {
		case n := <-got:
			if n != seq {
				t.Fatalf("the reading subscriber got value %d, want %d", n, seq)
			}
		case err := <-readErr:
			t.Fatalf("the reading subscriber was dropped after %d values: %v", seq-1, err)
		case <-time.After(waitLimit):
			t.Fatalf("the reading subscriber did not get value %d", seq)
		}
		if afterDrop > 0 {
			afterDrop++
		} else if seq%25 == 0 && d.value(t, "edged_websocket_sessions_active") == 1 {
			afterDrop, droppedAfter = 1, time.Since(begin)
		}
	}
	if afterDrop == 0 {
		t.Fatalf("the non-reading subscribers were not dropped after %d publishes in %v", seq-1, time.Since(begin))
	}
	if slowest > bound {
		t.Errorf("slowest publish %v, bound %v", slowest, bound)
	}
	if droppedAfter > scaledBound(ioTimeout+2*time.Second) {
		t.Errorf("the non-readers' sessions ended %v after the first publish; want about the io timeout %v", droppedAfter, ioTimeout)
	}
	t.Logf("%d values of %d bytes published; the non-readers' sessions ended after %v; the reader got every value; slowest publish %v",
		seq-1, len(value), droppedAfter, slowest)
	for i, w := range slow {
		frames, code := drainSession(w)
		if code != 1008 && code != -1 {
			t.Errorf("non-reader %d: close code %d, want 1008 (or the TCP connection closed)", i, code)
		}
		t.Logf("non-reader %d: %d frames, then close %d", i, frames, code)
		w.c.Close()
	}
	pub.Close()
	reader.c.Close()
	d.waitValue(t, "edged_websocket_sessions_active", 0)
	d.checkLeaks(t, base)
}

// wsHandshakeOn upgrades the connection c to a WebSocket session on path and fails the test unless it
// gets 101.
func wsHandshakeOn(t *testing.T, d *daemon, c net.Conn, path string) *wsRaw {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(waitLimit))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
		path, d.addr, wsKey())
	br := bufio.NewReader(c)
	if r := readResponse(t, c, br, "HEAD", false); r.StatusCode != 101 {
		t.Fatalf("upgrade %s: %d", path, r.StatusCode)
	}
	_ = c.SetDeadline(time.Time{})
	return &wsRaw{c: c, br: br}
}

// drainSession reads a session until its close frame (returning the code) or the end of the TCP
// connection (code -1), and counts the data frames before.
func drainSession(w *wsRaw) (frames, code int) {
	_ = w.c.SetReadDeadline(time.Now().Add(waitLimit))
	for {
		_, op, p, err := w.readFrame()
		if err != nil {
			return frames, -1
		}
		if op == opClose {
			if len(p) >= 2 {
				return frames, int(binary.BigEndian.Uint16(p))
			}
			return frames, 1005
		}
		frames++
	}
}

// TestS4_ThousandsOfIdleConnections: 2,000 keep-alive connections, each after one request, sit idle
// in a daemon with --socket-queue 4096. They are parked (no worker, no goroutine each: CONTRACT S5,
// S11), the daemon's RSS grows by little (a slot is a few dozen bytes; socket buffers are the kernel's),
// /healthz is answered fast all along, an idle connection still serves its next request, and when the
// clients leave every descriptor is released. The daemon is built without -race for the RSS figure.
func TestS4_ThousandsOfIdleConnections(t *testing.T) {
	const (
		idle     = 2000
		rssBound = 4 << 10 // kB of RSS growth allowed
	)
	d := startDaemonCmd(t, []string{edgedNoRace(t)}, nil, "--socket-queue", "4096", "--workers", "4")
	for range 20 {
		d.healthz(t)
	}
	base := d.baseline(t)
	threads := d.procStatus(t, "Threads")
	rssBefore := d.procStatus(t, "VmRSS")

	conns := make([]net.Conn, 0, idle)
	readers := make([]*bufio.Reader, 0, idle)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range idle {
		c, err := net.DialTimeout("tcp", d.addr, waitLimit)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		br := bufio.NewReader(c)
		readers = append(readers, br)
		_ = c.SetDeadline(time.Now().Add(waitLimit))
		if r := getOn(t, c, br, "/healthz"); r.StatusCode != 200 {
			t.Fatalf("connection %d: %d", i, r.StatusCode)
		}
	}
	if !poll(func() bool { return d.value(t, "edged_sockets_parked") >= idle }, d.exited) {
		t.Fatalf("edged_sockets_parked %v, want %d", d.value(t, "edged_sockets_parked"), idle)
	}
	var slowest time.Duration
	for range 20 {
		slowest = max(slowest, d.healthzWithin(t, scaledBound(200*time.Millisecond), "with 2,000 idle connections"))
	}
	rss := d.procStatus(t, "VmRSS")
	if rss-rssBefore > rssBound {
		t.Errorf("VmRSS %d kB with %d idle connections, %d kB before (bound +%d kB)", rss, idle, rssBefore, rssBound)
	}
	if g := d.value(t, "go_goroutines"); g > base.goroutines+1 {
		t.Errorf("go_goroutines %v with %d idle connections, %v without", g, idle, base.goroutines)
	}
	if n := d.procStatus(t, "Threads"); n > threads+2 {
		t.Errorf("threads %d with %d idle connections, %d without", n, idle, threads)
	}
	// An idle connection in the middle is still served.
	c, br := conns[idle/2], readers[idle/2]
	_ = c.SetDeadline(time.Now().Add(waitLimit))
	if r := getOn(t, c, br, "/healthz"); r.StatusCode != 200 {
		t.Errorf("idle connection: %d", r.StatusCode)
	}
	t.Logf("%d idle connections: VmRSS %d kB -> %d kB, slowest /healthz %v, fds %d", idle, rssBefore, rss, slowest, d.fdCount(t))
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	d.checkLeaks(t, base)
}
