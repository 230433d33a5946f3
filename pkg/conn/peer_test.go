//go:build unix

package conn_test

import (
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"

	"github.com/edged/edged/pkg/conn"
)

// TestH18_ResetClientGetsNoResponse: a client that resets the connection in the middle of its request
// body has gone: the handler's read fails with ECONNRESET, and the exchange ends without a response
// and without a status (it is not a 500 of the server; the server counts a closed connection). A
// client that only half-closes (EOF) still gets its 400 (CONTRACT H9, H18).
func TestH18_ResetClientGetsNoResponse(t *testing.T) {
	echo := conn.HandlerFunc(func(_ int, c *conn.Connection) error {
		body, err := io.ReadAll(c)
		if err != nil {
			return err
		}
		return c.Reply(200, "text/plain", body)
	})
	req := "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789"
	for _, tc := range []struct {
		name     string
		readErr  error
		status   int
		response string
	}{
		{"reset", syscall.ECONNRESET, 0, ""},
		{"end of stream", nil, 400, "HTTP/1.1 400 Bad Request\r\n"},
	} {
		c := conn.New(conn.Config{})
		s := newMemStream(req)
		s.readErr = tc.readErr
		c.Reset(s)
		keep, err := c.Serve(0, echo)
		if keep || err == nil {
			t.Errorf("%s: Serve %v, %v; want the connection ended with an error", tc.name, keep, err)
		}
		if tc.readErr != nil && !errors.Is(err, tc.readErr) {
			t.Errorf("%s: Serve error %v, want %v", tc.name, err, tc.readErr)
		}
		if got := c.LastExchange().Status; got != tc.status {
			t.Errorf("%s: exchange status %d, want %d", tc.name, got, tc.status)
		}
		if out := string(s.out); !strings.HasPrefix(out, tc.response) || (tc.response == "" && out != "") {
			t.Errorf("%s: the server wrote %q, want %q first", tc.name, out, tc.response)
		}
	}
}
