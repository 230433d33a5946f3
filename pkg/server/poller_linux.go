package server

import (
	"math"
	"os"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Limits of the poller.
const (
	// lingerTime and lingerBytes bound the drain of a socket closed by the server (CONTRACT S8).
	lingerTime  = 2 * time.Second
	lingerBytes = 64 << 10
	// minBackoff and maxBackoff bound the pause after an accept error (CONTRACT S7).
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
	// forceWait is how long the force-close at the end of the grace period waits for workers.
	forceWait = time.Second
)

// openPoller creates the epoll instance and the eventfd and registers the listeners, edge-triggered.
func (s *Server) openPoller() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("epoll_create1", err)
	}
	s.epfd = epfd
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("eventfd", err)
	}
	s.mu.Lock()
	s.evfd = evfd
	s.mu.Unlock()
	s.ev = unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: tagEventfd}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &s.ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	for i := range s.lns {
		s.ev = unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: tagListener0 - int32(i)}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, s.lns[i].fd, &s.ev); err != nil {
			return os.NewSyscallError("epoll_ctl", err)
		}
		s.lns[i].pending = true // clients may have queued before Serve
	}
	return nil
}

// closePoller releases the epoll instance and the eventfd once nothing can use them any more.
func (s *Server) closePoller() {
	s.mu.Lock()
	s.pollerGone = true
	if s.evfd >= 0 {
		unix.Close(s.evfd)
		s.evfd = -1
	}
	s.mu.Unlock()
	if s.epfd >= 0 {
		unix.Close(s.epfd)
		s.epfd = -1
	}
}

// poll is the event loop: one goroutine waiting in epoll_wait for the listeners, the eventfd and every
// accepted socket. It returns nil once a drain has finished, or an error if epoll fails.
func (s *Server) poll() error {
	for {
		// Let the goroutines just woken run before this one blocks in a system call (CONTRACT S11).
		s.yield()
		s.mu.Lock()
		msec := s.timeoutLocked(s.clock())
		if s.turned != nil {
			// An Alive call made before openPoller created the eventfd woke nobody.
			msec = 0
		}
		s.mu.Unlock()
		if s.stopReq.Load() && !s.closing.Load() {
			// A stop requested before openPoller created the eventfd woke nobody (CONTRACT S9).
			msec = 0
		}
		n, err := unix.EpollWait(s.epfd, s.events, msec)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			s.log.Error("event loop failed", "error", err)
			return os.NewSyscallError("epoll_wait", err)
		}
		now := s.clock()
		s.mu.Lock()
		if s.turned != nil {
			close(s.turned) // Alive: the loop turns
			s.turned = nil
		}
		s.turnLocked(s.events[:n], now)
		s.mu.Unlock()

		if s.stopReq.Load() && !s.closing.Load() {
			// The grace counts from here: now was read before the stop request may have come.
			now = s.clock()
			s.beginDrain(now)
		}
		if !s.closing.Load() {
			s.acceptAll(now)
			continue
		}
		switch {
		case s.open.Load() == 0:
			return nil
		case !s.forcedA.Load() && now >= s.graceEnd:
			s.force(now)
			if s.open.Load() == 0 {
				// The force-close closed the last sockets itself (lingering, parked): no worker or
				// session is left to write the eventfd, so the loop would sleep until forceEnd.
				return nil
			}
		case s.forcedA.Load() && now >= s.forceEnd:
			s.gaveUp = true
			return nil
		}
	}
}

// turnLocked is the poller's work on the events one epoll_wait returned, at now: it dispatches them,
// drains the sockets handed over for lingering since, and closes the parked and lingering sockets
// whose time is up. Whether a client still waits in the backlog is for the accepts that follow.
func (s *Server) turnLocked(events []unix.EpollEvent, now int64) {
	for k := range events {
		s.dispatchLocked(&events[k])
	}
	for _, i := range s.fresh {
		if s.slots[i].state == slotLingering {
			s.drainLocked(i)
		}
	}
	s.fresh = s.fresh[:0]
	s.expireLocked(now)
	s.acceptWaiting = false
}

