package routes

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edged/edged/internal/topics"
	"github.com/edged/edged/pkg/conn"
)

// memStream is an in-memory conn.Stream: reads come from in, at most chunk bytes at a time (0: no
// limit), and writes append to out. Deadlines are ignored: nothing here blocks.
type memStream struct {
	in    []byte
	off   int
	chunk int
	out   []byte
}

func (s *memStream) Read(p []byte) (int, error) {
	if s.off >= len(s.in) {
		return 0, io.EOF
	}
	if s.chunk > 0 && len(p) > s.chunk {
		p = p[:s.chunk]
	}
	n := copy(p, s.in[s.off:])
	s.off += n
	return n, nil
}

func (s *memStream) Write(p []byte) (int, error) {
	s.out = append(s.out, p...)
	return len(p), nil
}

func (s *memStream) SetReadDeadline(time.Time)  {}
func (s *memStream) SetWriteDeadline(time.Time) {}

// reset makes s replay in from the start, reusing its output buffer.
func (s *memStream) reset(in []byte) {
	s.in, s.off, s.out = in, 0, s.out[:0]
}

// exchange serves one request on a fresh connection and returns the raw bytes written and Serve's
// results.
func exchange(t *testing.T, r *Router, cfg conn.Config, taskID int, chunk int, req string) (out []byte, keepAlive bool, err error) {
	t.Helper()
	s := &memStream{in: []byte(req), chunk: chunk}
	c := conn.New(cfg)
	c.Reset(s)
	keepAlive, err = c.Serve(taskID, r)
	return s.out, keepAlive, err
}

// parse reads one response for a request with the given method from raw.
func parse(t *testing.T, raw []byte, method string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("parse response: %v\n%q", err, raw)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response body: %v\n%q", err, raw)
	}
	return resp, body
}

func TestHealthz(t *testing.T) {
	r := New(Config{Workers: 1})
	for _, tc := range []struct {
		name, req, method string
		body              string
	}{
		{"get", "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "ok"},
		{"get query", "GET /healthz?probe=1 HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "ok"},
		{"get absolute-form", "GET http://a/healthz HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "ok"},
		{"get http/1.0", "GET /healthz HTTP/1.0\r\n\r\n", "GET", "ok"},
		{"head", "HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n", "HEAD", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, _, err := exchange(t, r, conn.Config{}, 0, 0, tc.req)
			if err != nil {
				t.Fatalf("Serve: %v", err)
			}
			resp, body := parse(t, raw, tc.method)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d, want 200\n%q", resp.StatusCode, raw)
			}
			if got := resp.Header.Get("Content-Type"); got != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type %q", got)
			}
			// A HEAD response carries the Content-Length that GET would have (CONTRACT H15).
			if got := resp.Header.Get("Content-Length"); got != "2" {
				t.Errorf("Content-Length %q, want 2", got)
			}
			if string(body) != tc.body {
				t.Errorf("body %q, want %q", body, tc.body)
			}
			if tc.method == "HEAD" && !bytes.HasSuffix(raw, []byte("\r\n\r\n")) {
				t.Errorf("HEAD response carries bytes after its head: %q", raw)
			}
		})
	}
}

