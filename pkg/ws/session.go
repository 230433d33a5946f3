package ws

import (
	"encoding/binary"
	"errors"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edged/edged/pkg/conn"
)

// Transport is a socket taken over from the HTTP server for a session (CONTRACT W9). A session uses it
// from its own goroutine only, except Interrupt: callable from any goroutine, it makes a Read that is
// blocked (or the next one) return an error satisfying errors.Is(err, ErrInterrupted). Close, called
// once by the session goroutine, closes the socket and releases the server slot it holds.
type Transport interface {
	conn.Stream
	Interrupt()
	Close() error
}

// ErrInterrupted is returned by a Transport's Read after Interrupt.
var ErrInterrupted = conn.ErrInterrupted

// SessionHandler receives a session's events. OnMessage runs on the session's goroutine; payload is
// valid only during the call. OnClose runs once for every OnOpen, after it (also when OnOpen
// panicked); a session that never opens (Start could not take the bytes read past the handshake: the
// peer gets close 1009) gets neither. A panic in any of the three is recovered (CONTRACT H17 for
// sessions): it is reported to PoolConfig.OnPanic, a panic in OnOpen or OnMessage closes the session
// with 1011 (messages that arrive meanwhile and sends still queued are dropped), and the session's
// pool entry comes back as usual.
type SessionHandler interface {
	OnOpen(s *Session)
	OnMessage(s *Session, op Opcode, payload []byte)
	OnClose(s *Session)
}

// PoolConfig sizes a Pool. Zero fields take their defaults.
type PoolConfig struct {
	// MaxSessions bounds the sessions alive at once (--ws-max-conns, CONTRACT W9). Default 16.
	MaxSessions int
	// Conn sizes each session's buffers.
	Conn Config
	// PingInterval: an idle session is pinged after this long, and closed if nothing arrives within
	// another interval (CONTRACT W10). Default 30s.
	PingInterval time.Duration
	// CloseTimeout bounds the wait for the peer's close after edged sent one (CONTRACT W6). Default 5s.
	CloseTimeout time.Duration
	// WriteTimeout bounds each write to a session. Default 10s. It is also the Conn's WriteTimeout,
	// which every control frame gets afresh (CONTRACT W5, W6).
	WriteTimeout time.Duration
	// OnPanic, when set, is told of every panic recovered from a SessionHandler, with the goroutine's
	// stack, on the session's goroutine (the daemon logs and counts it).
	OnPanic func(value any, stack []byte)
}

// Defaults of PoolConfig.
const (
	DefaultMaxSessions  = 16
	DefaultPingInterval = 30 * time.Second
	DefaultCloseTimeout = 5 * time.Second
	DefaultWriteTimeout = 10 * time.Second
)

func (cfg PoolConfig) withDefaults() PoolConfig {
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	cfg.Conn = cfg.Conn.withDefaults()
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = DefaultPingInterval
	}
	if cfg.CloseTimeout <= 0 {
		cfg.CloseTimeout = DefaultCloseTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	cfg.Conn.WriteTimeout = cfg.WriteTimeout
	return cfg
}

// BufferBytes returns the memory the pool's sessions hold, all allocated by NewPool (CONTRACT D8).
func (cfg PoolConfig) BufferBytes() int {
	cfg = cfg.withDefaults()
	return cfg.MaxSessions * (cfg.Conn.BufferBytes() + 2*outboxSize(cfg.Conn))
}

func outboxSize(cfg Config) int { return cfg.MaxMessage + 2*(frameRecord) }

// frameRecord is the bytes an outbox entry needs besides its payload: opcode and length.
const frameRecord = 5

// Pool is a bounded set of WebSocket sessions with buffers allocated once (CONTRACT W9). Each live
// session runs on one goroutine of its own, so goroutines stay bounded by MaxSessions (CONTRACT S11).
type Pool struct {
	cfg  PoolConfig
	free chan *Session
	all  []*Session
	// wg counts sessions from Acquire to their end (or Release), so that Shutdown also waits for a
	// session whose 101 went out but which has not started yet. mu orders Acquire's wg.Add after a
	// check of closing against Shutdown setting closing before wg.Wait: an Add never races the Wait.
	wg sync.WaitGroup
	mu sync.Mutex

	closing atomic.Bool
	forced  atomic.Bool // the shutdown grace is over
	active  atomic.Int64
	msgsIn  atomic.Uint64
	msgsOut atomic.Uint64
	panics  atomic.Uint64
}

