package server

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"math"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edged/edged/pkg/conn"
)

func TestS8_LingeringCloseAfterConnectionClose(t *testing.T) {
	checkLeaks(t)
	rec := newRecorder()
	ts := startServer(t, Config{Workers: 1, SocketQueue: 2, ParkIdle: true, Observer: rec}, echoPath)
	cl := dial(t, ts.Addr())
	// Bytes after the request stay unread: closing at once would reset the connection.
	cl.send("GET /bye HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n" + strings.Repeat("x", 16<<10))
	resp, body := cl.response()
	if body != "/bye" || !resp.Close {
		t.Fatalf("got %q close %v", body, resp.Close)
	}
	cl.closed() // the server shut its side down for writing ...
	waitFor(t, "the worker to let go", func() bool { return ts.Stats().WorkersBusy == 0 })
	if st := ts.Stats(); st.SocketsOpen != 1 {
		t.Fatalf("stats %+v: want the socket lingering in the poller", st)
	}
	cl.send(strings.Repeat("y", 8<<10)) // ... and still drains what the client sends
	cl.c.Close()
	waitFor(t, "the lingering socket to close", func() bool { return ts.Stats().SocketsOpen == 0 })
	if rec.closedCount(ReasonDone) != 1 {
		t.Fatalf("observer: %v", rec)
	}
}

func TestS8_PeerThatClosedFirstIsClosedAtOnce(t *testing.T) {
	checkLeaks(t)
	rec := newRecorder()
	ts := startServer(t, Config{Workers: 1, SocketQueue: 2, Observer: rec}, echoPath)
	cl := dial(t, ts.Addr())
	cl.get("/half")
	cl.c.(*net.TCPConn).CloseWrite()
	if _, body := cl.response(); body != "/half" {
		t.Fatalf("got %q", body)
	}
	cl.closed()
	waitFor(t, "the socket to close", func() bool { return ts.Stats().SocketsOpen == 0 })
	if rec.closedCount(ReasonClientClosed) != 1 {
		t.Fatalf("observer: %v", rec)
	}
}

func TestS8_LateEventForReusedSlotIsDropped(t *testing.T) {
	checkLeaks(t)
	s, err := New(Config{Listen: "127.0.0.1:0", Workers: 1, SocketQueue: 2, ParkIdle: true}, echoPath)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	sl := &s.slots[i]
	sl.fd, sl.state = int32(fds[0]), slotParked
	s.parked.pushBack(s.slots, i)
	s.open.Add(1)
	old := sl.gen
	s.parked.remove(s.slots, i)
	s.closeLocked(i) // the socket closes; its fd number may come back for another connection

	fds2, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds2[1])
	s.free = s.free[:len(s.free)-1]
	sl.fd, sl.state = int32(fds2[0]), slotParked
	s.parked.pushBack(s.slots, i)
	s.open.Add(1)
	s.slotEventLocked(i, old, unix.EPOLLIN) // an event meant for the closed socket
	if sl.state != slotParked || len(s.ready) != 0 {
		t.Fatal("a stale event reached the new socket")
	}
	s.slotEventLocked(i, sl.gen, unix.EPOLLIN)
	if sl.state != slotQueued || len(s.ready) != 1 {
		t.Fatal("the current event was dropped")
	}
	<-s.ready
	s.closeLocked(i)
}

// gate is a handler that, on /slow, reports that it started and waits to be released.
type gate struct {
	started chan struct{}
	release chan struct{}
}

func newGate() *gate { return &gate{started: make(chan struct{}, 8), release: make(chan struct{})} }

func (g *gate) Handle(_ int, c *conn.Connection) error {
	if string(c.Path()) == "/slow" {
		g.started <- struct{}{}
		<-g.release
	}
	if string(c.Path()) == "/body" {
		g.started <- struct{}{}
		b, err := io.ReadAll(c)
		if err != nil {
			return err
		}
		return c.Reply(200, "text/plain", b)
	}
	return c.Reply(200, "text/plain", c.Path())
}

