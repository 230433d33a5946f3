package ws_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edged/edged/pkg/ws"
)

// chanTransport is an in-memory ws.Transport: the test feeds client bytes into in and reads what the
// session writes from out. Read waits for input, Interrupt or the read deadline, like pkg/server's
// TakenStream.
type chanTransport struct {
	in          chan []byte
	pending     []byte
	wake        chan struct{}
	interrupted atomic.Bool
	rdl         time.Time

	mu     sync.Mutex
	out    []byte
	wrote  chan struct{}
	closed chan struct{}
	once   sync.Once
	// onClose, when set, runs in Close before the transport counts as closed.
	onClose func()
}

var _ ws.Transport = (*chanTransport)(nil)

func newChanTransport() *chanTransport {
	return &chanTransport{
		in:     make(chan []byte, 16),
		wake:   make(chan struct{}, 1),
		wrote:  make(chan struct{}, 1),
		closed: make(chan struct{}),
	}
}

func (t *chanTransport) Read(p []byte) (int, error) {
	for {
		if t.interrupted.Swap(false) {
			return 0, ws.ErrInterrupted
		}
		if len(t.pending) > 0 {
			n := copy(p, t.pending)
			t.pending = t.pending[n:]
			return n, nil
		}
		var timeout <-chan time.Time
		if !t.rdl.IsZero() {
			d := time.Until(t.rdl)
			if d <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			timer := time.NewTimer(d)
			defer timer.Stop()
			timeout = timer.C
		}
		select {
		case b, ok := <-t.in:
			if !ok {
				return 0, io.EOF
			}
			t.pending = b
		case <-t.wake:
		case <-timeout:
			return 0, os.ErrDeadlineExceeded
		}
	}
}

func (t *chanTransport) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.out = append(t.out, p...)
	t.mu.Unlock()
	select {
	case t.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (t *chanTransport) SetReadDeadline(d time.Time) { t.rdl = d }
func (t *chanTransport) SetWriteDeadline(time.Time)  {}

func (t *chanTransport) Interrupt() {
	t.interrupted.Store(true)
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *chanTransport) Close() error {
	t.once.Do(func() {
		if t.onClose != nil {
			t.onClose()
		}
		close(t.closed)
	})
	return nil
}

// waitFrame waits until the session has written a whole frame and returns its opcode and payload.
func (t *chanTransport) waitFrame(tb testing.TB) (ws.Opcode, []byte) {
	tb.Helper()
	deadline := time.After(10 * time.Second)
	for {
		t.mu.Lock()
		h, n, err := ws.ParseHeader(t.out)
		if err == nil && n > 0 && len(t.out) >= n+int(h.Length) {
			p := append([]byte(nil), t.out[n:n+int(h.Length)]...)
			t.out = t.out[n+int(h.Length):]
			t.mu.Unlock()
			return h.Op, p
		}
		t.mu.Unlock()
		select {
		case <-t.wrote:
		case <-deadline:
			tb.Fatal("no frame from the session within 10s")
		}
	}
}

// maskedClose returns a client close frame with code.
func maskedClose(code uint16) []byte {
	var p [2]byte
	binary.BigEndian.PutUint16(p[:], code)
	f := make([]byte, ws.MaxHeaderSize)
	n := ws.PutHeader(f, ws.Header{Fin: true, Op: ws.OpClose, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: 2})
	f = append(f[:n], p[:]...)
	ws.MaskBytes([4]byte{1, 2, 3, 4}, 0, f[n:])
	return f
}

// closeRecorder is a SessionHandler that records when OnClose runs.
type closeRecorder struct{ closed chan struct{} }

func (closeRecorder) OnOpen(*ws.Session)                       {}
func (closeRecorder) OnMessage(*ws.Session, ws.Opcode, []byte) {}
func (h closeRecorder) OnClose(*ws.Session)                    { close(h.closed) }

// waitClosed fails the test unless ch is closed within 10 seconds.
func waitClosed(tb testing.TB, ch <-chan struct{}, what string) {
	tb.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		tb.Fatalf("%s within 10s", what)
	}
}

