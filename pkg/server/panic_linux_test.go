package server

import (
	"strings"
	"testing"

	"github.com/edged/edged/pkg/conn"
)

// TestH17_HandlerPanicWhileOthersServed: a handler that panics costs its own exchange only: the
// client gets 500 with Connection: close and the connection closes (reason handler_error), the panic
// reaches the observer, and a keep-alive client on another connection is served before, between and
// after the panics, by the same single worker.
func TestH17_HandlerPanicWhileOthersServed(t *testing.T) {
	checkLeaks(t)
	rec := newRecorder()
	h := conn.HandlerFunc(func(_ int, c *conn.Connection) error {
		if string(c.Path()) == "/panic" {
			panic("on purpose")
		}
		return c.Reply(200, "text/plain", c.Path())
	})
	ts := startServer(t, Config{Workers: 1, SocketQueue: 4, ParkIdle: true, Observer: rec}, h)
	other := dial(t, ts.Addr())
	other.roundTrip("/before", "/before")
	const panics = 5
	for i := range panics {
		cl := dial(t, ts.Addr())
		cl.get("/panic")
		resp, body := cl.response()
		if resp.StatusCode != 500 || !resp.Close || !strings.Contains(body, "Internal Server Error") {
			t.Fatalf("panic %d: %d close=%v %q; want 500 with Connection: close", i, resp.StatusCode, resp.Close, body)
		}
		cl.closed()
		cl.c.Close()
		other.roundTrip("/between", "/between")
	}
	waitFor(t, "the panics to be counted", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.panics == panics
	})
	if n := rec.closedCount(ReasonHandlerError); n != panics {
		t.Errorf("closed with reason handler_error: %d, want %d", n, panics)
	}
	other.roundTrip("/after", "/after")
}
