package conn_test

import (
	"strings"
	"testing"

	"github.com/edged/edged/pkg/conn"
	"github.com/edged/edged/pkg/conn/conntest"
)

// TestH15_DateAfterInterimResponse: a Date the handler set before an interim response (103 Early
// Hints) leaves with that interim response, together with the other headers set so far. The final
// response must still carry a Date (RFC 9110 6.6.1): edged adds its own (CONTRACT H15).
func TestH15_DateAfterInterimResponse(t *testing.T) {
	h := conn.HandlerFunc(func(_ int, c *conn.Connection) error {
		if err := c.SetHeader("Date", "Mon, 02 Jan 2006 15:04:05 GMT"); err != nil {
			return err
		}
		if err := c.WriteHeader(103); err != nil {
			return err
		}
		_, err := c.WriteString("x")
		return err
	})
	out := string(conntest.Do(conn.Config{}, h, get("/")))
	_, final, found := strings.Cut(out, "\r\n\r\n")
	if !found || !strings.HasPrefix(final, "HTTP/1.1 200 OK\r\n") {
		t.Fatalf("no final response after the 103: %q", out)
	}
	head, _, _ := strings.Cut(final, "\r\n\r\n")
	if !strings.Contains(head, "\r\nDate: ") {
		t.Errorf("final response has no Date: %q", out)
	}
}
