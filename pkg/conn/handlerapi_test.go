package conn_test

import (
	"errors"
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

// TestH13_SwitchingProtocolsRefusedToHTTP10: a server must not send a 1xx response to an HTTP/1.0
// client (RFC 9110 15.2) and ignores Upgrade from it (RFC 9110 7.8). WriteHeader(101) on an HTTP/1.0
// request is a handler error: nothing of a 101 goes out and the handler learns it at once (CONTRACT
// H13, H17), instead of a "HTTP/1.0 101" head followed by another protocol.
func TestH13_SwitchingProtocolsRefusedToHTTP10(t *testing.T) {
	var werr, uerr error
	h := conn.HandlerFunc(func(_ int, c *conn.Connection) error {
		_ = c.SetHeader("Upgrade", "websocket")
		_ = c.SetHeader("Connection", "Upgrade")
		werr = c.WriteHeader(101)
		if werr != nil {
			return werr
		}
		_, _, uerr = c.Unbind()
		return uerr
	})
	out := string(conntest.Do(conn.Config{}, h, "GET / HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"))
	if !errors.Is(werr, conn.ErrBadStatus) {
		t.Errorf("WriteHeader(101) to HTTP/1.0: err %v, want ErrBadStatus", werr)
	}
	if strings.Contains(out, " 101 ") || !strings.HasPrefix(out, "HTTP/1.1 500 ") {
		t.Errorf("response %q, want a 500 and no 101", out)
	}
}

// TestH14_UnbindAfterRefusedResponse: once a response is refused (a header with CR/LF, a bad status),
// nothing of it is sent and the exchange ends in an error response (CONTRACT H14). A handler that
// goes on to Unbind must not get the stream as if its 101 had gone out: Unbind returns the refusal,
// the connection keeps the stream and answers 500.
func TestH14_UnbindAfterRefusedResponse(t *testing.T) {
	var uerr error
	var taken bool
	h := conn.HandlerFunc(func(_ int, c *conn.Connection) error {
		_ = c.SetHeader("Sec-WebSocket-Protocol", "chat\r\nX-Injected: 1")
		_ = c.WriteHeader(101)
		var st conn.Stream
		st, _, uerr = c.Unbind()
		taken = st != nil
		return uerr
	})
	out := string(conntest.Do(conn.Config{}, h, get("/ws")))
	if !errors.Is(uerr, conn.ErrBadResponseHeader) || taken {
		t.Errorf("Unbind after a refused header: stream taken %v, err %v; want ErrBadResponseHeader", taken, uerr)
	}
	if !strings.HasPrefix(out, "HTTP/1.1 500 ") || strings.Contains(out, "X-Injected") {
		t.Errorf("response %q, want a 500", out)
	}
}
