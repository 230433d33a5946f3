package server

import (
	"sync/atomic"
	"time"

	"github.com/edged/edged/pkg/conn"
)

// TakenStream is a socket taken over from HTTP (conn.Connection.Unbind), handed to the
// UnboundHandler. It has its own wake-up channel and timer, so it no longer depends on the worker that
// served the upgrade: the socket keeps its slot (it still counts against Q, CONTRACT W9) and its
// epoll registration, and the poller wakes the TakenStream instead of a worker.
//
// It is full duplex (CONTRACT W8): one goroutine may use Read and SetReadDeadline while another uses
// Write and SetWriteDeadline; writes wait on a wake-up channel and a timer of their own, so that a
// write blocked on a peer that does not read neither takes the read's wake-ups nor moves its deadline.
// Interrupt may be called from any goroutine; Close releases the socket and its slot, once.
type TakenStream struct {
	stream
	slot        int32
	gen         uint32
	interrupted atomic.Bool
	closed      atomic.Bool
}

var _ conn.Stream = (*TakenStream)(nil)

func newTakenStream(s *Server, i int32, gen uint32, fd int) *TakenStream {
	t := &TakenStream{slot: i, gen: gen}
	t.stream.init(s, make(chan struct{}, 1))
	t.wwake, t.wtimer = make(chan struct{}, 1), time.NewTimer(time.Hour)
	t.wtimer.Stop()
	t.stream.bind(fd, &s.slots[i].hup)
	return t
}

// Read reads from the socket; after Interrupt it returns conn.ErrInterrupted once.
func (t *TakenStream) Read(p []byte) (int, error) {
	for {
		if t.interrupted.Load() && t.interrupted.Swap(false) {
			return 0, conn.ErrInterrupted
		}
		n, err := t.stream.readOnce(p)
		if err != errWouldBlock {
			return n, err
		}
		if t.interrupted.Load() {
			continue
		}
		if err := t.stream.wait(t.rdl, errReadTimeout); err != nil {
			return 0, err
		}
	}
}

// Interrupt makes a Read that waits (or the next one) return conn.ErrInterrupted. Any goroutine.
func (t *TakenStream) Interrupt() {
	t.interrupted.Store(true)
	t.wakeup()
}

func (t *TakenStream) wakeup() {
	t.claim(&t.rwaiting)
	select {
	case t.wake <- struct{}{}:
	default:
	}
	t.claim(&t.wwaiting)
	select {
	case t.wwake <- struct{}{}:
	default:
	}
}

// Close gives the socket back: it lingers (CONTRACT S8, W6), then closes and re-arms its slot. Later
// calls do nothing.
func (t *TakenStream) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	t.timer.Stop()
	t.wtimer.Stop()
	t.srv.releaseUnbound(t.slot, t.gen)
	return nil
}

// SetReadDeadline sets the deadline of later reads; the zero time means none.
func (t *TakenStream) SetReadDeadline(d time.Time) { t.stream.SetReadDeadline(d) }

// SetWriteDeadline sets the deadline of later writes; the zero time means none.
func (t *TakenStream) SetWriteDeadline(d time.Time) { t.stream.SetWriteDeadline(d) }