// NewPool allocates MaxSessions sessions and their buffers.
func NewPool(cfg PoolConfig) *Pool {
	cfg = cfg.withDefaults()
	p := &Pool{cfg: cfg, free: make(chan *Session, cfg.MaxSessions)}
	for i := 0; i < cfg.MaxSessions; i++ {
		s := &Session{pool: p, id: i, conn: NewConn(cfg.Conn)}
		s.conn.onCloseSent = s.closeSent
		s.outbox[0] = make([]byte, 0, outboxSize(cfg.Conn))
		s.outbox[1] = make([]byte, 0, outboxSize(cfg.Conn))
		p.all = append(p.all, s)
		p.free <- s
	}
	return p
}

// Config returns the effective configuration.
func (p *Pool) Config() PoolConfig { return p.cfg }

// Active returns the number of live sessions.
func (p *Pool) Active() int { return int(p.active.Load()) }

// Messages returns the messages received from and sent to peers since start.
func (p *Pool) Messages() (in, out uint64) { return p.msgsIn.Load(), p.msgsOut.Load() }

// Acquire reserves a session, or returns nil when all are in use (the upgrade is then refused with
// 503, CONTRACT W9) or the pool is shutting down. A reserved session is either started with Start or
// given back with Release.
func (p *Pool) Acquire() *Session {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing.Load() {
		return nil
	}
	select {
	case s := <-p.free:
		p.active.Add(1)
		p.wg.Add(1)
		return s
	default:
		return nil
	}
}

// Release gives back a session reserved with Acquire that was never started.
func (p *Pool) Release(s *Session) {
	p.active.Add(-1)
	p.free <- s
	p.wg.Done()
}

// Shutdown sends close 1001 to every live session (CONTRACT S9) and waits until all have ended or done
// is closed; sessions still alive then have their transports closed. A session reserved but not yet
// started is waited for too: Start sends it close 1001 at once.
func (p *Pool) Shutdown(done <-chan struct{}) {
	p.mu.Lock()
	p.closing.Store(true)
	p.mu.Unlock()
	for _, s := range p.all {
		s.requestClose(CloseGoingAway)
	}
	ended := make(chan struct{})
	go func() { p.wg.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-done:
		p.forced.Store(true)
		for _, s := range p.all {
			s.forceClose()
		}
		<-ended
	}
}

// Session is one WebSocket session of a Pool.
type Session struct {
	pool *Pool
	id   int
	conn *Conn

	mu        sync.Mutex
	t         Transport // nil when the session is not live
	handler   SessionHandler
	outbox    [2][]byte // [0] fills with Send, [1] is being written by the session goroutine
	closeCode int       // a close requested from another goroutine (1001, 1008), 0 if none
	closing   bool
	force     bool // end without a close handshake (shutdown grace over)

	// Value is free for the SessionHandler (e.g. the topic a subscriber follows).
	Value any
}

// ID returns the session's index in its pool, stable for the pool's lifetime.
func (s *Session) ID() int { return s.id }

// Conn returns the session's WebSocket connection.
func (s *Session) Conn() *Conn { return s.conn }

// Start runs the session over t on a goroutine of its own; buffered holds the bytes already read past
// the handshake. It returns at once. When buffered is larger than the read buffer (Config.
// ReadBufferSize), the session does not open: h gets no event, the peer gets close 1009 and the
// socket closes once the peer closes its side, or after the close timeout (CONTRACT W6).
func (s *Session) Start(t Transport, buffered []byte, h SessionHandler) {
	p := s.pool
	// buffered belongs to the HTTP worker and is reused once Start returns: copy it now.
	err := s.conn.Reset(t, buffered)
	if err != nil {
		h = nil // the session never opens (refuse): the handler gets no event
	}
	s.mu.Lock()
	// A session that does not open is closing from the start: it takes no sends.
	s.t, s.handler, s.closeCode, s.closing, s.force = t, h, 0, err != nil, false
	s.outbox[0], s.outbox[1] = s.outbox[0][:0], s.outbox[1][:0]
	if p.closing.Load() {
		// Shutdown's close requests skipped this session, reserved before and started after them
		// (CONTRACT S9): it goes away at once. Shutdown set closing before taking s.mu in
		// requestClose, so either it saw s.t set or this sees closing.
		s.closeCode, s.closing, s.force = CloseGoingAway, true, p.forced.Load()
		t.Interrupt()
	}
	s.mu.Unlock()
	go s.run(err)
}

// Send queues a message for the peer without blocking: publishers are never slowed by a slow peer.
// When the queue cannot take it, the peer has fallen behind: the session is closed with 1008 and Send
// returns false (CONTRACT D4).
func (s *Session) Send(op Opcode, payload []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.t == nil || s.closing {
		return false
	}
	q := s.outbox[0]
	if len(q)+frameRecord+len(payload) > cap(q) {
		s.closeCode, s.closing = ClosePolicyViolation, true
		s.t.Interrupt()
		return false
	}
	var rec [frameRecord]byte
	rec[0] = byte(op)
	binary.BigEndian.PutUint32(rec[1:], uint32(len(payload)))
	wasEmpty := len(q) == 0
	q = append(q, rec[:]...)
	s.outbox[0] = append(q, payload...)
	if wasEmpty {
		s.t.Interrupt()
	}
	return true
}

