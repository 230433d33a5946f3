package server

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edged/edged/pkg/conn"
)

// orderRecorder is a handler that records the paths it serves, in order.
type orderRecorder struct {
	mu    sync.Mutex
	paths []string
}

func (o *orderRecorder) Handle(_ int, c *conn.Connection) error {
	o.mu.Lock()
	o.paths = append(o.paths, string(c.Path()))
	o.mu.Unlock()
	return c.Reply(200, "text/plain", c.Path())
}

func (o *orderRecorder) order() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.paths...)
}

// slotOf returns the slot holding the socket whose peer is the client's port, or -1.
func (s *Server) slotOf(peerPort int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.slots {
		if s.slots[i].fd < 0 {
			continue
		}
		if sa, err := unix.Getpeername(int(s.slots[i].fd)); err == nil {
			if a, ok := sa.(*unix.SockaddrInet4); ok && a.Port == peerPort {
				return i
			}
		}
	}
	return -1
}

// boundMonitor samples the number of accepted sockets, from the server's gauge and from the
// process's descriptor table, until stopped, and returns the largest values seen.
func boundMonitor(t *testing.T, ts *testServer) (stop func() (gauge, fds int)) {
	var maxGauge, maxFDs atomic.Int64
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if n := int64(ts.Stats().SocketsOpen); n > maxGauge.Load() {
				maxGauge.Store(n)
			}
			if n := int64(acceptedSockets(t, ts.port)); n > maxFDs.Load() {
				maxFDs.Store(n)
			}
			select {
			case <-quit:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return func() (int, int) {
		close(quit)
		<-done
		return int(maxGauge.Load()), int(maxFDs.Load())
	}
}

func TestS3_AcceptModeHoldsPConnections(t *testing.T) {
	checkLeaks(t)
	ts := startServer(t, Config{Workers: 2, SocketQueue: 0, ParkIdle: true}, echoPath)
	c1, c2 := dial(t, ts.Addr()), dial(t, ts.Addr())
	c1.roundTrip("/1", "/1")
	c2.roundTrip("/2", "/2")
	c3 := dial(t, ts.Addr())
	c3.get("/3")
	c3.noResponse() // the third client waits in the kernel backlog
	if st := ts.Stats(); st.SocketsOpen != 2 || st.WorkersBusy != 2 || st.SocketsParked != 0 {
		t.Fatalf("stats %+v, want 2 open, 2 busy, none parked", st)
	}
	if n := acceptedSockets(t, ts.port); n != 2 {
		t.Fatalf("%d accepted sockets, want 2", n)
	}
	c2.roundTrip("/2", "/2") // a kept-alive connection stays with its worker
	c1.c.Close()
	if resp, body := c3.response(); resp.StatusCode != 200 || body != "/3" {
		t.Fatalf("third client: %d %q", resp.StatusCode, body)
	}
}

func TestS4_SocketQueueBoundFIFOAndRearm(t *testing.T) {
	checkLeaks(t)
	var order orderRecorder
	ts := startServer(t, Config{Workers: 1, SocketQueue: 3}, &order)
	stop := boundMonitor(t, ts)

	c1 := dial(t, ts.Addr())
	c1.roundTrip("/c1", "/c1") // the only worker now waits on c1's keep-alive connection
	c2, c3 := dial(t, ts.Addr()), dial(t, ts.Addr())
	c2.get("/c2")
	c3.get("/c3")
	waitFor(t, "two queued sockets", func() bool { s := ts.Stats(); return s.SocketsOpen == 3 && s.SocketQueueLength == 2 })
	c4, c5 := dial(t, ts.Addr()), dial(t, ts.Addr())
	c4.get("/c4")
	c5.get("/c5")
	c4.noResponse()
	if n := acceptedSockets(t, ts.port); n != 3 {
		t.Fatalf("%d accepted sockets, want 3", n)
	}
	slot1 := ts.slotOf(c1.localPort())
	if slot1 < 0 || ts.slotOf(c4.localPort()) != -1 {
		t.Fatal("c1 holds no slot, or c4 holds one already")
	}

	c1.c.Close() // re-arms c1's acceptor, which takes c4; the worker takes c2, first in the queue
	if _, body := c2.response(); body != "/c2" {
		t.Fatalf("c2 got %q", body)
	}
	waitFor(t, "c4 to be accepted", func() bool { return ts.slotOf(c4.localPort()) >= 0 })
	if got := ts.slotOf(c4.localPort()); got != slot1 {
		t.Fatalf("c4 went to slot %d, want c1's re-armed slot %d", got, slot1)
	}
	c3.noResponse()
	c2.c.Close()
	c3.response()
	c3.c.Close()
	c4.response()
	c4.c.Close()
	c5.response()

	gauge, fds := stop()
	if gauge > 3 || fds > 3 {
		t.Fatalf("up to %d sockets by the gauge, %d by the descriptor table; Q is 3", gauge, fds)
	}
	want := []string{"/c1", "/c2", "/c3", "/c4", "/c5"}
	if got := order.order(); len(got) != len(want) || got[1] != "/c2" || got[2] != "/c3" || got[3] != "/c4" || got[4] != "/c5" {
		t.Fatalf("service order %v, want %v", got, want)
	}
}

func TestS5_ParkIdleFreesTheWorker(t *testing.T) {
	checkLeaks(t)
	ts := startServer(t, Config{Workers: 1, SocketQueue: 4, ParkIdle: true}, echoPath)
	c1, c2 := dial(t, ts.Addr()), dial(t, ts.Addr())
	c1.roundTrip("/1", "/1")
	c2.roundTrip("/2", "/2") // served while c1 sits idle on its keep-alive connection
	waitFor(t, "two parked sockets", func() bool { return ts.Stats().SocketsParked == 2 })
	if st := ts.Stats(); st.WorkersBusy != 0 || st.SocketsOpen != 2 {
		t.Fatalf("stats %+v", st)
	}
	for i := 0; i < 5; i++ { // parked sockets come back when they become readable
		c1.roundTrip("/1", "/1")
		c2.roundTrip("/2", "/2")
	}
}

func TestS5_NoParkingWorkerWaitsOnIdleConnection(t *testing.T) {
	checkLeaks(t)
	ts := startServer(t, Config{Workers: 1, SocketQueue: 4, ParkIdle: false}, echoPath)
	c1, c2 := dial(t, ts.Addr()), dial(t, ts.Addr())
	c1.roundTrip("/1", "/1")
	c2.get("/2")
	c2.noResponse() // the worker waits on c1, as edge-http does (R7.4)
	if st := ts.Stats(); st.SocketsParked != 0 || st.SocketQueueLength != 1 {
		t.Fatalf("stats %+v", st)
	}
	c1.c.Close()
	if _, body := c2.response(); body != "/2" {
		t.Fatalf("c2 got %q", body)
	}
}

func TestS13_EvictLongestIdleParkedSocket(t *testing.T) {
	checkLeaks(t)
	rec := newRecorder()
	ts := startServer(t, Config{Workers: 1, SocketQueue: 3, ParkIdle: true, EvictIdle: true, Observer: rec}, echoPath)
	c1, c2, c3 := dial(t, ts.Addr()), dial(t, ts.Addr()), dial(t, ts.Addr())
	for _, c := range []*client{c1, c2, c3} { // parked in this order: c1 is idle longest
		c.roundTrip("/x", "/x")
		waitFor(t, "the socket to park", func() bool { return ts.slotParked(c.localPort()) })
	}
	c4 := dial(t, ts.Addr())
	c4.roundTrip("/4", "/4")
	c1.closed()
	if n := rec.closedCount(ReasonEvicted); n != 1 {
		t.Fatalf("%d evictions, want 1", n)
	}
	c2.roundTrip("/2", "/2")
	c3.roundTrip("/3", "/3")
	if st := ts.Stats(); st.SocketsOpen != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestS13_NoEvictionKeepsThePlainBound(t *testing.T) {
	checkLeaks(t)
	rec := newRecorder()
	ts := startServer(t, Config{Workers: 1, SocketQueue: 3, ParkIdle: true, EvictIdle: false, Observer: rec}, echoPath)
	c1, c2, c3 := dial(t, ts.Addr()), dial(t, ts.Addr()), dial(t, ts.Addr())
	for _, c := range []*client{c1, c2, c3} {
		c.roundTrip("/x", "/x")
	}
	waitFor(t, "three parked sockets", func() bool { return ts.Stats().SocketsParked == 3 })
	c4 := dial(t, ts.Addr())
	c4.get("/4")
	c4.noResponse()
	c2.roundTrip("/2", "/2") // the idle ones are still open
	c1.c.Close()
	if _, body := c4.response(); body != "/4" {
		t.Fatalf("c4 got %q", body)
	}
	if n := rec.closedCount(ReasonEvicted); n != 0 {
		t.Fatalf("%d evictions, want none", n)
	}
}

// slotParked reports whether the socket whose peer is the client's port is parked.
func (s *Server) slotParked(peerPort int) bool {
	i := s.slotOf(peerPort)
	if i < 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.slots[i].state == slotParked
}