// TestS9_ShutdownReachesSessionStartedLate: a session reserved before Shutdown (its 101 is on the way)
// and started after Shutdown sent its close requests still gets close 1001, and Shutdown waits for it
// to end instead of returning while it runs (CONTRACT S9).
func TestS9_ShutdownReachesSessionStartedLate(t *testing.T) {
	p := ws.NewPool(ws.PoolConfig{MaxSessions: 2})
	s := p.Acquire()
	if s == nil {
		t.Fatal("Acquire on an empty pool returned nil")
	}
	returned := make(chan struct{})
	go func() {
		p.Shutdown(make(chan struct{}))
		close(returned)
	}()
	// Shutdown has begun once Acquire refuses although a session is free.
	for {
		s2 := p.Acquire()
		if s2 == nil {
			break
		}
		p.Release(s2)
	}

	tr := newChanTransport()
	h := closeRecorder{closed: make(chan struct{})}
	s.Start(tr, nil, h)
	if op, payload := tr.waitFrame(t); op != ws.OpClose || len(payload) < 2 || binary.BigEndian.Uint16(payload) != ws.CloseGoingAway {
		t.Fatalf("session started during shutdown sent %v %x, want close 1001", op, payload)
	}
	select {
	case <-returned:
		t.Fatal("Shutdown returned while a session was still running")
	default:
	}
	tr.in <- maskedClose(ws.CloseGoingAway)
	waitClosed(t, h.closed, "the session did not end after the close handshake")
	waitClosed(t, returned, "Shutdown did not return after the last session ended")
	waitClosed(t, tr.closed, "the transport was not closed")
	if n := p.Active(); n != 0 {
		t.Errorf("Active() = %d after shutdown", n)
	}
}

// TestW9_EntryFreeBeforeSocketCloses: a session's pool entry is back in the pool before its socket
// closes, so that a client that sees the close and reconnects at once gets a session, not a 503 from a
// pool that is full only for a moment (CONTRACT W9).
func TestW9_EntryFreeBeforeSocketCloses(t *testing.T) {
	p := ws.NewPool(ws.PoolConfig{MaxSessions: 1})
	s := p.Acquire()
	tr := newChanTransport()
	got := make(chan *ws.Session, 1)
	tr.onClose = func() { got <- p.Acquire() }
	s.Start(tr, nil, closeRecorder{closed: make(chan struct{})})
	tr.in <- maskedClose(ws.CloseNormal)
	select {
	case s2 := <-got:
		if s2 == nil {
			t.Fatal("the pool was still full when the session's socket closed")
		}
		p.Release(s2)
	case <-time.After(10 * time.Second):
		t.Fatal("the session's socket was not closed within 10s")
	}
}

type nopHandler struct{ closed chan struct{} }

func (nopHandler) OnOpen(*ws.Session)                       {}
func (nopHandler) OnMessage(*ws.Session, ws.Opcode, []byte) {}
func (h nopHandler) OnClose(*ws.Session)                    { close(h.closed) }

// TestW10_SilentPeerClosedDespitePublishes: a peer that never answers pings is closed after two
// intervals even while publishes keep arriving for it (CONTRACT W10).
func TestW10_SilentPeerClosedDespitePublishes(t *testing.T) {
	p := ws.NewPool(ws.PoolConfig{MaxSessions: 1, PingInterval: 100 * time.Millisecond, CloseTimeout: 100 * time.Millisecond})
	s := p.Acquire()
	tr := newChanTransport()
	h := nopHandler{closed: make(chan struct{})}
	s.Start(tr, nil, h)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
				s.Send(ws.OpText, []byte("x"))
				tr.mu.Lock()
				tr.out = tr.out[:0] // the peer's receive side drains; it never answers
				tr.mu.Unlock()
			}
		}
	}()
	select {
	case <-h.closed:
	case <-time.After(2 * time.Second):
		t.Fatal("a peer that never answered was still connected after 20 ping intervals")
	}
}