// timeoutLocked returns the epoll_wait timeout in milliseconds: the time to the earliest of the parked
// sockets' keep-alive expiry, the lingering deadline, the end of an accept back-off and the shutdown
// deadlines; with parking, at most the keep-alive timeout; otherwise -1 when there is none.
func (s *Server) timeoutLocked(now int64) int {
	next := int64(math.MaxInt64)
	if s.parking && s.keepAlive < math.MaxInt64-now {
		// A socket parked from now on expires at now+keepAlive or later, so the poller wakes in time
		// for it without being told: park never writes the eventfd. Otherwise, with nothing parked,
		// the poller would sleep without a timeout and every park would cost an eventfd write, its
		// read and one more epoll_wait (a tenth of the requests of a single keep-alive client).
		next = now + s.keepAlive
	}
	if s.parked.n > 0 {
		head := s.slots[s.parked.head].since
		next = min(next, head+s.keepAlive)
		if s.acceptWaiting && s.evicting && !s.draining {
			next = min(next, head+s.evictMin) // a waiting client may evict the head then (S13)
		}
	}
	if s.lingering.n > 0 {
		next = min(next, s.slots[s.lingering.head].since)
	}
	if s.retryAccept && !s.draining {
		next = min(next, s.backoffUntil) // possibly past already: then poll without blocking
	}
	if s.draining {
		if s.forced {
			next = min(next, s.forceEnd)
		} else {
			next = min(next, s.graceEnd)
		}
	}
	s.sleepUntil = next
	if next == math.MaxInt64 {
		return -1
	}
	d := next - now
	if d <= 0 {
		return 0
	}
	return int(min((d+int64(time.Millisecond)-1)/int64(time.Millisecond), math.MaxInt32))
}

// dispatchLocked handles one epoll event.
func (s *Server) dispatchLocked(ev *unix.EpollEvent) {
	switch tag := ev.Fd; {
	case tag == tagEventfd:
		s.notified = false
		for {
			_, err := unix.Read(s.evfd, s.scratch[:8])
			if err != unix.EINTR {
				break
			}
		}
	case tag <= tagListener0:
		s.lns[tagListener0-tag].pending = true
	default:
		s.slotEventLocked(tag, uint32(ev.Pad), ev.Events)
	}
}

// The events of an accepted socket that say the peer closed or failed, and those that make it
// readable (a read would not block).
const (
	hupEvents      = unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR
	readableEvents = unix.EPOLLIN | hupEvents
)

// slotEventLocked handles readiness of an accepted socket. Events carry the slot's generation: one for
// a socket closed since (whose fd number may already be reused) is dropped (CONTRACT S8).
func (s *Server) slotEventLocked(i int32, gen uint32, events uint32) {
	sl := &s.slots[i]
	if sl.gen != gen {
		return
	}
	if events&hupEvents != 0 {
		// Before the wake-up below: a stream that then finds hup clear is sure to be woken.
		sl.hup.Store(true)
	}
	readable := events&readableEvents != 0
	switch sl.state {
	case slotParked:
		if readable { // CONTRACT S5: a parked socket that becomes readable re-enters the queue
			s.unparkLocked(i)
		}
	case slotQueued:
		sl.pendingIn = sl.pendingIn || readable
	case slotServing:
		// The worker may have read EAGAIN just before this edge, which will not repeat: note it for
		// parking and wake the worker if it waits (see the lost-wakeup protocol in doc.go).
		sl.pendingIn = sl.pendingIn || readable
		s.workers[sl.worker].wakeup()
	case slotLingering:
		if readable {
			s.drainLocked(i)
		}
	case slotUnbound:
		if sl.taken != nil {
			sl.taken.wakeup()
		}
	}
}

// drainLocked reads and discards what a lingering socket's peer still sends, and closes the socket at
// its end, on an error, or when the byte budget is spent (CONTRACT S8).
func (s *Server) drainLocked(i int32) {
	sl := &s.slots[i]
	for {
		n, err := unix.Read(int(sl.fd), s.scratch)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return
		case err == nil && n > 0 && int(sl.drainLeft) > n:
			sl.drainLeft -= int32(n)
			continue
		}
		s.lingering.remove(s.slots, i)
		s.closeLocked(i)
		return
	}
}

// expireLocked closes parked sockets idle for the keep-alive timeout (CONTRACT S6) and lingering
// sockets past their deadline, oldest first.
func (s *Server) expireLocked(now int64) {
	for s.parked.n > 0 {
		i := s.parked.head
		if s.slots[i].since+s.keepAlive > now {
			break
		}
		s.parked.remove(s.slots, i)
		s.nParked.Add(-1)
		s.obs.Closed(ReasonKeepAliveTimeout)
		s.closeLocked(i)
	}
	for s.lingering.n > 0 {
		i := s.lingering.head
		if s.slots[i].since > now {
			break
		}
		s.lingering.remove(s.slots, i)
		s.closeLocked(i)
	}
}

