package server

import (
	"fmt"
	"io"
	"runtime"
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

// pollerTurn is one turn of the event loop that does not block (poll), for the tests below that play
// the poller's part, so that no Serve takes the events they mean a worker to harvest.
func pollerTurn(s *Server) {
	n, err := unix.EpollWait(s.epfd, s.events, 0)
	if err != nil {
		return
	}
	now := s.clock()
	s.mu.Lock()
	s.turnLocked(s.events[:n], now)
	s.mu.Unlock()
	s.acceptAll(now)
}

// newPollerlessServer returns a server whose epoll instance is open but whose event loop does not
// run: the test plays the poller (pollerTurn) and the workers. The cleanup closes what is left.
func newPollerlessServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	s, err := New(cfg, echoPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.openPoller(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.mu.Lock()
		for i := range s.slots {
			switch s.slots[i].state {
			case slotParked:
				s.parked.remove(s.slots, int32(i))
				s.nParked.Add(-1)
			case slotLingering:
				s.lingering.remove(s.slots, int32(i))
			case slotQueued, slotServing:
			default:
				continue
			}
			s.closeLocked(int32(i))
		}
		s.mu.Unlock()
		s.closeListeners()
		s.closePoller()
	})
	return s
}

// twoProcessors runs the rest of the test with at least two processors, as the harvest needs; the
// suite also runs with GOMAXPROCS=1 (make unit).
func twoProcessors(t *testing.T) {
	if prev := runtime.GOMAXPROCS(0); prev < 2 {
		runtime.GOMAXPROCS(2)
		t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	}
}

// twoParked is a pollerless server with two connections accepted and parked; it returns the first.
func twoParked(t *testing.T, cfg Config) (*Server, *client) {
	t.Helper()
	s := newPollerlessServer(t, cfg)
	c1 := dial(t, s.Addr())
	dial(t, s.Addr())
	waitFor(t, "two sockets parked", func() bool { pollerTurn(s); return s.Stats().SocketsParked == 2 })
	return s, c1
}

// serving marks slot i as served by worker w, as serve does.
func serving(s *Server, i int32, w int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.slots[i].state = slotServing
	s.slots[i].worker = int32(w)
	if s.slots[i].counted {
		s.slots[i].counted = false
		s.woken.Add(-1)
	}
}

// An idle worker fetches ready events itself while every open socket can have a worker (worker.harvest):
// a parked socket that became readable joins the queue (CONTRACT S4, S5) as if the poller had
// dispatched it, the edges of the poller's own descriptors (the eventfd, the listeners) are
// handed back to it, and with more open sockets than workers the worker leaves every event to the
// poller.
func TestS4_IdleWorkerHarvestsReadyEvents(t *testing.T) {
	checkLeaks(t)
	twoProcessors(t)
	s := newPollerlessServer(t, Config{Workers: 2, SocketQueue: 4, ParkIdle: true})
	w := s.workers[0]

	// One socket open: its next request comes after the response, no other can, and the worker that
	// parked it does not look.
	c1 := dial(t, s.Addr())
	waitFor(t, "the socket parked", func() bool { pollerTurn(s); return s.Stats().SocketsParked == 1 })
	pendingTags(t, s) // the listener's edge: the poller's, taken here
	c1.send("GET /0 HTTP/1.1\r\nHost: x\r\n\r\n")
	waitFor(t, "the request's edge, left to the poller", func() bool {
		if w.harvest() || s.harvested.Load() != 0 {
			t.Fatalf("a worker fetched %d events with one socket open", s.harvested.Load())
		}
		return len(pendingTags(t, s)) == 1
	})
	// Back to parked, as after the response (the test plays the worker), with a second socket open.
	var i0 int32
	s.mu.Lock()
	for k := range s.slots {
		if s.slots[k].state == slotParked {
			i0 = int32(k)
		}
	}
	s.mu.Unlock()
	if _, err := unix.Read(int(s.slots[i0].fd), make([]byte, 512)); err != nil {
		t.Fatal(err)
	}
	c2 := dial(t, s.Addr())
	waitFor(t, "two open sockets", func() bool {
		s.lns[0].pending = true // the listener's edges are the poller's, and this test is the poller
		s.acceptAll(s.clock())
		return s.Stats().SocketsOpen == 2
	})
	pendingTags(t, s)
	if w.harvest() {
		t.Fatal("harvest reported a queued socket with nothing ready")
	}

	// A parked socket's request: the worker fetches the edge and queues the socket, for itself.
	c1.send("GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
	waitFor(t, "the worker to harvest the readable socket", w.harvest)
	if len(s.ready) != 1 || s.harvested.Load() == 0 || s.Stats().SocketsParked != 1 {
		t.Fatalf("queued %d, harvested %d, parked %d; want c1 moved from the parked list to the queue by the worker, c2 still parked",
			len(s.ready), s.harvested.Load(), s.Stats().SocketsParked)
	}
	i := <-s.ready
	serving(s, i, w.id)

	// The eventfd belongs to the poller: a worker that fetches its edge hands it back.
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
	c3 := dial(t, s.Addr())
	before = s.harvested.Load()
	waitFor(t, "the worker to fetch the listener's edge", func() bool {
		w.harvest()
		return s.harvested.Load() > before
	})
	if tags := pendingTags(t, s); len(tags) != 1 || tags[0] != tagListener0 {
		t.Fatalf("after the worker took the listener's edge, epoll holds %v; want the listener's edge again (%d)", tags, tagListener0)
	}

	// More open sockets than workers: the events are the poller's alone.
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
			t.Fatal("harvest queued a socket with more open sockets than workers")
		}
		tags = append(tags, pendingTags(t, s)...)
		return len(tags) >= 2
	})
	if s.harvested.Load() != before {
		t.Fatalf("the worker fetched %d events with 3 sockets open and 2 workers", s.harvested.Load()-before)
	}
}