// TestW6_CloseTimeoutEnforcedUnderFlood: after edged sends close, a peer that never answers it but
// keeps the socket readable (a flood of data frames) is still cut off after CloseTimeout (CONTRACT W6).
func TestW6_CloseTimeoutEnforcedUnderFlood(t *testing.T) {
	p := ws.NewPool(ws.PoolConfig{MaxSessions: 1, PingInterval: time.Hour, CloseTimeout: 100 * time.Millisecond})
	s := p.Acquire()
	var chunk []byte
	for i := 0; i < 64; i++ {
		chunk = append(chunk, maskedFrame(ws.OpText, []byte("flood"))...)
	}
	tr := &eagerTransport{newChanTransport(), chunk}
	h := nopHandler{closed: make(chan struct{})}
	s.Start(tr, nil, h)
	time.Sleep(20 * time.Millisecond)
	s.CloseWith(ws.ClosePolicyViolation)
	select {
	case <-h.closed:
	case <-time.After(2 * time.Second):
		t.Fatal("session still open 2s after its close went out with a 100ms close timeout")
	}
}

// eagerTransport reads like pkg/server's TakenStream: bytes already there are returned before the read
// deadline is looked at (the deadline only bounds a wait).
type eagerTransport struct {
	*chanTransport
	flood []byte // when set, the peer always has these bytes ready
}

func (t *eagerTransport) Read(p []byte) (int, error) {
	if len(t.pending) == 0 && !t.interrupted.Load() && t.flood != nil {
		t.pending = t.flood
	}
	return t.chanTransport.Read(p)
}

// tcpTransport is a ws.Transport over the server end of a real loopback TCP connection, used like
// pkg/server's TakenStream: one goroutine reads, writes and sets the deadlines, Interrupt makes a
// waiting Read (or the next one) return ws.ErrInterrupted, and a write waits for the socket under the
// write deadline. It tells the test of every write, with the deadline it went out under.
type tcpTransport struct {
	c        net.Conn
	rdl, wdl time.Time // session goroutine only

	// imu orders Interrupt against Read setting the read deadline: an interrupt is neither lost nor
	// cuts a later Read short.
	imu         sync.Mutex
	interrupted bool

	wrote     chan tcpWrite
	bytesRead atomic.Int64
	// readAtClose is bytesRead when Close ran: how much of what the peer sent the session took in
	// before it closed the socket.
	readAtClose atomic.Int64
	closed      chan struct{}
	once        sync.Once
}

var _ ws.Transport = (*tcpTransport)(nil)

// tcpWrite is one Write of the session: the opcode of the frame it starts (writes here hold whole
// small frames), when it began, the write deadline in effect, and its error.
type tcpWrite struct {
	op           ws.Opcode
	at, deadline time.Time
	err          error
}

// newTCPTransport connects a loopback TCP pair on port 0 and returns the server end as a transport
// and the client end; both are closed at the end of the test.
func newTCPTransport(tb testing.TB) (*tcpTransport, net.Conn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		cli.Close()
		tb.Fatal(err)
	}
	t := &tcpTransport{c: srv, wrote: make(chan tcpWrite, 64), closed: make(chan struct{})}
	tb.Cleanup(func() {
		cli.Close()
		t.Close()
	})
	return t, cli
}

func (t *tcpTransport) Read(p []byte) (int, error) {
	for {
		t.imu.Lock()
		_ = t.c.SetReadDeadline(t.rdl)
		if t.interrupted {
			t.interrupted = false
			t.imu.Unlock()
			return 0, ws.ErrInterrupted
		}
		t.imu.Unlock()
		n, err := t.c.Read(p)
		t.bytesRead.Add(int64(n))
		if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			t.imu.Lock()
			again := t.interrupted
			t.imu.Unlock()
			if again {
				continue
			}
		}
		return n, err
	}
}

func (t *tcpTransport) Write(p []byte) (int, error) {
	w := tcpWrite{op: ws.Opcode(p[0] & 0x0F), at: time.Now(), deadline: t.wdl}
	n, err := t.c.Write(p)
	w.err = err
	select {
	case t.wrote <- w:
	default:
	}
	return n, err
}

func (t *tcpTransport) SetReadDeadline(d time.Time) { t.rdl = d }

func (t *tcpTransport) SetWriteDeadline(d time.Time) {
	t.wdl = d
	_ = t.c.SetWriteDeadline(d)
}

