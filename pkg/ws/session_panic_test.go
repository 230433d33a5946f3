package ws_test

import (
	"encoding/binary"
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
