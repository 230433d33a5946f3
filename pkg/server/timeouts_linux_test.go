package server

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/edged/edged/pkg/conn"
)

// modes are the run modes a timeout must hold in.
var modes = []struct {
	name string
	cfg  Config
}{
	{"accept", Config{Workers: 1}},
	{"queue", Config{Workers: 1, SocketQueue: 4}},
	{"parking", Config{Workers: 1, SocketQueue: 4, ParkIdle: true, EvictIdle: true}},
}

func TestS6_HeadDeadlineAnswers408(t *testing.T) {
	headTimeout := scaled(300 * time.Millisecond)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			checkLeaks(t)
			rec := newRecorder()
			cfg := m.cfg
			cfg.Observer = rec
			cfg.Conn = conn.Config{HeaderTimeout: headTimeout, KeepAliveTimeout: patience, IOTimeout: patience}
			ts := startServer(t, cfg, echoPath)
			start := time.Now() // before the connection: no wait of the server begins earlier
			cl := dial(t, ts.Addr())
			stop := make(chan struct{})
			sent := make(chan struct{})
			go func() { // one byte per interval: a head that never completes (R8.4)
				defer close(sent)
				head := "GET / HTTP/1.1\r\nHost: test\r\nX-Slow: " + strings.Repeat("a", 1000)
				for i := 0; i < len(head); i++ {
					if _, err := io.WriteString(cl.c, head[i:i+1]); err != nil {
						return
					}
					select {
					case <-stop:
						return
					case <-time.After(headTimeout / 10):
					}
				}
			}()
			resp, _ := cl.response()
			elapsed := time.Since(start)
			close(stop)
			<-sent
			if resp.StatusCode != 408 || !resp.Close {
				t.Fatalf("status %d close %v, want 408 with Connection: close", resp.StatusCode, resp.Close)
			}
			if elapsed < headTimeout*9/10 || elapsed > headTimeout+patience/2 {
				t.Fatalf("closed after %v, head timeout %v", elapsed, headTimeout)
			}
			cl.closed()
			waitFor(t, "the close to be counted", func() bool { return rec.closedCount(ReasonHeaderTimeout) == 1 })
		})
	}
}

func TestS6_KeepAliveTimeoutClosesIdleConnections(t *testing.T) {
	keepAlive := scaled(300 * time.Millisecond)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			checkLeaks(t)
			rec := newRecorder()
			cfg := m.cfg
			cfg.Observer = rec
			cfg.Conn = conn.Config{KeepAliveTimeout: keepAlive}
			ts := startServer(t, cfg, echoPath)

			cl := dial(t, ts.Addr())
			start := time.Now() // the idle time begins after this, when the response has gone out
			cl.roundTrip("/", "/")
			cl.closed()
			if d := time.Since(start); d < keepAlive*9/10 {
				t.Fatalf("idle connection closed after %v, keep-alive timeout %v", d, keepAlive)
			}

			start = time.Now()
			silent := dial(t, ts.Addr()) // the keep-alive timeout is also the first-byte timeout
			silent.closed()
			if d := time.Since(start); d < keepAlive*9/10 {
				t.Fatalf("silent connection closed after %v", d)
			}
			waitFor(t, "two keep-alive closes", func() bool { return rec.closedCount(ReasonKeepAliveTimeout) == 2 })
		})
	}
}

func TestS6_SlowHandlerGets503(t *testing.T) {
	checkLeaks(t)
	rec := newRecorder()
	handlerTimeout := scaled(300 * time.Millisecond)
	slow := conn.HandlerFunc(func(_ int, c *conn.Connection) error {
		time.Sleep(2 * handlerTimeout) // the handler ignores its deadline, then replies
		return c.Reply(200, "text/plain", []byte("late"))
	})
	ts := startServer(t, Config{Workers: 1, SocketQueue: 2, ParkIdle: true, Observer: rec,
		Conn: conn.Config{HandlerTimeout: handlerTimeout}}, slow)
	cl := dial(t, ts.Addr())
	cl.get("/")
	resp, _ := cl.response()
	if resp.StatusCode != 503 || !resp.Close {
		t.Fatalf("status %d close %v, want 503 and close", resp.StatusCode, resp.Close)
	}
	cl.closed()
	waitFor(t, "the close to be counted", func() bool { return rec.closedCount(ReasonHandlerTimeout) == 1 })
}

func TestH21_PipelinedRequestsAnsweredInOrder(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			checkLeaks(t)
			ts := startServer(t, m.cfg, echoPath)
			cl := dial(t, ts.Addr())
			var batch strings.Builder
			for i := 0; i < 20; i++ {
				batch.WriteString("GET /" + strings.Repeat("p", i) + " HTTP/1.1\r\nHost: test\r\n\r\n")
			}
			cl.send(batch.String()) // more than one buffer's worth, in one write
			for i := 0; i < 20; i++ {
				if _, body := cl.response(); body != "/"+strings.Repeat("p", i) {
					t.Fatalf("response %d: %q", i, body)
				}
			}
			cl.roundTrip("/after", "/after")
		})
	}
}
