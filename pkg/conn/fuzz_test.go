package conn_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"strings"
	"testing"

	"github.com/edged/edged/pkg/conn"
)

// fuzzConfig has small limits, so that the fuzzer reaches them with short inputs.
var fuzzConfig = conn.Config{BufferSize: 256, MaxHeaders: 8, MaxBody: 1024, MaxDrain: 512}

// FuzzParseRequest feeds arbitrary bytes through Serve, whole and byte by byte, with a handler that
// reads the whole body and replies. Whatever the input: no panic, no endless loop, the output is a
// sequence of well-formed responses, an error response closes and is the last one, and the way the
// bytes arrive does not change the output (CONTRACT H1, H18, H21).
func FuzzParseRequest(f *testing.F) {
	for _, seed := range []string{get("/"), post("/a", "body"), chunkedPost("/c", "5\r\nhello\r\n0\r\n\r\n") + get("/2")} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var ref string
		for _, f := range []feed{{name: "whole"}, {name: "bytewise", maxRead: 1}} {
			c := conn.New(fuzzConfig)
			s := &memStream{in: data, maxRead: f.maxRead}
			r := serveAll(c, s, echoHandler, len(data)+2)
			if msg := fuzzCheck(r); msg != "" {
				t.Fatalf("%s: %s\ninput:  %q\noutput: %q", f.name, msg, data, s.out)
			}
			out := strings.ReplaceAll(normalized(s.out), "HTTP/1.1 100 Continue\r\n\r\n", "")
			if f.maxRead == 0 {
				ref = out
			} else if out != ref {
				t.Fatalf("output depends on how the input arrives (H1)\ninput:    %q\nwhole:    %q\nbytewise: %q", data, ref, out)
			}
		}
	})
}

// fuzzCheck returns what is wrong with a run of FuzzParseRequest, or "".
func fuzzCheck(r *runResult) string {
	n := len(r.serves)
	if last := r.serves[n-1]; last.keepAlive {
		return fmt.Sprintf("%d Serve calls for %d input bytes and still keepAlive: Serve does not consume input", n, len(r.s.in))
	}
	if r.s.blockedForever {
		return "read without deadline"
	}
	if r.perr != nil {
		return fmt.Sprintf("output is not a sequence of responses: %v (unparsed %q)", r.perr, r.rest)
	}
	for i, sr := range r.serves {
		var finals []parsedResp
		for _, resp := range r.resps {
			if resp.serve != i {
				continue
			}
			if msg := framingProblem(resp); msg != "" {
				return fmt.Sprintf("serve %d: %s", i, msg)
			}
			if resp.proto != "HTTP/1.1" && resp.proto != "HTTP/1.0" {
				return fmt.Sprintf("serve %d: status line %q", i, resp.line)
			}
			if resp.status < 200 {
				if resp.status != 100 || len(finals) > 0 {
					return fmt.Sprintf("serve %d: interim response %d after %d final ones", i, resp.status, len(finals))
				}
				continue
			}
			finals = append(finals, resp)
		}
		if sr.keepAlive {
			if sr.err != nil || len(finals) != 1 || finals[0].status != 200 || finals[0].closes() || finals[0].bodyErr != nil {
				return fmt.Sprintf("serve %d kept the connection (err %v) with responses %s", i, sr.err, statuses(finals))
			}
			continue
		}
		if len(finals) > 1 {
			return fmt.Sprintf("serve %d sent %d final responses", i, len(finals))
		}
		if len(finals) == 1 && finals[0].status >= 400 && !finals[0].closes() {
			return fmt.Sprintf("serve %d: error response %d without Connection: close", i, finals[0].status)
		}
		if len(finals) == 0 && sr.err == nil {
			return fmt.Sprintf("serve %d ended the connection without error and without a response", i)
		}
	}
	return ""
}

const (
	fuzzChunkedHead = "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	fuzzMarker      = "GET /marker HTTP/1.1\r\nHost: x\r\n\r\n"
)

// FuzzChunked decodes fuzzed chunked bodies with edged and with net/http and compares: what edged
// accepts, net/http accepts with the same body and the same end (so that no two parsers disagree on
// where the message ends, CONTRACT H5, H9); what is valid by RFC 9112 7.1, edged accepts; and edged
// never consumes a byte after the body: the request behind it is served.
//
// Differences by design: edged is stricter where net/http is lenient (bare LF in trailers, obs-fold in
// trailers, whitespace after a chunk size) and bounds extensions plus trailers by B; net/http is
// stricter on chunk sizes of more than 16 hex digits (leading zeros) and on BWS before ';' (RFC 9112
// 7.1.1 allows it). These are the only disagreements the target tolerates.
func FuzzChunked(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		in := fuzzChunkedHead + string(body) + fuzzMarker
		var ref edgedChunkedResult
		for i, f := range []feed{{name: "whole"}, {name: "bytewise", maxRead: 1}} {
			got := edgedChunked(t, in, f)
			if i == 0 {
				ref = got
			} else if got != ref {
				t.Fatalf("outcome depends on how the input arrives\ninput:    %q\nwhole:    %+v\nbytewise: %+v", body, ref, got)
			}
		}
		checkChunked(t, body, ref)
		if ref.err == "" && ref.after == fuzzMarker {
			// The request behind a valid chunked body is served, through a real keep-alive Serve loop.
			r := serveAll(conn.New(conn.Config{}), newMemStream(in), echoHandler, 4)
			if len(r.reqs) != 2 || r.reqs[1]["Path"] != "/marker" || len(r.finals) != 2 {
				t.Fatalf("the request after a valid chunked body was not served\ninput:  %q\noutput: %q", body, r.s.out)
			}
		}
	})
}