func TestS9_GracefulShutdown(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			checkLeaks(t)
			rec := newRecorder()
			g := newGate()
			cfg := m.cfg
			cfg.Workers = 2
			cfg.Observer = rec
			ts := startServer(t, cfg, g)
			idle := dial(t, ts.Addr())
			idle.roundTrip("/", "/")
			busy := dial(t, ts.Addr())
			busy.get("/slow")
			<-g.started

			shut := make(chan error, 1)
			go func() { shut <- ts.Shutdown(context.Background()) }()
			idle.closed() // idle connections close at once, parked or waiting in a worker
			select {
			case err := <-shut:
				t.Fatalf("Shutdown returned %v with a request in flight", err)
			default:
			}
			if _, err := net.Dial("tcp", ts.Addr()); err == nil {
				t.Fatal("the listener still accepts")
			}
			close(g.release)
			resp, body := busy.response()
			if resp.StatusCode != 200 || body != "/slow" || !resp.Close {
				t.Fatalf("in-flight request: %d %q close %v, want 200 with Connection: close", resp.StatusCode, body, resp.Close)
			}
			busy.closed()
			busy.c.Close() // ends the lingering close at once
			if err := <-shut; err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			if rec.closedCount(ReasonShutdown) != 2 {
				t.Fatalf("observer: %v", rec)
			}
		})
	}
}

func TestS9_GraceEndForceCloses(t *testing.T) {
	checkLeaks(t)
	g := newGate()
	grace := scaled(300 * time.Millisecond)
	ts := startServer(t, Config{Workers: 1, SocketQueue: 2, ParkIdle: true, ShutdownGrace: grace}, g)
	cl := dial(t, ts.Addr())
	cl.send("POST /body HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nabc") // the rest never comes
	<-g.started
	start := time.Now()
	if err := ts.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < grace || d > grace+forceWait+patience/4 {
		t.Fatalf("shutdown took %v with a grace of %v", d, grace)
	}
	cl.closed()
}