func TestHealthzOtherMethods(t *testing.T) {
	r := New(Config{Workers: 1})
	for _, m := range []string{"POST", "PUT", "DELETE", "OPTIONS", "PATCH", "get", "BREW"} {
		t.Run(m, func(t *testing.T) {
			raw, _, err := exchange(t, r, conn.Config{}, 0, 0, m+" /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
			if err != nil {
				t.Fatalf("Serve: %v", err)
			}
			resp, _ := parse(t, raw, m)
			if resp.StatusCode != 405 {
				t.Fatalf("status %d, want 405\n%q", resp.StatusCode, raw)
			}
			if got := resp.Header.Get("Allow"); got != "GET, HEAD" {
				t.Errorf("Allow %q, want %q", got, "GET, HEAD")
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	disabled := New(Config{Workers: 1})
	enabled := New(Config{Workers: 1, EnableEcho: true})
	for _, tc := range []struct {
		name string
		r    *Router
		path string
	}{
		{"unknown", enabled, "/nope"},
		{"trailing slash", enabled, "/healthz/"},
		{"case", enabled, "/HEALTHZ"},
		{"prefix", enabled, "/healthzz"},
		{"echo disabled", disabled, "/echo"},
		{"echo sub-path", enabled, "/echo/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, keepAlive, err := exchange(t, tc.r, conn.Config{}, 0, 0, "POST "+tc.path+" HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
			if err != nil {
				t.Fatalf("Serve: %v", err)
			}
			resp, body := parse(t, raw, "POST")
			if resp.StatusCode != 404 {
				t.Fatalf("status %d, want 404\n%q", resp.StatusCode, raw)
			}
			if !strings.Contains(string(body), "not found") {
				t.Errorf("body %q", body)
			}
			if !keepAlive {
				t.Error("a 404 closed the connection")
			}
		})
	}
}

// chunked encodes body in chunks of at most size bytes.
func chunked(body []byte, size int) string {
	var b strings.Builder
	for len(body) > 0 {
		n := min(size, len(body))
		fmt.Fprintf(&b, "%x\r\n%s\r\n", n, body[:n])
		body = body[n:]
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func TestEcho(t *testing.T) {
	const workers = 3
	r := New(Config{Workers: workers, EchoBuffer: 300, EnableEcho: true})
	// The write buffer is smaller than most bodies below: the echo must stream.
	cfg := conn.Config{BufferSize: 512, WriteBufferSize: 256}
	for _, size := range []int{0, 1, 255, 256, 257, 1000, 70_000} {
		body := pattern(size)
		for _, framing := range []string{"content-length", "chunked"} {
			for _, chunk := range []int{0, 7} {
				taskID := size % workers
				t.Run(fmt.Sprintf("%d/%s/read%d", size, framing, chunk), func(t *testing.T) {
					req := "PUT /echo HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-test\r\n"
					if framing == "chunked" {
						req += "Transfer-Encoding: chunked\r\n\r\n" + chunked(body, 999)
					} else {
						req += "Content-Length: " + strconv.Itoa(size) + "\r\n\r\n" + string(body)
					}
					raw, keepAlive, err := exchange(t, r, cfg, taskID, chunk, req)
					if err != nil {
						t.Fatalf("Serve: %v", err)
					}
					resp, got := parse(t, raw, "PUT")
					if resp.StatusCode != 200 {
						t.Fatalf("status %d, want 200", resp.StatusCode)
					}
					if ct := resp.Header.Get("Content-Type"); ct != "application/x-test" {
						t.Errorf("Content-Type %q, want the request's", ct)
					}
					if framing == "content-length" && resp.ContentLength != int64(size) {
						t.Errorf("Content-Length %d, want %d", resp.ContentLength, size)
					}
					if !bytes.Equal(got, body) {
						t.Errorf("echoed %d bytes, want %d identical ones", len(got), len(body))
					}
					if !keepAlive {
						t.Error("the connection did not stay open")
					}
				})
			}
		}
	}
}

// TestD8_EchoContentTypeBounded: /echo sends the request's Content-Type back; one longer than 128
// bytes, which the response's header space need not hold, gets 415 (as /topics does) instead of a 500,
// and the connection stays usable.
func TestD8_EchoContentTypeBounded(t *testing.T) {
	r := New(Config{Workers: 1, EnableEcho: true})
	long := "application/x-" + strings.Repeat("a", 1100)
	resps, bodies := do(t, r, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Type: "+long+"\r\nContent-Length: 2\r\n\r\nhi"+
		"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi")
	if len(resps) != 2 || resps[0].StatusCode != 415 || resps[1].StatusCode != 200 || string(bodies[1]) != "hi" {
		t.Fatalf("got %d responses: %v", len(resps), resps)
	}
}

func TestEchoWithoutContentType(t *testing.T) {
	r := New(Config{Workers: 1, EnableEcho: true})
	raw, _, err := exchange(t, r, conn.Config{}, 0, 0, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
	if err != nil {
		t.Fatalf("Serve: %v", err)
	}
	resp, body := parse(t, raw, "GET")
	if resp.StatusCode != 200 || len(body) != 0 {
		t.Fatalf("status %d body %q, want 200 and an empty body", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		t.Errorf("Content-Type %q, want none", ct)
	}
}

func TestEchoHTTP10(t *testing.T) {
	r := New(Config{Workers: 1, EnableEcho: true})
	raw, _, err := exchange(t, r, conn.Config{WriteBufferSize: 256}, 0, 0,
		"POST /echo HTTP/1.0\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n"+strings.Repeat("x", 1000))
	if err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if !bytes.HasPrefix(raw, []byte("HTTP/1.0 200 ")) {
		t.Fatalf("response %q", raw[:min(len(raw), 40)])
	}
	resp, body := parse(t, raw, "POST")
	if resp.ContentLength != 1000 || string(body) != strings.Repeat("x", 1000) {
		t.Errorf("Content-Length %d, body %d bytes", resp.ContentLength, len(body))
	}
}

// TestEchoExpectContinue checks that the echo reads before it responds, so that a client waiting for
// 100 Continue gets it first (CONTRACT H11).
func TestEchoExpectContinue(t *testing.T) {
	r := New(Config{Workers: 1, EnableEcho: true})
	raw, _, err := exchange(t, r, conn.Config{}, 0, 0,
		"POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello")
	if err != nil {
		t.Fatalf("Serve: %v", err)
	}
	const cont = "HTTP/1.1 100 Continue\r\n\r\n"
	if !bytes.HasPrefix(raw, []byte(cont)) {
		t.Fatalf("response does not start with 100 Continue: %q", raw)
	}
	resp, body := parse(t, raw[len(cont):], "POST")
	if resp.StatusCode != 200 || string(body) != "hello" {
		t.Errorf("status %d body %q", resp.StatusCode, body)
	}
}

func TestEchoHead(t *testing.T) {
	r := New(Config{Workers: 1, EnableEcho: true})
	raw, _, err := exchange(t, r, conn.Config{}, 0, 0, "HEAD /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nabcd")
	if err != nil {
		t.Fatalf("Serve: %v", err)
	}
	resp, body := parse(t, raw, "HEAD")
	if resp.StatusCode != 200 || len(body) != 0 || !bytes.HasSuffix(raw, []byte("\r\n\r\n")) {
		t.Errorf("status %d, body %q, raw %q", resp.StatusCode, body, raw)
	}
}

func TestEchoTaskIDOutOfRange(t *testing.T) {
	r := New(Config{Workers: 2, EnableEcho: true})
	raw, _, err := exchange(t, r, conn.Config{}, 2, 0, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx")
	if !errors.Is(err, ErrTaskID) {
		t.Fatalf("Serve error %v, want ErrTaskID", err)
	}
	if resp, _ := parse(t, raw, "POST"); resp.StatusCode != 500 {
		t.Errorf("status %d, want 500", resp.StatusCode)
	}
}

// TestAllocs checks that serving a keep-alive request allocates nothing per request (CONTRACT H22): the
// router adds no allocation of its own to the connection's. Topic reads and writes (CONTRACT D4) are
// requests like any other.
func TestAllocs(t *testing.T) {
	hub := topics.New(topics.Config{MaxValueBytes: 64})
	r := New(Config{Workers: 1, EnableEcho: true, Hub: hub})
	if _, err := hub.Publish([]byte("sensors/t1"), []byte("application/json"), false, []byte("21.5")); err != nil {
		t.Fatal(err)
	}
	var etag string
	hub.Get([]byte("sensors/t1"), func(_ []byte, _ string, e []byte) { etag = string(e) })
	for _, tc := range []struct{ name, req string }{
		{"topic GET", "GET /topics/sensors/t1 HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"topic GET escaped", "GET /topics/sensors%2Ft1 HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"topic 304", "GET /topics/sensors/t1 HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"x\", " + etag + "\r\n\r\n"},
		{"topic If-None-Match stale", "GET /topics/sensors/t1 HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"x\", \"y\"\r\n\r\n"},
		{"topic PUT", "PUT /topics/sensors/t2 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 4\r\n\r\n22.5"},
		{"healthz GET", "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"healthz HEAD", "HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"healthz 405", "POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"},
		{"not found", "GET /nothing/here HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"echo content-length", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"},
		{"echo chunked", "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := []byte(tc.req)
			s := &memStream{out: make([]byte, 0, 4096)}
			c := conn.New(conn.Config{})
			var serveErr error
			var keepAlive bool
			allocs := testing.AllocsPerRun(200, func() {
				s.reset(req)
				c.Reset(s)
				keepAlive, serveErr = c.Serve(0, r)
			})
			if serveErr != nil || !keepAlive {
				t.Fatalf("Serve: keepAlive %v, err %v\n%q", keepAlive, serveErr, s.out)
			}
			if allocs != 0 {
				t.Errorf("%v allocations per request, want 0", allocs)
			}
		})
	}
}

func BenchmarkHealthz(b *testing.B) {
	r := New(Config{Workers: 1})
	req := []byte("GET /healthz HTTP/1.1\r\nHost: a\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	s := &memStream{out: make([]byte, 0, 4096)}
	c := conn.New(conn.Config{})
	b.ReportAllocs()
	for b.Loop() {
		s.reset(req)
		c.Reset(s)
		if _, err := c.Serve(0, r); err != nil {
			b.Fatal(err)
		}
	}
}

// TestD8_TopicContentTypeBounded: the memory budget counts 128 bytes of content type per topic, so a
// publish with a longer Content-Type is refused (415) instead of stored whole.
func TestD8_TopicContentTypeBounded(t *testing.T) {
	hub := topics.New(topics.Config{MaxValueBytes: 16})
	r := New(Config{Workers: 1, Hub: hub})
	ct := "text/plain;x=" + strings.Repeat("a", 1500)
	resps, _ := do(t, r, "PUT /topics/x HTTP/1.1\r\nHost: a\r\nContent-Type: "+ct+"\r\nContent-Length: 1\r\n\r\nv")
	if resps[0].StatusCode != 415 {
		var got string
		hub.Get([]byte("x"), func(_ []byte, c string, _ []byte) { got = c })
		t.Fatalf("publish with a %d-byte Content-Type accepted (%d); stored %d bytes, budget allows 128 per topic", len(ct), resps[0].StatusCode, len(got))
	}
}
