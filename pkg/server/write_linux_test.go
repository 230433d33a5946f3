package server

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/edged/edged/pkg/conn"
)

// TestS1_LargeResponseWaitsForWritable: a response far larger than the socket's send buffer goes out
// whole: each write that finds the buffer full (EAGAIN) waits for the poller's EPOLLOUT wake-up, for a
// client that reads at once and for one that reads slowly.
func TestS1_LargeResponseWaitsForWritable(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 256<<10) // 4 MiB
	big := conn.HandlerFunc(func(_ int, c *conn.Connection) error {
		c.SetContentLength(int64(len(body)))
		for p := body; len(p) > 0; p = p[min(len(p), 64<<10):] {
			if _, err := c.Write(p[:min(len(p), 64<<10)]); err != nil {
				return err
			}
		}
		return nil
	})
	for _, m := range modes {
		for _, slow := range []bool{false, true} {
			t.Run(m.name+"/slow="+strconv.FormatBool(slow), func(t *testing.T) {
				checkLeaks(t)
				ts := startServer(t, m.cfg, big)
				cl := dial(t, ts.Addr())
				for round := 0; round < 2; round++ { // and the connection is reusable afterwards
					cl.get("/big")
					if slow {
						time.Sleep(scaled(50 * time.Millisecond)) // let the send buffer fill up
					}
					resp, got := cl.response()
					if resp.StatusCode != 200 || got != string(body) {
						t.Fatalf("got %d, %d bytes, want %d", resp.StatusCode, len(got), len(body))
					}
				}
			})
		}
	}
}