// A harvest that closes a lingering socket (its peer's FIN, drained in the poller's stead) frees a slot:
// a client waiting in the backlog for one is announced to the poller, which accepts it at once
// (CONTRACT S4: a closed socket re-arms its acceptor) instead of sleeping until its next deadline.
func TestS4_HarvestThatFreesASlotWakesThePoller(t *testing.T) {
	checkLeaks(t)
	twoProcessors(t)
	s, c1 := twoParked(t, Config{Workers: 2, SocketQueue: 2, ParkIdle: true})
	// Worker 0 answers c1 with Connection: close and hands its socket over to linger.
	c1.get("/1")
	waitFor(t, "worker 0 to harvest c1", s.workers[0].harvest)
	i1 := <-s.ready
	serving(s, i1, 0)
	s.mu.Lock()
	s.closeOrLingerLocked(i1, true)
	s.mu.Unlock()

	// A third client waits in the backlog: every slot is held.
	c3 := dial(t, s.Addr())
	waitFor(t, "the poller to see the waiting client", func() bool {
		pollerTurn(s)
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.acceptWaiting
	})
	s.mu.Lock()
	s.acceptWaiting = true // pollerTurn clears it at the next turn: this is the poller asleep now
	notified := s.notified
	s.mu.Unlock()
	if notified {
		t.Fatal("setup: the eventfd is already written")
	}

	// c1 closes: an idle worker fetches the FIN of the lingering socket and closes it.
	c1.c.Close()
	waitFor(t, "the worker to harvest the FIN of the lingering socket", func() bool {
		s.workers[1].harvest()
		return s.Stats().SocketsOpen == 1
	})
	if tags := pendingTags(t, s); len(tags) != 1 || tags[0] != tagEventfd {
		t.Fatalf("a harvest freed a slot while a client waits, and epoll holds %v for the poller; want the eventfd's edge (%d)", tags, tagEventfd)
	}
	_ = c3
}

