package routes

import (
	"strconv"
	"strings"
	"testing"

	"github.com/edged/edged/internal/topics"
	"github.com/edged/edged/pkg/conn"
	"github.com/edged/edged/pkg/conn/conntest"
)

// FuzzRouter sends a request of fuzzed method, target, extra header line and body through edged's
// routes (/healthz, /echo, /topics/{name}, the status page, 404), followed by a pipelined GET
// /healthz. Whatever the request: no panic and no 500 (the routes never fail on a client's input),
// the output parses as well-framed responses, and unless the first response closes the connection the
// request behind it is answered "ok" (CONTRACT D3, D4, H15, H21). A fuzzed part with a CR or LF may
// end the request early and leave the rest as another request, answered as such (a 400 that closes
// the connection, say): then the pipelined request's answer is not predicted.
func FuzzRouter(f *testing.F) {
	f.Add("GET", "/healthz", "", []byte(nil))
	f.Add("POST", "/echo", "Content-Type: text/plain", []byte("hello"))
	f.Add("PUT", "/topics/a/b", "Content-Type: application/json", []byte(`{"v":1}`))
	f.Add("GET", "/topics/a%2Fb", "If-None-Match: \"x\"", []byte(nil))
	f.Add("DELETE", "/topics/a", "", []byte(nil))
	f.Add("HEAD", "/", "", []byte(nil))
	f.Add("OPTIONS", "*", "", []byte(nil))
	f.Add("GET", "/echo", "Upgrade: websocket", []byte(nil))
	r := New(Config{Workers: 1, EnableEcho: true, Hub: topics.New(topics.Config{})})
	f.Fuzz(func(t *testing.T, method, target, header string, body []byte) {
		req := method + " " + target + " HTTP/1.1\r\nHost: x\r\n"
		if header != "" {
			req += header + "\r\n"
		}
		req += "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + string(body)
		req += "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
		out := conntest.Do(conn.Config{}, r, req)
		resps, bodies, err := conntest.Responses(out, method, "GET")
		if err != nil && method == "HEAD" {
			// A request line that does not parse is answered 400 with a body: edged cannot know
			// that it was a HEAD.
			resps, bodies, err = conntest.Responses(out, "GET")
		}
		if err != nil {
			t.Fatalf("malformed output: %v\nrequest: %q\noutput:  %q", err, req, out)
		}
		if len(resps) == 0 {
			t.Fatalf("no response\nrequest: %q", req)
		}
		if resps[0].StatusCode == 500 {
			t.Fatalf("500 for a client's request\nrequest: %q\noutput:  %q", req, out)
		}
		closes := resps[0].Close || strings.EqualFold(resps[0].Header.Get("Connection"), "close")
		reframed := strings.ContainsAny(method+target+header, "\r\n")
		if !closes && !reframed && (len(resps) != 2 || resps[1].StatusCode != 200 || string(bodies[1]) != "ok") {
			t.Fatalf("the pipelined /healthz was not answered\nrequest: %q\noutput:  %q", req, out)
		}
	})
}
