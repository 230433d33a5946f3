package server

import (
	"errors"
	"io"
	"os"
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/edged/edged/pkg/conn"
)

// worker is one of the P goroutines. It owns a conn.Connection with all its buffers, a stream, a wake
// channel and a timer, all allocated by New (CONTRACT S2).
type worker struct {
	id   int
	srv  *Server
	c    *conn.Connection
	st   stream
	wake chan struct{}
	busy atomic.Bool
	peek [1]byte
	// events receives what harvest fetches from epoll; rearm is its epoll_ctl argument.
	events [harvestEvents]unix.EpollEvent
	rearm  unix.EpollEvent
}

func newWorker(s *Server, id int) *worker {
	w := &worker{id: id, srv: s, c: conn.New(s.cfg.Conn), wake: make(chan struct{}, 1)}
	w.st.init(s, w.wake)
	return w
}

// wakeup makes the worker retry a read or write that found the socket not ready. It never blocks.
func (w *worker) wakeup() {
	w.st.claim(&w.st.rwaiting)
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run takes slots from the socket queue until the queue is closed by a shutdown.
func (w *worker) run() {
	defer w.srv.running.Done()
	defer func() {
		if w.srv.workersUp.Add(-1) == 0 {
			close(w.srv.allIdle)
		}
	}()
	s := w.srv
	for {
		var (
			i  int32
			ok bool
		)
		select {
		case i, ok = <-s.ready:
		default:
			if w.harvest() {
				continue
			}
			s.readyWaiting.Add(1)
			i, ok = <-s.ready
			s.readyWaiting.Add(-1)
		}
		if !ok {
			return
		}
		w.serve(i)
		w.giveWay()
	}
}

// giveWay puts the worker behind the poller in the runtime's run queue before it takes the next queued
// socket, when the poller has yielded (Server.yield) and the queue is not empty. With more than one
// processor a yield puts the poller in the global run queue, which a processor looks at only when its
// own run queue is empty, or once in 61 turns. While sockets stay queued no worker blocks, so the
// poller could wait there for milliseconds, until the queue ran dry or the runtime preempted a worker
// (10 ms): the sockets that became readable meanwhile waited for its next turn, and then the workers
// all blocked on an empty queue together and were woken again. A worker that yields joins the same
// queue behind it, so the poller turns sooner and keeps the queue filled while the workers serve. At
// 256 connections on two processors (wrk, six rounds in rotated order): a median of 98k against 88k
// requests per second, 9.7 against 10.7 µs of CPU per request, p99 3.4-4.4 against 4.4-5.1 ms; at
// 64, the same rate and p99 1.0-1.3 against 1.3-1.5 ms; at 4 no change. With the queue empty the
// worker is about to wait, or to harvest, which yields anyway. Not on one processor, where the
// poller's yield is there to let the workers it woke run first, and a worker giving way sent the
// poller back to epoll_wait before them: p99 1.6-12 ms at 4 connections against 0.07-0.19 (measured
// without the queue condition).
func (w *worker) giveWay() {
	s := w.srv
	if len(s.ready) > 0 && s.pollerYielding.Load() && runtime.GOMAXPROCS(0) > 1 {
		yieldToPoller()
	}
}

// yieldToPoller is runtime.Gosched; tests count the calls (worker.giveWay).
var yieldToPoller = runtime.Gosched

// harvestEvents is how many events a worker's harvest fetches at most.
const harvestEvents = 8

// yieldBeforeHarvest gives the processor to the goroutines waiting for it before a harvest (harvest).
// Tests count its calls.
var yieldBeforeHarvest = runtime.Gosched

// harvest lets a worker that found the socket queue empty fetch the ready events itself, without
// waiting (epoll_wait with a zero timeout), instead of waiting for the poller to fetch them and
// wake it. At light load a request handed over by the poller costs a wake-up of another goroutine,
// which with more than one processor means a thread woken with a futex and put back to sleep, more
// than serving the request; and while a worker writes one connection's response, the next request
// of another has often come. So it harvests only with parking on (only a parked socket can come to
// an idle worker through an event), with another socket open than the one the worker just parked
// (whose next request comes after the response), while every open socket could have a worker of its
// own (under more load the poller's epoll_wait returns many events at once, which is cheaper than
// every idle worker calling epoll_wait), and with more than one processor (on one, the poller's
// hand-off costs no thread, and a harvest measured no faster but with a tail: at -c4, 48-101 of
// 120,000 requests over 2 ms against 1-4). Otherwise harvest costs an atomic load and a look at
// GOMAXPROCS.
//
// Before each harvest the worker yields its processor (yieldBeforeHarvest). A worker whose harvests
// keep finding work never waits, and its system calls return at once without passing through the
// scheduler, so the goroutines waiting to run meanwhile (workers the poller handed a socket, in this
// processor's run queue; the poller after its own yield, in the global one) waited until the runtime
// preempted it, after 10 ms, or took the other processor back from the poller's thread blocked in
// epoll_wait, which its monitor does after 20 µs to 10 ms, depending on how long it has had nothing
// to do. Runtime traces showed those waits of 1 to 10 ms, and they were the latency tail the harvest
// added: at 4 connections on two processors (bench/cmd/latency, 120,000 requests a run), 310-460
// requests over 1 ms and a p99.9 of 1.7-2.0 ms, against 50-140 and 0.54-1.13 ms with the yield, as
// without harvest (56-134 and 0.65-1.06 ms). The yield costs no CPU per request that shows (the
// whole process's, wrk -c4, three interleaved rounds: 9.4-11.1 µs against 9.9-12.5 without it). A
// queue refilled meanwhile is taken without a harvest.
//
// A harvested socket event is dispatched as the poller would (slotEventLocked): an unparked socket
// joins the queue (CONTRACT S4), where a worker waiting on it takes it at once, usually on this
// thread (the harvesting worker is about to wait), or else this one does; a worker waiting on its
// socket is woken; a lingering socket is drained, and when that frees a slot a client waiting in
// the backlog is announced to the poller, which accepts. (Serving the first unparked socket at once
// instead, without the queue, measured 15% slower at 4 connections on two processors: the hand-over
// also sets the idle processor looking for work.) The eventfd and the listeners are the poller's:
// the worker re-arms them (EPOLL_CTL_MOD), which queues their edge again as long as they are
// readable, so that the poller gets it. The system call is made outside the slot lock, which the
// poller and the other workers want meanwhile; harvesting keeps the shutdown from closing the
// descriptors under it (setClosing).
func (w *worker) harvest() bool {
	s := w.srv
	if open := int(s.open.Load()); !s.parking || open < 2 || open > len(s.workers) || runtime.GOMAXPROCS(0) == 1 {
		return false
	}
	yieldBeforeHarvest() // first the goroutines waiting to run (see above)
	if len(s.ready) > 0 {
		return true
	}
	s.harvesting.Add(1)
	defer s.harvesting.Add(-1)
	if s.closing.Load() {
		return false
	}
	n, err := unix.EpollWait(s.epfd, w.events[:], 0)
	if err != nil || n <= 0 {
		return false
	}
	s.harvested.Add(uint64(n))
	// The poller's edges go back first: taking the lock may let other goroutines run before this one.
	for k := range w.events[:n] {
		if tag := w.events[k].Fd; tag < 0 {
			fd := s.evfd
			if tag != tagEventfd {
				fd = s.lns[tagListener0-tag].fd
			}
			w.rearm = unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: tag}
			_ = unix.EpollCtl(s.epfd, unix.EPOLL_CTL_MOD, fd, &w.rearm)
		}
	}
	s.mu.Lock()
	for k := range w.events[:n] {
		if ev := &w.events[k]; ev.Fd >= 0 {
			s.slotEventLocked(ev.Fd, uint32(ev.Pad), ev.Events)
		}
	}
	if s.acceptWaiting && len(s.free) > 0 {
		// A drain closed a lingering socket (drainLocked) while a client waits for a slot.
		s.notifyLocked()
	}
	queued := len(s.ready) > 0
	s.mu.Unlock()
	return queued
}

