package ws_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edged/edged/pkg/ws"
)

// maskedFrame returns a client frame (masked, FIN set) with op and payload.
func maskedFrame(op ws.Opcode, payload []byte) []byte {
	mask := [4]byte{9, 8, 7, 6}
	f := make([]byte, ws.MaxHeaderSize)
	n := ws.PutHeader(f, ws.Header{Fin: true, Op: op, Masked: true, Mask: mask, Length: int64(len(payload))})
	f = append(f[:n], payload...)
	ws.MaskBytes(mask, 0, f[n:])
	return f
}

// panicky is a SessionHandler that panics where it is told to: in OnOpen, in OnMessage when the message
// is "panic", or in OnClose; other messages are echoed.
type panicky struct {
	inOpen, inClose bool
	closed          chan struct{}
}

func (h *panicky) OnOpen(*ws.Session) {
	if h.inOpen {
		panic("OnOpen failed")
	}
}

func (h *panicky) OnMessage(s *ws.Session, op ws.Opcode, p []byte) {
	if string(p) == "panic" {
		panic("OnMessage failed")
	}
	_ = s.SendNow(op, p)
}

func (h *panicky) OnClose(*ws.Session) {
	close(h.closed)
	if h.inClose {
		panic("OnClose failed")
	}
}

// panicLog collects what PoolConfig.OnPanic is told.
type panicLog struct {
	mu     sync.Mutex
	values []any
	stacks []string
}

func (l *panicLog) record(v any, stack []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.values = append(l.values, v)
	l.stacks = append(l.stacks, string(stack))
}

func (l *panicLog) get() ([]any, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]any(nil), l.values...), append([]string(nil), l.stacks...)
}

// TestH17_SessionHandlerPanicRecovered: a panic in a session's OnOpen, OnMessage or OnClose does not
// take the process down: it is reported with its stack and counted, the session is closed with 1011
// (internal error) when it was still open, and its pool entry comes back, so that the pool can hand out
// every session again.
func TestH17_SessionHandlerPanicRecovered(t *testing.T) {
	for _, tc := range []struct {
		name      string
		h         *panicky
		send      string // a message the client sends first ("" for none)
		echoFirst bool   // an ordinary message is echoed before the panic
		want      string // the panic value reported
		close1011 bool
	}{
		{"OnMessage", &panicky{}, "panic", true, "OnMessage failed", true},
		{"OnOpen", &panicky{inOpen: true}, "", false, "OnOpen failed", true},
		{"OnClose", &panicky{inClose: true}, "", true, "OnClose failed", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log panicLog
			const sessions = 2
			p := ws.NewPool(ws.PoolConfig{MaxSessions: sessions, OnPanic: log.record})
			s := p.Acquire()
			tr := newChanTransport()
			tc.h.closed = make(chan struct{})
			s.Start(tr, nil, tc.h)
			if tc.echoFirst {
				tr.in <- maskedFrame(ws.OpText, []byte("hello"))
				if op, payload := tr.waitFrame(t); op != ws.OpText || string(payload) != "hello" {
					t.Fatalf("echo: %v %q", op, payload)
				}
			}
			if tc.send != "" {
				tr.in <- maskedFrame(ws.OpText, []byte(tc.send))
			}
			if tc.close1011 {
				op, payload := tr.waitFrame(t)
				if op != ws.OpClose || len(payload) < 2 || binary.BigEndian.Uint16(payload) != ws.CloseInternalError {
					t.Fatalf("after the panic the session sent %v %x, want close 1011", op, payload)
				}
				// Messages after the panic reach no handler (one would echo); the close handshake ends.
				tr.in <- maskedFrame(ws.OpText, []byte("after"))
				tr.in <- maskedClose(ws.CloseInternalError)
			} else {
				tr.in <- maskedClose(ws.CloseNormal)
				if op, payload := tr.waitFrame(t); op != ws.OpClose || binary.BigEndian.Uint16(payload) != ws.CloseNormal {
					t.Fatalf("close handshake: %v %x", op, payload)
				}
			}
			waitClosed(t, tc.h.closed, "OnClose did not run")
			waitClosed(t, tr.closed, "the transport was not closed")
			deadline := time.Now().Add(10 * time.Second)
			for p.Active() != 0 {
				if time.Now().After(deadline) {
					t.Fatal("the session was not given back within 10s")
				}
				time.Sleep(time.Millisecond)
			}
			if tc.close1011 {
				tr.mu.Lock()
				extra := len(tr.out)
				tr.mu.Unlock()
				if extra != 0 {
					t.Errorf("%d bytes written after the close frame: a message after the panic reached the handler", extra)
				}
			}
			values, stacks := log.get()
			if len(values) != 1 || values[0] != tc.want || !strings.Contains(stacks[0], "panicky") {
				t.Fatalf("OnPanic got %v, want one %q with the handler in its stack", values, tc.want)
			}
			if n := p.Panics(); n != 1 {
				t.Errorf("Panics() = %d, want 1", n)
			}
			// The pool is whole: every session can be taken again.
			var got []*ws.Session
			for range sessions {
				if s := p.Acquire(); s != nil {
					got = append(got, s)
				}
			}
			if len(got) != sessions {
				t.Fatalf("%d of %d sessions available after the panic", len(got), sessions)
			}
			for _, s := range got {
				p.Release(s)
			}
		})
	}
}

// publishThenPanic is a SessionHandler whose OnMessage, on any message, tells the test it runs, waits
// until the test has queued a publish for the session, and panics.
type publishThenPanic struct {
	inHandler, published, closed chan struct{}
}

func (h *publishThenPanic) OnOpen(*ws.Session) {}

