//go:build e2e

package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestW9_SessionsLeakNothing opens and closes 200 sessions, 16 at a time, ending them in every way a
// client can (close handshake, TCP closed without a close frame, a close sent without waiting for the
// answer), on /echo and on a topic. Afterwards the daemon's descriptors and goroutines are back at
// their baseline, its threads within a few of it, and edged_websocket_sessions_active is 0 (CONTRACT
// W9, S11).
func TestW9_SessionsLeakNothing(t *testing.T) {
	const (
		sessions    = 200
		concurrency = 16
		threadSlack = 4
	)
	d := startDaemon(t, nil, "--enable-echo", "--ws-max-conns", "32", "--socket-queue", "64")

	// run opens n sessions on each of workers goroutines.
	run := func(workers, n int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for g := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range n {
					if err := oneSession(d, g*n+i); err != nil {
						errs <- fmt.Errorf("session %d: %w", g*n+i, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if t.Failed() {
			t.FailNow()
		}
	}

	// A first round grows the Go runtime's threads and the pools to their working size. The baseline
	// includes the runtime's own poller, which may open just after the start-up line.
	d.waitRuntimePoller(t, 1)
	fdsIdle := d.fdCount(t)
	run(concurrency, 1)
	d.waitMetric(t, "edged_websocket_sessions_active", 0)
	d.waitFDs(t, fdsIdle)
	threads := d.procStatus(t, "Threads")
	goroutines := d.metric(t, "go_goroutines")

	start := time.Now()
	run(concurrency, sessions/concurrency)
	t.Logf("%d sessions, %d at a time, in %v", sessions, concurrency, time.Since(start))

	d.waitMetric(t, "edged_websocket_sessions_active", 0)
	d.waitFDs(t, fdsIdle)
	var got float64
	if !poll(func() bool { got = d.metric(t, "go_goroutines"); return got <= goroutines }, d.exited) {
		t.Errorf("go_goroutines %v, baseline %v", got, goroutines)
	}
	// The Go runtime never ends a thread, and may start one when a system call outlasts its 20 µs
	// hand-off (more often under -race); a leak would add threads with sessions, by the hundred here.
	if n := d.procStatus(t, "Threads"); n > threads+threadSlack {
		t.Errorf("threads %d after %d sessions, baseline %d (+%d allowed)", n, sessions, threads, threadSlack)
	} else {
		t.Logf("threads %d after %d sessions, baseline %d", n, sessions, threads)
	}
	// The scrape itself is one; the previous scrape's socket may still be closing.
	if !poll(func() bool { got = d.metric(t, "edged_connections_active"); return got <= 1 }, d.exited) {
		t.Errorf("edged_connections_active = %v after every client left", got)
	}
}

// oneSession opens a session, checks one message and ends it in one of three ways chosen by i.
func oneSession(d *daemon, i int) error {
	path := "/echo"
	if i%4 == 3 {
		path = "/topics/leak"
	}
	dialer := websocket.Dialer{HandshakeTimeout: waitLimit}
	c, _, err := dialer.Dial(d.wsURL(path), nil)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(waitLimit))
	msg := fmt.Sprintf("session %d", i)
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		return err
	}
	// The echo, or on the topic the publish coming back (another session's may come first).
	for {
		_, got, err := c.ReadMessage()
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if string(got) == msg {
			break
		}
		if path == "/echo" {
			return fmt.Errorf("echo %q, want %q", got, msg)
		}
	}
	switch i % 3 {
	case 0: // close handshake
		if err := c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "")); err != nil {
			return err
		}
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				if !websocket.IsCloseError(err, 1000) {
					return fmt.Errorf("close handshake: %w", err)
				}
				return nil
			}
		}
	case 1: // TCP closed without a close frame
		return nil
	default: // close frame, then TCP closed at once
		return c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1001, "leaving"))
	}
}

// waitFDs polls the daemon's descriptor count until it is at most want.
func (d *daemon) waitFDs(t *testing.T, want int) {
	t.Helper()
	var got int
	if !poll(func() bool { got = d.fdCount(t); return got <= want }, d.exited) {
		t.Fatalf("the daemon holds %d descriptors, baseline %d", got, want)
	}
}
