package conn_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
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
	if strings.Contains(out, " 101 ") || !strings.HasPrefix(out, "HTTP/1.0 500 ") {
		t.Errorf("response %q, want an HTTP/1.0 500 and no 101", out)
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

// FuzzHandlerAPI runs a handler that makes a fuzzed sequence of response calls (SetHeader with any
// value, SetContentLength, WriteHeader with final and interim codes, writes of any size, Flush, Reply,
// body reads) for GET, HEAD, HTTP/1.0 and POST requests, followed by a pipelined request. Whatever the
// handler does: no panic, the output is well-framed responses (interim ones first), a response the
// handler completed without an error carries exactly the bytes its writes accepted, and unless the
// response closes the connection the next request is answered (CONTRACT H13-H17, H19, H21).
func FuzzHandlerAPI(f *testing.F) {
	f.Add(uint8(0), []byte{3, 10, 4, 0, 3, 200})
	f.Add(uint8(1), []byte{1, 5, 3, 20})
	f.Add(uint8(2), []byte{4, 0, 3, 255, 3, 255, 3, 255, 3, 255, 3, 255})
	f.Add(uint8(3), []byte{8, 3, 2, 5, 3, 1})
	f.Add(uint8(0), []byte{0, 13, 2, 5, 5, 2})
	f.Add(uint8(0), []byte{2, 1, 0, 3, 7, 4})
	reqs := []struct{ method, req, next string }{
		{"GET", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET /n HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"HEAD", "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", "GET /n HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"GET", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "GET /n HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"},
		{"POST", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789", "GET /n HTTP/1.1\r\nHost: x\r\n\r\n"},
	}
	codes := []int{200, 201, 204, 304, 404, 103, 100, 500}
	big := []byte(strings.Repeat("0123456789abcdef", 256)) // 4 KiB: several times the write buffer
	f.Fuzz(func(t *testing.T, which uint8, ops []byte) {
		rq := reqs[int(which)%len(reqs)]
		var body []byte // bytes Write accepted
		clean := true   // no call returned an error
		h := conn.HandlerFunc(func(_ int, c *conn.Connection) error {
			if string(c.Path()) == "/n" {
				return c.Reply(200, "", []byte("next"))
			}
			note := func(err error) {
				if err != nil {
					clean = false
				}
			}
			for i := 0; i+1 < len(ops); i += 2 {
				op, arg := ops[i]%10, int(ops[i+1])
				switch op {
				case 0:
					note(c.SetHeader("X-A", string(ops[i+1:min(len(ops), i+1+arg%8)])))
				case 1:
					c.SetContentLength(int64(arg))
				case 2:
					note(c.WriteHeader(codes[arg%len(codes)]))
				case 3, 9:
					n, err := c.Write(big[:arg*arg%len(big)])
					body = append(body, big[:n]...)
					note(err)
				case 4:
					note(c.Flush())
				case 5:
					code := codes[arg%len(codes)]
					err := c.Reply(code, "text/plain", big[:arg])
					if err == nil && code >= 200 {
						body = append(body, big[:arg]...)
					}
					note(err)
				case 6:
					_, err := c.Write(nil)
					note(err)
				case 7:
					note(c.WriteHeaderReason(299, string(ops[i+1:min(len(ops), i+1+arg%8)])))
				case 8:
					_, _ = c.Read(make([]byte, arg%12))
				}
			}
			return nil
		})
		out := conntest.Do(conn.Config{BufferSize: 256, WriteBufferSize: 512}, h, rq.req+rq.next)
		br := bufio.NewReader(bytes.NewReader(out))
		var finals []*http.Response
		var bodies [][]byte
		for len(finals) < 2 {
			m := rq.method
			if len(finals) == 1 {
				m = "GET"
			}
			if _, err := br.Peek(1); err != nil && len(finals) > 0 {
				break
			}
			resp, err := http.ReadResponse(br, &http.Request{Method: m})
			if err != nil {
				t.Fatalf("response %d: %v\nops %v\noutput %q", len(finals), err, ops, clipOutput(out))
			}
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				// A cut body is allowed only when the handler's calls failed or its declared
				// length was not reached; it then ends the connection (CONTRACT H17).
				if br.Buffered() > 0 {
					t.Fatalf("a cut response is followed by more bytes\nops %v\noutput %q", ops, clipOutput(out))
				}
				return
			}
			if resp.StatusCode >= 100 && resp.StatusCode < 200 {
				continue
			}
			finals = append(finals, resp)
			bodies = append(bodies, b)
		}
		if br.Buffered() > 0 {
			t.Fatalf("bytes after the responses\nops %v\noutput %q", ops, clipOutput(out))
		}
		first := finals[0]
		if clean && first.StatusCode != 500 && rq.method != "HEAD" && first.StatusCode != 204 && first.StatusCode != 304 &&
			!bytes.Equal(bodies[0], body) {
			t.Fatalf("body of %d bytes, the writes accepted %d\nops %v\noutput %q", len(bodies[0]), len(body), ops, clipOutput(out))
		}
		if !first.Close && (len(finals) != 2 || string(bodies[1]) != "next") {
			t.Fatalf("the next request was not answered\nops %v\noutput %q", ops, clipOutput(out))
		}
	})
}

// clipOutput shortens a long output for a failure message.
func clipOutput(out []byte) string {
	if len(out) > 600 {
		return string(out[:300]) + "..." + string(out[len(out)-300:])
	}
	return string(out)
}

// TestH15_UpgradeOptionOnOtherResponses: a response other than 101 that carries an Upgrade header (a
// 426, RFC 9110 15.5.22) lists the upgrade option in Connection (RFC 9110 7.8), along with close or
// keep-alive as the exchange calls for (CONTRACT H15).
func TestH15_UpgradeOptionOnOtherResponses(t *testing.T) {
	for _, tc := range []struct{ name, req, closeHdr, want string }{
		{"keep-alive 1.1", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "", "Connection: Upgrade\r\n"},
		{"keep-alive 1.0", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "", "Connection: Upgrade, keep-alive\r\n"},
		{"close by the handler", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "close", "Connection: Upgrade, close\r\n"},
		{"close by the client", "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "", "Connection: Upgrade, close\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := conn.HandlerFunc(func(_ int, c *conn.Connection) error {
				_ = c.SetHeader("Upgrade", "websocket") // the upgrade option follows without Connection: upgrade
				if tc.closeHdr != "" {
					_ = c.SetHeader("Connection", tc.closeHdr)
				}
				return c.Reply(426, "text/plain", []byte("upgrade\n"))
			})
			out := string(conntest.Do(conn.Config{}, h, tc.req))
			if !strings.Contains(out, " 426 ") || !strings.Contains(out, "Upgrade: websocket\r\n") || strings.Count(out, "Connection:") != 1 || !strings.Contains(out, tc.want) {
				t.Errorf("response %q, want a 426 with Upgrade and one %q", out, tc.want)
			}
		})
	}
}

// TestH15_NoUpgradeOptionWithoutUpgradeHeader: the upgrade option names a header that is there, not
// one a 103 took away or one the handler never set (RFC 9110 7.6.1, 7.8; CONTRACT H15).
func TestH15_NoUpgradeOptionWithoutUpgradeHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(c *conn.Connection)
	}{
		{"Connection: upgrade alone", func(c *conn.Connection) { _ = c.SetHeader("Connection", "upgrade") }},
		{"Upgrade left with a 103", func(c *conn.Connection) {
			_ = c.SetHeader("Upgrade", "websocket")
			_ = c.WriteHeader(103)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := conn.HandlerFunc(func(_ int, c *conn.Connection) error {
				tc.set(c)
				return c.Reply(200, "text/plain", []byte("ok\n"))
			})
			out := string(conntest.Do(conn.Config{}, h, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
			final := out[strings.LastIndex(out, "HTTP/1.1 200"):]
			if strings.Contains(strings.ToLower(final), "connection: upgrade") || strings.Contains(final, "Upgrade:") {
				t.Errorf("final response %q carries the upgrade option or an Upgrade header", final)
			}
		})
	}
}