// Handle runs the server's handler. During a drain it makes the response carry Connection: close
// (CONTRACT S9); checking again after the handler covers a drain that began while it ran, since the
// response head is assembled when the response is flushed.
func (w *worker) Handle(taskID int, c *conn.Connection) error {
	if w.srv.closing.Load() {
		c.SetClosing()
	}
	err := w.srv.handler.Handle(taskID, c)
	if w.srv.closing.Load() {
		c.SetClosing()
	}
	return err
}

// serve serves the socket of slot i until it closes, is parked, or is taken over.
func (w *worker) serve(i int32) {
	s := w.srv
	s.mu.Lock()
	sl := &s.slots[i]
	sl.state = slotServing
	sl.worker = int32(w.id)
	if sl.counted {
		sl.counted = false
		s.woken.Add(-1)
	}
	fd := int(sl.fd)
	s.mu.Unlock()
	w.busy.Store(true)
	defer w.busy.Store(false)

	w.st.bind(fd, &sl.hup)
	w.c.Reset(&w.st)
	for {
		if s.closing.Load() {
			w.c.SetClosing()
		}
		w.st.idle = w.c.Buffered() == 0
		keep, err := w.c.Serve(w.id, w)
		if err == errParkIdle {
			// No byte of a request came: the socket is idle after all (stream.Read).
			w.c.Reset(&w.st)
			if w.park(i, fd) {
				return
			}
			continue
		}
		if ex := w.c.LastExchange(); ex.Status != 0 {
			s.obs.RequestDone(w.id, ex)
		}
		if w.c.State() == conn.StateUnbound {
			w.unbind(i)
			return
		}
		if err != nil || !keep {
			w.close(i, err)
			return
		}
		if s.closing.Load() {
			w.release(i, ReasonShutdown, true)
			return
		}
		// CONTRACT S5: park only when no byte of a next request is buffered (pipelining, H21).
		if s.parking && w.c.Buffered() == 0 && w.park(i, fd) {
			return
		}
	}
}