// requestClose asks the session goroutine to close the session with code.
func (s *Session) requestClose(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.t != nil && !s.closing {
		s.closeCode, s.closing = code, true
		s.t.Interrupt()
	}
}

// CloseWith closes the session with code from any goroutine (for example 1008 for a policy). A code
// a close frame may not carry (RFC 6455 7.4, see ErrInvalidClose) is replaced by 1011.
func (s *Session) CloseWith(code int) {
	if !validCloseCode(code) {
		code = CloseInternalError
	}
	s.requestClose(code)
}

// forceClose makes the session goroutine end at once, without a close handshake.
func (s *Session) forceClose() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.t != nil {
		s.force = true
		s.t.Interrupt()
	}
}

func (s *Session) run(resetErr error) {
	p := s.pool
	defer p.wg.Done()
	c := s.conn
	t := s.t
	if resetErr != nil {
		s.refuse()
		return
	}
	var (
		pinged     bool
		closeUntil time.Time
		seen       = c.Frames()
		// pingAt is when the peer, silent since, is pinged (or dropped if already pinged): it moves
		// only when a frame arrives or a ping goes out, not on every interrupt (CONTRACT W10).
		pingAt = time.Now().Add(p.cfg.PingInterval)
		// failed: a handler panicked; the session ends with 1011 and takes no more messages.
		failed = !s.onOpen()
	)
	if failed {
		if s.closeFailed() != nil {
			s.end()
			return
		}
		closeUntil = time.Now().Add(p.cfg.CloseTimeout)
	}
loop:
	for {
		now := time.Now()
		if f := c.Frames(); f != seen {
			seen, pinged = f, false
			pingAt = now.Add(p.cfg.PingInterval)
		}
		deadline := pingAt
		if !closeUntil.IsZero() {
			deadline = closeUntil
		}
		var (
			op  Opcode
			msg []byte
			err error
		)
		if now.Before(deadline) {
			t.SetReadDeadline(deadline)
			op, msg, err = c.ReadMessage()
		} else {
			err = os.ErrDeadlineExceeded // interrupts kept the read from ever reaching the deadline
		}
		switch {
		case err == nil:
			p.msgsIn.Add(1)
			if !failed && !s.onMessage(op, msg) {
				failed = true
				if s.closeFailed() != nil {
					break loop
				}
				// The first close sent sets the wait for the peer's (CONTRACT W6): when one went out
				// before the panic, closeFailed sent none and the wait goes on as it was.
				if closeUntil.IsZero() {
					closeUntil = time.Now().Add(p.cfg.CloseTimeout)
				}
			}
		case errors.Is(err, ErrInterrupted):
			code, force := s.flush()
			if force {
				break loop
			}
			if closeUntil.IsZero() {
				if code != 0 && c.WriteClose(code, "") != nil {
					break loop // the close may be partly on the wire: nothing more can follow it
				}
				// A close went out: the session's, or one the handler sent itself through Conn
				// (closeSent interrupted the read for it). Wait for the peer's (CONTRACT W6).
				switch sent, werr := c.writeState(); {
				case werr != nil:
					break loop // the handler's close or message failed: nothing more can be sent
				case sent:
					closeUntil = time.Now().Add(p.cfg.CloseTimeout)
				}
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
			if !closeUntil.IsZero() {
				break loop // the peer did not answer our close in time (CONTRACT W6)
			}
			if f := c.Frames(); f != seen {
				continue // a frame arrived: the loop's top moves pingAt
			}
			if pinged {
				break loop // no answer to the ping within an interval (CONTRACT W10)
			}
			pinged, pingAt = true, time.Now().Add(p.cfg.PingInterval)
			if c.WritePing(nil) != nil {
				break loop
			}
		default:
			// Closed by the peer, a protocol error, or the socket failed; a *WriteError (a pong that
			// could not go out) among them.
			break loop
		}
	}
	s.end()
}

// flush writes the queued messages and returns a close code requested meanwhile (0 if none), and
// whether the session must end at once.
func (s *Session) flush() (code int, force bool) {
	s.mu.Lock()
	s.outbox[0], s.outbox[1] = s.outbox[1][:0], s.outbox[0]
	q := s.outbox[1]
	code, force = s.closeCode, s.force
	s.mu.Unlock()
	if force {
		return code, true
	}
	if len(q) > 0 {
		s.conn.SetWriteDeadline(time.Now().Add(s.pool.cfg.WriteTimeout))
	}
	for len(q) >= frameRecord {
		op := Opcode(q[0])
		n := int(binary.BigEndian.Uint32(q[1:]))
		if err := s.conn.WriteMessage(op, q[frameRecord:frameRecord+n]); err != nil {
			// ErrClosed: the handler sent a close itself meanwhile; what is left is dropped and
			// the close handshake goes on. Any other error: the write failed.
			return code, !errors.Is(err, ErrClosed)
		}
		s.pool.msgsOut.Add(1)
		q = q[frameRecord+n:]
	}
	return code, false
}

// closeSent puts the session in its closing state once a close frame went out, whoever sent it: the
// handler may send one itself through Conn, from any goroutine. Sends are refused from then on,
// those queued are dropped, and the session goroutine is woken to wait for the peer's close within
// the close timeout, as after its own closes (CONTRACT W6). It runs under the Conn's write lock,
// before the close is written, so that no send is accepted once the peer can see the close; nothing
// takes the write lock while holding s.mu.
func (s *Session) closeSent() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.t != nil && !s.closing {
		s.closing = true
		s.outbox[0] = s.outbox[0][:0]
		s.t.Interrupt()
	}
}