// A socket still lingering when the grace period ends is closed by the force-close itself; with
// nothing else open, the drain is over then, not a forceWait later.
func TestS9_ForceClosingLastLingeringSocketEndsDrain(t *testing.T) {
	checkLeaks(t)
	grace := scaled(100 * time.Millisecond)
	if grace >= lingerTime {
		t.Fatalf("grace %v must end before the lingering close (%v) does", grace, lingerTime)
	}
	ts := startServer(t, Config{Workers: 1, SocketQueue: 2, ParkIdle: true, ShutdownGrace: grace}, echoPath)
	cl := dial(t, ts.Addr())
	cl.send("GET /bye HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
	if _, body := cl.response(); body != "/bye" {
		t.Fatalf("got %q", body)
	}
	cl.closed() // the server shut its side down and lingers; the client never closes its own
	waitFor(t, "the worker to let go", func() bool { return ts.Stats().WorkersBusy == 0 })
	start := time.Now()
	if err := ts.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Without a wake-up the poller sleeps until the force-close's own deadline: at least
	// grace+forceWait. With one, it returns right after the grace period, which counts from the
	// moment the poller saw the stop request, after Shutdown made it.
	if d := time.Since(start); d < grace || d >= grace+forceWait {
		t.Fatalf("shutdown took %v with a grace of %v and one lingering socket", d, grace)
	}
}

func TestS9_StuckHandlerOutlivesServe(t *testing.T) {
	checkLeaks(t)
	g := newGate()
	grace := scaled(200 * time.Millisecond)
	s, err := New(Config{Listen: "127.0.0.1:0", Workers: 1, SocketQueue: 2, ShutdownGrace: grace}, g)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	cl := dial(t, s.Addr())
	cl.get("/slow") // the handler blocks without touching its connection
	<-g.started
	start := time.Now()
	cancel()
	if err := <-done; err != ErrShutdownIncomplete {
		t.Fatalf("Serve returned %v, want ErrShutdownIncomplete", err)
	}
	if d := time.Since(start); d < grace+forceWait || d > grace+forceWait+patience/4 {
		t.Fatalf("Serve returned after %v", d)
	}
	cl.closed()      // the socket was shut down at the end of the grace period
	close(g.release) // the handler returns late; its worker then closes the socket and exits
}

func TestS9_ShutdownBeforeServe(t *testing.T) {
	checkLeaks(t)
	s, err := New(Config{Listen: "127.0.0.1:0"}, echoPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(context.Background()); err != ErrServerClosed {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}

// countingHandler counts slog records at or above a level.
type countingHandler struct {
	n *atomic.Int32
}

func (h countingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h countingHandler) Handle(context.Context, slog.Record) error    { h.n.Add(1); return nil }
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h countingHandler) WithGroup(string) slog.Handler                { return h }

func TestS7_AcceptErrorsBackOff(t *testing.T) {
	checkLeaks(t)
	rec := newRecorder()
	var logged atomic.Int32
	s, err := New(Config{Listen: "127.0.0.1:0", Workers: 1, SocketQueue: 2, ParkIdle: true, Observer: rec,
		Logger: slog.New(countingHandler{&logged})}, echoPath)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	var failing atomic.Bool
	failing.Store(true)
	real := s.accept
	s.accept = func(lfd int) (int, error) {
		calls.Add(1)
		if failing.Load() {
			// A slow failure: the back-off has already run out when the poller next computes
			// how long it may sleep, and it must retry rather than wait for an edge.
			time.Sleep(2 * minBackoff)
			return -1, unix.EMFILE // the process is out of descriptors
		}
		return real(lfd)
	}
	ts := runServer(t, s)
	cl := dial(t, ts.Addr())
	cl.get("/")
	waitFor(t, "accept errors", func() bool { rec.mu.Lock(); defer rec.mu.Unlock(); return rec.acceptErrs >= 2 })
	window := scaled(300 * time.Millisecond)
	before := calls.Load()
	time.Sleep(window) // measures a rate: the absence of spinning
	if n := calls.Load() - before; n > 20 {
		t.Fatalf("%d accept calls in %v: the poller spins", n, window)
	}
	if n := logged.Load(); n < 1 || n > 2 {
		t.Fatalf("%d log records, want one a second at most", n)
	}
	failing.Store(false)
	if resp, body := cl.response(); resp.StatusCode != 200 || body != "/" {
		t.Fatalf("after the errors: %d %q", resp.StatusCode, body)
	}
}

func TestS14_MaxConnsPerClient(t *testing.T) {
	checkLeaks(t)
	rec := newRecorder()
	ts := startServer(t, Config{Workers: 1, SocketQueue: 8, ParkIdle: true, MaxConnsPerClient: 2, Observer: rec}, echoPath)
	c1, c2 := dial(t, ts.Addr()), dial(t, ts.Addr())
	c1.roundTrip("/1", "/1")
	c2.roundTrip("/2", "/2")
	c3 := dial(t, ts.Addr())
	c3.closed()
	waitFor(t, "the close to be counted", func() bool { return rec.closedCount(ReasonClientLimit) == 1 })
	c1.c.Close()
	waitFor(t, "c1's socket to close", func() bool { return ts.Stats().SocketsOpen == 1 })
	dial(t, ts.Addr()).roundTrip("/4", "/4")
}

func TestS14_ClientKeys(t *testing.T) {
	a := [16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1}
	b := a
	b[15], b[9] = 2, 7 // same /64
	c := a
	c[7] = 2 // another /64
	mapped := [16]byte{10: 0xff, 11: 0xff, 12: 192, 13: 0, 14: 2, 15: 1}
	switch {
	case clientKeyFrom6(a) != clientKeyFrom6(b):
		t.Error("two addresses of one /64 differ")
	case clientKeyFrom6(a) == clientKeyFrom6(c):
		t.Error("two /64 prefixes share a key")
	case clientKeyFrom6(mapped) != clientKeyFrom4([4]byte{192, 0, 2, 1}):
		t.Error("an IPv4-mapped address is not its IPv4 address")
	case clientKeyFrom4([4]byte{192, 0, 2, 1}) == clientKeyFrom4([4]byte{192, 0, 2, 2}):
		t.Error("two IPv4 addresses share a key")
	}
}

func TestS12_AdoptListeningSocket(t *testing.T) {
	checkLeaks(t)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Listeners: []int{fd}}, echoPath); err == nil {
		t.Fatal("adopted a socket that does not listen")
	} else if be := (*BindError)(nil); !errorsAs(err, &be) {
		t.Fatalf("want a *BindError, got %v", err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{Listeners: []int{fd}, Listen: "ignored", SocketQueue: 2}, echoPath)
	if !strings.HasPrefix(ts.Addr(), "127.0.0.1:") {
		t.Fatalf("Addr() = %q", ts.Addr())
	}
	dial(t, ts.Addr()).roundTrip("/adopted", "/adopted")
}

func TestH19_UnboundSocketKeepsItsSlot(t *testing.T) {
	checkLeaks(t)
	rec := newRecorder()
	ts := startServer(t, Config{Workers: 1, SocketQueue: 2, ParkIdle: true, Observer: rec}, takeOver)
	releases := make(chan func(), 1)
	ts.SetUnboundHandler(func(_ int, st conn.Stream, release func()) {
		st.Write([]byte("taken over"))
		releases <- release
	})
	cl := dial(t, ts.Addr())
	cl.send("GET / HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
	release := <-releases
	waitFor(t, "the worker to let go", func() bool { return ts.Stats().WorkersBusy == 0 })
	if st := ts.Stats(); st.SocketsOpen != 1 {
		t.Fatalf("stats %+v: the unbound socket must keep its slot", st)
	}
	release()
	release() // idempotent
	b, err := io.ReadAll(cl.br)
	if err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 101 ") || !strings.HasSuffix(string(b), "\r\n\r\ntaken over") {
		t.Fatalf("read %q, %v", b, err)
	}
	// Released, the socket lingers until the client closes too (CONTRACT S8, W6).
	cl.c.Close()
	waitFor(t, "the released socket to close", func() bool { return ts.Stats().SocketsOpen == 0 })
	if rec.closedCount(ReasonUnbound) != 1 {
		t.Fatalf("stats %+v, observer %v", ts.Stats(), rec)
	}

	ts.SetUnboundHandler(nil) // without a handler the socket is closed
	cl2 := dial(t, ts.Addr())
	cl2.send("GET / HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
	if b, _ := io.ReadAll(cl2.br); !strings.HasPrefix(string(b), "HTTP/1.1 101 ") {
		t.Fatalf("read %q", b)
	}
}

// TestS14_RefusedClientEvictsNobody: a client at its per-client limit whose new connection
// is refused (CONTRACT S14) must not have cost another client its idle connection (S13).
func TestS14_RefusedClientEvictsNobody(t *testing.T) {
	checkLeaks(t)
	rec := newRecorder()
	ts := startServer(t, Config{Workers: 1, SocketQueue: 2, ParkIdle: true, EvictIdle: true,
		MaxConnsPerClient: 1, Observer: rec}, echoPath)
	// b (127.0.0.2) connects first: its socket is the longest idle.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	bc, err := d.Dial("tcp", ts.Addr())
	if err != nil {
		t.Fatal(err)
	}
	b := &client{t: t, c: bc}
	b.br = bufio.NewReader(bc)
	t.Cleanup(func() { bc.Close() })
	b.roundTrip("/b", "/b")
	a := dial(t, ts.Addr()) // 127.0.0.1
	a.roundTrip("/a", "/a")
	waitFor(t, "both parked", func() bool { return ts.Stats().SocketsParked == 2 })
	time.Sleep(50 * time.Millisecond)
	a2 := dial(t, ts.Addr()) // over a's limit
	a2.closed()
	waitFor(t, "the refusal", func() bool { return rec.closedCount(ReasonClientLimit) == 1 })
	if n := rec.closedCount(ReasonEvicted); n != 0 {
		t.Errorf("%d idle sockets evicted for a connection then refused by the per-client limit", n)
	}
	b.roundTrip("/b2", "/b2")
}

// TestS9_ShutdownRightAfterServeStarts: Shutdown called after Serve began but before its event loop
// had its eventfd (so that nothing could be woken) still stops it.
func TestS9_ShutdownRightAfterServeStarts(t *testing.T) {
	for k := 0; k < 200; k++ {
		s, err := New(Config{Listen: "127.0.0.1:0", Workers: 1, SocketQueue: 2}, hello)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Serve(context.Background()) }()
		for s.runState.Load() == runNew {
			runtime.Gosched()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = s.Shutdown(ctx)
		cancel()
		if err != nil {
			t.Fatalf("iteration %d: Shutdown: %v (Serve still running)", k, err)
		}
		<-done
	}
}

// TestS9_UnreleasedTakeoverMakesShutdownIncomplete: a taken-over socket whose owner never releases it
// outlives the force-close; Serve reports that with ErrShutdownIncomplete instead of nil, although
// every worker is idle.
func TestS9_UnreleasedTakeoverMakesShutdownIncomplete(t *testing.T) {
	checkLeaks(t)
	grace := scaled(200 * time.Millisecond)
	s, err := New(Config{Listen: "127.0.0.1:0", Workers: 1, SocketQueue: 2, ShutdownGrace: grace}, takeOver)
	if err != nil {
		t.Fatal(err)
	}
	releases := make(chan func(), 1)
	s.SetUnboundHandler(func(_ int, _ conn.Stream, release func()) { releases <- release })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	cl := dial(t, s.Addr())
	cl.send("GET / HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
	release := <-releases // the owner keeps the socket and ignores the shutdown
	cancel()
	if err := <-done; err != ErrShutdownIncomplete {
		t.Fatalf("Serve returned %v, want ErrShutdownIncomplete", err)
	}
	release()
}

// TestS9_HugeGraceDoesNotWrap: a shutdown grace near the largest duration is cut to MaxTimeout instead
// of wrapping the server's clock round to the past, which force-closed a request in flight at once.
func TestS9_HugeGraceDoesNotWrap(t *testing.T) {
	g := newGate()
	ts := startServer(t, Config{Workers: 1, SocketQueue: 2, ParkIdle: true, ShutdownGrace: time.Duration(math.MaxInt64)}, g)
	cl := dial(t, ts.Addr())
	cl.send("POST /body HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nabc")
	<-g.started
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- ts.Shutdown(context.Background()) }()
	select {
	case <-done:
		t.Fatalf("Shutdown returned after %v with a request in flight and a grace of %v", time.Since(start), time.Duration(math.MaxInt64))
	case <-time.After(scaled(time.Second)):
	}
	cl.send("1234567")
	<-done
}

// TestD7_AliveWhileLoopTurns: Alive wakes an idle event loop that would otherwise sleep without end (no
// parking, so no deadline), returns nil each time it turns, also when asked before Serve created the
// loop's eventfd, and ErrServerClosed once Serve has returned.
func TestD7_AliveWhileLoopTurns(t *testing.T) {
	checkLeaks(t)
	s, err := New(Config{Listen: "127.0.0.1:0", Workers: 1, SocketQueue: 2}, hello)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	early := make(chan error, 1)
	go func() { early <- s.Alive(ctx) }()
	waitFor(t, "Alive to register", func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.turned != nil })
	ts := runServer(t, s)
	if err := <-early; err != nil {
		t.Fatalf("Alive asked before Serve: %v", err)
	}
	for k := 0; k < 5; k++ {
		if err := ts.Alive(ctx); err != nil {
			t.Fatalf("Alive, call %d: %v", k, err)
		}
	}
	cl := dial(t, ts.Addr())
	cl.get("/")
	if resp, _ := cl.response(); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ts.Alive(ctx); err != ErrServerClosed {
		t.Fatalf("Alive after Serve returned: %v, want ErrServerClosed", err)
	}
}

// TestD7_AliveFailsWhileLoopStuck: while the event loop is stuck, in a system call or behind its lock,
// Alive returns ctx's error instead of nil or blocking; once the loop turns again, Alive returns nil.
func TestD7_AliveFailsWhileLoopStuck(t *testing.T) {
	checkLeaks(t)
	s, err := New(Config{Listen: "127.0.0.1:0", Workers: 1, SocketQueue: 2}, hello)
	if err != nil {
		t.Fatal(err)
	}
	stuck, unstick := make(chan struct{}), make(chan struct{})
	real := s.accept
	var once sync.Once
	s.accept = func(lfd int) (int, error) {
		once.Do(func() { close(stuck); <-unstick })
		return real(lfd)
	}
	ts := runServer(t, s)
	// Checks expected to fail get a short deadline; those expected to pass get patience, so that a
	// loaded machine does not fail them.
	alive := func(d time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return ts.Alive(ctx)
	}
	short := scaled(100 * time.Millisecond)
	if err := alive(patience); err != nil {
		t.Fatalf("Alive before the loop got stuck: %v", err)
	}

	cl := dial(t, ts.Addr()) // the loop's accept blocks
	<-stuck
	if err := alive(short); err != context.DeadlineExceeded {
		t.Fatalf("Alive with the loop stuck in accept: %v, want context.DeadlineExceeded", err)
	}
	close(unstick)
	cl.get("/")
	if resp, _ := cl.response(); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if err := alive(patience); err != nil {
		t.Fatalf("Alive after the loop turned again: %v", err)
	}

	s.mu.Lock() // the loop cannot go past its next batch of events
	err = alive(short)
	again := alive(short) // while the first call's goroutine still waits for the lock
	s.mu.Unlock()
	if err != context.DeadlineExceeded || again != context.DeadlineExceeded {
		t.Fatalf("Alive with the slot lock held: %v, then %v; want context.DeadlineExceeded twice", err, again)
	}
	// The goroutine of the first call takes the lock now and the loop turns.
	waitFor(t, "Alive after the lock was released", func() bool { return alive(short) == nil })
}