func (t *tcpTransport) Interrupt() {
	t.imu.Lock()
	defer t.imu.Unlock()
	t.interrupted = true
	_ = t.c.SetReadDeadline(time.Unix(1, 0)) // wakes a waiting Read
}

func (t *tcpTransport) Close() error {
	t.once.Do(func() {
		t.readAtClose.Store(t.bytesRead.Load())
		_ = t.c.Close()
		close(t.closed)
	})
	return nil
}

// nextWrite returns the session's next write.
func (t *tcpTransport) nextWrite(tb testing.TB) tcpWrite {
	tb.Helper()
	select {
	case w := <-t.wrote:
		return w
	case <-time.After(waitTimeout):
		tb.Fatal("the session wrote nothing within 10s")
	}
	return tcpWrite{}
}

// clientSend writes b from the client end c.
func clientSend(tb testing.TB, c net.Conn, b []byte) {
	tb.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := c.Write(b); err != nil {
		tb.Fatalf("client write: %v", err)
	}
}

// TestW5_PongGetsFreshWriteDeadline: the pong answering a ping goes out under a write deadline of its
// own, WriteTimeout from its start, whatever deadline the session's socket had: none yet (a pong to a
// peer that does not read would block the session forever), or the deadline of a publish written
// long ago (the pong would fail at once) (CONTRACT W5).
func TestW5_PongGetsFreshWriteDeadline(t *testing.T) {
	const writeTimeout = 200 * time.Millisecond
	p := ws.NewPool(ws.PoolConfig{MaxSessions: 1, PingInterval: time.Hour, WriteTimeout: writeTimeout})
	s := p.Acquire()
	tr, cli := newTCPTransport(t)
	h := nopHandler{closed: make(chan struct{})}
	s.Start(tr, nil, h)

	pong := func(payload string) {
		t.Helper()
		clientSend(t, cli, frame(fin|opPing, payload))
		w := tr.nextWrite(t)
		if w.op != ws.OpPong {
			t.Fatalf("the session answered a ping with a %v frame", w.op)
		}
		switch left := w.deadline.Sub(w.at); {
		case w.err != nil:
			t.Fatalf("pong for %q: write failed: %v", payload, w.err)
		case w.deadline.IsZero():
			t.Errorf("pong for %q written without a write deadline, want one within %v", payload, writeTimeout)
		case left <= 0 || left > writeTimeout:
			t.Errorf("pong for %q written under a write deadline %v after the write began, want one within %v",
				payload, left, writeTimeout)
		}
		if f := readServerFrame(t, cli); f.op != opPong || string(f.payload) != payload {
			t.Fatalf("client got %v %q, want a pong with %q", f, f.payload, payload)
		}
	}

	// Nothing was written yet: the socket has no write deadline.
	pong("before any write")

	// A publish sets a deadline for data; once it is past, a ping comes.
	if !s.Send(ws.OpText, []byte("published")) {
		t.Fatal("Send refused")
	}
	w := tr.nextWrite(t)
	if w.op != ws.OpText || w.err != nil || w.deadline.IsZero() {
		t.Fatalf("publish: %v frame written under deadline %v: %v", w.op, w.deadline, w.err)
	}
	if f := readServerFrame(t, cli); f.op != opText || string(f.payload) != "published" {
		t.Fatalf("client got %v, want the publish", f)
	}
	time.Sleep(time.Until(w.deadline) + writeTimeout/4) // let the publish's deadline pass
	pong("after the publish's deadline")

	// The session still works: a publish goes out, and the close handshake ends it.
	if !s.Send(ws.OpText, []byte("again")) {
		t.Fatal("Send refused after the pongs")
	}
	if f := readServerFrame(t, cli); f.op != opText || string(f.payload) != "again" {
		t.Fatalf("client got %v, want the second publish", f)
	}
	clientSend(t, cli, closeFrame(ws.CloseNormal, ""))
	if f := readServerFrame(t, cli); closeCode(f) != ws.CloseNormal {
		t.Fatalf("close handshake: client got %v", f)
	}
	waitClosed(t, h.closed, "the session did not end after the close handshake")
}