func (h *publishThenPanic) OnMessage(*ws.Session, ws.Opcode, []byte) {
	close(h.inHandler)
	<-h.published
	panic("OnMessage failed with a publish queued")
}

func (h *publishThenPanic) OnClose(*ws.Session) { close(h.closed) }

// readUntilEOF reads what the server sends on the client end c until it closes the socket, and
// returns the frames and when the end came.
func readUntilEOF(tb testing.TB, c net.Conn) ([]sframe, time.Time) {
	tb.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	b, err := io.ReadAll(c)
	end := time.Now()
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			tb.Fatalf("the server did not close the socket within %v", waitTimeout)
		}
		tb.Fatalf("client read: %v", err)
	}
	frames, rest := parseFrames(b)
	if len(rest) != 0 {
		tb.Errorf("server output ends with a partial frame: % x", rest)
	}
	return frames, end
}

// TestW6_PanicStillClosesHandshake: after a handler panic, with a publish already queued for the
// session, edged sends close 1011 once, drops the publish, and closes the socket only once the peer's
// close has come, or the close timeout has passed since its own close (CONTRACT W6, H17).
func TestW6_PanicStillClosesHandshake(t *testing.T) {
	for _, tc := range []struct {
		name         string
		peerCloses   bool
		closeTimeout time.Duration
	}{
		// The peer answers: the session waits for its close, however long the close timeout.
		{"PeerAnswers", true, 4 * waitTimeout},
		// The peer stays silent: the session waits the close timeout, and no less.
		{"PeerSilent", false, 300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log panicLog
			p := ws.NewPool(ws.PoolConfig{MaxSessions: 1, PingInterval: time.Hour, CloseTimeout: tc.closeTimeout, OnPanic: log.record})
			s := p.Acquire()
			tr, cli := newTCPTransport(t)
			h := &publishThenPanic{inHandler: make(chan struct{}), published: make(chan struct{}), closed: make(chan struct{})}
			s.Start(tr, nil, h)

			msg := frame(fin|opText, "boom")
			clientSend(t, cli, msg)
			waitClosed(t, h.inHandler, "OnMessage did not run")
			if !s.Send(ws.OpText, []byte("queued before the panic")) {
				t.Fatal("Send refused while the session was open")
			}
			panicAt := time.Now()
			close(h.published)

			if f := readServerFrame(t, cli); closeCode(f) != ws.CloseInternalError {
				t.Fatalf("after the panic the client got %v, want close 1011", f)
			}
			sent := len(msg)
			if tc.peerCloses {
				reply := closeFrame(ws.CloseInternalError, "")
				clientSend(t, cli, reply)
				sent += len(reply)
			}
			frames, end := readUntilEOF(t, cli)
			if len(frames) != 0 {
				t.Errorf("after its close 1011 the server sent %v", frames)
			}
			waitClosed(t, h.closed, "OnClose did not run")
			waitClosed(t, tr.closed, "the transport was not closed")
			if tc.peerCloses {
				if got := tr.readAtClose.Load(); got != int64(sent) {
					t.Errorf("the session closed its socket having read %d of the %d bytes the peer sent: it did not wait for the peer's close", got, sent)
				}
			} else if waited := end.Sub(panicAt); waited < tc.closeTimeout {
				t.Errorf("the session closed its socket %v after the panic, before the close timeout of %v: it did not wait for the peer's close", waited, tc.closeTimeout)
			}
			if n := p.Panics(); n != 1 {
				t.Errorf("Panics() = %d, want 1", n)
			}
			if values, _ := log.get(); len(values) != 1 {
				t.Errorf("OnPanic got %v, want one panic", values)
			}
		})
	}
}

// TestW6_PanicDuringCloseWaitKeepsDeadline: when a handler panics on a message that arrives while the
// session waits for the answer to its close (here 1008), the wait still ends one close timeout after
// that first close, not one close timeout after the panic, and no second close (1011) goes out
// (CONTRACT W6, H17).
func TestW6_PanicDuringCloseWaitKeepsDeadline(t *testing.T) {
	const closeTimeout = time.Second
	var log panicLog
	p := ws.NewPool(ws.PoolConfig{MaxSessions: 1, PingInterval: time.Hour, CloseTimeout: closeTimeout, OnPanic: log.record})
	s := p.Acquire()
	tr, cli := newTCPTransport(t)
	h := &panicky{closed: make(chan struct{})}
	s.Start(tr, nil, h)

	closedAt := time.Now()
	s.CloseWith(ws.ClosePolicyViolation)
	if f := readServerFrame(t, cli); closeCode(f) != ws.ClosePolicyViolation {
		t.Fatalf("the client got %v, want close 1008", f)
	}
	// Late in the wait, a message the handler panics on.
	time.Sleep(time.Until(closedAt.Add(closeTimeout * 6 / 10)))
	clientSend(t, cli, frame(fin|opText, "panic"))
	frames, end := readUntilEOF(t, cli)
	if len(frames) != 0 {
		t.Errorf("after its close 1008 the server sent %v", frames)
	}
	waitClosed(t, h.closed, "OnClose did not run")
	if n := p.Panics(); n != 1 {
		t.Fatalf("Panics() = %d, want 1: the message did not reach the handler", n)
	}
	if waited := end.Sub(closedAt); waited > closeTimeout*13/10 {
		t.Errorf("the session closed its socket %v after its close 1008, want about the close timeout of %v: the panic restarted the wait", waited, closeTimeout)
	} else if waited < closeTimeout {
		t.Errorf("the session closed its socket %v after its close 1008, before the close timeout of %v", waited, closeTimeout)
	}
}
