package server

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edged/edged/pkg/conn"
)

// hupSeen reports whether the poller has seen a peer's FIN on any slot.
func (ts *testServer) hupSeen() bool {
	for i := range ts.slots {
		if ts.slots[i].hup.Load() {
			return true
		}
	}
	return false
}

// TestS8_FINQueuedWithTheRequest: a request and the client's FIN arrive in one segment while the
// socket waits (parked, then queued), so one edge announces both and wakes no worker. The worker's read
// takes the request but not the FIN. Neither that short read (the stream would wait for a wake-up that
// never comes) nor the clear pendingIn flag (park would park the socket) may hide the FIN: the
// connection closes at once after the response, not at the keep-alive timeout.
func TestS8_FINQueuedWithTheRequest(t *testing.T) {
	for _, m := range modes[1:] { // the queue modes: a socket waits in the queue while the worker is busy
		t.Run(m.name, func(t *testing.T) {
			checkLeaks(t)
			rec := newRecorder()
			hold := make(chan struct{})
			h := conn.HandlerFunc(func(id int, c *conn.Connection) error {
				if string(c.Path()) == "/hold" {
					<-hold
				}
				return echoPath.Handle(id, c)
			})
			cfg := m.cfg
			cfg.Observer = rec
			ts := startServer(t, cfg, h)
			busy := dial(t, ts.Addr())
			busy.send("GET /hold HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
			waitFor(t, "the worker to take /hold", func() bool { return ts.Stats().WorkersBusy == 1 })
			cl := dial(t, ts.Addr())
			sendWithFIN(t, cl, "GET /fin HTTP/1.1\r\nHost: test\r\n\r\n")
			waitFor(t, "the poller to see the FIN", ts.hupSeen)
			close(hold)
			busy.response()
			if _, body := cl.response(); body != "/fin" {
				t.Fatalf("got %q", body)
			}
			cl.closed()
		})
	}
}

// sendWithFIN sends s and the FIN in one segment: corked, the bytes wait, and the shutdown sends them
// with the FIN flag set.
func sendWithFIN(t *testing.T, cl *client, s string) {
	t.Helper()
	rc, err := cl.c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_CORK, 1)
	}); err != nil || serr != nil {
		t.Fatalf("TCP_CORK: %v %v", err, serr)
	}
	cl.send(s)
	if err := cl.c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
}

// TestW9_FINBeforeTakeoverIsSeen: bytes and the FIN arrive after the 101 but before the socket is
// taken over, so their wake-ups go to the worker, not to the TakenStream. The TakenStream's first read
// is short (the bytes without the FIN) and the next one must still find the end of the stream rather
// than wait for a wake-up.
func TestW9_FINBeforeTakeoverIsSeen(t *testing.T) {
	checkLeaks(t)
	sent := make(chan struct{})
	upgrade := conn.HandlerFunc(func(_ int, c *conn.Connection) error {
		c.SetHeader("Upgrade", "test")
		c.SetHeader("Connection", "Upgrade")
		if err := c.WriteHeader(101); err != nil {
			return err
		}
		if err := c.Flush(); err != nil {
			return err
		}
		<-sent
		_, _, err := c.Unbind()
		return err
	})
	ts := startServer(t, Config{Workers: 1, SocketQueue: 2, ParkIdle: true}, upgrade)
	got := make(chan string, 1)
	ts.SetUnboundHandler(func(_ int, st conn.Stream, release func()) {
		go func() {
			defer release()
			st.SetReadDeadline(time.Now().Add(patience))
			b, err := io.ReadAll(st)
			got <- fmt.Sprintf("%q %v", b, err)
		}()
	})
	cl := dial(t, ts.Addr())
	cl.send("GET / HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	cl.send("hello")
	cl.c.(*net.TCPConn).CloseWrite()
	waitFor(t, "the poller to see the FIN", ts.hupSeen)
	close(sent)
	if g := <-got; g != `"hello" <nil>` {
		t.Fatalf("the taken-over stream read %s, want the bytes and the end of the stream", g)
	}
}

// TestW8_TakenStreamFullDuplex: a taken-over stream is full duplex (CONTRACT W8; pkg/ws lets any
// goroutine write a session's frames while its own goroutine reads). A write blocked on a peer that
// does not read must neither move the deadline of a read waiting meanwhile nor take its wake-ups:
// each call ends at its own deadline, not before it and not never.
func TestW8_TakenStreamFullDuplex(t *testing.T) {
	checkLeaks(t)
	ts := startServer(t, Config{Workers: 1, SocketQueue: 2, ParkIdle: true}, takeOver)
	// The write's deadline comes first: it is set while the read waits under its own, later one.
	const readWait, writeWait = 2 * time.Second, time.Second
	type result struct {
		what          string
		err           error
		deadline, end time.Time
	}
	results := make(chan result, 2)
	ts.SetUnboundHandler(func(_ int, st conn.Stream, release func()) {
		go func() {
			defer release()
			wrote := make(chan struct{})
			rdl := time.Now().Add(readWait)
			st.SetReadDeadline(rdl)
			go func() {
				defer close(wrote)
				wdl := time.Now().Add(writeWait)
				st.SetWriteDeadline(wdl)
				buf := make([]byte, 1<<20)
				var err error
				for err == nil { // until the socket's buffers are full and the write waits
					_, err = st.Write(buf)
				}
				results <- result{"write", err, wdl, time.Now()}
			}()
			var b [64]byte
			_, err := st.Read(b[:])
			results <- result{"read", err, rdl, time.Now()}
			<-wrote
		}()
	})
	// A small receive window: the server's writes soon wait for a peer that never reads.
	c := dialSmallWindow(t, ts.Addr())
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case r := <-results:
			if !errors.Is(r.err, os.ErrDeadlineExceeded) || r.end.Before(r.deadline) {
				t.Errorf("%s ended %v after its deadline with %v, want a timeout at its deadline", r.what, r.end.Sub(r.deadline), r.err)
			}
		case <-time.After(readWait + patience):
			c.Close() // the stream fails, and whatever still waits returns
			t.Fatalf("a read or a write of the taken-over stream still waited %v after its deadline", patience)
		}
	}
}
