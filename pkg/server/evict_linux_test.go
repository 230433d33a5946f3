package server

import (
	"testing"
	"time"
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
