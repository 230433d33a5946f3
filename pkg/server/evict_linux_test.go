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