// Under a light load (no more connections than workers) the workers fetch events themselves, and
// every response is still right (CONTRACT S4, S5); with more connections than workers they leave the
// events to the poller.
func TestS4_HarvestOnlyWhileEverySocketCanHaveAWorker(t *testing.T) {
	checkLeaks(t)
	twoProcessors(t)
	// run sends requests on conns connections at once, in rounds of requests each, until a round
	// saw harvests or rounds are done, and returns the events the workers fetched.
	run := func(t *testing.T, park bool, workers, conns, requests, rounds int) uint64 {
		ts := startServer(t, Config{Workers: workers, SocketQueue: 16, ParkIdle: park}, echoPath)
		cls := make([]*client, conns)
		for k := range cls {
			cls[k] = dial(t, ts.Addr())
		}
		// Counted from when every connection is open: before, fewer sockets than workers were.
		waitFor(t, "every connection accepted", func() bool { return ts.Stats().SocketsOpen == conns })
		before := ts.harvested.Load()
		for range rounds {
			var wg sync.WaitGroup
			errs := make(chan error, conns)
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
			if ts.harvested.Load() > before {
				break
			}
		}
		return ts.harvested.Load() - before
	}
	t.Run("light", func(t *testing.T) {
		// A harvest finds an event only when a request came while a worker answered another: most
		// rounds have hundreds, but a loaded machine can serialise a round.
		if n := run(t, true, 4, 4, 500, 5); n == 0 {
			t.Fatal("no event fetched by a worker over 5 rounds of 2,000 requests on 4 connections with 4 workers")
		}
	})
	t.Run("loaded", func(t *testing.T) {
		if n := run(t, true, 1, 3, 200, 1); n != 0 {
			t.Fatalf("workers fetched %d events with 3 connections and 1 worker", n)
		}
	})
}

// requestLeftToPoller sends a request on cl and fails if worker 0's harvests fetch its edge (or any
// other) before the test, playing the poller, finds it in epoll: why says under which rule.
func requestLeftToPoller(t *testing.T, s *Server, cl *client, why string) {
	t.Helper()
	pendingTags(t, s)
	cl.get("/1")
	var tags []int32
	waitFor(t, "the request's edge", func() bool {
		s.workers[0].harvest()
		if n := s.harvested.Load(); n != 0 {
			t.Fatalf("an idle worker fetched %d events %s", n, why)
		}
		tags = append(tags, pendingTags(t, s)...)
		return len(tags) > 0
	})
}

// Without parking a worker waits on its own connection and no event can bring an idle worker a socket
// (CONTRACT S5, --park-idle=false): the workers leave every event to the poller.
func TestS5_NoHarvestWithoutParking(t *testing.T) {
	checkLeaks(t)
	s := newPollerlessServer(t, Config{Workers: 3, SocketQueue: 4, ParkIdle: false})
	c1, c2 := dial(t, s.Addr()), dial(t, s.Addr())
	waitFor(t, "two sockets queued", func() bool { pollerTurn(s); return len(s.ready) == 2 })
	serving(s, <-s.ready, 1)
	serving(s, <-s.ready, 2)
	_ = c2
	requestLeftToPoller(t, s, c1, "with parking off")
}

// On one processor the poller's hand-off costs no thread, and a harvest measured no faster but with
// a tail (CONTRACT S11): the workers leave the events to the poller.
func TestS11_NoHarvestOnOneProcessor(t *testing.T) {
	checkLeaks(t)
	s, c1 := twoParked(t, Config{Workers: 2, SocketQueue: 4, ParkIdle: true})
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	requestLeftToPoller(t, s, c1, "on one processor")
}