// edgedChunkedResult is what edged made of a chunked request: the body, the read error, and the bytes
// after the body (taken with Unbind, so that the end of the message is exact).
type edgedChunkedResult struct {
	body, err, after string
}

func edgedChunked(t *testing.T, in string, f feed) edgedChunkedResult {
	c := conn.New(conn.Config{})
	s := newMemStream(in)
	s.maxRead = f.maxRead
	c.Reset(s)
	var res edgedChunkedResult
	called := false
	c.Serve(0, conn.HandlerFunc(func(_ int, c *conn.Connection) error {
		called = true
		info := reqInfo{}
		b, err := readBody(c, info)
		res.body, res.err = string(b), info["BodyErr"]
		if err != nil {
			return err
		}
		_, buffered, err := c.Unbind()
		if err != nil {
			return err
		}
		res.after = string(buffered) + string(s.remaining())
		return nil
	}))
	if !called {
		t.Fatalf("%s: the chunked request head was refused: %q", f.name, s.out)
	}
	return res
}

func checkChunked(t *testing.T, body []byte, e edgedChunkedResult) {
	t.Helper()
	edgedOK := e.err == ""
	rest := string(body) + fuzzMarker

	// net/http: the whole request and its body; what the reader still holds is the rest.
	src := strings.NewReader(fuzzChunkedHead + rest)
	br := bufio.NewReader(src)
	req, err := http.ReadRequest(br)
	if err != nil {
		t.Fatalf("net/http refused the fixed head: %v", err)
	}
	netBody, netErr := io.ReadAll(req.Body)
	netOK := netErr == nil
	var netAfter string
	if netOK {
		buffered, _ := br.Peek(br.Buffered())
		remaining, _ := io.ReadAll(src)
		netAfter = string(buffered) + string(remaining)
		// httputil's decoder (the same one, without trailers) agrees on the data.
		cb, cerr := io.ReadAll(httputil.NewChunkedReader(strings.NewReader(rest)))
		if cerr != nil || !bytes.Equal(cb, netBody) {
			t.Fatalf("httputil.NewChunkedReader %q (%v) disagrees with http.ReadRequest %q", cb, cerr, netBody)
		}
	}
	strict := strictChunked([]byte(rest), conn.DefaultBufferSize)

	switch {
	case edgedOK && netOK:
		if e.body != string(netBody) || e.after != netAfter {
			t.Fatalf("edged and net/http disagree\ninput: %q\nedged:    body %q, then %q\nnet/http: body %q, then %q",
				body, e.body, e.after, netBody, netAfter)
		}
	case edgedOK && !netOK:
		if strict.netStricter == "" {
			t.Fatalf("edged accepts a chunked body net/http refuses (%v)\ninput: %q\nedged body %q, then %q", netErr, body, e.body, e.after)
		}
	case !edgedOK && netOK:
		if strict.valid && !strict.nearLimit {
			t.Fatalf("edged refuses (%s) a chunked body valid by RFC 9112 that net/http accepts\ninput: %q", e.err, body)
		}
	}
	if strict.valid && !strict.nearLimit {
		if !edgedOK || e.body != string(strict.body) || e.after != rest[strict.n:] {
			t.Fatalf("valid chunked body: edged %s body %q then %q; want body %q then %q\ninput: %q",
				e.err, e.body, e.after, strict.body, rest[strict.n:], body)
		}
	}
}

// strictResult is the verdict of the RFC 9112 7.1 reference decoder.
type strictResult struct {
	valid       bool
	body        []byte
	n           int    // bytes of the chunked body, last CRLF included
	nearLimit   bool   // extensions plus trailers come close to the bound: edged may refuse
	netStricter string // why net/http may refuse what edged accepts, if it applies
}