// TestW6_CloseWithInvalidCode: CloseWith with a code no close frame may carry still closes the
// session with a close frame the peer accepts, 1011, instead of the invalid code (CONTRACT W6).
func TestW6_CloseWithInvalidCode(t *testing.T) {
	for _, code := range []int{0, 1005, 1006, 2000, 70000} {
		p := ws.NewPool(ws.PoolConfig{MaxSessions: 1, PingInterval: time.Hour})
		s := p.Acquire()
		tr := newChanTransport()
		h := nopHandler{closed: make(chan struct{})}
		s.Start(tr, nil, h)
		s.CloseWith(code)
		if op, payload := tr.waitFrame(t); op != ws.OpClose || len(payload) != 2 || binary.BigEndian.Uint16(payload) != ws.CloseInternalError {
			t.Fatalf("CloseWith(%d): the session sent %v % x, want close 1011", code, op, payload)
		}
		tr.in <- maskedClose(ws.CloseInternalError)
		waitClosed(t, h.closed, "the session did not end after the close handshake")
	}
}

// TestW5_PongWriteFailureEndsSession: a peer that sends pings but never reads fills the socket until
// a pong cannot be written within the write timeout. That pong may be partly on the wire: the session
// must end at once, writing nothing more (a later frame would follow half a pong), instead of taking
// the write timeout for a read deadline and reading on (CONTRACT W5).
func TestW5_PongWriteFailureEndsSession(t *testing.T) {
	const writeTimeout = 200 * time.Millisecond
	p := ws.NewPool(ws.PoolConfig{MaxSessions: 1, PingInterval: time.Hour, CloseTimeout: time.Hour, WriteTimeout: writeTimeout})
	s := p.Acquire()
	tr, cli := newTCPTransport(t)
	// Small buffers on the way back, so that unread pongs soon fill them.
	if err := tr.c.(*net.TCPConn).SetWriteBuffer(4096); err != nil {
		t.Fatal(err)
	}
	if err := cli.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	h := nopHandler{closed: make(chan struct{})}
	s.Start(tr, nil, h)

	// The pinger writes without a deadline: one that gave up while the session was merely slow (a
	// loaded machine, qemu) would leave pongs that all fit the buffers, and no write would fail. A
	// timed-out write could also leave half a ping in the stream. It ends when the session closes
	// the socket, or when the test ends and unblocks it.
	stop := make(chan struct{})
	pinger := make(chan struct{})
	go func() {
		defer close(pinger)
		ping := frame(fin|opPing, strings.Repeat("p", 125))
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := cli.Write(ping); err != nil {
				return // the session closed the socket, or the test ended
			}
		}
	}()
	defer func() { close(stop); _ = cli.SetWriteDeadline(time.Now()); <-pinger }()

	var failed tcpWrite
	for pongs := 0; failed.err == nil; pongs++ {
		w := tr.nextWrite(t)
		if w.op != ws.OpPong {
			t.Fatalf("the session wrote a %v frame after %d pongs, want only pongs", w.op, pongs)
		}
		failed = w
	}
	if !errors.Is(failed.err, os.ErrDeadlineExceeded) {
		t.Fatalf("the pong write failed with %v, want a write timeout", failed.err)
	}
	select {
	case <-tr.closed:
	case w := <-tr.wrote:
		t.Fatalf("after a pong write failed (%v) the session wrote a %v frame (error %v) into the same stream", failed.err, w.op, w.err)
	case <-time.After(waitTimeout):
		t.Fatalf("the session kept its socket open %v after a pong write failed (%v)", waitTimeout, failed.err)
	}
	waitClosed(t, h.closed, "OnClose did not run")
	select {
	case w := <-tr.wrote:
		t.Errorf("after a pong write failed the session wrote a %v frame (error %v)", w.op, w.err)
	default:
	}
}

