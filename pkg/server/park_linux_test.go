package server

import (
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

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
