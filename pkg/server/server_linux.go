package server

import (
	"context"
	"encoding/binary"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edged/edged/pkg/conn"
)

// Server serves HTTP/1.x on raw sockets with P workers and Q slots (see the package documentation).
type Server struct {
	cfg       Config
	handler   conn.Handler
	obs       Observer
	log       *slog.Logger
	parking   bool
	evicting  bool
	evictMin  int64 // EvictMinIdle in nanoseconds
	keepAlive int64 // the connections' keep-alive timeout, for parked sockets (CONTRACT S6)
	base      time.Time
	addr      string

	// Poller-owned: touched only by the goroutine running Serve, except that a harvesting worker
	// reads epfd, evfd and the listeners' descriptors (setClosing) and drains into scratch under mu.
	lns          []listener
	epfd         int
	events       []unix.EpollEvent
	ev           unix.EpollEvent
	scratch      []byte // lingering drains read into it
	sa           unix.RawSockaddrAny
	salen        uint32
	lnPoll       [2]unix.PollFd             // the listener and an eviction's victim
	accept       func(lfd int) (int, error) // accept4; replaced in tests to inject errors
	backoff      time.Duration
	backoffUntil int64
	retryAccept  bool // a back-off is running: accept again when it ends, edge or not
	lastErrLog   int64
	graceEnd     int64
	forceEnd     int64
	gaveUp       bool // the drain ended with sockets still held by stuck handlers

	// Guarded by mu, the slot lock. Workers take it to claim, park and close their slot; the poller
	// takes it once per batch of events. It is never held across a blocking call.
	mu            sync.Mutex
	slots         []slot
	free          []int32 // armed slots, a stack
	parked        slotList
	lingering     slotList
	fresh         []int32 // slots handed over for lingering since the poller last looked
	clients       map[clientKey]int32
	evfd          int
	notified      bool  // evfd written and not yet consumed by the poller
	acceptWaiting bool  // a connection was left in the backlog for want of a free slot
	sleepUntil    int64 // the poller's wake-up time, so that a new earlier deadline wakes it
	draining      bool
	forced        bool
	pollerGone    bool
	turned        chan struct{} // closed by the poller's next turn, for Alive; nil when nobody asks

	ready   chan int32 // the socket queue: FIFO of queued slots, capacity Q
	workers []*worker
	running sync.WaitGroup

	open      atomic.Int32 // written under mu
	nParked   atomic.Int32 // written under mu
	accepted  atomic.Uint64
	closing   atomic.Bool // drain begun (CONTRACT S9)
	forcedA   atomic.Bool // grace ended: streams fail at once
	stopReq   atomic.Bool
	arming    atomic.Bool // an Alive goroutine waits for mu
	runState  atomic.Int32
	unbound   atomic.Pointer[UnboundHandler]
	done      chan struct{}
	doneOnce  sync.Once
	workersUp atomic.Int32
	allIdle   chan struct{} // closed when the last worker goroutine returns
	// woken counts the goroutines given something through a channel while they waited on it, and
	// that have not run since: a worker handed a slot from the socket queue (slot.counted), a stream's
	// reader or writer handed a wake-up (stream.claim). The poller on one processor yields until it
	// is 0 (yield).
	woken        atomic.Int64
	readyWaiting atomic.Int32  // workers waiting on the socket queue
	harvested    atomic.Uint64 // events fetched by idle workers (worker.harvest)
	harvesting   atomic.Int32  // workers in a harvest: setClosing waits for them
	// pollerYielding is set while the poller yields before its epoll_wait (yield): a worker about to
	// take the next queued socket gives it its turn first (worker.giveWay).
	pollerYielding atomic.Bool
}

// UnboundHandler receives a socket whose connection was taken over with conn.Connection.Unbind
// (WebSocket). It runs on the worker goroutine that served the upgrade, right after Serve returned; the
// bytes read past the upgrade request are the ones Unbind returned to the HTTP handler, valid until
// this handler returns. st is a *TakenStream of its own, no longer tied to the worker: it may be used
// from another goroutine for as long as the session lasts. The socket stays open and keeps its slot (it
// counts against Q) until release (or st's Close) is called; release closes it and is idempotent. It
// may be called from any goroutine, but only once no Read or Write on st is in progress or will follow
// (the session's own goroutine, when it ends): a call blocked in one is not woken, and the descriptor
// number it holds may already belong to another socket. To end a session from elsewhere, make its
// goroutine return (TakenStream.Interrupt). When the shutdown grace ends, the socket is shut down and
// st's reads and writes fail.
type UnboundHandler func(worker int, st conn.Stream, release func())

const (
	runNew int32 = iota
	runServing
	runClosed
)

// Epoll event tags: slot events carry the slot index (>= 0) and its generation.
const (
	tagEventfd   int32 = -1
	tagListener0 int32 = -2 // listener i is tagListener0 - i
)

var eventfdOne = func() (b [8]byte) {
	binary.NativeEndian.PutUint64(b[:], 1)
	return b
}()

