package conn_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/edged/edged/pkg/conn"
)

// feed is one way of delivering a request script: whole, one byte per Read, or in two pieces.
type feed struct {
	name    string
	maxRead int
	split   int
}

// feedsFor returns the feeds every table case runs through: whole, byte by byte, and split at every
// position (at most about 200 positions for long inputs, always including both ends).
func feedsFor(n int) []feed {
	fs := []feed{{name: "whole"}, {name: "bytewise", maxRead: 1}}
	step := 1
	if n > 400 {
		step = n / 200
	}
	for k := 1; k < n; k += step {
		fs = append(fs, feed{name: "split@" + strconv.Itoa(k), split: k})
	}
	if n > 1 && (n-1)%step != 0 {
		fs = append(fs, feed{name: "split@" + strconv.Itoa(n-1), split: n - 1})
	}
	return fs
}

// reqInfo is what a handler saw of a request, as strings so that tables can name a subset of it.
type reqInfo map[string]string

// recordRequest copies what the request exposes (the slices are only valid during the handler).
func recordRequest(c *conn.Connection) reqInfo {
	info := reqInfo{
		"Method":     c.Method().String(),
		"MethodName": string(c.MethodName()),
		"Target":     string(c.Target()),
		"Path":       string(c.Path()),
		"Proto":      "1." + strconv.Itoa(c.ProtoMinor()),
		"CL":         strconv.FormatInt(c.ContentLength(), 10),
		"KeepAlive":  strconv.FormatBool(c.KeepAlive()),
		"State":      c.State().String(),
	}
	if q := c.Query(); q == nil {
		info["Query"] = "<nil>"
	} else {
		info["Query"] = string(q)
	}
	if d, err := c.DecodedPath(); err != nil {
		info["DecodedPath"] = "error:" + errName(err)
	} else {
		info["DecodedPath"] = string(d)
	}
	if h := c.Header("Host"); h != nil {
		info["Host"] = string(h)
	}
	if h := c.Host(); h != nil {
		info["Authority"] = string(h)
	}
	var hs []string
	for i := 0; i < c.NumHeaders(); i++ {
		name, value := c.HeaderAt(i)
		hs = append(hs, string(name)+": "+string(value))
	}
	info["Headers"] = strings.Join(hs, "|")
	info["NumHeaders"] = strconv.Itoa(c.NumHeaders())
	return info
}