// TestW10_IdlePeerPingedThenClosed: a read deadline is still what it was: an idle peer is pinged
// after an interval, stays connected as long as it answers, and is closed one interval after a ping
// it does not answer (CONTRACT W10).
func TestW10_IdlePeerPingedThenClosed(t *testing.T) {
	const interval = 150 * time.Millisecond
	p := ws.NewPool(ws.PoolConfig{MaxSessions: 1, PingInterval: interval, CloseTimeout: interval})
	s := p.Acquire()
	tr, cli := newTCPTransport(t)
	h := nopHandler{closed: make(chan struct{})}
	start := time.Now()
	s.Start(tr, nil, h)
	for i := range 3 {
		f := readServerFrame(t, cli)
		if f.op != opPing {
			t.Fatalf("ping %d: an idle peer got %v, want a ping", i, f)
		}
		if waited := time.Since(start); waited < interval {
			t.Fatalf("ping %d came %v after the last frame, before the interval of %v", i, waited, interval)
		}
		select {
		case <-h.closed:
			t.Fatalf("the session ended although its peer answered every ping")
		default:
		}
		start = time.Now()
		clientSend(t, cli, cframe{b0: fin | opPong, payload: f.payload}.bytes())
	}
	if f := readServerFrame(t, cli); f.op != opPing {
		t.Fatalf("an idle peer got %v, want a ping", f)
	}
	pinged := time.Now()
	frames, end := readUntilEOF(t, cli)
	if waited := end.Sub(pinged); waited < interval*3/4 {
		t.Errorf("the session closed %v after an unanswered ping, before the interval of %v", waited, interval)
	}
	for _, f := range frames {
		if f.op != opClose {
			t.Errorf("after the unanswered ping the session sent %v", f)
		}
	}
	waitClosed(t, h.closed, "OnClose did not run")
}

// closesItself is a SessionHandler that sends a close itself, through the session's Conn, on the
// message "bye".
type closesItself struct{ closed chan struct{} }

func (closesItself) OnOpen(*ws.Session) {}

func (closesItself) OnMessage(s *ws.Session, _ ws.Opcode, p []byte) {
	if string(p) == "bye" {
		_ = s.Conn().WriteClose(ws.CloseNormal, "bye")
	}
}

func (h closesItself) OnClose(*ws.Session) { close(h.closed) }

// TestW6_HandlerCloseWaitsForPeer: a close the handler sends itself through Conn().WriteClose, from
// OnMessage or from another goroutine, puts the session in the state of its own closes: publishes
// are refused from then on, and the session waits for the peer's close, within the close timeout,
// before it closes the socket (CONTRACT W6).
func TestW6_HandlerCloseWaitsForPeer(t *testing.T) {
	const closeTimeout = 300 * time.Millisecond
	for _, tc := range []struct {
		name        string
		fromHandler bool // else from the test's goroutine, as a publisher would
		peerCloses  bool
		publish     bool // a publish comes after the close
	}{
		{"OnMessage/PeerAnswers", true, true, true},
		{"OnMessage/PeerSilent", true, false, true},
		{"OtherGoroutine/PeerAnswers", false, true, true},
		{"OtherGoroutine/PeerSilent", false, false, true},
		{"OtherGoroutine/PeerSilentNoPublish", false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			timeout := closeTimeout
			if tc.peerCloses {
				timeout = 4 * waitTimeout // the session must wait for the peer, however long that takes
			}
			p := ws.NewPool(ws.PoolConfig{MaxSessions: 1, PingInterval: time.Hour, CloseTimeout: timeout})
			s := p.Acquire()
			tr, cli := newTCPTransport(t)
			h := closesItself{closed: make(chan struct{})}
			s.Start(tr, nil, h)

			var sent int
			start := time.Now()
			if tc.fromHandler {
				msg := frame(fin|opText, "bye")
				clientSend(t, cli, msg)
				sent += len(msg)
			} else if err := s.Conn().WriteClose(ws.CloseNormal, "bye"); err != nil {
				t.Fatal(err)
			}
			if f := readServerFrame(t, cli); closeCode(f) != ws.CloseNormal {
				t.Fatalf("the client got %v, want the handler's close 1000", f)
			}
			if tc.publish && s.Send(ws.OpText, []byte("published after the close")) {
				t.Errorf("Send accepted a publish after the handler's close")
			}
			if tc.peerCloses {
				reply := closeFrame(ws.CloseNormal, "")
				clientSend(t, cli, reply)
				sent += len(reply)
			}
			frames, end := readUntilEOF(t, cli)
			if len(frames) != 0 {
				t.Errorf("after the handler's close the server sent %v", frames)
			}
			waitClosed(t, h.closed, "OnClose did not run")
			waitClosed(t, tr.closed, "the transport was not closed")
			if tc.peerCloses {
				if got := tr.readAtClose.Load(); got != int64(sent) {
					t.Errorf("the session closed its socket having read %d of the %d bytes the peer sent: it did not wait for the peer's close", got, sent)
				}
			} else if waited := end.Sub(start); waited < closeTimeout || waited > closeTimeout+2*time.Second {
				t.Errorf("the session closed its socket %v after the handler's close, want the close timeout of %v", waited, closeTimeout)
			}
		})
	}
}

