package server

import (
	"fmt"
	"io"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// pendingTags fetches what epoll holds ready without waiting, as the poller would, and returns the
// events' tags (slot index, tagEventfd, or a listener's tag).
func pendingTags(t *testing.T, s *Server) []int32 {
	t.Helper()
	var evs [16]unix.EpollEvent
	n, err := unix.EpollWait(s.epfd, evs[:], 0)
	if err != nil {
		t.Fatal(err)
	}
	tags := make([]int32, n)
	for k := range evs[:n] {
		tags[k] = evs[k].Fd
	}
	return tags
}

// An idle worker fetches ready events itself while every open socket can have a worker (worker.harvest):
// a parked socket that became readable joins the socket queue at its tail (CONTRACT S4, S5) as if the
// poller had dispatched it, the edges of the poller's own descriptors (the eventfd, the listeners) are
// handed back to it, and with
// more open sockets than workers the worker leaves every event to the poller. No Serve runs here: the
// test plays the poller's part, so that nothing else takes the events.
func TestS4_IdleWorkerHarvestsReadyEvents(t *testing.T) {
	checkLeaks(t)
	s, err := New(Config{Listen: "127.0.0.1:0", Workers: 2, SocketQueue: 4, ParkIdle: true}, echoPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.openPoller(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.mu.Lock()
		for i := range s.slots {
			if st := s.slots[i].state; st == slotParked || st == slotQueued || st == slotServing {
				if st == slotParked {
					s.parked.remove(s.slots, int32(i))
					s.nParked.Add(-1)
				}
				s.closeLocked(int32(i))
			}
		}
		s.mu.Unlock()
		s.closeListeners()
		s.closePoller()
	})
	w := s.workers[0]

	c1 := dial(t, s.Addr())
	s.acceptAll(s.clock())
	if st := s.Stats(); st.SocketsOpen != 1 || st.SocketsParked != 1 {
		t.Fatalf("after the accept: %+v", st)
	}
	pendingTags(t, s) // the listener's edge: the poller's, taken here
	if w.harvest() {
		t.Fatal("harvest reported a queued slot with nothing ready")
	}

	// A parked socket's request: the worker fetches the edge and queues the socket.
	c1.send("GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
	waitFor(t, "the worker to harvest the readable socket", w.harvest)
	if len(s.ready) != 1 || s.harvested.Load() == 0 {
		t.Fatalf("queued %d, harvested %d; want 1 slot queued by the worker", len(s.ready), s.harvested.Load())
	}
	i := <-s.ready
	if s.slots[i].state != slotQueued || s.Stats().SocketsParked != 0 {
		t.Fatalf("slot state %d, parked %d; want the socket queued, none parked", s.slots[i].state, s.Stats().SocketsParked)
	}
	s.mu.Lock()
	s.slots[i].state = slotServing // as a worker taking it would; the cleanup closes it
	s.slots[i].worker = int32(w.id)
	s.mu.Unlock()

	// The eventfd belongs to the poller: a worker that fetches its edge writes it again.
	s.mu.Lock()
	s.notifyLocked()
	s.mu.Unlock()
	before := s.harvested.Load()
	waitFor(t, "the worker to fetch the eventfd's edge", func() bool {
		w.harvest()
		return s.harvested.Load() > before
	})
	if tags := pendingTags(t, s); len(tags) != 1 || tags[0] != tagEventfd {
		t.Fatalf("after the worker took the eventfd's edge, epoll holds %v; want the eventfd's edge again (%d)", tags, tagEventfd)
	}

	// So do the listeners: a new client's edge goes back to the poller.
	c2 := dial(t, s.Addr())
	before = s.harvested.Load()
	waitFor(t, "the worker to fetch the listener's edge", func() bool {
		w.harvest()
		return s.harvested.Load() > before
	})
	if tags := pendingTags(t, s); len(tags) != 1 || tags[0] != tagListener0 {
		t.Fatalf("after the worker took the listener's edge, epoll holds %v; want the listener's edge again (%d)", tags, tagListener0)
	}

	// More open sockets than workers: the events are the poller's alone.
	c3 := dial(t, s.Addr())
	waitFor(t, "three open sockets", func() bool {
		s.lns[0].pending = true // the listener's edges are the poller's, and this test is the poller
		s.acceptAll(s.clock())
		return s.Stats().SocketsOpen == 3
	})
	pendingTags(t, s)
	before = s.harvested.Load()
	c2.send("GET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
	c3.send("GET /3 HTTP/1.1\r\nHost: x\r\n\r\n")
	var tags []int32
	waitFor(t, "the two requests' edges", func() bool {
		if w.harvest() {
			t.Fatal("harvest queued a slot with more open sockets than workers")
		}
		tags = append(tags, pendingTags(t, s)...)
		return len(tags) >= 2
	})
	if s.harvested.Load() != before {
		t.Fatalf("the worker fetched %d events with 3 sockets open and 2 workers", s.harvested.Load()-before)
	}
}

// Under a light load (no more connections than workers) the workers fetch events themselves, and
// every response is still right (CONTRACT S4, S5); with more connections than workers they leave the
// events to the poller.
func TestS4_HarvestOnlyWhileEverySocketCanHaveAWorker(t *testing.T) {
	checkLeaks(t)
	run := func(t *testing.T, workers, conns, requests int) uint64 {
		ts := startServer(t, Config{Workers: workers, SocketQueue: 16, ParkIdle: true}, echoPath)
		var wg sync.WaitGroup
		errs := make(chan error, conns)
		cls := make([]*client, conns)
		for k := range cls {
			cls[k] = dial(t, ts.Addr())
		}
		// Counted from when every connection is open: before, fewer sockets than workers were.
		waitFor(t, "every connection accepted", func() bool { return ts.Stats().SocketsOpen == conns })
		before := ts.harvested.Load()
		for k, cl := range cls {
			path := "/" + string(rune('a'+k))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range requests {
					if _, err := io.WriteString(cl.c, "GET "+path+" HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
						errs <- err
						return
					}
					resp, body, err := cl.tryResponse(patience)
					if err == nil && (resp.StatusCode != 200 || body != path) {
						err = fmt.Errorf("GET %s: %d %q", path, resp.StatusCode, body)
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		return ts.harvested.Load() - before
	}
	t.Run("light", func(t *testing.T) {
		if n := run(t, 4, 4, 500); n == 0 {
			t.Fatal("no event fetched by a worker over 2,000 requests on 4 connections with 4 workers")
		}
	})
	t.Run("loaded", func(t *testing.T) {
		if n := run(t, 1, 3, 200); n != 0 {
			t.Fatalf("workers fetched %d events with 3 connections and 1 worker", n)
		}
	})
}