// SendNow writes a message from the session's own goroutine (an echo reply), under the write timeout.
func (s *Session) SendNow(op Opcode, payload []byte) error {
	s.conn.SetWriteDeadline(time.Now().Add(s.pool.cfg.WriteTimeout))
	if err := s.conn.WriteMessage(op, payload); err != nil {
		return err
	}
	s.pool.msgsOut.Add(1)
	return nil
}

// refuse ends a session that could not start: its Conn lost the bytes read past the handshake, so
// no frame can be read. The peer gets close 1009 (more than the session can take) and then what it
// sends is dropped until it closes its side, or for the close timeout (CONTRACT W6): closing the
// socket at once, with those bytes unread, would reset the connection and could lose the close. The
// handler never saw OnOpen, so it gets no OnClose either (Start left s.handler nil).
func (s *Session) refuse() {
	c := s.conn
	if c.WriteClose(CloseTooBig, "too much data after the handshake") == nil {
		until := time.Now().Add(s.pool.cfg.CloseTimeout)
		for errors.Is(c.discard(until), ErrInterrupted) {
			s.mu.Lock()
			force := s.force
			s.mu.Unlock()
			if force {
				break
			}
		}
	}
	s.end()
}

// onOpen runs the handler's OnOpen and reports whether it returned without a panic.
func (s *Session) onOpen() (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			s.pool.panicked(v)
			ok = false
		}
	}()
	s.handler.OnOpen(s)
	return true
}

// onMessage runs the handler's OnMessage and reports whether it returned without a panic.
func (s *Session) onMessage(op Opcode, msg []byte) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			s.pool.panicked(v)
			ok = false
		}
	}()
	s.handler.OnMessage(s, op, msg)
	return true
}

// onClose runs the handler's OnClose; a panic is reported and the session ends all the same.
func (s *Session) onClose() {
	defer func() {
		if v := recover(); v != nil {
			s.pool.panicked(v)
		}
	}()
	s.handler.OnClose(s)
}

// closeFailed ends a session whose handler panicked: no more sends are queued, those already queued
// are dropped, and close 1011 (internal error) goes out; the session then waits for the peer's close
// (CONTRACT W6). A queued send would fail after the close and end the session at once, without the
// peer's close. An error means the close could not be written: the session must end at once.
func (s *Session) closeFailed() error {
	s.mu.Lock()
	s.closing = true
	s.outbox[0] = s.outbox[0][:0]
	s.mu.Unlock()
	return s.conn.WriteClose(CloseInternalError, "")
}

// panicked reports a recovered handler panic.
func (p *Pool) panicked(v any) {
	p.panics.Add(1)
	if p.cfg.OnPanic != nil {
		p.cfg.OnPanic(v, debug.Stack())
	}
}

// Panics returns the number of handler panics recovered since start.
func (p *Pool) Panics() uint64 { return p.panics.Load() }

func (s *Session) end() {
	p := s.pool
	if s.handler != nil {
		s.onClose()
	}
	s.mu.Lock()
	t := s.t
	s.t, s.handler, s.Value = nil, nil, nil
	s.mu.Unlock()
	// The entry goes back to the pool before the socket closes: a client that sees the close and
	// reconnects at once finds it free instead of a 503. Nothing here uses the entry after this (t is
	// held locally); the socket keeps its own slot until Close.
	p.active.Add(-1)
	p.free <- s
	_ = t.Close()
}
