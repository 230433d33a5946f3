package server

import (
	"testing"
	"time"

	"github.com/edged/edged/pkg/conn"
)

// TestS13_EvictMinIdleStopsThrashing: under a load of more clients than slots, a parked socket that was
// active a moment ago is not evicted; once it has been idle for EvictMinIdle, it gives way.
func TestS13_EvictMinIdleStopsThrashing(t *testing.T) {
	checkLeaks(t)
	rec := newRecorder()
	minIdle := scaled(time.Second)
	ts := startServer(t, Config{Workers: 1, SocketQueue: 3, ParkIdle: true, EvictIdle: true, EvictMinIdle: minIdle, Observer: rec}, echoPath)
	c1, c2, c3 := dial(t, ts.Addr()), dial(t, ts.Addr()), dial(t, ts.Addr())
	for _, c := range []*client{c1, c2, c3} {
		c.roundTrip("/x", "/x")
		waitFor(t, "the socket to park", func() bool { return ts.slotParked(c.localPort()) })
	}
	start := time.Now()
	c4 := dial(t, ts.Addr())
	c4.get("/4")
	c4.noResponse() // every parked socket was active less than EvictMinIdle ago
	if n := rec.closedCount(ReasonEvicted); n != 0 {
		t.Fatalf("%d evictions of recently active sockets", n)
	}
	if _, body := c4.response(); body != "/4" {
		t.Fatalf("c4 got %q", body)
	}
	if waited := time.Since(start); waited < minIdle/2 {
		t.Fatalf("c4 admitted after %v, before the parked sockets idled %v", waited, minIdle)
	}
	c1.closed() // the longest idle gave way
	if n := rec.closedCount(ReasonEvicted); n != 1 {
		t.Fatalf("%d evictions, want 1", n)
	}
	c2.roundTrip("/2", "/2")
	c3.roundTrip("/3", "/3")
}

// slowEcho answers with the path after a pause on /slow.
var slowEcho = conn.HandlerFunc(func(_ int, c *conn.Connection) error {
	if string(c.Path()) == "/slow" {
		time.Sleep(300 * time.Millisecond)
	}
	return c.Reply(200, "text/plain", c.Path())
})

// TestS13_WaitingClientServedWhenSocketsPark: a client that arrives while every slot is being
// served waits in the backlog; once the served sockets park and have idled EvictMinIdle, the longest
// idle must give way to it (CONTRACT S13), not only when the poller next wakes for something else
// (the keep-alive timeout).
func TestS13_WaitingClientServedWhenSocketsPark(t *testing.T) {
	checkLeaks(t)
	rec := newRecorder()
	ts := startServer(t, Config{Workers: 2, SocketQueue: 2, ParkIdle: true, EvictIdle: true,
		EvictMinIdle: 100 * time.Millisecond, Observer: rec,
		Conn: conn.Config{KeepAliveTimeout: scaled(8 * time.Second)}}, slowEcho)
	c1, c2 := dial(t, ts.Addr()), dial(t, ts.Addr())
	c1.get("/slow")
	c2.get("/slow")
	waitFor(t, "both workers busy", func() bool { return ts.Stats().WorkersBusy == 2 })
	start := time.Now()
	c3 := dial(t, ts.Addr())
	c3.get("/3")
	c1.response()
	c2.response()
	resp, body, err := c3.tryResponse(scaled(3 * time.Second))
	if err != nil || resp.StatusCode != 200 || body != "/3" {
		t.Fatalf("c3 not served %v after it came (%v); evictions %d", time.Since(start), err, rec.closedCount(ReasonEvicted))
	}
}

// TestS13_SocketWithARequestIsNotEvicted: a parked socket whose request has arrived is no longer idle,
// even when the poller has not fetched its event yet (more events were ready than one epoll_wait
// returns): it is served, not evicted for a waiting client (CONTRACT S13, S5).
func TestS13_SocketWithARequestIsNotEvicted(t *testing.T) {
	checkLeaks(t)
	rec := newRecorder()
	const q = 130 // more sockets than the poller's batch of events
	minIdle := scaled(300 * time.Millisecond)
	ts := startServer(t, Config{Workers: 1, SocketQueue: q, ParkIdle: true, EvictIdle: true, EvictMinIdle: minIdle,
		Observer: rec, Conn: conn.Config{KeepAliveTimeout: scaled(20 * time.Second)}}, echoPath)
	first := dial(t, ts.Addr()) // the longest idle: the head of the parked list
	waitFor(t, "the first socket to park", func() bool { return ts.Stats().SocketsParked == 1 })
	others := make([]*client, q-1)
	for i := range others {
		others[i] = dial(t, ts.Addr())
	}
	waitFor(t, "every slot parked", func() bool { return ts.Stats().SocketsParked == q })
	late := dial(t, ts.Addr())
	waitFor(t, "the late client to wait for a slot", func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		return ts.acceptWaiting
	})
	// With the slot lock held the poller can fetch events but not act on them: the requests below
	// reach the sockets while their events wait, the first socket's last, beyond one batch.
	ts.mu.Lock()
	for _, c := range others {
		c.get("/o")
	}
	first.get("/first")
	head := ts.slots[ts.parked.head].since
	for ts.clock() < head+int64(minIdle) {
		time.Sleep(time.Millisecond) // the first socket's age, on the server's clock, allows eviction
	}
	ts.mu.Unlock()
	resp, body, err := first.tryResponse(patience)
	if err != nil || resp.StatusCode != 200 || body != "/first" {
		t.Fatalf("a socket with a request waiting was closed (%v); evictions %d", err, rec.closedCount(ReasonEvicted))
	}
	for _, c := range others {
		c.response()
	}
	late.roundTrip("/late", "/late") // an idle socket gives way once it has idled again
}
