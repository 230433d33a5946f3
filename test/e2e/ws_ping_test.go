//go:build e2e

package e2e

import (
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// pingInterval is the --ws-ping-interval of the W10 tests.
const pingInterval = 300 * time.Millisecond

// TestW10_AnsweringClientStaysConnected: with --ws-ping-interval 300ms, an idle gorilla client that
// answers pings (gorilla's default ping handler, run by its read loop) is pinged again and again and
// stays connected for several intervals (CONTRACT W10).
func TestW10_AnsweringClientStaysConnected(t *testing.T) {
	d := startDaemon(t, nil, "--enable-echo", "--ws-ping-interval", pingInterval.String())
	c := d.gorillaDial(t, "/echo")
	var pings atomic.Int32
	c.SetPingHandler(func(data string) error {
		pings.Add(1)
		return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(waitLimit))
	})
	echoed := make(chan []byte, 1)
	readErr := make(chan error, 1)
	go func() {
		for {
			_, msg, err := c.ReadMessage()
			if err != nil {
				readErr <- err
				return
			}
			echoed <- msg
		}
	}()
	start := time.Now()
	const wantPings = 5
	if !poll(func() bool { return pings.Load() >= wantPings }, d.exited) {
		t.Fatalf("%d pings within %v, want %d", pings.Load(), waitLimit, wantPings)
	}
	select {
	case err := <-readErr:
		t.Fatalf("an idle client that answers pings was disconnected after %v: %v", time.Since(start), err)
	default:
	}
	// Five pings take at least five intervals; the session still works.
	if el := time.Since(start); el < wantPings*pingInterval-pingInterval/2 {
		t.Errorf("%d pings within %v: pinged more often than every %v", wantPings, el, pingInterval)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("still here")); err != nil {
		t.Fatalf("write after %d pings: %v", pings.Load(), err)
	}
	select {
	case msg := <-echoed:
		if string(msg) != "still here" {
			t.Errorf("echo %q", msg)
		}
	case err := <-readErr:
		t.Fatalf("read after %d pings: %v", pings.Load(), err)
	case <-time.After(waitLimit):
		t.Fatal("no echo")
	}
}

// TestW10_SilentClientClosed: a raw-socket client that never answers pings is closed after about two
// intervals (the ping after one, the close when the next passes without an answer), whether it reads
// the pings or does not read at all; a client that sends its own frames meanwhile is not (CONTRACT W10).
func TestW10_SilentClientClosed(t *testing.T) {
	d := startDaemon(t, nil, "--enable-echo", "--ws-ping-interval", pingInterval.String())
	slack := 2 * time.Second
	if raceEnabled {
		slack *= 3
	}

	t.Run("reads but never pongs", func(t *testing.T) {
		w := d.wsDialRaw(t, "/echo")
		start := time.Now()
		_ = w.c.SetReadDeadline(start.Add(waitLimit))
		var pingsAt []time.Duration
		for {
			_, op, _, err := w.readFrame()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("still open after %v (pings at %v)", waitLimit, pingsAt)
				}
				break
			}
			if op == opPing {
				pingsAt = append(pingsAt, time.Since(start))
			}
		}
		closedAt := time.Since(start)
		t.Logf("pings at %v, closed at %v", pingsAt, closedAt)
		if len(pingsAt) == 0 || pingsAt[0] < pingInterval*3/4 {
			t.Errorf("pings at %v: want the first after about %v", pingsAt, pingInterval)
		}
		if closedAt < 2*pingInterval-pingInterval/4 || closedAt > 2*pingInterval+slack {
			t.Errorf("closed after %v, want about %v", closedAt, 2*pingInterval)
		}
	})

	t.Run("does not read", func(t *testing.T) {
		w := d.wsDialRaw(t, "/echo")
		start := time.Now()
		d.waitMetric(t, "edged_websocket_sessions_active", 0)
		closedAt := time.Since(start)
		if closedAt < 2*pingInterval-pingInterval/4 || closedAt > 2*pingInterval+slack {
			t.Errorf("session ended after %v, want about %v", closedAt, 2*pingInterval)
		}
		// What was sent meanwhile is pings only, then the end of the connection.
		_ = w.c.SetReadDeadline(time.Now().Add(waitLimit))
		for {
			_, op, _, err := w.readFrame()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatal("the session ended but its TCP connection is still open")
				}
				break
			}
			if op != opPing {
				t.Errorf("frame with opcode %#x sent to an idle client", op)
			}
		}
	})

	t.Run("talks but never pongs", func(t *testing.T) {
		// Frames of its own count as signs of life: a client that keeps sending messages stays.
		w := d.wsDialRaw(t, "/echo")
		deadline := time.Now().Add(4 * pingInterval)
		for time.Now().Before(deadline) {
			if err := w.writeFrame(true, opText, []byte("tick")); err != nil {
				t.Fatalf("write: %v", err)
			}
			for {
				_, op, _, err := w.readFrame()
				if err != nil {
					t.Fatalf("a talking client was closed: %v", err)
				}
				if op == opText {
					break
				}
			}
			<-time.After(pingInterval / 3) // pacing: three messages per interval
		}
	})
}
