package conn_test

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/edged/edged/pkg/conn"
)

// withHeaders is an HTTP/1.1 POST head with the given header lines, then rest.
func withHeaders(lines, rest string) string {
	return "POST /b HTTP/1.1\r\nHost: x\r\n" + lines + "\r\n" + rest
}

func TestH8_Framing(t *testing.T) {
	runCases(t, []hcase{
		{name: "no body headers: empty body", in: "POST /b HTTP/1.1\r\nHost: x\r\n\r\n" + get("/2"), want: []wantResp{ok(""), ok("")}, seen: []reqInfo{{"CL": "0", "Body": ""}}, end: errClean},
		{name: "chunked", in: withHeaders("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n") + get("/2"), want: []wantResp{ok("hello"), ok("")}, seen: []reqInfo{{"CL": "-1", "Body": "hello"}}, end: errClean},
		{name: "chunked is case-insensitive", in: withHeaders("Transfer-Encoding: Chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"), want: []wantResp{ok("hello")}, end: errClean},
		{name: "TE gzip", in: withHeaders("Transfer-Encoding: gzip\r\n", "hello"), want: []wantResp{bad(501)}, end: conn.ErrNotImplemented},
		{name: "TE gzip, chunked", in: withHeaders("Transfer-Encoding: gzip, chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"), want: []wantResp{bad(501)}, end: conn.ErrNotImplemented},
		{name: "TE gzip then chunked on two lines", in: withHeaders("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"), want: []wantResp{bad(501)}, end: conn.ErrNotImplemented},
		// RFC 9112 6.3 asks for 400 when chunked is not the final coding; CONTRACT H8 says 501 for
		// other codings. Either refuses the request and closes.
		{name: "TE chunked, gzip", in: withHeaders("Transfer-Encoding: chunked, gzip\r\n", "5\r\nhello\r\n0\r\n\r\n"), respAny: true, end: errAny, extra: statusIn(400, 501)},
		{name: "TE chunked, chunked", in: withHeaders("Transfer-Encoding: chunked, chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"), respAny: true, end: errAny, extra: statusIn(400, 501)},
		{name: "TE identity", in: withHeaders("Transfer-Encoding: identity\r\n", ""), want: []wantResp{bad(501)}, end: conn.ErrNotImplemented},
		{name: "TE chunked in HTTP/1.0", in: "POST /b HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "TE and CL", in: withHeaders("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "5\r\nhello\r\n0\r\n\r\n"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "CL and TE", in: withHeaders("Content-Length: 15\r\nTransfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "CL 5", in: withHeaders("Content-Length: 5\r\n", "hello") + get("/2"), want: []wantResp{ok("hello"), ok("")}, seen: []reqInfo{{"CL": "5"}}, end: errClean},
		{name: "CL with OWS around", in: withHeaders("Content-Length: \t 5 \t\r\n", "hello"), want: []wantResp{ok("hello")}, end: errClean},
		{name: "CL with leading zeros", in: withHeaders("Content-Length: 005\r\n", "hello"), want: []wantResp{ok("hello")}, end: errClean},
		{name: "CL 0", in: withHeaders("Content-Length: 0\r\n", "") + get("/2"), want: []wantResp{ok(""), ok("")}, end: errClean},
		{name: "CL +5", in: withHeaders("Content-Length: +5\r\n", "hello"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "CL -1", in: withHeaders("Content-Length: -1\r\n", "hello"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "CL 5 5", in: withHeaders("Content-Length: 5 5\r\n", "hello"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "CL 0x5", in: withHeaders("Content-Length: 0x5\r\n", "hello"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "CL 5.0", in: withHeaders("Content-Length: 5.0\r\n", "hello"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "CL empty", in: withHeaders("Content-Length:\r\n", "hello"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "CL overflow", in: withHeaders("Content-Length: 99999999999999999999\r\n", "hello"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "CL max int64 + 1", in: withHeaders("Content-Length: 9223372036854775808\r\n", "hello"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "CL max int64 is too large", in: withHeaders("Content-Length: 9223372036854775807\r\n", "hello"), want: []wantResp{bad(413)}, end: conn.ErrBodyTooLarge},
		{name: "CL 5, 5", in: withHeaders("Content-Length: 5, 5\r\n", "hello") + get("/2"), want: []wantResp{ok("hello"), ok("")}, seen: []reqInfo{{"CL": "5"}}, end: errClean},
		{name: "CL 5,5,5", in: withHeaders("Content-Length: 5,5,5\r\n", "hello"), want: []wantResp{ok("hello")}, end: errClean},
		{name: "CL 5, 6", in: withHeaders("Content-Length: 5, 6\r\n", "hello!"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "CL 5, empty element", in: withHeaders("Content-Length: 5,\r\n", "hello"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "two equal CL headers", in: withHeaders("Content-Length: 5\r\nContent-Length: 5\r\n", "hello") + get("/2"), want: []wantResp{ok("hello"), ok("")}, end: errClean},
		{name: "two different CL headers", in: withHeaders("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "two different CL headers, lowercase", in: withHeaders("content-length: 6\r\nContent-Length: 5\r\n", "hello!"), want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{
			name:    "CL body cut by EOF",
			in:      withHeaders("Content-Length: 10\r\n", "hello"),
			eofOnly: true,
			respAny: true,
			seen:    []reqInfo{{"Body": "hello", "BodyErr": "ErrIncompleteBody"}},
			end:     conn.ErrIncompleteBody,
			anyMode: true,
			extra:   incompleteBodyAnswer,
		},
	})
}

// incompleteBodyAnswer accepts what a client that left mid-body may get: nothing, or a 400 that closes.
func incompleteBodyAnswer(t *testing.T, r *runResult) {
	for _, resp := range r.finals {
		if resp.status != 400 || !resp.closes() {
			t.Errorf("a body cut by EOF was answered %q; want no answer or 400 with Connection: close", resp.raw)
		}
	}
}

func TestH9_Chunked(t *testing.T) {
	runCases(t, []hcase{
		{name: "two chunks", in: chunkedPost("/c", "3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n"), want: []wantResp{ok("abc0123456789")}, end: errClean},
		{name: "uppercase and lowercase hex", in: chunkedPost("/c", "a\r\n0123456789\r\nB\r\nabcdefghijk\r\n0\r\n\r\n"), want: []wantResp{ok("0123456789abcdefghijk")}, end: errClean},
		{name: "leading zeros", in: chunkedPost("/c", "0005\r\nhello\r\n000\r\n\r\n"), want: []wantResp{ok("hello")}, end: errClean},
		{name: "data holding CRLF", in: chunkedPost("/c", "4\r\n\r\n\r\n\r\n0\r\n\r\n"), want: []wantResp{ok("\r\n\r\n")}, end: errClean},
		{name: "extensions skipped", in: chunkedPost("/c", "5;a=1;b=\"x;y\"\r\nhello\r\n0;last\r\n\r\n") + get("/2"), want: []wantResp{ok("hello"), ok("")}, end: errClean},
		{name: "extension with BWS", in: chunkedPost("/c", "5 ; a = 1\r\nhello\r\n0\r\n\r\n") + get("/2"), want: []wantResp{ok("hello"), ok("")}, end: errClean},
		{name: "trailers discarded", in: chunkedPost("/c", "5\r\nhello\r\n0\r\nX-Sum: 1\r\nX-Other: two\r\n\r\n") + get("/2"), want: []wantResp{ok("hello"), ok("")}, end: errClean},
		{name: "empty body", in: chunkedPost("/c", "0\r\n\r\n") + get("/2"), want: []wantResp{ok(""), ok("")}, end: errClean},
		{name: "next request after a chunked body is served", in: chunkedPost("/c", "1\r\na\r\n0\r\n\r\n") + post("/2", "xyz") + get("/3"), want: []wantResp{ok("a"), ok("xyz"), ok("")}, end: errClean},
		{name: "hex overflow", in: chunkedPost("/c", "10000000000000000\r\nhello\r\n0\r\n\r\n"), want: []wantResp{bad(400)}, end: conn.ErrChunkedFraming},
		{name: "hex over int64", in: chunkedPost("/c", "8000000000000000\r\nhello\r\n0\r\n\r\n"), respAny: true, end: errAny, extra: statusIn(400, 413)},
		{name: "size with plus sign", in: chunkedPost("/c", "+5\r\nhello\r\n0\r\n\r\n"), want: []wantResp{bad(400)}, end: conn.ErrChunkedFraming},
		{name: "size with minus sign", in: chunkedPost("/c", "-5\r\nhello\r\n0\r\n\r\n"), want: []wantResp{bad(400)}, end: conn.ErrChunkedFraming},
		{name: "size 0x5", in: chunkedPost("/c", "0x5\r\nhello\r\n0\r\n\r\n"), want: []wantResp{bad(400)}, end: conn.ErrChunkedFraming},
		{name: "size with leading space", in: chunkedPost("/c", " 5\r\nhello\r\n0\r\n\r\n"), want: []wantResp{bad(400)}, end: conn.ErrChunkedFraming},
		{name: "empty size line", in: chunkedPost("/c", "\r\nhello\r\n0\r\n\r\n"), want: []wantResp{bad(400)}, end: conn.ErrChunkedFraming},
		{name: "non-hex size", in: chunkedPost("/c", "g\r\nhello\r\n0\r\n\r\n"), want: []wantResp{bad(400)}, end: conn.ErrChunkedFraming},
		{name: "data longer than size", in: chunkedPost("/c", "5\r\nhelloX\r\n0\r\n\r\n"), want: []wantResp{bad(400)}, end: conn.ErrChunkedFraming},
		{name: "data not followed by CRLF", in: chunkedPost("/c", "5\r\nhelloXY0\r\n\r\n"), want: []wantResp{bad(400)}, end: conn.ErrChunkedFraming},
		{name: "bare LF after size", in: chunkedPost("/c", "5\nhello\r\n0\r\n\r\n"), want: []wantResp{bad(400)}, end: conn.ErrChunkedFraming},
		{name: "bare LF after data", in: chunkedPost("/c", "5\r\nhello\n0\r\n\r\n"), want: []wantResp{bad(400)}, end: conn.ErrChunkedFraming},
		{name: "bare LF after last chunk", in: chunkedPost("/c", "5\r\nhello\r\n0\n\r\n"), want: []wantResp{bad(400)}, end: conn.ErrChunkedFraming},
		{name: "bare LF as final line", in: chunkedPost("/c", "5\r\nhello\r\n0\r\n\n"), want: []wantResp{bad(400)}, end: conn.ErrChunkedFraming},
		{name: "bare LF in a trailer", in: chunkedPost("/c", "5\r\nhello\r\n0\r\nX: y\n\r\n"), want: []wantResp{bad(400)}, end: conn.ErrChunkedFraming},
		{name: "bare CR in an extension", in: chunkedPost("/c", "5;a\rb\r\nhello\r\n0\r\n\r\n"), want: []wantResp{bad(400)}, end: conn.ErrChunkedFraming},
		{name: "bare CR after size", in: chunkedPost("/c", "5\rhello\r\n0\r\n\r\n"), want: []wantResp{bad(400)}, end: conn.ErrChunkedFraming},
		{name: "malformed trailer", in: chunkedPost("/c", "5\r\nhello\r\n0\r\nno colon\r\n\r\n"), want: []wantResp{bad(400)}, end: conn.ErrChunkedFraming},
		{name: "obs-fold in trailer", in: chunkedPost("/c", "5\r\nhello\r\n0\r\nX: a\r\n b\r\n\r\n"), want: []wantResp{bad(400)}, end: conn.ErrChunkedFraming},
		{name: "NUL in trailer", in: chunkedPost("/c", "5\r\nhello\r\n0\r\nX: a\x00\r\n\r\n"), want: []wantResp{bad(400)}, end: conn.ErrChunkedFraming},
		{
			name: "extension bytes over the bound",
			cfg:  conn.Config{BufferSize: 256},
			in:   chunkedPost("/c", "1;"+strings.Repeat("e", 300)+"\r\na\r\n0\r\n\r\n"),
			want: []wantResp{bad(400)}, end: conn.ErrChunkedMetaTooBig,
		},
		{
			name: "extension bytes summed over chunks over the bound",
			cfg:  conn.Config{BufferSize: 256},
			in:   chunkedPost("/c", strings.Repeat("1;"+strings.Repeat("e", 40)+"\r\na\r\n", 10)+"0\r\n\r\n"),
			want: []wantResp{bad(400)}, end: conn.ErrChunkedMetaTooBig,
		},
		{
			name: "leading zeros of chunk sizes over the bound",
			cfg:  conn.Config{BufferSize: 256},
			in:   chunkedPost("/c", strings.Repeat("0", 300)+"1\r\na\r\n0\r\n\r\n"),
			want: []wantResp{bad(400)}, end: conn.ErrChunkedMetaTooBig,
		},
		{
			name: "a few leading zeros are fine",
			cfg:  conn.Config{BufferSize: 256},
			in:   chunkedPost("/c", strings.Repeat("0", 40)+"1\r\na\r\n0\r\n\r\n") + get("/2"),
			want: []wantResp{ok("a"), ok("")}, end: errClean,
		},
		{
			name: "many small chunks without extensions are not bounded by B",
			cfg:  conn.Config{BufferSize: 256},
			in:   chunkedPost("/c", strings.Repeat("1\r\na\r\n", 1000)+"0\r\n\r\n") + get("/2"),
			want: []wantResp{ok(strings.Repeat("a", 1000)), ok("")}, end: errClean,
		},
		{
			name: "trailer bytes over the bound",
			cfg:  conn.Config{BufferSize: 256},
			in:   chunkedPost("/c", "1\r\na\r\n0\r\n"+strings.Repeat("X-T: "+strings.Repeat("t", 40)+"\r\n", 10)+"\r\n"),
			want: []wantResp{bad(400)}, end: conn.ErrChunkedMetaTooBig,
		},
		{
			name: "extensions and trailers under the bound",
			cfg:  conn.Config{BufferSize: 256},
			in:   chunkedPost("/c", "1;"+strings.Repeat("e", 50)+"\r\na\r\n0\r\n"+"X-T: "+strings.Repeat("t", 50)+"\r\n\r\n") + get("/2"),
			want: []wantResp{ok("a"), ok("")}, end: errClean,
		},
		{name: "cut inside data", in: chunkedPost("/c", "5\r\nhel"), eofOnly: true, anyMode: true, respAny: true, seen: []reqInfo{{"BodyErr": "ErrIncompleteBody"}}, end: conn.ErrIncompleteBody, extra: incompleteBodyAnswer},
		{name: "cut at a chunk boundary", in: chunkedPost("/c", "5\r\nhello\r\n"), eofOnly: true, anyMode: true, respAny: true, seen: []reqInfo{{"Body": "hello", "BodyErr": "ErrIncompleteBody"}}, end: conn.ErrIncompleteBody, extra: incompleteBodyAnswer},
		{name: "cut before the first chunk", in: chunkedPost("/c", ""), eofOnly: true, anyMode: true, respAny: true, seen: []reqInfo{{"Body": "", "BodyErr": "ErrIncompleteBody"}}, end: conn.ErrIncompleteBody, extra: incompleteBodyAnswer},
		{name: "cut after the last chunk", in: chunkedPost("/c", "5\r\nhello\r\n0\r\n"), eofOnly: true, anyMode: true, respAny: true, seen: []reqInfo{{"Body": "hello", "BodyErr": "ErrIncompleteBody"}}, end: conn.ErrIncompleteBody, extra: incompleteBodyAnswer},
		{name: "cut in a trailer", in: chunkedPost("/c", "5\r\nhello\r\n0\r\nX-T: 1\r\n"), eofOnly: true, anyMode: true, respAny: true, seen: []reqInfo{{"Body": "hello", "BodyErr": "ErrIncompleteBody"}}, end: conn.ErrIncompleteBody, extra: incompleteBodyAnswer},
		{
			name: "handler ignoring a framing error still closes",
			in:   chunkedPost("/c", "5\r\nhelloXY\r\n0\r\n\r\n") + get("/never"),
			handler: func(c *conn.Connection, info reqInfo, _ *memStream) error {
				readBody(c, info)
				return c.Reply(200, "text/plain", []byte("ignored"))
			},
			seen:    []reqInfo{{"BodyErr": "ErrChunkedFraming"}},
			anyMode: true,
			respAny: true,
			end:     errDontCare,
			extra: func(t *testing.T, r *runResult) {
				if len(r.finals) != 1 || !r.finals[0].closes() || (r.finals[0].status != 200 && r.finals[0].status != 400) {
					t.Errorf("after a chunked framing error: %d responses (%s); want one, 200 or 400, with Connection: close", len(r.finals), statuses(r.finals))
				}
				if len(r.reqs) != 1 {
					t.Errorf("the bytes after a malformed chunked body were served as a request")
				}
			},
		},
	})
}

// statusIn checks that the run sent exactly one final response, with one of codes and Connection: close.
func statusIn(codes ...int) func(*testing.T, *runResult) {
	return func(t *testing.T, r *runResult) {
		if len(r.finals) != 1 || !r.finals[0].closes() || !slices.Contains(codes, r.finals[0].status) {
			t.Errorf("responses %s, want one of %v with Connection: close", statuses(r.finals), codes)
		}
	}
}

// TestH9_ChunkedNeverOverReads takes the stream over right after a chunked body and checks that the
// bytes after the body's last CRLF are all still there, whatever the chunk layout and feed.
func TestH9_ChunkedNeverOverReads(t *testing.T) {
	bodies := []string{
		"0\r\n\r\n",
		"5\r\nhello\r\n0\r\n\r\n",
		"5;x=y\r\nhello\r\n0;z\r\nT: 1\r\nU: 2\r\n\r\n",
		"1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n",
	}
	const after = "NEXT BYTES \r\n\r\n 0\r\n\r\n"
	for _, body := range bodies {
		in := chunkedPost("/c", body) + after
		for _, f := range feedsFor(len(in)) {
			c := conn.New(conn.Config{})
			s := newMemStream(in)
			s.maxRead, s.split = f.maxRead, f.split
			c.Reset(s)
			var got string
			_, err := c.Serve(0, conn.HandlerFunc(func(_ int, c *conn.Connection) error {
				if _, err := io.Copy(io.Discard, c); err != nil {
					return err
				}
				_, buffered, err := c.Unbind()
				if err != nil {
					return err
				}
				got = string(buffered) + string(s.remaining())
				return nil
			}))
			if err != nil || got != after {
				t.Errorf("body %q, %s: Serve err %v; bytes after the body %q, want %q", body, f.name, err, got, after)
				break
			}
		}
	}
}

func TestH10_MaxBody(t *testing.T) {
	big := strings.Repeat("b", 100000)
	runCases(t, []hcase{
		{
			name: "CL over MaxBody: 413 without calling the handler",
			cfg:  conn.Config{MaxBody: 10},
			in:   withHeaders("Content-Length: 11\r\n", "hello world") + get("/never"),
			want: []wantResp{bad(413)},
			end:  conn.ErrBodyTooLarge,
			extra: func(t *testing.T, r *runResult) {
				if len(r.reqs) != 0 {
					t.Errorf("the handler was called for a body over MaxBody")
				}
			},
		},
		{name: "CL equal to MaxBody", cfg: conn.Config{MaxBody: 11}, in: withHeaders("Content-Length: 11\r\n", "hello world"), want: []wantResp{ok("hello world")}, end: errClean},
		{
			name:    "chunked growing over MaxBody",
			cfg:     conn.Config{MaxBody: 10},
			in:      chunkedPost("/c", "6\r\nhello \r\n6\r\nworld!\r\n0\r\n\r\n") + get("/never"),
			want:    []wantResp{bad(413)},
			seen:    []reqInfo{{"BodyErr": "ErrBodyTooLarge"}},
			anyMode: true,
			end:     conn.ErrBodyTooLarge,
			extra: func(t *testing.T, r *runResult) {
				if got := r.reqs[0]["Body"]; len(got) > 10 {
					t.Errorf("Read returned %d body bytes, more than MaxBody 10", len(got))
				}
			},
		},
		{name: "chunked exactly MaxBody", cfg: conn.Config{MaxBody: 12}, in: chunkedPost("/c", "6\r\nhello \r\n6\r\nworld!\r\n0\r\n\r\n"), want: []wantResp{ok("hello world!")}, end: errClean},
		{
			name:    "huge CL body is not read",
			cfg:     conn.Config{MaxBody: 1000},
			in:      withHeaders("Content-Length: 100000\r\n", big),
			maxRead: 4096,
			want:    []wantResp{bad(413)},
			end:     conn.ErrBodyTooLarge,
			extra: func(t *testing.T, r *runResult) {
				if r.s.pos > 4096 {
					t.Errorf("the connection read %d bytes of a refused 100000-byte body", r.s.pos)
				}
			},
		},
	})
}

// TestH11_Continue covers Expect: 100-continue: the interim response goes out when, and only when, the
// handler first reads the body.
func TestH11_Continue(t *testing.T) {
	const cont = "HTTP/1.1 100 Continue\r\n\r\n"
	head := "POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"

	t.Run("sent at first Read, body held back until then", func(t *testing.T) {
		for _, mode := range []string{"whole", "bytewise"} {
			c := conn.New(conn.Config{})
			s := newMemStream(head + "hello" + get("/2"))
			s.holdOpen = true
			if mode == "bytewise" {
				s.maxRead = 1
			}
			s.gates = []gate{{at: len(head), open: func(s *memStream) bool { return s.outContains(cont) }}}
			c.Reset(s)
			var before, after bool
			ka, err := c.Serve(0, conn.HandlerFunc(func(_ int, c *conn.Connection) error {
				before = s.outContains("100 Continue")
				body, err := readBody(c, reqInfo{})
				after = s.outContains(cont)
				if err != nil {
					return err
				}
				return c.Reply(200, "", body)
			}))
			if before || !after || !ka || err != nil {
				t.Fatalf("%s: 100 before Read %v, after Read %v; Serve %v, %v; output %q", mode, before, after, ka, err, s.out)
			}
			if !strings.HasPrefix(string(s.out), cont) {
				t.Errorf("%s: output does not start with %q: %q", mode, cont, s.out)
			}
			if strings.Count(string(s.out), "100 Continue") != 1 {
				t.Errorf("%s: 100 Continue sent more than once: %q", mode, s.out)
			}
			if ka, err := c.Serve(0, conn.HandlerFunc(func(_ int, c *conn.Connection) error { return nil })); !ka || err != nil {
				t.Errorf("%s: the request after the 100-continue exchange: %v, %v", mode, ka, err)
			}
			rs, _, perr := parseResponses(s.out, "POST")
			if perr != nil || len(rs) != 3 || rs[0].status != 100 || rs[1].status != 200 || string(rs[1].body) != "hello" || rs[2].status != 200 {
				t.Errorf("%s: responses %s (%v), want 100, 200 hello, 200: %q", mode, statuses(rs), perr, s.out)
			}
		}
	})

	t.Run("no Read, body not sent: no 100 and close", func(t *testing.T) {
		c := conn.New(conn.Config{})
		s := newMemStream(head + "hello")
		s.holdOpen = true
		s.gates = []gate{{at: len(head), open: func(s *memStream) bool { return s.outContains("100 Continue") }}}
		c.Reset(s)
		ka, err := c.Serve(0, conn.HandlerFunc(func(_ int, c *conn.Connection) error {
			return c.Reply(403, "text/plain", []byte("no"))
		}))
		if ka || err != nil {
			t.Errorf("Serve: %v, %v; want false, nil", ka, err)
		}
		rs, _, perr := parseResponses(s.out, "POST")
		if perr != nil || len(rs) != 1 || rs[0].status != 403 || !rs[0].closes() {
			t.Errorf("want one 403 with Connection: close and no 100: %v %q", perr, s.out)
		}
	})

	runCases(t, []hcase{
		{
			name: "no Read, body already received: no 100",
			in:   head + "hello" + get("/2"),
			handler: func(c *conn.Connection, info reqInfo, s *memStream) error {
				return c.Reply(200, "text/plain", []byte("unread"))
			},
			anyMode: true,
			respAny: true,
			end:     errDontCare,
			extra: func(t *testing.T, r *runResult) {
				if len(r.resps) == 0 || r.resps[0].status != 200 || string(r.resps[0].body) != "unread" {
					t.Fatalf("want a 200 first (no 100): %s", statuses(r.resps))
				}
				// Whole: the body arrived with the head, so the connection may stay open and must
				// then serve /2 correctly. Otherwise it must close after the first response.
				switch {
				case len(r.finals) == 2:
					if r.finals[0].closes() || len(r.reqs) != 2 || r.reqs[1]["Path"] != "/2" {
						t.Errorf("kept alive but did not serve /2 correctly: %s", statuses(r.finals))
					}
				case len(r.finals) == 1:
					if !r.finals[0].closes() || r.serves[0].keepAlive {
						t.Errorf("stopped after one response but without Connection: close")
					}
				default:
					t.Errorf("responses %s", statuses(r.finals))
				}
			},
		},
		{
			name: "whole body in the first read keeps the connection",
			in:   head + "hello" + get("/2"),
			handler: func(c *conn.Connection, info reqInfo, s *memStream) error {
				return c.Reply(200, "text/plain", []byte("unread"))
			},
			maxRead: 1 << 20,
			want:    []wantResp{ok("unread"), ok("unread")},
			end:     errClean,
		},
		{
			name: "100-continue in HTTP/1.0 is ignored",
			in:   "POST /up HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
			want: []wantResp{{status: 200, body: "hello"}},
			end:  nil,
			extra: func(t *testing.T, r *runResult) {
				if len(r.resps) != 1 {
					t.Errorf("an HTTP/1.0 request got an interim response: %s", statuses(r.resps))
				}
			},
		},
		{
			name: "100-continue is case-insensitive",
			in:   "POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\nhello",
			want: []wantResp{ok("hello")},
			end:  errClean,
			extra: func(t *testing.T, r *runResult) {
				if len(r.resps) != 2 || r.resps[0].status != 100 {
					t.Errorf("responses %s, want 100 then 200", statuses(r.resps))
				}
			},
		},
		{name: "unknown expectation", in: "POST /up HTTP/1.1\r\nHost: x\r\nExpect: fly\r\nContent-Length: 5\r\n\r\nhello", want: []wantResp{bad(417)}, end: conn.ErrExpectation},
		{name: "unknown expectation after 100-continue", in: "POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue, fly\r\nContent-Length: 5\r\n\r\nhello", want: []wantResp{bad(417)}, end: conn.ErrExpectation},
	})
}

// TestH11_ExpectIsAList: Expect is a comma-separated list (RFC 9110 10.1.1 and 5.6.1), so empty
// elements are ignored: an empty Expect field is no expectation, not one that fails with 417 (as in
// net/http), and "100-continue," asks for a 100 Continue.
func TestH11_ExpectIsAList(t *testing.T) {
	want100 := func(t *testing.T, r *runResult) {
		if len(r.resps) != 2 || r.resps[0].status != 100 {
			t.Errorf("responses %s, want 100 then 200", statuses(r.resps))
		}
	}
	runCases(t, []hcase{
		{name: "empty Expect", in: "GET / HTTP/1.1\r\nHost: x\r\nExpect:\r\n\r\n" + get("/2"), want: []wantResp{ok(""), ok("")}, end: errClean},
		{name: "Expect of blanks and commas", in: "POST /up HTTP/1.1\r\nHost: x\r\nExpect:  , \r\nContent-Length: 5\r\n\r\nhello" + get("/2"), want: []wantResp{ok("hello"), ok("")}, end: errClean},
		{name: "100-continue with an empty element", in: "POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue,\r\nContent-Length: 5\r\n\r\nhello", want: []wantResp{ok("hello")}, end: errClean, extra: want100},
		{name: "100-continue on two lines", in: "POST /up HTTP/1.1\r\nHost: x\r\nExpect:\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello", want: []wantResp{ok("hello")}, end: errClean, extra: want100},
	})
}

// TestH11_HandlerOwn100NotRepeated checks that a 100 Continue the handler sends itself
// (WriteHeader(100)) stands in for the automatic one, as in net/http: Read sends no second 100, and a
// body the handler leaves unread is drained as after an automatic 100, since the client was told to
// send it. Other interim codes (103 Early Hints) do not stand in for it.
func TestH11_HandlerOwn100NotRepeated(t *testing.T) {
	const cont = "HTTP/1.1 100 Continue\r\n\r\n"
	head := "POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
	cases := []struct {
		name    string
		interim int
		read    bool
		want    string // the statuses of every response, interim ones included
		body    string
	}{
		{"own 100, then Read", 100, true, "100,200,200", "hello"},
		{"own 100, body left unread", 100, false, "100,200,200", "unread"},
		{"103, then Read: the automatic 100 follows", 103, true, "103,100,200,200", "hello"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, mode := range []string{"whole", "bytewise"} {
				c := conn.New(conn.Config{})
				s := newMemStream(head + "hello" + get("/2"))
				s.holdOpen = true
				if mode == "bytewise" {
					s.maxRead = 1
				}
				// The client sends the body once it has read a 100 Continue, whoever sent it.
				s.gates = []gate{{at: len(head), open: func(s *memStream) bool { return s.outContains(cont) }}}
				c.Reset(s)
				ka, err := c.Serve(0, conn.HandlerFunc(func(_ int, c *conn.Connection) error {
					if err := c.WriteHeader(tc.interim); err != nil {
						return err
					}
					body := []byte("unread")
					if tc.read {
						var err error
						if body, err = readBody(c, reqInfo{}); err != nil {
							return err
						}
					}
					return c.Reply(200, "text/plain", body)
				}))
				if !ka || err != nil {
					t.Fatalf("%s: Serve %v, %v; want true, nil; output %q", mode, ka, err, s.out)
				}
				if ka, err := c.Serve(0, conn.HandlerFunc(func(_ int, c *conn.Connection) error { return nil })); !ka || err != nil {
					t.Errorf("%s: the request after it: %v, %v", mode, ka, err)
				}
				if n := strings.Count(string(s.out), "100 Continue"); n != 1 {
					t.Errorf("%s: 100 Continue sent %d times, want once: %q", mode, n, s.out)
				}
				rs, _, perr := parseResponses(s.out, "POST")
				if got := statuses(rs); perr != nil || got != tc.want || string(rs[len(rs)-2].body) != tc.body {
					t.Errorf("%s: responses %s (%v), want %s with body %q: %q", mode, got, perr, tc.want, tc.body, s.out)
				}
			}
		})
	}
}

func TestH12_Drain(t *testing.T) {
	noRead := func(c *conn.Connection, info reqInfo, s *memStream) error {
		return c.Reply(200, "text/plain", []byte("ok"))
	}
	body3k := strings.Repeat("d", 3000)
	body5k := strings.Repeat("d", 5000)
	chunked5k := strings.Repeat("3e8\r\n"+strings.Repeat("c", 1000)+"\r\n", 5) + "0\r\n\r\n"
	runCases(t, []hcase{
		{name: "small unread body drained", in: post("/a", "unread") + get("/2"), handler: noRead, want: []wantResp{ok("ok"), ok("ok")}, seen: []reqInfo{nil, {"Path": "/2"}}, end: errClean},
		{name: "unread body larger than the buffer, under MaxDrain", in: post("/a", body3k) + get("/2"), handler: noRead, maxRead: 512, want: []wantResp{ok("ok"), ok("ok")}, end: errClean},
		{name: "unread chunked body drained", in: chunkedPost("/a", "5\r\nhello\r\n0\r\nT: 1\r\n\r\n") + get("/2"), handler: noRead, want: []wantResp{ok("ok"), ok("ok")}, end: errClean},
		{name: "partly read body drained", in: post("/a", "0123456789") + get("/2"), handler: func(c *conn.Connection, info reqInfo, s *memStream) error {
			var p [3]byte
			n, _ := io.ReadFull(c, p[:])
			return c.Reply(200, "text/plain", p[:n])
		}, want: []wantResp{ok("012"), ok("")}, end: errClean},
		{
			name: "unread CL body over MaxDrain closes", cfg: conn.Config{MaxDrain: 1000}, in: post("/a", body5k) + get("/never"), handler: noRead, maxRead: 512,
			want: []wantResp{{status: 200, conn: "close", body: "ok"}}, end: nil,
			extra: func(t *testing.T, r *runResult) {
				if r.s.pos > 2048+1000+512 {
					t.Errorf("read %d bytes of a 5000-byte body with MaxDrain 1000", r.s.pos)
				}
			},
		},
		{
			name: "unread chunked body over MaxDrain closes", cfg: conn.Config{MaxDrain: 1000}, in: chunkedPost("/a", chunked5k) + get("/never"), handler: noRead, maxRead: 512,
			want: []wantResp{{status: 200, conn: "close", body: "ok"}}, end: nil,
		},
	})
}

// TestH8_ContentLengthRead checks the Read contract on a Content-Length body: no byte beyond it, io.EOF
// at its end, and EOF again after that.
func TestH8_ContentLengthRead(t *testing.T) {
	in := post("/a", "0123456789") + get("/2")
	for _, f := range feedsFor(len(in)) {
		c := conn.New(conn.Config{})
		s := newMemStream(in)
		s.maxRead, s.split = f.maxRead, f.split
		c.Reset(s)
		var got []byte
		var errs []error
		ka, err := c.Serve(0, conn.HandlerFunc(func(_ int, c *conn.Connection) error {
			p := make([]byte, 64)
			for range 50 {
				n, err := c.Read(p)
				got = append(got, p[:n]...)
				if err != nil {
					errs = append(errs, err)
					if len(errs) == 2 {
						break
					}
				}
			}
			return nil
		}))
		if !ka || err != nil || string(got) != "0123456789" || len(errs) != 2 || errs[0] != io.EOF || errs[1] != io.EOF {
			t.Fatalf("%s: Serve %v %v; body %q; read errors %v (want io.EOF twice, unwrapped)", f.name, ka, err, got, errs)
		}
		if n, err := c.Read(make([]byte, 4)); !errors.Is(err, conn.ErrInvalidState) || n != 0 {
			t.Errorf("%s: Read after Serve: %d, %v; want ErrInvalidState", f.name, n, err)
		}
	}
}