// closeLocked closes the socket of slot i, which is in no list, and re-arms the slot (CONTRACT S4).
func (s *Server) closeLocked(i int32) {
	sl := &s.slots[i]
	unix.Close(int(sl.fd))
	if sl.client[0] != 0 {
		if c := s.clients[sl.client] - 1; c > 0 {
			s.clients[sl.client] = c
		} else {
			delete(s.clients, sl.client)
		}
		sl.client = clientKey{}
	}
	sl.fd = -1
	sl.gen++
	sl.state = slotFree
	sl.pendingIn = false
	sl.hup.Store(false)
	sl.taken = nil
	s.free = append(s.free, i)
	s.open.Add(-1)
}

// acceptAll accepts from every listener with a pending edge while slots are free (CONTRACT S4).
func (s *Server) acceptAll(now int64) {
	if now < s.backoffUntil {
		return
	}
	s.retryAccept = false
	for li := range s.lns {
		for s.lns[li].pending && s.acceptOne(&s.lns[li], now) {
		}
	}
}

// acceptOne accepts one socket into a free slot. It reports whether to go on accepting.
func (s *Server) acceptOne(ln *listener, now int64) bool {
	s.mu.Lock()
	i, victim := s.takeSlotLocked(ln, now)
	if victim != noSlot {
		defer s.mu.Unlock()
		return s.acceptEvictingLocked(ln, victim, now)
	}
	s.mu.Unlock()
	if i == noSlot {
		return false
	}
	fd, err := s.accept(ln.fd)
	if err != nil {
		s.mu.Lock()
		s.free = append(s.free, i)
		s.mu.Unlock()
		return s.acceptFailed(ln, err, now)
	}
	s.acceptedSocket(ln, fd)
	s.mu.Lock()
	s.admitLocked(i, fd, now)
	s.mu.Unlock()
	return true
}

