package server

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/edged/edged/pkg/conn"
)

// TestW6_ReleasedTakeoverLingers: a session that ends with bytes of its peer still unread (the
// payload of a message refused with 1009 as soon as its header came, CONTRACT W7; frames after a
// protocol error; frames after the peer's close) must not reset the connection: a reset throws away
// what the kernel has not sent yet, the close frame included, and the peer sees ECONNRESET instead of
// the close code (CONTRACT W6). Releasing a taken-over socket shuts it down for writing and drains it,
// as the worker does for HTTP (CONTRACT S8).
func TestW6_ReleasedTakeoverLingers(t *testing.T) {
	checkLeaks(t)
	rec := newRecorder()
	ts := startServer(t, Config{Workers: 1, SocketQueue: 2, ParkIdle: true, Observer: rec}, takeOver)
	// More than the client's small receive window: the end of it is still in the server's send queue
	// when the socket is released.
	last := bytes.Repeat([]byte("z"), 60<<10)
	released := make(chan struct{})
	ts.SetUnboundHandler(func(_ int, st conn.Stream, release func()) {
		st.Write(last)
		release()
		close(released)
	})
	c := dialSmallWindow(t, ts.Addr())
	// The request and, behind it, bytes the server never reads.
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n"+
		strings.Repeat("x", 32<<10)); err != nil {
		t.Fatal(err)
	}
	<-released
	b, err := io.ReadAll(c)
	if err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 101 ") || !bytes.HasSuffix(b, append([]byte("\r\n\r\n"), last...)) {
		t.Fatalf("read %d bytes, %v: want the 101 and all %d bytes written before the release, then EOF",
			len(b), err, len(last))
	}
	c.Close()
	waitFor(t, "the lingering socket to close", func() bool { return ts.Stats().SocketsOpen == 0 })
	if rec.closedCount(ReasonUnbound) != 1 {
		t.Fatalf("observer: %v", rec)
	}
}