// strictChunked decodes b as a chunked body by the letter of RFC 9112 7.1: CRLF line endings only, hex
// sizes without sign or spaces, extensions as ;name[=token|quoted-string] with BWS, trailers as field
// lines. limit is edged's bound on extension and trailer bytes.
func strictChunked(b []byte, limit int) strictResult {
	var r strictResult
	if hexRun := leadingHexRun(b); hexRun > 16 {
		r.netStricter = "more than 16 hex digits"
	}
	meta := 0
	i := 0
	line := func() ([]byte, bool) {
		j := bytes.Index(b[i:], []byte("\r\n"))
		if j < 0 {
			return nil, false
		}
		l := b[i : i+j]
		if bytes.IndexByte(l, '\n') >= 0 || bytes.IndexByte(l, '\r') >= 0 {
			return nil, false
		}
		i += j + 2
		return l, true
	}
	for {
		l, ok := line()
		if !ok {
			return r
		}
		k := 0
		for k < len(l) && isHex(l[k]) {
			k++
		}
		if k == 0 {
			return r
		}
		if k > 16 {
			r.netStricter = "more than 16 hex digits"
		}
		var size uint64
		for _, d := range l[:k] {
			if size > (1<<63-1)>>4 {
				return r
			}
			size = size<<4 | uint64(unhexDigit(d))
		}
		ext := l[k:]
		if len(ext) > 0 && (ext[0] == ' ' || ext[0] == '\t') {
			r.netStricter = "BWS before a chunk extension"
		}
		if !validChunkExt(ext) {
			return r
		}
		meta += len(ext)
		if size == 0 {
			break
		}
		if uint64(len(b)-i) < size+2 {
			return r
		}
		r.body = append(r.body, b[i:i+int(size)]...)
		i += int(size)
		if b[i] != '\r' || b[i+1] != '\n' {
			return r
		}
		i += 2
	}
	for {
		l, ok := line()
		if !ok {
			return r
		}
		if len(l) == 0 {
			break
		}
		meta += len(l) + 2
		if !validFieldLine(l) {
			return r
		}
	}
	r.valid, r.n = true, i
	r.nearLimit = meta > limit-64
	return r
}

func leadingHexRun(b []byte) int {
	n := 0
	for n < len(b) && isHex(b[n]) {
		n++
	}
	return n
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhexDigit(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func isTchar(c byte) bool {
	return c < 0x80 && c > ' ' && !strings.ContainsRune("\"(),/:;<=>?@[\\]{}\x7f", rune(c))
}

func isBWS(c byte) bool { return c == ' ' || c == '\t' }

// validChunkExt checks *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ).
func validChunkExt(e []byte) bool {
	i := 0
	skip := func() {
		for i < len(e) && isBWS(e[i]) {
			i++
		}
	}
	token := func() bool {
		s := i
		for i < len(e) && isTchar(e[i]) {
			i++
		}
		return i > s
	}
	for {
		start := i
		skip()
		if i == len(e) {
			return i == start // BWS only in front of ';'
		}
		if e[i] != ';' {
			return false
		}
		i++
		skip()
		if !token() {
			return false
		}
		j := i
		skip()
		if i == len(e) || e[i] != '=' {
			i = j
			continue
		}
		i++
		skip()
		if i < len(e) && e[i] == '"' {
			i++
			for {
				if i >= len(e) {
					return false
				}
				c := e[i]
				if c == '"' {
					i++
					break
				}
				if c == '\\' {
					if i+1 >= len(e) || (e[i+1] < ' ' && e[i+1] != '\t') || e[i+1] == 0x7f {
						return false
					}
					i += 2
					continue
				}
				if (c < ' ' && c != '\t') || c == 0x7f {
					return false
				}
				i++
			}
		} else if !token() {
			return false
		}
	}
}

// validFieldLine checks field-name ":" OWS field-value OWS with visible, space, tab or obs-text bytes.
func validFieldLine(l []byte) bool {
	k := 0
	for k < len(l) && isTchar(l[k]) {
		k++
	}
	if k == 0 || k == len(l) || l[k] != ':' {
		return false
	}
	for _, c := range l[k+1:] {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// TestStrictChunkedReference checks the test's own RFC reference decoder on known inputs.
func TestStrictChunkedReference(t *testing.T) {
	cases := []struct {
		in    string
		valid bool
		body  string
	}{
		{"5\r\nhello\r\n0\r\n\r\n", true, "hello"},
		{"5;a=1;b=\"x;\\\"y\" ; c\r\nhello\r\n0\r\nT: 1\r\n\r\n", true, "hello"},
		{"5 ;a\r\nhello\r\n0\r\n\r\n", true, "hello"},
		{"5 \r\nhello\r\n0\r\n\r\n", false, ""},
		{"5;a \r\nhello\r\n0\r\n\r\n", false, ""},
		{"5\nhello\r\n0\r\n\r\n", false, ""},
		{"5\r\nhello\r\n0\r\nT : 1\r\n\r\n", false, ""},
		{"5\r\nhello\r\n0\r\n\r", false, ""},
		{"+5\r\nhello\r\n0\r\n\r\n", false, ""},
		{"5;=1\r\nhello\r\n0\r\n\r\n", false, ""},
		{"10000000000000000\r\n", false, ""},
	}
	for _, tc := range cases {
		r := strictChunked([]byte(tc.in), 2048)
		if r.valid != tc.valid || (r.valid && string(r.body) != tc.body) {
			t.Errorf("%q: valid %v body %q, want %v %q", tc.in, r.valid, r.body, tc.valid, tc.body)
		}
	}
}
