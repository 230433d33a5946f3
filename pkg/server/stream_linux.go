package server

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edged/edged/pkg/conn"
)

// The worker's stream sends file bodies with sendfile(2) (CONTRACT D5), the head before them with
// MSG_MORE.
var (
	_ conn.FileSender = (*stream)(nil)
	_ conn.MoreWriter = (*stream)(nil)
)

// Errors of a socket stream. They are allocated once: reads and writes allocate nothing.
var (
	errReadTimeout  = fmt.Errorf("server: read: %w", os.ErrDeadlineExceeded)
	errWriteTimeout = fmt.Errorf("server: write: %w", os.ErrDeadlineExceeded)
	errForced       = fmt.Errorf("server: socket force-closed at the end of the shutdown grace: %w", ErrServerClosed)
	// errDrainIdle ends a connection that waits for the first byte of a request while the server
	// drains (CONTRACT S9).
	errDrainIdle = errors.New("server: idle connection closed by shutdown")
	// errParkIdle ends a wait for the first byte of a request with parking on: the worker parks the
	// socket again instead (CONTRACT S5).
	errParkIdle = errors.New("server: idle connection parked")
)

// stream is a worker's conn.Stream over the non-blocking socket of the slot it serves. Read and Write
// call read(2) and write(2) directly; on EAGAIN they wait for the poller's wake-up or the deadline on
// the worker's one reusable timer. Nothing is allocated per call.
type stream struct {
	srv   *Server
	fd    int
	wake  chan struct{} // the worker's wake channel, capacity 1
	timer *time.Timer
	// wwake and wtimer are what writes wait on: wake and timer themselves for a worker's stream, read
	// and written by one goroutine; a pair of their own for a TakenStream, whose writes may wait while
	// a read waits on another goroutine (CONTRACT W8: full duplex).
	wwake  chan struct{}
	wtimer *time.Timer
	rdl    time.Time
	wdl    time.Time
	idle   bool // no byte of the current request read yet
	eof    bool // the peer closed its side
	// drained: the last read(2) found the socket empty (EAGAIN, or fewer bytes than asked for) and no
	// wake-up was consumed since. The socket is registered edge-triggered, so bytes arriving after that
	// read bring an edge, and the poller a wake-up: the next read waits for it instead of calling
	// read(2) only to get EAGAIN. This saves a read(2) per request when a worker waits for the next
	// request on its connection (accept mode, --park-idle=false) and per message of a WebSocket.
	drained bool
	// hup is the slot's flag: the peer's FIN (or an error) came. A short read leaves a FIN that arrived
	// with the bytes unread and brings no later edge, so a short read counts as draining only while
	// the flag is clear; the poller sets it before it wakes the stream.
	hup *atomic.Bool
	// rwaiting and wwaiting: a read (or a worker's write, which shares its channel) and a TakenStream's
	// write wait on their channel; the waker that clears the flag counts the goroutine as woken
	// (claim), and the goroutine uncounts itself when it runs (unwait).
	rwaiting, wwaiting atomic.Bool
}

func (st *stream) init(s *Server, wake chan struct{}) {
	st.srv = s
	st.fd = -1
	st.wake = wake
	st.timer = time.NewTimer(time.Hour)
	st.timer.Stop()
	st.wwake, st.wtimer = wake, st.timer
}

// bind points the stream at a socket and its slot's hup flag.
func (st *stream) bind(fd int, hup *atomic.Bool) {
	st.fd = fd
	st.hup = hup
	st.rdl, st.wdl = time.Time{}, time.Time{}
	st.eof = false
	st.drained = false
}

// errWouldBlock is readOnce's EAGAIN.
var errWouldBlock = errors.New("server: would block")

// readOnce reads once: bytes, io.EOF, errWouldBlock or another error. EINTR is retried. While the
// socket is drained it returns errWouldBlock without a system call.
func (st *stream) readOnce(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if st.drained {
		return 0, errWouldBlock
	}
	for {
		n, err := unix.Read(st.fd, p)
		switch {
		case err == nil && n > 0:
			st.idle = false
			// A short read took every byte the socket held (TCP copies its whole queue up to len(p)),
			// but not a FIN that came with them.
			st.drained = n < len(p) && !st.hup.Load()
			return n, nil
		case err == nil:
			st.eof = true
			return 0, io.EOF
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			st.drained = true
			return 0, errWouldBlock
		}
		return 0, err
	}
}

// Read reads from the socket, waiting for readiness under the read deadline.
func (st *stream) Read(p []byte) (int, error) {
	for {
		n, err := st.readOnce(p)
		if err != errWouldBlock {
			return n, err
		}
		if st.idle && st.srv.closing.Load() {
			return 0, errDrainIdle
		}
		if st.idle && st.srv.parking {
			// The socket was queued by a readable edge, but its bytes may be gone: the poller fetched
			// the edge from epoll_wait while a worker served the socket, and dispatched it only after
			// that worker had read the bytes, answered them and parked the socket. Waiting here would
			// hold this worker until the keep-alive timeout; park the socket again (CONTRACT S5). A
			// wake-up already there may announce bytes that the drained flag hides: read them first.
			select {
			case <-st.wake:
				st.drained = false
				continue
			default:
			}
			return 0, errParkIdle
		}
		if err := st.wait(st.rdl, errReadTimeout); err != nil {
			return 0, err
		}
	}
}