// eventCounter is a SessionHandler that counts OnOpen and OnClose.
type eventCounter struct{ opened, closed atomic.Int32 }

func (h *eventCounter) OnOpen(*ws.Session)                       { h.opened.Add(1) }
func (h *eventCounter) OnMessage(*ws.Session, ws.Opcode, []byte) {}
func (h *eventCounter) OnClose(*ws.Session)                      { h.closed.Add(1) }

// TestW6_BufferedTooLargeClosedWith1009: when the bytes read past the handshake do not fit the
// session's read buffer, the session never opens: neither OnOpen nor OnClose runs (OnClose follows
// OnOpen), the peer gets close 1009 (message too big) instead of a bare TCP close, and the socket
// closes once the peer is done or after the close timeout (CONTRACT W6). The pool entry comes back.
func TestW6_BufferedTooLargeClosedWith1009(t *testing.T) {
	const closeTimeout = 300 * time.Millisecond
	const readBuffer = 64
	for _, peerCloses := range []bool{true, false} {
		name := "PeerSilent"
		if peerCloses {
			name = "PeerCloses"
		}
		t.Run(name, func(t *testing.T) {
			p := ws.NewPool(ws.PoolConfig{MaxSessions: 1, PingInterval: time.Hour, CloseTimeout: closeTimeout,
				Conn: ws.Config{ReadBufferSize: readBuffer}})
			s := p.Acquire()
			tr, cli := newTCPTransport(t)
			h := &eventCounter{}
			buffered := join(frame(fin|opText, strings.Repeat("a", 40)), frame(fin|opText, strings.Repeat("b", 40)))
			if len(buffered) <= readBuffer {
				t.Fatalf("%d buffered bytes fit the %d-byte read buffer", len(buffered), readBuffer)
			}
			start := time.Now()
			s.Start(tr, buffered, h)
			var frames []sframe
			var end time.Time
			if peerCloses {
				frames = append(frames, readServerFrame(t, cli))
				clientSend(t, cli, closeFrame(ws.CloseTooBig, ""))
				_ = cli.(*net.TCPConn).CloseWrite()
				more, e := readUntilEOF(t, cli)
				frames, end = append(frames, more...), e
				if waited := end.Sub(start); waited >= closeTimeout {
					t.Errorf("the session closed its socket %v after start, not when the peer closed", waited)
				}
			} else {
				frames, end = readUntilEOF(t, cli)
				if waited := end.Sub(start); waited < closeTimeout {
					t.Errorf("the session closed its socket %v after its close, before the close timeout of %v", waited, closeTimeout)
				}
			}
			if len(frames) != 1 || closeCode(frames[0]) != ws.CloseTooBig {
				t.Errorf("the peer got %v, want one close 1009", frames)
			}
			waitClosed(t, tr.closed, "the transport was not closed")
			if o, c := h.opened.Load(), h.closed.Load(); o != 0 || c != 0 {
				t.Errorf("OnOpen ran %d times and OnClose %d times for a session that never opened, want neither", o, c)
			}
			deadline := time.Now().Add(waitTimeout)
			for p.Active() != 0 {
				if time.Now().After(deadline) {
					t.Fatal("the session was not given back")
				}
				time.Sleep(time.Millisecond)
			}
			if s2 := p.Acquire(); s2 == nil {
				t.Error("the pool entry is not free again")
			} else {
				p.Release(s2)
			}
		})
	}
}