// readBody reads the request body to its end in small, odd-sized pieces and records it in info.
func readBody(c *conn.Connection, info reqInfo) ([]byte, error) {
	var body []byte
	var p [7]byte
	for {
		n, err := c.Read(p[:])
		body = append(body, p[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			info["Body"] = string(body)
			info["BodyErr"] = errName(err)
			return body, err
		}
		if n == 0 {
			info["Body"] = string(body)
			info["BodyErr"] = "zero-length read without error"
			return body, errors.New("Read returned 0, nil")
		}
	}
	info["Body"] = string(body)
	info["BodyErr"] = ""
	return body, nil
}

// echoHandler reads the whole body and answers 200 with it: the default handler of the tables.
func echoHandler(c *conn.Connection, info reqInfo, _ *memStream) error {
	body, err := readBody(c, info)
	if err != nil {
		return err
	}
	return c.Reply(200, "text/plain", body)
}

// errName names the sentinel an error matches, for readable tables and failure messages.
func errName(err error) string {
	if err == nil {
		return ""
	}
	named := []struct {
		name string
		err  error
	}{
		{"ErrIncompleteBody", conn.ErrIncompleteBody},
		{"ErrChunkedFraming", conn.ErrChunkedFraming},
		{"ErrChunkedMetaTooBig", conn.ErrChunkedMetaTooBig},
		{"ErrBodyTooLarge", conn.ErrBodyTooLarge},
		{"ErrBadRequest", conn.ErrBadRequest},
		{"ErrHeadTimeout", conn.ErrHeadTimeout},
		{"ErrURITooLong", conn.ErrURITooLong},
		{"ErrExpectation", conn.ErrExpectation},
		{"ErrHeadTooLarge", conn.ErrHeadTooLarge},
		{"ErrTooManyHeaders", conn.ErrTooManyHeaders},
		{"ErrNotImplemented", conn.ErrNotImplemented},
		{"ErrVersion", conn.ErrVersion},
		{"ErrInvalidState", conn.ErrInvalidState},
		{"ErrBadResponseHeader", conn.ErrBadResponseHeader},
		{"ErrHeaderSpace", conn.ErrHeaderSpace},
		{"ErrBadStatus", conn.ErrBadStatus},
		{"ErrBodyNotAllowed", conn.ErrBodyNotAllowed},
		{"ErrContentLength", conn.ErrContentLength},
		{"ErrHandlerTimeout", conn.ErrHandlerTimeout},
		{"ErrIdle", conn.ErrIdle},
		{"ErrHandlerPanic", conn.ErrHandlerPanic},
		{"io.EOF", io.EOF},
		{"io.ErrUnexpectedEOF", io.ErrUnexpectedEOF},
		{"os.ErrDeadlineExceeded", os.ErrDeadlineExceeded},
	}
	for _, n := range named {
		if errors.Is(err, n.err) {
			return n.name
		}
	}
	return err.Error()
}

// serveResult is one Serve call and the output it produced.
type serveResult struct {
	keepAlive bool
	err       error
	state     conn.State
	out       []byte // bytes written to the stream during this call
	method    string // method of the request the handler saw; "" if the handler was not called
}

// parsedResp is one response parsed back with net/http.
type parsedResp struct {
	status  int
	proto   string
	line    string // the status line as sent, without CRLF
	header  http.Header
	body    []byte
	bodyErr error
	raw     []byte
	serve   int // index of the Serve call that sent it
}

// closes reports whether the response carries Connection: close (net/http removes that header from
// the parsed Header, so the raw head is read).
func (r parsedResp) closes() bool { return hasToken(r.rawHeader("Connection"), "close") }

// rawHeader returns the values of the header lines named name, read from the raw response head.
func (r parsedResp) rawHeader(name string) []string {
	head, _, _ := strings.Cut(string(r.raw), "\r\n\r\n")
	var vs []string
	for _, line := range strings.Split(head, "\r\n")[1:] {
		k, v, found := strings.Cut(line, ":")
		if found && strings.EqualFold(k, name) {
			vs = append(vs, strings.TrimSpace(v))
		}
	}
	return vs
}

func hasToken(values []string, token string) bool {
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// parseResponses parses out as a sequence of responses to requests made with method. It returns the
// responses (1xx included), and the bytes it could not parse as a response.
func parseResponses(out []byte, method string) ([]parsedResp, []byte, error) {
	var rs []parsedResp
	rd := bytes.NewReader(out)
	br := bufio.NewReader(rd)
	consumed := func() int { return len(out) - rd.Len() - br.Buffered() }
	for {
		start := consumed()
		if start == len(out) {
			return rs, nil, nil
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			return rs, out[start:], fmt.Errorf("response %d: %w", len(rs), err)
		}
		body, berr := io.ReadAll(resp.Body)
		end := consumed()
		line := string(out[start:])
		if i := strings.Index(line, "\r\n"); i >= 0 {
			line = line[:i]
		}
		rs = append(rs, parsedResp{
			status: resp.StatusCode, proto: resp.Proto, line: line, header: resp.Header,
			body: body, bodyErr: berr, raw: out[start:end],
		})
		if berr != nil {
			return rs, nil, nil
		}
	}
}

// runResult is everything one run of a script produced.
type runResult struct {
	s      *memStream
	serves []serveResult
	reqs   []reqInfo
	resps  []parsedResp // every response, 1xx included, in order
	finals []parsedResp // the final (non-1xx) responses
	rest   []byte       // output that did not parse as responses
	perr   error
}

// handlerFunc is the shape of the table handlers: the connection, the record of the request to fill,
// and the stream (to observe what has been written so far).
type handlerFunc func(c *conn.Connection, info reqInfo, s *memStream) error

// serveAll binds s to c and calls Serve until it reports that the connection ends (at most max calls).
func serveAll(c *conn.Connection, s *memStream, h handlerFunc, max int) *runResult {
	r := &runResult{s: s}
	c.Reset(s)
	for i := 0; i < max; i++ {
		before := len(s.out)
		var method string
		handler := conn.HandlerFunc(func(taskID int, c *conn.Connection) error {
			info := recordRequest(c)
			method = info["MethodName"]
			r.reqs = append(r.reqs, info)
			return h(c, info, s)
		})
		ka, err := c.Serve(0, handler)
		r.serves = append(r.serves, serveResult{
			keepAlive: ka, err: err, state: c.State(), out: s.out[before:len(s.out):len(s.out)],
			method: method,
		})
		if !ka {
			break
		}
	}
	for i, sr := range r.serves {
		m := sr.method
		if m == "" {
			m = "GET"
		}
		rs, rest, err := parseResponses(sr.out, m)
		for j := range rs {
			rs[j].serve = i
		}
		r.resps = append(r.resps, rs...)
		if err != nil && r.perr == nil {
			r.perr, r.rest = fmt.Errorf("serve %d: %w", i, err), rest
		}
	}
	for _, resp := range r.resps {
		if resp.status >= 200 {
			r.finals = append(r.finals, resp)
		}
	}
	return r
}

var dateLine = regexp.MustCompile(`(?m)^Date: [^\r\n]*\r\n`)

// normalized is the output with the Date header's value blanked, for comparing runs.
func normalized(out []byte) string {
	return dateLine.ReplaceAllString(string(out), "Date: *\r\n")
}

// errClean as a case's end means: after the last response, the next Serve found no request and
// returned keepAlive false with io.EOF (input ended) or ErrIdle (input held open).
var errClean = errors.New("clean end")

// errAny as a case's end accepts any non-nil error from the last Serve.
var errAny = errors.New("any error")

// errDontCare as a case's end accepts any result of the last Serve (extra checks the rest).
var errDontCare = errors.New("any result")

// wantResp is an expected final response.
type wantResp struct {
	status int
	conn   string // "close": Connection carries close; "keep": it does not; "": not checked
	body   any    // nil: not checked (for error codes: a short text body); string: exact
	hdr    map[string]string
}

func ok(body string) wantResp { return wantResp{status: 200, conn: "keep", body: body} }

func bad(code int) wantResp { return wantResp{status: code, conn: "close"} }

// hcase is one row of the H-rule tables.
type hcase struct {
	name    string
	in      string
	cfg     conn.Config
	handler handlerFunc // nil: echoHandler
	want    []wantResp  // final responses, in order
	seen    []reqInfo   // per handler call: the keys to compare
	end     error       // errClean, nil (last Serve returned false, nil), errAny, or a sentinel for errors.Is
	eofOnly bool        // the input is truncated on purpose: only run it with a stream that ends in EOF
	anyMode bool        // the output may differ between feeds (checked per run only)
	respAny bool        // the responses are checked by extra only
	maxRead int         // > 0: cap reads in every feed (for huge inputs); the split feeds are skipped
	extra   func(t *testing.T, r *runResult)
}

// runCases runs every case through every feed, with the stream ending in EOF and held open.
func runCases(t *testing.T, cases []hcase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { runCase(t, tc) })
	}
}

