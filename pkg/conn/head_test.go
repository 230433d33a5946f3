package conn_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/edged/edged/pkg/conn"
)

// padHead returns an HTTP/1.1 GET head of exactly n bytes (n >= 40), padded with an X-Pad header.
func padHead(n int) string { return padded("GET / HTTP/1.1\r\nHost: x\r\n", n) }

// padded completes the request line and headers in start with an X-Pad header and the blank line, so
// that the head is exactly n bytes.
func padded(start string, n int) string {
	const pre, post = "X-Pad: ", "\r\n\r\n"
	return start + pre + strings.Repeat("p", n-len(start)-len(pre)-len(post)) + post
}

// padLine returns an HTTP/1.0 request line of exactly n bytes, CRLF included (n >= 20).
func padLine(n int) string {
	const pre, post = "GET /", " HTTP/1.0\r\n"
	return pre + strings.Repeat("a", n-len(pre)-len(post)) + post
}

// headers returns an HTTP/1.1 GET with Host and n-1 further header lines (n header lines in all).
func headers(n int) string {
	var b strings.Builder
	b.WriteString("GET / HTTP/1.1\r\nHost: x\r\n")
	for i := 1; i < n; i++ {
		b.WriteString("X-H" + strconv.Itoa(i) + ": v\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

func TestH1_NoLostBytes(t *testing.T) {
	runCases(t, []hcase{
		{
			name: "content-length body after head",
			in:   post("/a", "hello world"),
			want: []wantResp{ok("hello world")},
			seen: []reqInfo{{"Method": "POST", "Path": "/a", "CL": "11", "Body": "hello world", "BodyErr": ""}},
			end:  errClean,
		},
		{
			name: "body that looks like a request is a body",
			in:   post("/a", get("/evil")) + get("/b"),
			want: []wantResp{ok(get("/evil")), ok("")},
			seen: []reqInfo{{"Path": "/a", "Body": get("/evil")}, {"Path": "/b"}},
			end:  errClean,
		},
		{
			name: "body with CR LF and NUL bytes",
			in:   post("/bin", "\r\n\r\n\x00\xff\r"),
			want: []wantResp{ok("\r\n\r\n\x00\xff\r")},
			end:  errClean,
		},
		{
			name: "head of exactly B bytes then body",
			cfg:  conn.Config{BufferSize: 256},
			in:   padded("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n", 256) + "abcde" + get("/next"),
			want: []wantResp{ok("abcde"), ok("")},
			seen: []reqInfo{{"Body": "abcde"}, {"Path": "/next"}},
			end:  errClean,
		},
	})
}

func TestH21_Pipelining(t *testing.T) {
	in := get("/1") +
		post("/2", "two") +
		chunkedPost("/3", "3\r\nthr\r\n2;ext=1\r\nee\r\n0\r\nTrailer: x\r\n\r\n") +
		"HEAD /4 HTTP/1.1\r\nHost: x\r\n\r\n" +
		post("/5", "") +
		"GET /6 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" +
		get("/never")
	runCases(t, []hcase{
		{
			name: "six requests in one buffer, the last closes",
			in:   in,
			handler: func(c *conn.Connection, info reqInfo, s *memStream) error {
				body, err := readBody(c, info)
				if err != nil {
					return err
				}
				return c.Reply(200, "text/plain", []byte(string(c.Path())+":"+string(body)))
			},
			want: []wantResp{ok("/1:"), ok("/2:two"), ok("/3:three"), ok(""), ok("/5:"), {status: 200, conn: "close", body: "/6:"}},
			seen: []reqInfo{{"Path": "/1"}, {"Path": "/2"}, {"Path": "/3", "CL": "-1"}, {"Method": "HEAD", "Path": "/4"}, {"Path": "/5"}, {"Path": "/6", "KeepAlive": "false"}},
			end:  nil,
			extra: func(t *testing.T, r *runResult) {
				if len(r.reqs) != 6 {
					t.Errorf("handler called %d times, want 6 (the request after Connection: close must not be served)", len(r.reqs))
				}
			},
		},
	})
}

// TestH21_BufferedRequestsNeedNoRead checks that pipelined requests already in the buffer are served
// without reading the stream again, and that Buffered reports them.
func TestH21_BufferedRequestsNeedNoRead(t *testing.T) {
	in := get("/1") + post("/2", "abc") + get("/3")
	c := conn.New(conn.Config{})
	s := newMemStream(in)
	s.holdOpen = true
	c.Reset(s)
	h := conn.HandlerFunc(func(_ int, c *conn.Connection) error {
		_, err := readBody(c, reqInfo{})
		if err != nil {
			return err
		}
		return c.Reply(200, "", c.Path())
	})
	wantBuffered := []int{len(in) - len(get("/1")), len(get("/3")), 0}
	for i := range 3 {
		ka, err := c.Serve(0, h)
		if !ka || err != nil {
			t.Fatalf("Serve %d: %v, %v", i, ka, err)
		}
		if got := c.Buffered(); got != wantBuffered[i] {
			t.Errorf("after request %d: Buffered() = %d, want %d", i+1, got, wantBuffered[i])
		}
	}
	if s.reads != 1 {
		t.Errorf("serving three buffered requests took %d stream reads, want 1", s.reads)
	}
	ka, err := c.Serve(0, h)
	if ka || errName(err) != "ErrIdle" {
		t.Errorf("Serve on an idle held-open stream: %v, %v; want false, ErrIdle", ka, err)
	}
	rs, rest, perr := parseResponses(s.out, "GET")
	if perr != nil || len(rs) != 3 || string(rs[0].body) != "/1" || string(rs[1].body) != "/2" || string(rs[2].body) != "/3" {
		t.Errorf("responses out of order or malformed: %v %q %q", perr, rest, s.out)
	}
}

func TestH2_HeadLimits(t *testing.T) {
	small := conn.Config{BufferSize: 256}
	runCases(t, []hcase{
		{name: "head of exactly B bytes", cfg: small, in: padHead(256), want: []wantResp{ok("")}, end: errClean},
		{name: "head of B bytes then a pipelined request", cfg: small, in: padHead(256) + get("/2"), want: []wantResp{ok(""), ok("")}, end: errClean},
		{name: "head of B+1 bytes", cfg: small, in: padHead(257), want: []wantResp{bad(431)}, end: conn.ErrHeadTooLarge},
		{name: "head of 3B bytes", cfg: small, in: padHead(768), want: []wantResp{bad(431)}, end: conn.ErrHeadTooLarge},
		{name: "request line fits, head is B+1", cfg: small, in: padLine(255) + "\r\n", want: []wantResp{bad(431)}, end: conn.ErrHeadTooLarge},
		{name: "request line and blank line are exactly B", cfg: small, in: padLine(254) + "\r\n", want: []wantResp{{status: 200, body: ""}}, end: nil},
		{name: "request line of exactly B bytes", cfg: small, in: padLine(256) + "\r\n", want: []wantResp{bad(431)}, end: conn.ErrHeadTooLarge},
		{name: "request line of B+1 bytes", cfg: small, in: padLine(257) + "\r\n", want: []wantResp{bad(414)}, end: conn.ErrURITooLong},
		{name: "request line far over B", cfg: small, in: padLine(1000) + "Host: x\r\n\r\n", want: []wantResp{bad(414)}, end: conn.ErrURITooLong},
		{name: "N header lines", cfg: conn.Config{MaxHeaders: 4}, in: headers(4), want: []wantResp{ok("")}, seen: []reqInfo{{"NumHeaders": "4"}}, end: errClean},
		{name: "N+1 header lines", cfg: conn.Config{MaxHeaders: 4}, in: headers(5), want: []wantResp{bad(431)}, end: conn.ErrTooManyHeaders},
		{name: "default N=64 header lines", in: headers(64), want: []wantResp{ok("")}, end: errClean},
		{name: "default N+1=65 header lines", in: headers(65), want: []wantResp{bad(431)}, end: conn.ErrTooManyHeaders},
	})
}

func TestH3_RequestLine(t *testing.T) {
	okHead := func(line string) string { return line + "\r\nHost: x\r\n\r\n" }
	runCases(t, []hcase{
		{
			name: "origin-form with query",
			in:   okHead("GET /p/q?a=1&b=%20 HTTP/1.1"),
			want: []wantResp{ok("")},
			seen: []reqInfo{{"Method": "GET", "MethodName": "GET", "Target": "/p/q?a=1&b=%20", "Path": "/p/q", "Query": "a=1&b=%20", "Proto": "1.1"}},
			end:  errClean,
		},
		{name: "no query is nil", in: okHead("GET /p HTTP/1.1"), want: []wantResp{ok("")}, seen: []reqInfo{{"Path": "/p", "Query": "<nil>"}}, end: errClean},
		{name: "empty query", in: okHead("GET /p? HTTP/1.1"), want: []wantResp{ok("")}, seen: []reqInfo{{"Path": "/p", "Query": ""}}, end: errClean},
		{name: "root with query", in: okHead("GET /?x HTTP/1.1"), want: []wantResp{ok("")}, seen: []reqInfo{{"Path": "/", "Query": "x"}}, end: errClean},
		{name: "percent-decoded path", in: okHead("GET /a%20b/%41%2fc HTTP/1.1"), want: []wantResp{ok("")}, seen: []reqInfo{{"Path": "/a%20b/%41%2fc", "DecodedPath": "/a b/A/c"}}, end: errClean},
		{name: "truncated escape is refused by DecodedPath only", in: okHead("GET /a%2 HTTP/1.1"), want: []wantResp{ok("")}, seen: []reqInfo{{"DecodedPath": "error:ErrBadRequest"}}, end: errClean},
		{name: "bad escape", in: okHead("GET /%zz HTTP/1.1"), want: []wantResp{ok("")}, seen: []reqInfo{{"DecodedPath": "error:ErrBadRequest"}}, end: errClean},
		{name: "encoded NUL", in: okHead("GET /a%00 HTTP/1.1"), want: []wantResp{ok("")}, seen: []reqInfo{{"DecodedPath": "error:ErrBadRequest"}}, end: errClean},
		{name: "lowercase get is another method", in: okHead("get / HTTP/1.1"), want: []wantResp{ok("")}, seen: []reqInfo{{"Method": "OTHER", "MethodName": "get"}}, end: errClean},
		{name: "unknown token method passes", in: okHead("FOO-BAR.1 / HTTP/1.1"), want: []wantResp{ok("")}, seen: []reqInfo{{"Method": "OTHER", "MethodName": "FOO-BAR.1"}}, end: errClean},
		{name: "PATCH", in: okHead("PATCH / HTTP/1.1"), want: []wantResp{ok("")}, seen: []reqInfo{{"Method": "PATCH"}}, end: errClean},
		{name: "DELETE", in: okHead("DELETE / HTTP/1.1"), want: []wantResp{ok("")}, seen: []reqInfo{{"Method": "DELETE"}}, end: errClean},
		{name: "PUT", in: okHead("PUT / HTTP/1.1"), want: []wantResp{ok("")}, seen: []reqInfo{{"Method": "PUT"}}, end: errClean},
		{name: "TRACE", in: okHead("TRACE / HTTP/1.1"), want: []wantResp{ok("")}, seen: []reqInfo{{"Method": "TRACE"}}, end: errClean},
		{name: "GETX is not GET", in: okHead("GETX / HTTP/1.1"), want: []wantResp{ok("")}, seen: []reqInfo{{"Method": "OTHER", "MethodName": "GETX"}}, end: errClean},
		{
			name: "absolute-form",
			in:   okHead("GET http://h/p?q HTTP/1.1"),
			want: []wantResp{ok("")},
			seen: []reqInfo{{"Target": "http://h/p?q", "Path": "/p", "Query": "q"}},
			end:  errClean,
		},
		{name: "absolute-form without path", in: okHead("GET http://h:8080 HTTP/1.1"), want: []wantResp{ok("")}, seen: []reqInfo{{"Path": "/", "Query": "<nil>"}}, end: errClean},
		{name: "absolute-form query without path", in: okHead("GET http://h?q=1 HTTP/1.1"), want: []wantResp{ok("")}, seen: []reqInfo{{"Path": "/", "Query": "q=1"}}, end: errClean},
		{name: "absolute-form https", in: okHead("GET https://user@h:8443/a/b HTTP/1.1"), want: []wantResp{ok("")}, seen: []reqInfo{{"Path": "/a/b"}}, end: errClean},
		{name: "asterisk-form for OPTIONS", in: okHead("OPTIONS * HTTP/1.1"), want: []wantResp{ok("")}, seen: []reqInfo{{"Method": "OPTIONS", "Target": "*", "Path": "*"}}, end: errClean},
		{name: "asterisk-form for GET", in: okHead("GET * HTTP/1.1"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "authority-form for CONNECT", in: "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", want: []wantResp{ok("")}, seen: []reqInfo{{"Method": "CONNECT", "Target": "h:443", "Path": "h:443"}}, end: errClean},
		{name: "authority-form for GET", in: okHead("GET 127.0.0.1:80 HTTP/1.1"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "origin-form not starting with slash", in: okHead("GET foo HTTP/1.1"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "double space after method", in: okHead("GET  / HTTP/1.1"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "double space before version", in: okHead("GET /  HTTP/1.1"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "trailing space", in: okHead("GET / HTTP/1.1 "), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "leading space", in: okHead(" GET / HTTP/1.1"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "tab as separator", in: okHead("GET\t/ HTTP/1.1"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "missing target", in: okHead("GET HTTP/1.1"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "missing version", in: okHead("GET /"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "non-token method", in: okHead("GE(T / HTTP/1.1"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "empty method", in: okHead(" / HTTP/1.1"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "control byte in target", in: okHead("GET /a\x01b HTTP/1.1"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "DEL in target", in: okHead("GET /a\x7fb HTTP/1.1"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "NUL in request line", in: okHead("GET /\x00 HTTP/1.1"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
	})
}

func TestH4_Version(t *testing.T) {
	line := func(version string) string { return "GET / " + version + "\r\nHost: x\r\n\r\n" }
	proto := func(want string) func(*testing.T, *runResult) {
		return func(t *testing.T, r *runResult) {
			for _, resp := range r.finals {
				if resp.proto != want {
					t.Errorf("status line %q, want version %s", resp.line, want)
				}
			}
		}
	}
	runCases(t, []hcase{
		{name: "HTTP/1.1", in: line("HTTP/1.1"), want: []wantResp{ok("")}, seen: []reqInfo{{"Proto": "1.1"}}, end: errClean, extra: proto("HTTP/1.1")},
		{name: "HTTP/1.0 closes by default", in: line("HTTP/1.0") + get("/never"), want: []wantResp{{status: 200, body: ""}}, seen: []reqInfo{{"Proto": "1.0", "KeepAlive": "false"}}, end: nil, extra: proto("HTTP/1.0")},
		{name: "HTTP/1.2 served as 1.1", in: line("HTTP/1.2"), want: []wantResp{ok("")}, seen: []reqInfo{{"Proto": "1.1"}}, end: errClean, extra: proto("HTTP/1.1")},
		{name: "HTTP/1.9 served as 1.1", in: line("HTTP/1.9"), want: []wantResp{ok("")}, seen: []reqInfo{{"Proto": "1.1"}}, end: errClean, extra: proto("HTTP/1.1")},
		{name: "HTTP/2.0 is 505", in: line("HTTP/2.0"), want: []wantResp{bad(505)}, end: conn.ErrVersion},
		{name: "HTTP/3.0 is 505", in: line("HTTP/3.0"), want: []wantResp{bad(505)}, end: conn.ErrVersion},
		// CONTRACT H4: a major version other than 1 gets 505, and 0.9 has major version 0.
		{name: "HTTP/0.9 is 505", in: line("HTTP/0.9"), want: []wantResp{bad(505)}, end: conn.ErrVersion},
		{name: "HTTP/1.01 is malformed", in: line("HTTP/1.01"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "HTTP/1.10 is malformed", in: line("HTTP/1.10"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "HTTP/10.0 is malformed", in: line("HTTP/10.0"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "lowercase http/1.1", in: line("http/1.1"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "HTTP/1 without minor", in: line("HTTP/1"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "HTTP/1. without minor digit", in: line("HTTP/1."), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "HTTP/2 without minor", in: line("HTTP/2"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "HTTP/x.1", in: line("HTTP/x.1"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "HTTPS/1.1", in: line("HTTPS/1.1"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "version with trailing garbage", in: line("HTTP/1.1x"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
	})
}

func TestH5_HeaderLines(t *testing.T) {
	runCases(t, []hcase{
		{
			name: "values are trimmed, inner whitespace and HTAB kept",
			in:   "GET / HTTP/1.1\r\nHost: x\r\nX-A: \t a \t b \t\r\nX-Empty:\r\nx-lower:v\r\n\r\n",
			want: []wantResp{ok("")},
			seen: []reqInfo{{"Headers": "Host: x|X-A: a \t b|X-Empty: |x-lower: v", "NumHeaders": "4"}},
			end:  errClean,
		},
		{
			name: "obs-text in a value is kept",
			in:   "GET / HTTP/1.1\r\nHost: x\r\nX-A: caf\xc3\xa9\xff\r\n\r\n",
			want: []wantResp{ok("")},
			seen: []reqInfo{{"Headers": "Host: x|X-A: caf\xc3\xa9\xff"}},
			end:  errClean,
		},
		{name: "space before colon", in: "GET / HTTP/1.1\r\nHost : x\r\n\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "tab before colon", in: "GET / HTTP/1.1\r\nHost\t: x\r\n\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "obs-fold", in: "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "obs-fold with tab", in: "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "whitespace before the first header", in: "GET / HTTP/1.1\r\n Host: x\r\n\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "NUL in value", in: "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "CTL in value", in: "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "ESC in value", in: "GET / HTTP/1.1\r\nHost: x\r\nX-A: \x1b[31m\r\n\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "DEL in value", in: "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb\r\n\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "bare CR in value", in: "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "bare CR at end of value", in: "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\r\n\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "bare CR in request line", in: "GET /\r HTTP/1.1\r\nHost: x\r\n\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "bare CR as the blank line", in: "GET / HTTP/1.1\r\nHost: x\r\n\r\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "bare LF after request line", in: "GET / HTTP/1.1\nHost: x\r\n\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "bare LF after a header", in: "GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "bare LF as the blank line", in: "GET / HTTP/1.1\r\nHost: x\r\n\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "bare LF everywhere", in: "GET / HTTP/1.1\nHost: x\n\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "LF CR", in: "GET / HTTP/1.1\n\rHost: x\r\n\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "no colon", in: "GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "empty name", in: "GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "non-token name", in: "GET / HTTP/1.1\r\nHost: x\r\nX(A): v\r\n\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "non-ASCII name", in: "GET / HTTP/1.1\r\nHost: x\r\nX-\xc3\xa9: v\r\n\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
	})
}

func TestH6_Host(t *testing.T) {
	runCases(t, []hcase{
		{name: "HTTP/1.1 without Host", in: "GET / HTTP/1.1\r\n\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "HTTP/1.1 with two Hosts", in: "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "HTTP/1.1 with two Hosts of different case", in: "GET / HTTP/1.1\r\nHost: a\r\nhOST: b\r\n\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "HTTP/1.0 without Host", in: "GET / HTTP/1.0\r\n\r\n", want: []wantResp{{status: 200, body: ""}}, end: nil},
		{name: "lowercase host", in: "GET / HTTP/1.1\r\nhost: h\r\n\r\n", want: []wantResp{ok("")}, seen: []reqInfo{{"Host": "h"}}, end: errClean},
		{name: "empty Host", in: "GET / HTTP/1.1\r\nHost:\r\n\r\n", want: []wantResp{ok("")}, seen: []reqInfo{{"Host": ""}}, end: errClean},
		{name: "Host with port", in: "GET / HTTP/1.1\r\nHost: h:8080\r\n\r\n", want: []wantResp{ok("")}, seen: []reqInfo{{"Host": "h:8080"}}, end: errClean},
	})
}

func TestH7_ConnectionHeader(t *testing.T) {
	tokens := func(c *conn.Connection, info reqInfo, s *memStream) error {
		info["upgrade"] = strconv.FormatBool(c.HasToken("connection", "UPGRADE"))
		info["keep-alive"] = strconv.FormatBool(c.HasToken("Connection", "keep-alive"))
		return echoHandler(c, info, s)
	}
	keepAliveHeader := func(t *testing.T, r *runResult) {
		if !hasToken(r.finals[0].rawHeader("Connection"), "keep-alive") {
			t.Errorf("HTTP/1.0 keep-alive response without Connection: keep-alive: %q", r.finals[0].raw)
		}
	}
	runCases(t, []hcase{
		{
			name:    "keep-alive, Upgrade",
			in:      "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n\r\n" + get("/2"),
			handler: tokens,
			want:    []wantResp{ok(""), ok("")},
			seen:    []reqInfo{{"upgrade": "true", "keep-alive": "true", "KeepAlive": "true"}},
			end:     errClean,
		},
		{
			name:    "token list over several lines",
			in:      "GET / HTTP/1.1\r\nHost: x\r\nConnection: foo\r\nConnection: bar,  upgrade ,\r\n\r\n",
			handler: tokens,
			want:    []wantResp{ok("")},
			seen:    []reqInfo{{"upgrade": "true"}},
			end:     errClean,
		},
		{name: "close", in: "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + get("/never"), want: []wantResp{{status: 200, conn: "close", body: ""}}, seen: []reqInfo{{"KeepAlive": "false"}}, end: nil},
		{name: "close wins over keep-alive", in: "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n" + get("/never"), want: []wantResp{{status: 200, conn: "close", body: ""}}, end: nil},
		{name: "close on a second line wins", in: "GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive\r\nConnection: CLOSE\r\n\r\n" + get("/never"), want: []wantResp{{status: 200, conn: "close", body: ""}}, end: nil},
		{name: "case-insensitive close", in: "GET / HTTP/1.1\r\nHost: x\r\nconnection: cLoSe\r\n\r\n", want: []wantResp{{status: 200, conn: "close", body: ""}}, end: nil},
		{name: "closed is not close", in: "GET / HTTP/1.1\r\nHost: x\r\nConnection: closed\r\n\r\n" + get("/2"), want: []wantResp{ok(""), ok("")}, end: errClean},
		{name: "HTTP/1.0 defaults to close", in: "GET / HTTP/1.0\r\n\r\n" + get("/never"), want: []wantResp{{status: 200, body: ""}}, seen: []reqInfo{{"KeepAlive": "false"}}, end: nil},
		{
			name:  "HTTP/1.0 keep-alive",
			in:    "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n" + "GET /2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
			want:  []wantResp{ok(""), ok("")},
			seen:  []reqInfo{{"KeepAlive": "true"}, {"Path": "/2"}},
			end:   errClean,
			extra: keepAliveHeader,
		},
		{name: "HTTP/1.0 keep-alive then close", in: "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", want: []wantResp{{status: 200, body: ""}}, end: nil},
	})
}

// TestH6_HostValue: RFC 9112 3.2 asks for 400 on a Host field value that is not uri-host [":" port],
// as for a missing or repeated Host (CONTRACT H6).
func TestH6_HostValue(t *testing.T) {
	host := func(v string) string { return "GET / HTTP/1.1\r\nHost: " + v + "\r\n\r\n" }
	var cases []hcase
	for _, v := range []string{"a b", "a/b", "u@h", "h, h", "h:80x", "h:80:90", "[::1", "[]", "[::1]x", "h%2", "h%zz", "h\\x", "h\"", "<h>", "h{1}"} {
		cases = append(cases, hcase{name: "invalid " + strconv.Quote(v), in: host(v) + get("/never"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest})
	}
	for _, v := range []string{"example.com", "h:8080", "h:", "127.0.0.1:80", "[::1]:8080", "[fe80::1%25eth0]", "[v1.x]", "my_host.local", "xn--bcher-kva.example", "a%41b", "h!$&'()*+,;=~-"} {
		cases = append(cases, hcase{name: "valid " + strconv.Quote(v), in: host(v), want: []wantResp{ok("")}, seen: []reqInfo{{"Host": v}}, end: errClean})
	}
	runCases(t, cases)
}

// TestH3_AbsoluteFormAuthority: RFC 9112 3.2.2 asks an origin server to take the host of an
// absolute-form target and ignore Host; Host() says which authority a request is for (CONTRACT H3).
func TestH3_AbsoluteFormAuthority(t *testing.T) {
	runCases(t, []hcase{
		{name: "absolute-form wins over Host", in: "GET http://h:8080/p HTTP/1.1\r\nHost: other\r\n\r\n", want: []wantResp{ok("")}, seen: []reqInfo{{"Authority": "h:8080", "Host": "other", "Path": "/p"}}, end: errClean},
		{name: "absolute-form without path", in: "GET http://h HTTP/1.1\r\nHost: other\r\n\r\n", want: []wantResp{ok("")}, seen: []reqInfo{{"Authority": "h", "Path": "/"}}, end: errClean},
		{name: "absolute-form with query only", in: "GET http://h?q HTTP/1.1\r\nHost: h\r\n\r\n", want: []wantResp{ok("")}, seen: []reqInfo{{"Authority": "h", "Path": "/", "Query": "q"}}, end: errClean},
		{name: "userinfo is not part of the host", in: "GET https://user:pw@h:8443/a HTTP/1.1\r\nHost: h:8443\r\n\r\n", want: []wantResp{ok("")}, seen: []reqInfo{{"Authority": "h:8443"}}, end: errClean},
		{name: "IPv6 literal", in: "GET http://[::1]:80/ HTTP/1.1\r\nHost: x\r\n\r\n", want: []wantResp{ok("")}, seen: []reqInfo{{"Authority": "[::1]:80"}}, end: errClean},
		{name: "origin-form takes Host", in: "GET /p HTTP/1.1\r\nHost: h:1\r\n\r\n", want: []wantResp{ok("")}, seen: []reqInfo{{"Authority": "h:1"}}, end: errClean},
		{name: "empty host in an http URI", in: "GET http:///p HTTP/1.1\r\nHost: x\r\n\r\n" + get("/never"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "invalid host in the target", in: "GET http://a%zz/p HTTP/1.1\r\nHost: x\r\n\r\n" + get("/never"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "port with letters in the target", in: "GET http://h:8o/p HTTP/1.1\r\nHost: x\r\n\r\n" + get("/never"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
	})
}

// TestH3_ConnectAuthority: CONNECT's authority-form is uri-host ":" port, and RFC 9110 9.3.6 asks for
// 400 on an empty or invalid port (CONTRACT H3).
func TestH3_ConnectAuthority(t *testing.T) {
	connect := func(target string) string {
		return "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n"
	}
	var cases []hcase
	for _, target := range []string{"h:443", "[::1]:8443", "10.0.0.1:1", "h:65535"} {
		cases = append(cases, hcase{name: "valid " + target, in: connect(target), want: []wantResp{ok("")}, seen: []reqInfo{{"Method": "CONNECT", "Path": target}}, end: errClean})
	}
	for _, target := range []string{"h:", "h:abc", "h:0", "h:65536", "h:123456", ":443", "[::1]", "h:80:90", "a%zz:443", "u@h:443"} {
		cases = append(cases, hcase{name: "invalid " + target, in: "CONNECT " + target + " HTTP/1.1\r\nHost: x\r\n\r\n" + get("/never"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest})
	}
	runCases(t, cases)
}