// park hands an idle keep-alive socket back to the poller. It reports false when bytes of a next
// request turned up, and the worker goes on serving.
//
// The lost-wakeup protocol: the poller sets pendingIn, under the slot lock, for every readable edge
// while the slot is not parked. Here, under the same lock, a clear flag means no edge came since the
// socket was last found readable, so the next edge will reach the parked slot and requeue it. A set
// flag may be stale (its bytes already read), so it is cleared and the socket is peeked at: bytes mean
// serve on, EAGAIN means try again. The peer's FIN is no exception: when it came with the request, in
// the edge that queued the socket, no later edge will announce it, so a socket whose hup flag is set is
// peeked at too, and closed at its end of stream (CONTRACT S8) instead of parked until the keep-alive
// timeout. Nor are bytes the last read left in the socket: a clear flag says only that no edge came
// since, and the bytes of a request pipelined behind a body read to its exact end (CONTRACT H1) came
// with that body. So the socket parks unpeeked only when its last read found it empty (the stream is
// drained: a short read, or EAGAIN); otherwise it is peeked at first.
func (w *worker) park(i int32, fd int) bool {
	s := w.srv
	// empty: a peek found nothing, not even an end of stream, so hup (which stays set once an error
	// was read) no longer keeps the socket from parking, and this loop cannot spin on it.
	empty := false
	for {
		s.mu.Lock()
		sl := &s.slots[i]
		if s.draining {
			s.mu.Unlock()
			w.release(i, ReasonShutdown, false)
			return true
		}
		if !sl.pendingIn && (empty || w.st.drained && !sl.hup.Load()) {
			now := s.clock()
			sl.state = slotParked
			sl.since = now
			s.parked.pushBack(s.slots, i)
			s.nParked.Add(1)
			if now+s.keepAlive < s.sleepUntil ||
				s.acceptWaiting && s.evicting && now+s.evictMin < s.sleepUntil {
				// The poller sleeps past this socket's expiry. Not while it caps its sleep at the
				// keep-alive timeout (timeoutLocked), which spares a wake-up per park. Nor past the
				// moment a client waiting in the backlog may evict it (CONTRACT S13): with nothing
				// parked when the poller went to sleep, it did not plan to wake for that.
				s.notifyLocked()
			}
			s.mu.Unlock()
			return true
		}
		sl.pendingIn = false
		s.mu.Unlock()
		n, err := peek(fd, w.peek[:])
		switch {
		case err == unix.EAGAIN:
			empty = true
			continue
		case err != nil:
			w.release(i, ReasonClientClosed, false)
			return true
		case n == 0:
			w.release(i, ReasonClientClosed, false)
			return true
		}
		// Bytes wait: the socket is not drained, whatever the last read found, and the next read
		// calls read(2) without waiting for a wake-up.
		w.st.drained = false
		return false
	}
}

// peek reports whether bytes wait on the socket without consuming them: n is 1 if so, 0 at the
// peer's end of stream; EAGAIN if nothing is there.
func peek(fd int, b []byte) (int, error) {
	for {
		r, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
			unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		}
		return 0, e
	}
}