func runCase(t *testing.T, tc hcase) {
	t.Helper()
	c := conn.New(tc.cfg)
	h := tc.handler
	if h == nil {
		h = echoHandler
	}
	feeds := feedsFor(len(tc.in))
	if tc.maxRead > 0 {
		feeds = []feed{{name: "maxRead=" + strconv.Itoa(tc.maxRead), maxRead: tc.maxRead}}
	}
	for _, hold := range []bool{false, true} {
		if hold && tc.eofOnly {
			continue
		}
		var ref string
		for i, f := range feeds {
			s := newMemStream(tc.in)
			s.maxRead, s.split, s.holdOpen = f.maxRead, f.split, hold
			r := serveAll(c, s, h, 64)
			mode := f.name
			if hold {
				mode += "/held-open"
			} else {
				mode += "/eof"
			}
			if msg := checkRun(tc, r, hold); msg != "" {
				t.Errorf("%s: %s\ninput:  %q\noutput: %q", mode, msg, tc.in, s.out)
				return
			}
			if tc.extra != nil {
				t.Run(mode, func(t *testing.T) { tc.extra(t, r) })
				if t.Failed() {
					return
				}
			}
			if tc.anyMode {
				continue
			}
			if i == 0 {
				ref = normalized(s.out)
			} else if got := normalized(s.out); got != ref {
				t.Errorf("%s: output differs from the whole-input run (H1: the way bytes arrive must not matter)\nwhole: %q\nhere:  %q\ninput: %q",
					mode, ref, got, tc.in)
				return
			}
		}
	}
}