// New validates cfg, binds or adopts the listening sockets and allocates the slots, the socket queue and
// every worker with its buffers (CONTRACT S2). A listening failure is a *BindError.
func New(cfg Config, h conn.Handler) (*Server, error) {
	if h == nil {
		return nil, configError("handler must not be nil")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	lns, err := openListeners(cfg)
	if err != nil {
		return nil, err
	}
	q := cfg.slotCount()
	s := &Server{
		cfg:       cfg,
		handler:   h,
		obs:       cfg.Observer,
		log:       cfg.Logger,
		parking:   cfg.ParkIdle,
		evicting:  cfg.EvictIdle,
		evictMin:  int64(max(cfg.EvictMinIdle, 0)),
		base:      time.Now(),
		addr:      lns[0].addr,
		lns:       lns,
		epfd:      -1,
		evfd:      -1,
		events:    make([]unix.EpollEvent, 128),
		scratch:   make([]byte, 4096),
		slots:     make([]slot, q),
		free:      make([]int32, 0, q),
		parked:    newSlotList(),
		lingering: newSlotList(),
		fresh:     make([]int32, 0, q),
		ready:     make(chan int32, q),
		done:      make(chan struct{}),
		allIdle:   make(chan struct{}),
	}
	if s.obs == nil {
		s.obs = nopObserver{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxConnsPerClient > 0 {
		s.clients = make(map[clientKey]int32, q)
	}
	for i := q - 1; i >= 0; i-- {
		s.slots[i] = slot{fd: -1, prev: noSlot, next: noSlot}
		s.free = append(s.free, int32(i))
	}
	s.workers = make([]*worker, cfg.Workers)
	for i := range s.workers {
		s.workers[i] = newWorker(s, i)
	}
	s.keepAlive = int64(min(s.workers[0].c.Config().KeepAliveTimeout, MaxTimeout))
	s.accept = s.accept4
	s.lastErrLog = -int64(time.Second)
	return s, nil
}

// Addr returns the address of the first listening socket, e.g. "127.0.0.1:41234".
func (s *Server) Addr() string { return s.addr }

// SetUnboundHandler sets the receiver of sockets taken over from HTTP. Without one, such a socket is
// closed when its handler returns. Safe to call at any time.
func (s *Server) SetUnboundHandler(h UnboundHandler) {
	if h == nil {
		s.unbound.Store(nil)
		return
	}
	s.unbound.Store(&h)
}

// Stats returns a snapshot of the gauges. Safe from any goroutine; it takes no lock.
func (s *Server) Stats() Stats {
	st := Stats{
		Workers:             len(s.workers),
		SocketQueueLength:   len(s.ready),
		SocketsParked:       int(s.nParked.Load()),
		SocketsOpen:         int(s.open.Load()),
		ConnectionsAccepted: s.accepted.Load(),
	}
	for _, w := range s.workers {
		if w.busy.Load() {
			st.WorkersBusy++
		}
	}
	return st
}

// Serve runs the server until ctx is cancelled or Shutdown is called, then drains gracefully within
// ShutdownGrace (CONTRACT S9) and returns nil. It returns early with an error only when the event loop
// cannot be set up or fails, and ErrShutdownIncomplete when handlers outlived the grace period.
// It may be called once.
func (s *Server) Serve(ctx context.Context) error {
	if !s.runState.CompareAndSwap(runNew, runServing) {
		return ErrServerClosed
	}
	defer s.doneOnce.Do(func() { close(s.done) })
	if err := s.openPoller(); err != nil {
		s.closeListeners()
		s.closePoller()
		return err
	}
	stop := context.AfterFunc(ctx, s.requestStop)
	defer stop()
	s.workersUp.Store(int32(len(s.workers)))
	for _, w := range s.workers {
		s.running.Add(1)
		go w.run()
	}
	err := s.poll()
	s.teardown()
	s.wakeWorkers()
	// Once the sockets are closed the workers return at once; after a force-close that did not
	// close them all, the poller has already waited forceWait for stuck handlers.
	wait := forceWait
	if s.gaveUp {
		wait = 0
	}
	grace := time.NewTimer(wait)
	defer grace.Stop()
	select {
	case <-s.allIdle:
		s.running.Wait()
		if s.gaveUp && err == nil {
			// The workers are done, but sockets taken over (WebSocket sessions) outlived the
			// force-close: their owners did not release them.
			s.log.Error("taken-over connections still open after the shutdown grace period", "sockets_open", s.open.Load())
			err = ErrShutdownIncomplete
		}
	case <-grace.C:
		s.log.Error("handlers still running after the shutdown grace period", "workers_busy", s.Stats().WorkersBusy)
		if err == nil {
			err = ErrShutdownIncomplete
		}
	}
	s.closePoller()
	return err
}

// Shutdown begins a graceful shutdown (CONTRACT S9) and waits until Serve has drained or ctx ends.
// Called before Serve, it releases the listening sockets and Serve then returns ErrServerClosed.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.runState.CompareAndSwap(runNew, runClosed) {
		s.closeListeners()
		s.doneOnce.Do(func() { close(s.done) })
		return nil
	}
	s.requestStop()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Alive reports whether the event loop is turning: it wakes the poller and returns nil once the
// poller has come back from epoll_wait, ctx's error if that did not happen before ctx ended, and
// ErrServerClosed once Serve has returned. It is meant for a liveness check such as systemd's watchdog
// (CONTRACT D7): every socket waits on that one loop, so while it is stuck nothing is accepted, parked
// sockets are served again only while idle workers harvest (at light load), and no deadline is
// enforced. A handler that never returns holds its own worker, not the loop, and does not make Alive
// fail. Safe from any goroutine; before Serve starts, Alive waits for the loop's first turn.
//
// The slot lock is taken on a goroutine of Alive's own, so that ctx bounds the wait even when the
// lock is never released. That goroutine queues for the lock like the workers do (a TryLock poll can
// lose to them for hundreds of milliseconds under load), and there is at most one: while it waits, a
// later Alive waits for ctx.
func (s *Server) Alive(ctx context.Context) error {
	if !s.arming.CompareAndSwap(false, true) {
		// The previous call's goroutine still waits for the lock: nothing more to ask.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return ErrServerClosed
		}
	}
	armed := make(chan chan struct{}, 1)
	go func() {
		s.mu.Lock()
		if s.turned == nil {
			s.turned = make(chan struct{})
		}
		turned := s.turned
		s.notifyLocked()
		s.mu.Unlock()
		s.arming.Store(false)
		armed <- turned
	}()
	var turned chan struct{}
	select {
	case turned = <-armed:
	case <-s.done:
		return ErrServerClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-turned:
		return nil
	case <-s.done:
		return ErrServerClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// requestStop asks the poller to begin the drain. Safe from any goroutine.
func (s *Server) requestStop() {
	s.stopReq.Store(true)
	s.mu.Lock()
	s.notifyLocked()
	s.mu.Unlock()
}

// notifyLocked wakes the poller through the eventfd, once per poller iteration. The write happens
// under the lock so that it never reaches a descriptor closed after Serve returned.
func (s *Server) notifyLocked() {
	if s.notified || s.pollerGone || s.evfd < 0 {
		return
	}
	s.notified = true
	for {
		_, err := unix.Write(s.evfd, eventfdOne[:])
		if err != unix.EINTR {
			return
		}
	}
}

// wakeWorkers makes every worker re-check the server state (drain, force-close).
func (s *Server) wakeWorkers() {
	for _, w := range s.workers {
		w.wakeup()
	}
}

// maxYields bounds the poller's yields before it blocks in epoll_wait (yield).
const maxYields = 4

// yield lets the goroutines the poller's last turn woke run before it blocks in epoll_wait, a system
// call that keeps its processor: with GOMAXPROCS=1 (CONTRACT S11), a goroutine still runnable then
// waits until the runtime's monitor takes the processor back, 10 to 20 ms when it has long had
// nothing to do. One yield is not always enough: the scheduler takes a goroutine from the global run
// queue first once in 61 turns, and the yielding poller is there. So on one processor the poller
// yields until the goroutines it woke have taken what it gave them (woken), at most maxYields times.
// With more processors, an idle one takes over what the poller leaves runnable, and one yield lets
// the workers start on this one's.
//
// While the poller yields, pollerYielding is set: a worker about to take the next queued socket
// gives it its turn (worker.giveWay).
//
// Only goroutines woken while they waited count, so that nothing left over (a slot queued while every
// worker was busy, a wake-up sent to a stream that was not waiting) keeps the poller yielding. Other
// wake-ups (the socket queue's close at a drain, an Alive caller, a worker waiting for the slot lock,
// goroutines that the woken ones wake in turn) are left to the runtime: rare, or not on the request
// path.
func (s *Server) yield() {
	s.pollerYielding.Store(true)
	defer s.pollerYielding.Store(false)
	pollerGosched()
	for k := 1; k < maxYields && s.woken.Load() > 0 && runtime.GOMAXPROCS(0) == 1; k++ {
		pollerGosched()
	}
}

// pollerGosched is runtime.Gosched; tests look at what the workers see while the poller yields.
var pollerGosched = runtime.Gosched

// queueLocked sends slot i to the socket queue, which never blocks: it holds Q and at most Q slots
// are queued. A worker waiting on the queue is counted as woken until it takes a slot (yield).
func (s *Server) queueLocked(i int32) {
	if s.readyWaiting.Load() > 0 {
		s.slots[i].counted = true
		s.woken.Add(1)
	}
	s.ready <- i
}

// clock returns the server's monotonic time in nanoseconds.
func (s *Server) clock() int64 { return int64(time.Since(s.base)) }

func (s *Server) closeListeners() {
	for i := range s.lns {
		if s.lns[i].fd >= 0 {
			unix.Close(s.lns[i].fd)
			s.lns[i].fd = -1
			s.lns[i].pending = false
		}
	}
}
