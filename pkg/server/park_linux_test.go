package server

import (
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edged/edged/pkg/conn"
)

// echoBody answers every request with the length of the body it read to the end.
var echoBody = conn.HandlerFunc(func(_ int, c *conn.Connection) error {
	n, err := io.Copy(io.Discard, c)
	if err != nil {
		return err
	}
	return c.Reply(200, "text/plain", []byte(strconv.FormatInt(n, 10)))
})

// TestS5_PipelinedRequestAfterABodyIsNotParked: a request body larger than the read buffer is read
// straight into the handler's buffer, never past its end, so the request pipelined behind it stays in
// the socket and the buffer is empty when the response is done. Those bytes arrived with the rest, in
// one write, before the socket was queued: no readable edge will come for them. The worker must not
// park the socket as idle (it would wait for an edge that never comes, until the keep-alive timeout
// closed it with the request unanswered), but serve the next request at once (CONTRACT H1, H21, S5).
func TestS5_PipelinedRequestAfterABodyIsNotParked(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			checkLeaks(t)
			cfg := m.cfg
			cfg.Conn.KeepAliveTimeout = time.Minute
			ts := startServer(t, cfg, echoBody)
			for _, size := range []int{5000, 64 << 10} {
				cl := dial(t, ts.Addr())
				body := strings.Repeat("b", size)
				cl.send("POST /a HTTP/1.1\r\nHost: test\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n" + body +
					"GET /b HTTP/1.1\r\nHost: test\r\n\r\n")
				resp, got := cl.response()
				if resp.StatusCode != 200 || got != strconv.Itoa(size) {
					t.Fatalf("POST with a %d-byte body: %d %q", size, resp.StatusCode, got)
				}
				resp, got, err := cl.tryResponse(scaled(2 * time.Second))
				if err != nil || resp.StatusCode != 200 || got != "0" {
					t.Fatalf("the GET pipelined behind a %d-byte body: %v (want its answer at once, not after the keep-alive timeout)", size, err)
				}
				cl.c.Close()
			}
		})
	}
}

// TestS5_StaleReadableEdgeDoesNotHoldAWorker: the poller may dispatch a readable edge for bytes that
// are no longer there. It fetched the edge from epoll_wait while a worker served the socket; before
// the poller took the slot lock, the worker read those bytes, answered them and parked the socket.
// The stale edge then queues the idle socket again. The worker that takes it finds nothing to read and
// must park it again, not wait for a first byte until the keep-alive timeout: meanwhile it serves
// nobody else (CONTRACT S5). The edge is replayed here as the poller would dispatch it.
func TestS5_StaleReadableEdgeDoesNotHoldAWorker(t *testing.T) {
	checkLeaks(t)
	ts := startServer(t, Config{Workers: 1, SocketQueue: 4, ParkIdle: true,
		Conn: conn.Config{KeepAliveTimeout: time.Hour}}, echoPath)
	a, b := dial(t, ts.Addr()), dial(t, ts.Addr())
	for _, c := range []*client{a, b} {
		c.roundTrip("/x", "/x")
		waitFor(t, "the socket to park", func() bool { return ts.slotParked(c.localPort()) })
	}
	i := int32(ts.slotOf(a.localPort()))
	ts.mu.Lock()
	ts.slotEventLocked(i, ts.slots[i].gen, unix.EPOLLIN|unix.EPOLLOUT)
	ts.mu.Unlock()
	waitFor(t, "the idle socket to park again", func() bool {
		return ts.slotParked(a.localPort()) && ts.Stats().WorkersBusy == 0
	})
	b.roundTrip("/b", "/b")
	a.roundTrip("/a", "/a")
	waitFor(t, "both sockets parked", func() bool { return ts.Stats().SocketsParked == 2 })
}