// checkRun compares one run with the case; it returns a description of the first mismatch.
func checkRun(tc hcase, r *runResult, hold bool) string {
	if r.s.blockedForever {
		return "the connection read the stream without a deadline (would block forever)"
	}
	if r.perr != nil {
		return fmt.Sprintf("output is not a sequence of HTTP responses: %v (unparsed %q)", r.perr, r.rest)
	}
	n := len(r.serves)
	last := r.serves[n-1]
	if n == 64 {
		return "Serve kept returning keepAlive true"
	}
	for i, sr := range r.serves[:n-1] {
		if sr.err != nil {
			return fmt.Sprintf("Serve %d returned keepAlive true with error %v", i, sr.err)
		}
	}
	if last.keepAlive {
		return "last Serve returned keepAlive true"
	}
	switch {
	case tc.end == errClean:
		want := io.EOF
		if hold {
			want = conn.ErrIdle
		}
		if !errors.Is(last.err, want) {
			return fmt.Sprintf("last Serve: err %v (%s), want %s", last.err, errName(last.err), errName(want))
		}
		if len(last.out) != 0 {
			return fmt.Sprintf("the Serve that found no request wrote %q", last.out)
		}
	case tc.end == nil:
		if last.err != nil {
			return fmt.Sprintf("last Serve: err %v (%s), want nil", last.err, errName(last.err))
		}
	case tc.end == errDontCare:
	case tc.end == errAny:
		if last.err == nil {
			return "last Serve: err nil, want an error"
		}
	default:
		if !errors.Is(last.err, tc.end) {
			return fmt.Sprintf("last Serve: err %v (%s), want errors.Is %s", last.err, errName(last.err), errName(tc.end))
		}
	}
	for i, resp := range r.resps {
		if msg := framingProblem(resp); msg != "" {
			return fmt.Sprintf("response %d: %s: %q", i, msg, resp.raw)
		}
	}
	if tc.respAny {
		tc.want = nil
	} else if len(r.finals) != len(tc.want) {
		return fmt.Sprintf("%d responses (%s), want %d (%s)", len(r.finals), statuses(r.finals), len(tc.want), wantStatuses(tc.want))
	}
	for i, w := range tc.want {
		g := r.finals[i]
		if g.status != w.status {
			return fmt.Sprintf("response %d: status %d, want %d", i, g.status, w.status)
		}
		switch w.conn {
		case "close":
			if !g.closes() {
				return fmt.Sprintf("response %d: no Connection: close (header %q)", i, g.rawHeader("Connection"))
			}
		case "keep":
			if g.closes() {
				return fmt.Sprintf("response %d: unexpected Connection: close", i)
			}
		}
		switch b := w.body.(type) {
		case string:
			if string(g.body) != b || g.bodyErr != nil {
				return fmt.Sprintf("response %d: body %q (err %v), want %q", i, g.body, g.bodyErr, b)
			}
		case nil:
			if w.status >= 400 && (len(g.body) == 0 || len(g.body) > 512) {
				return fmt.Sprintf("response %d: error response body %q, want a short text", i, g.body)
			}
		}
		for k, v := range w.hdr {
			got := strings.Join(g.rawHeader(k), ",")
			if got != v {
				return fmt.Sprintf("response %d: header %s = %q, want %q", i, k, got, v)
			}
		}
	}
	if len(r.reqs) < len(tc.seen) {
		return fmt.Sprintf("handler called %d times, want at least %d", len(r.reqs), len(tc.seen))
	}
	for i, want := range tc.seen {
		if want == nil {
			continue
		}
		keys := make([]string, 0, len(want))
		for k := range want {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if got, okk := r.reqs[i][k]; !okk || got != want[k] {
				return fmt.Sprintf("request %d: %s = %q, want %q", i, k, got, want[k])
			}
		}
	}
	return ""
}

// framingProblem checks what every response must satisfy: framing and connection headers at most once,
// never both Content-Length and Transfer-Encoding, no body where none is allowed, Date on final responses.
func framingProblem(resp parsedResp) string {
	for _, name := range []string{"Content-Length", "Transfer-Encoding", "Connection", "Date"} {
		if n := len(resp.rawHeader(name)); n > 1 {
			return fmt.Sprintf("%d %s lines", n, name)
		}
	}
	if len(resp.rawHeader("Content-Length")) > 0 && len(resp.rawHeader("Transfer-Encoding")) > 0 {
		return "both Content-Length and Transfer-Encoding"
	}
	if resp.status < 200 || resp.status == 204 || resp.status == 304 {
		if len(resp.rawHeader("Transfer-Encoding")) > 0 || len(resp.body) > 0 {
			return "a body or Transfer-Encoding on a response that has none"
		}
	}
	if resp.status >= 200 && len(resp.rawHeader("Date")) != 1 {
		return "no Date"
	}
	return ""
}

func statuses(rs []parsedResp) string {
	var s []string
	for _, r := range rs {
		s = append(s, strconv.Itoa(r.status))
	}
	return strings.Join(s, ",")
}

func wantStatuses(ws []wantResp) string {
	var s []string
	for _, w := range ws {
		s = append(s, strconv.Itoa(w.status))
	}
	return strings.Join(s, ",")
}

// serveOnce runs input (whole, ended by EOF) through a fresh connection with handler h.
func serveOnce(t *testing.T, cfg conn.Config, input string, h handlerFunc) *runResult {
	t.Helper()
	c := conn.New(cfg)
	s := newMemStream(input)
	r := serveAll(c, s, h, 64)
	if r.perr != nil {
		t.Fatalf("output is not a sequence of HTTP responses: %v\ninput:  %q\noutput: %q", r.perr, input, s.out)
	}
	return r
}

// get is a minimal HTTP/1.1 GET.
func get(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n" }

// post is an HTTP/1.1 POST with a Content-Length body.
func post(path, body string) string {
	return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// chunkedPost is an HTTP/1.1 POST whose body (given already chunk-encoded) is chunked.
func chunkedPost(path, encoded string) string {
	return "POST " + path + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + encoded
}