// acceptedSocket counts a socket just accepted and gives it TCP_NODELAY unless it inherited it from
// the listener: responses leave in as few writes as possible (CONTRACT H16; listener.inherited).
func (s *Server) acceptedSocket(ln *listener, fd int) {
	s.backoff = 0
	s.accepted.Add(1)
	s.obs.Accepted()
	if !ln.inherited {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
}

// takeSlotLocked pops an armed slot. With none free it picks the longest-idle parked socket as the
// victim of an eviction, if a client really waits (CONTRACT S13); the victim is closed only once the
// client is accepted and admitted by the per-client limit (acceptEvictingLocked). Otherwise the
// connection stays in the backlog until a slot is re-armed.
func (s *Server) takeSlotLocked(ln *listener, now int64) (slot, victim int32) {
	if n := len(s.free); n > 0 {
		i := s.free[n-1]
		s.free = s.free[:n-1]
		return i, noSlot
	}
	for s.evicting && s.parked.n > 0 {
		head := s.parked.head
		if s.slots[head].since+s.evictMin > now {
			// Too recently active to evict (Config.EvictMinIdle): try again when it has idled
			// enough; timeoutLocked wakes the poller then.
			break
		}
		// The edge only says that a client came; poll says whether one still waits, so that no idle
		// socket is closed for nothing. The same call looks at the head: bytes (or the peer's close)
		// may have reached it since epoll_wait returned, or beyond the events it returned, and a
		// socket whose request came is no longer idle (CONTRACT S5): it is queued as its event would
		// have queued it, and the next parked socket is considered.
		waiting, readable := s.backlogWaiting(ln.fd, int(s.slots[head].fd))
		if !waiting {
			ln.pending = false
			return noSlot, noSlot
		}
		if !readable {
			return noSlot, head
		}
		s.unparkLocked(head)
	}
	s.acceptWaiting = true
	return noSlot, noSlot
}

// unparkLocked moves a parked socket that became readable to the socket queue (CONTRACT S5).
func (s *Server) unparkLocked(i int32) {
	s.parked.remove(s.slots, i)
	s.nParked.Add(-1)
	s.slots[i].state = slotQueued
	s.queueLocked(i)
}

// acceptEvictingLocked accepts a client for which the parked socket victim is to be evicted
// (CONTRACT S13). The victim is closed only when the client is accepted and not refused by the
// per-client limit (CONTRACT S14): a refused client costs nobody else a connection. The lock is held
// throughout so that the victim stays parked; accept4 does not block.
func (s *Server) acceptEvictingLocked(ln *listener, victim int32, now int64) bool {
	fd, err := s.accept(ln.fd)
	if err != nil {
		return s.acceptFailed(ln, err, now)
	}
	s.acceptedSocket(ln, fd)
	if s.clients != nil {
		// Evicting one of the client's own sockets makes room for it within its limit.
		if key, ok := s.peerKey(); ok && s.clients[key] >= int32(s.cfg.MaxConnsPerClient) &&
			s.slots[victim].client != key {
			s.obs.Closed(ReasonClientLimit)
			unix.Close(fd)
			return true
		}
	}
	s.parked.remove(s.slots, victim)
	s.nParked.Add(-1)
	s.obs.Closed(ReasonEvicted)
	s.closeLocked(victim) // re-arms the slot, last on the free list: the new client takes it
	s.free = s.free[:len(s.free)-1]
	s.admitLocked(victim, fd, now)
	return true
}

// backlogWaiting reports whether the listener lfd has a connection to accept, and whether the parked
// socket fd has bytes, an end of stream or an error to read, in one poll(2).
func (s *Server) backlogWaiting(lfd, fd int) (waiting, readable bool) {
	for {
		s.lnPoll[0] = unix.PollFd{Fd: int32(lfd), Events: unix.POLLIN}
		s.lnPoll[1] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}
		n, err := unix.Poll(s.lnPoll[:], 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return false, false
		}
		return s.lnPoll[0].Revents&unix.POLLIN != 0,
			s.lnPoll[1].Revents&(unix.POLLIN|unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0
	}
}

// acceptFailed classifies an accept error (CONTRACT S7) and reports whether to retry at once.
func (s *Server) acceptFailed(ln *listener, err error, now int64) bool {
	switch err {
	case unix.EAGAIN:
		ln.pending = false
		return false
	case unix.EINTR, unix.ECONNABORTED,
		// accept(2): errors already pending on the new TCP socket; retry like EAGAIN.
		unix.ENETDOWN, unix.EPROTO, unix.ENOPROTOOPT, unix.EHOSTDOWN, unix.ENONET,
		unix.EHOSTUNREACH, unix.EOPNOTSUPP, unix.ENETUNREACH, unix.ETIMEDOUT:
		return true
	}
	// EMFILE, ENFILE, ENOBUFS, ENOMEM, and anything unforeseen: pause accepting, never spin.
	if s.backoff == 0 {
		s.backoff = minBackoff
	} else {
		s.backoff = min(2*s.backoff, maxBackoff)
	}
	s.backoffUntil = now + int64(s.backoff)
	s.retryAccept = true
	s.obs.AcceptError(err)
	if now-s.lastErrLog >= int64(time.Second) {
		s.lastErrLog = now
		s.log.Warn("accept failed; backing off", "listen", ln.addr, "error", err, "backoff", s.backoff)
	}
	return false
}

// admitLocked registers an accepted socket with epoll and parks or queues it (CONTRACT S4, S5, S14).
func (s *Server) admitLocked(i int32, fd int, now int64) {
	sl := &s.slots[i]
	if s.clients != nil {
		if key, ok := s.peerKey(); ok {
			if s.clients[key] >= int32(s.cfg.MaxConnsPerClient) {
				s.obs.Closed(ReasonClientLimit)
				unix.Close(fd)
				s.free = append(s.free, i)
				return
			}
			s.clients[key]++
			sl.client = key
		}
	}
	sl.fd = int32(fd)
	sl.pendingIn = false
	sl.hup.Store(false)
	s.open.Add(1)
	s.ev = unix.EpollEvent{
		Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET,
		Fd:     i,
		Pad:    int32(sl.gen),
	}
	if err := unix.EpollCtl(s.epfd, unix.EPOLL_CTL_ADD, fd, &s.ev); err != nil {
		s.log.Warn("epoll_ctl failed for an accepted socket", "error", err)
		s.obs.Closed(ReasonIOError)
		s.closeLocked(i)
		return
	}
	if s.parking {
		// A new socket starts parked: no worker waits for its first byte (CONTRACT S5).
		sl.state = slotParked
		sl.since = now
		s.parked.pushBack(s.slots, i)
		s.nParked.Add(1)
		return
	}
	sl.state = slotQueued
	s.queueLocked(i)
}

// peerKey returns the per-client key of the address the last accept filled in (CONTRACT S14).
func (s *Server) peerKey() (clientKey, bool) {
	switch s.sa.Addr.Family {
	case unix.AF_INET:
		return clientKeyFrom4((*unix.RawSockaddrInet4)(unsafe.Pointer(&s.sa)).Addr), true
	case unix.AF_INET6:
		return clientKeyFrom6((*unix.RawSockaddrInet6)(unsafe.Pointer(&s.sa)).Addr), true
	}
	return clientKey{}, false
}

// accept4 accepts a connection, non-blocking and close-on-exec, filling s.sa with the peer's address
// when the per-client limit needs it.
func (s *Server) accept4(lfd int) (int, error) {
	const flags = unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC
	var r uintptr
	var e unix.Errno
	if s.clients == nil {
		r, _, e = unix.Syscall6(unix.SYS_ACCEPT4, uintptr(lfd), 0, 0, flags, 0, 0)
	} else {
		s.salen = unix.SizeofSockaddrAny
		r, _, e = unix.Syscall6(unix.SYS_ACCEPT4, uintptr(lfd),
			uintptr(unsafe.Pointer(&s.sa)), uintptr(unsafe.Pointer(&s.salen)), flags, 0, 0)
	}
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// beginDrain starts a graceful shutdown (CONTRACT S9): no more accepting, parked sockets closed, the
// socket queue closed once nothing can be queued any more, and every worker woken so that one waiting
// for a first byte gives up.
func (s *Server) beginDrain(now int64) {
	s.setClosing()
	s.closeListeners()
	s.graceEnd = now + int64(s.cfg.ShutdownGrace)
	s.mu.Lock()
	s.draining = true
	s.closeParkedLocked(ReasonShutdown)
	close(s.ready)
	open := s.open.Load()
	s.mu.Unlock()
	s.wakeWorkers()
	s.log.Info("shutting down", "open_sockets", open, "grace", s.cfg.ShutdownGrace)
}

func (s *Server) closeParkedLocked(reason CloseReason) {
	for s.parked.n > 0 {
		i := s.parked.head
		s.parked.remove(s.slots, i)
		s.nParked.Add(-1)
		s.obs.Closed(reason)
		s.closeLocked(i)
	}
}

// force ends the grace period: lingering and unbound sockets are closed, served ones shut down so that
// every read and write on them fails at once, and the workers woken to notice.
func (s *Server) force(now int64) {
	s.forceEnd = now + int64(forceWait)
	s.mu.Lock()
	n := s.forceLocked()
	s.mu.Unlock()
	s.wakeWorkers()
	s.log.Warn("shutdown grace period over; closing what is left", "open_sockets", n)
}

func (s *Server) forceLocked() int {
	s.forced = true
	s.forcedA.Store(true)
	n := int(s.open.Load())
	s.closeParkedLocked(ReasonShutdown)
	for s.lingering.n > 0 {
		i := s.lingering.head
		s.lingering.remove(s.slots, i)
		s.closeLocked(i)
	}
	s.fresh = s.fresh[:0]
	for i := range s.slots {
		sl := &s.slots[i]
		switch sl.state {
		case slotQueued, slotServing:
			// The owning worker closes the descriptor; shutdown makes its reads and writes fail.
			_ = unix.Shutdown(int(sl.fd), unix.SHUT_RDWR)
		case slotUnbound:
			// The session closes the descriptor (TakenStream.Close); shutdown ends its reads and
			// writes, and the wake-up makes it notice.
			_ = unix.Shutdown(int(sl.fd), unix.SHUT_RDWR)
			if sl.taken != nil {
				sl.taken.wakeup()
			}
		}
	}
	return n
}

// setClosing sets closing, after which no worker begins a harvest, and waits for the harvests begun
// before: they may still use the epoll instance, the eventfd and the listeners, without blocking, and
// these must not be closed, and their numbers reused, under them.
func (s *Server) setClosing() {
	s.closing.Store(true)
	for s.harvesting.Load() > 0 {
		runtime.Gosched()
	}
}

// teardown runs when the event loop has ended: whatever is left is closed or shut down, and the socket
// queue is closed so that the workers return.
func (s *Server) teardown() {
	s.setClosing()
	s.closeListeners()
	s.mu.Lock()
	if !s.draining {
		s.draining = true
		close(s.ready)
	}
	s.forceLocked()
	s.mu.Unlock()
}