// close ends the socket of slot i after an exchange that did not keep it alive, with the reason and
// the lingering the outcome of Serve calls for (CONTRACT S8).
func (w *worker) close(i int32, err error) {
	var (
		pe     *conn.ProtocolError
		panicE *conn.PanicError
		errno  unix.Errno
	)
	s := w.srv
	switch {
	case err == nil && s.closing.Load():
		w.release(i, ReasonShutdown, true)
	case err == nil:
		w.release(i, ReasonDone, true)
	case err == errDrainIdle, errors.Is(err, ErrServerClosed):
		w.release(i, ReasonShutdown, false)
	case err == io.EOF, err == io.ErrUnexpectedEOF,
		errors.Is(err, unix.ECONNRESET), errors.Is(err, unix.EPIPE):
		w.release(i, ReasonClientClosed, false)
	case errors.Is(err, conn.ErrIdle):
		w.release(i, ReasonKeepAliveTimeout, false)
	case errors.Is(err, conn.ErrHandlerTimeout):
		w.release(i, ReasonHandlerTimeout, true)
	case errors.As(err, &pe):
		if pe.Code == conn.ErrHeadTimeout.Code {
			w.release(i, ReasonHeaderTimeout, true)
		} else {
			w.release(i, ReasonProtocolError, true)
		}
	case errors.As(err, &panicE):
		s.log.Error("handler panicked", "worker", w.id, "panic", panicE.Value, "stack", string(panicE.Stack))
		s.obs.HandlerPanic(w.id, panicE)
		w.release(i, ReasonHandlerError, true)
	case errors.Is(err, os.ErrDeadlineExceeded):
		w.release(i, ReasonIOTimeout, true)
	case errors.As(err, &errno):
		s.log.Debug("socket error", "worker", w.id, "error", err)
		w.release(i, ReasonIOError, false)
	default:
		s.log.Debug("handler error", "worker", w.id, "error", err)
		w.release(i, ReasonHandlerError, true)
	}
}

// release closes the socket of the slot the worker serves, lingering first when linger is set and the
// peer has not closed (closeOrLingerLocked).
func (w *worker) release(i int32, reason CloseReason, linger bool) {
	s := w.srv
	s.obs.Closed(reason)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeOrLingerLocked(i, linger && !w.st.eof)
}

// closeOrLingerLocked closes slot i's socket. With linger (and unless the server is being forced
// down), the socket is shut down for writing and handed to the poller instead, which drains what the
// peer still sends before closing, so that the peer reads the last bytes sent instead of a reset
// (CONTRACT S8).
func (s *Server) closeOrLingerLocked(i int32, linger bool) {
	sl := &s.slots[i]
	if linger && !s.forced && !s.pollerGone && unix.Shutdown(int(sl.fd), unix.SHUT_WR) == nil {
		sl.taken = nil
		sl.state = slotLingering
		sl.since = s.clock() + int64(lingerTime)
		sl.drainLeft = lingerBytes
		s.lingering.pushBack(s.slots, i)
		s.fresh = append(s.fresh, i)
		s.notifyLocked()
		return
	}
	s.closeLocked(i)
	if s.acceptWaiting || (s.draining && s.open.Load() == 0) {
		s.notifyLocked()
	}
}

// unbind hands a socket taken over from HTTP to the unbound handler, or closes it when there is none.
func (w *worker) unbind(i int32) {
	s := w.srv
	h := s.unbound.Load()
	if h == nil {
		w.release(i, ReasonUnbound, false)
		return
	}
	// From here on the poller wakes the TakenStream, not this worker, which goes back to the queue.
	s.mu.Lock()
	sl := &s.slots[i]
	t := newTakenStream(s, i, sl.gen, int(sl.fd))
	sl.taken = t
	sl.state = slotUnbound
	s.mu.Unlock()
	(*h)(w.id, t, func() { t.Close() })
}

// releaseUnbound closes a socket taken over from HTTP, once. Unless the peer already closed, it lingers
// as after an HTTP response (CONTRACT S8): a session often ends with bytes of its peer unread (the
// payload of a message refused with 1009, frames after a protocol error or after the peer's close),
// and closing at once would reset the connection, which throws away what the kernel has not sent
// yet, the close frame included (CONTRACT W6).
func (s *Server) releaseUnbound(i int32, gen uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl := &s.slots[i]
	if sl.gen != gen || (sl.state != slotServing && sl.state != slotUnbound) {
		return
	}
	s.obs.Closed(ReasonUnbound)
	s.closeOrLingerLocked(i, !sl.hup.Load())
}