// A worker yields its processor before every harvest (worker.harvest): a worker whose harvests keep
// finding work would otherwise keep the goroutines made runnable on its processor meanwhile (workers
// the poller handed a socket, the poller itself) waiting until the runtime preempts it, 10 ms, which
// runtime traces showed as the latency tail of the harvest (CONTRACT S4: a queued socket is served
// without waiting for another to be done).
func TestS4_HarvestYieldsTheProcessorFirst(t *testing.T) {
	checkLeaks(t)
	twoProcessors(t)
	s, c1 := twoParked(t, Config{Workers: 2, SocketQueue: 4, ParkIdle: true})
	var yields, calls int
	var seen []uint64 // events harvested so far, at each yield
	prev := yieldBeforeHarvest
	yieldBeforeHarvest = func() {
		yields++
		seen = append(seen, s.harvested.Load())
		if n := s.harvesting.Load(); n != 0 {
			t.Errorf("the worker yielded counted as harvesting (%d): a shutdown would wait for its yield", n)
		}
		prev()
	}
	t.Cleanup(func() { yieldBeforeHarvest = prev })

	pendingTags(t, s)
	c1.send("GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
	waitFor(t, "the worker to harvest the request", func() bool {
		calls++
		return s.workers[0].harvest()
	})
	if yields != calls {
		t.Fatalf("%d harvests yielded %d times; want a yield before each", calls, yields)
	}
	if got := seen[len(seen)-1]; got != 0 || s.harvested.Load() == 0 {
		t.Fatalf("the last yield came with %d events harvested, %d after; want it before the harvest that fetched the request", got, s.harvested.Load())
	}

	// Where no harvest is made (one processor here), nothing yields either: the request path is as
	// before.
	<-s.ready
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	yields = 0
	s.workers[1].harvest()
	if yields != 0 {
		t.Fatalf("a worker that does not harvest yielded %d times", yields)
	}
}

// A worker about to take the next queued socket yields behind the poller while the poller has yielded
// (worker.giveWay, Server.yield): otherwise, with every worker busy, the poller waits in the run queue
// until the queue runs dry, and the sockets that became readable meanwhile wait for it (CONTRACT S4).
// Not with the queue empty, where the worker waits or harvests anyway, and not on one processor
// (CONTRACT S11), where the poller's yield lets the woken workers run first.
func TestS4_WorkerGivesWayToTheYieldingPoller(t *testing.T) {
	checkLeaks(t)
	twoProcessors(t)
	s := newPollerlessServer(t, Config{Workers: 2, SocketQueue: 4, ParkIdle: true})
	calls := 0
	prevYield, prevPoller := yieldToPoller, pollerGosched
	yieldToPoller = func() { calls++; prevYield() }
	var during []bool
	pollerGosched = func() { during = append(during, s.pollerYielding.Load()); prevPoller() }
	t.Cleanup(func() { yieldToPoller, pollerGosched = prevYield, prevPoller })

	// The poller says so while it yields, and only then.
	s.yield()
	if len(during) == 0 || !during[0] || s.pollerYielding.Load() {
		t.Fatalf("pollerYielding %v during the poller's yield and %v after; want true, then false", during, s.pollerYielding.Load())
	}

	// A worker that served one of two queued sockets gives way once, before it takes the other.
	c1, c2 := dial(t, s.Addr()), dial(t, s.Addr())
	waitFor(t, "two sockets parked", func() bool { pollerTurn(s); return s.Stats().SocketsParked == 2 })
	c1.get("/1")
	c2.get("/2")
	waitFor(t, "both sockets queued", func() bool { pollerTurn(s); return len(s.ready) == 2 })
	s.pollerYielding.Store(true) // the poller, yielding, for as long as the worker runs
	defer s.pollerYielding.Store(false)
	s.workersUp.Store(1)
	s.running.Add(1)
	go s.workers[0].run()
	for _, c := range []*client{c1, c2} {
		if resp, _ := c.response(); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	s.mu.Lock()
	s.draining = true
	close(s.ready)
	s.mu.Unlock()
	s.running.Wait()
	if calls != 1 {
		t.Fatalf("the worker gave way %d times serving two queued sockets; want once, between them", calls)
	}

	// Nor where the queue is empty, the poller not yielding, or on one processor.
	for _, c := range []struct {
		name     string
		yielding bool
		queued   int
		procs    int
	}{
		{"the queue empty", true, 0, 2},
		{"the poller elsewhere", false, 1, 2},
		{"one processor", true, 1, 1},
	} {
		calls = 0
		s.ready = make(chan int32, 4)
		s.pollerYielding.Store(c.yielding)
		for range c.queued {
			s.ready <- 0
		}
		prevProcs := runtime.GOMAXPROCS(c.procs)
		s.workers[1].giveWay()
		runtime.GOMAXPROCS(prevProcs)
		if calls != 0 {
			t.Errorf("%s: the worker gave way %d times; want none", c.name, calls)
		}
	}
}