// Write writes all of p, waiting for the socket to drain under the write deadline.
func (st *stream) Write(p []byte) (int, error) { return st.writeAll(p, false) }

// WriteMore is Write with MSG_MORE: the kernel holds the bytes back until the next send without the
// flag (sendfile(2) clears it with its last page), so that a response head and the file body after it
// leave together (conn.MoreWriter).
func (st *stream) WriteMore(p []byte) (int, error) { return st.writeAll(p, true) }

// writeAll writes all of p with write(2), or sendmsg(2) with MSG_MORE when more is set, waiting for
// the socket to drain under the write deadline.
func (st *stream) writeAll(p []byte, more bool) (int, error) {
	done := 0
	for done < len(p) {
		var n int
		var err error
		if more {
			n, err = unix.SendmsgN(st.fd, p[done:], nil, nil, unix.MSG_MORE)
		} else {
			n, err = unix.Write(st.fd, p[done:])
		}
		switch {
		case err == nil:
			done += n
			continue
		case err == unix.EINTR:
			continue
		case err != unix.EAGAIN:
			return done, err
		}
		if err := st.waitOn(st.wwake, st.wtimer, st.wdl, errWriteTimeout); err != nil {
			return done, err
		}
	}
	return done, nil
}

// maxSendfileChunk bounds one sendfile(2) call: the kernel sends at most 0x7ffff000 bytes at a time,
// and the count must fit in a 32-bit int on ARM.
const maxSendfileChunk = 1 << 30

// SendFile sends up to n bytes of the file descriptor fd from offset with sendfile(2), so that a file
// body goes from the page cache to the socket without passing through the worker's buffers (CONTRACT
// D5; conn.FileSender). Like Write it waits for the socket to drain under the write deadline. It returns
// early, without an error, when the file ends before n bytes.
func (st *stream) SendFile(fd int, offset, n int64) (int64, error) {
	var done int64
	for done < n {
		off := offset + done
		k, err := unix.Sendfile(st.fd, fd, &off, int(min(n-done, maxSendfileChunk)))
		switch {
		case err == nil && k > 0:
			done += int64(k)
			continue
		case err == nil:
			return done, nil // end of file
		case err == unix.EINTR:
			continue
		case err != unix.EAGAIN:
			return done, err
		}
		if err := st.waitOn(st.wwake, st.wtimer, st.wdl, errWriteTimeout); err != nil {
			return done, err
		}
	}
	return done, nil
}

// SetReadDeadline sets the deadline of later reads; the zero time means none.
func (st *stream) SetReadDeadline(t time.Time) { st.rdl = t }

// SetWriteDeadline sets the deadline of later writes; the zero time means none.
func (st *stream) SetWriteDeadline(t time.Time) { st.wdl = t }

// wait blocks a read until the poller wakes the stream or the deadline passes (see waitOn).
func (st *stream) wait(deadline time.Time, timeout error) error {
	return st.waitOn(st.wake, st.timer, deadline, timeout)
}

// waitOn blocks until the poller wakes the stream (on wake) or the deadline passes (on timer). A
// wake-up may be stale (meant for an earlier socket or already consumed): the caller retries its
// system call, which is cheap. A wake-up already there is taken even past the deadline, so that a
// drained socket's bytes are read as a read(2) would have found them. Any wake-up taken from the
// reads' channel ends drained: it may announce bytes, whichever call (Read, Write, SendFile) waited
// for it. A TakenStream's writes wait on channels of their own and leave drained to its reads, which
// get the same wake-ups on theirs.
func (st *stream) waitOn(wake chan struct{}, timer *time.Timer, deadline time.Time, timeout error) error {
	if st.srv.forcedA.Load() {
		return errForced
	}
	reads := wake == st.wake
	waiting := &st.rwaiting
	if !reads {
		waiting = &st.wwaiting
	}
	select {
	case <-wake:
		st.woke(reads)
		return nil
	default:
	}
	if deadline.IsZero() {
		waiting.Store(true)
		<-wake
		st.unwait(waiting)
		st.woke(reads)
		return nil
	}
	d := time.Until(deadline)
	if d <= 0 {
		return timeout
	}
	// Go 1.23 timers: Reset and Stop leave no stale tick in the channel.
	timer.Reset(d)
	waiting.Store(true)
	select {
	case <-wake:
		timer.Stop()
		st.unwait(waiting)
		st.woke(reads)
		return nil
	case <-timer.C:
		st.unwait(waiting)
		return timeout
	}
}

// woke notes a wake-up taken: one taken from the reads' channel ends drained.
func (st *stream) woke(reads bool) {
	if reads {
		st.drained = false
	}
}

// claim is called by a waker before it sends on the channel of the waiting flag: it counts the
// goroutine waiting there, if any, as woken (Server.yield).
func (st *stream) claim(waiting *atomic.Bool) {
	if waiting.Swap(false) {
		st.srv.woken.Add(1)
	}
}

// unwait ends a wait on the channel of the waiting flag: when a waker claimed the goroutine, it is
// uncounted now that it runs.
func (st *stream) unwait(waiting *atomic.Bool) {
	if !waiting.Swap(false) {
		st.srv.woken.Add(-1)
	}
}
