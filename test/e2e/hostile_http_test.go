//go:build e2e

package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The hostile-input corpus: one test per family, each naming its rule. Every refused request gets the
// contract's status with Connection: close and a short body, then the connection closes; the request
// pipelined behind it (a publish to /topics/smuggled) is never executed; /healthz is answered after
// each case; and once the family is done the daemon's descriptors and goroutines are back at their
// baseline (CONTRACT H18).

// smuggled is pipelined behind every refused request: executed, it would create the topic and send a
// second response.
const smuggled = "PUT /topics/smuggled HTTP/1.1\r\nHost: e2e\r\nContent-Length: 3\r\n\r\nbad"

// hostileCase is a request and the status it must get.
type hostileCase struct {
	name string
	req  string
	code int
}

// hostileDaemon starts the daemon the corpus runs against: /echo on, a small body limit, short timeouts
// so that a case the daemon waits on ends quickly.
func hostileDaemon(t *testing.T, extra ...string) *daemon {
	return startDaemon(t, nil, append([]string{"--enable-echo", "--max-body", "1KiB", "--header-timeout", "2s",
		"--io-timeout", "2s", "--max-conns-per-client", "0"}, extra...)...)
}

// runRefused sends each case with the smuggled publish behind it and checks the refusal, that nothing
// else was answered, that the topic does not exist, and that /healthz is answered; then the leak check.
func runRefused(t *testing.T, d *daemon, cases []hostileCase) {
	t.Helper()
	base := d.baseline(t)
	for _, tc := range cases {
		r, extra, closed := d.exchangeRaw(t, tc.req+smuggled, "POST")
		if r.StatusCode != tc.code || !r.Close || len(r.body) == 0 {
			t.Errorf("%s: status %d (want %d), Connection: close %v, body %q\n%s", tc.name, r.StatusCode, tc.code, r.Close, r.body, r.head)
		}
		if extra != "" || !closed {
			t.Errorf("%s: after the %d the daemon sent %q and closed=%v; want nothing more, then the close", tc.name, r.StatusCode, extra, closed)
		}
		if g := d.exchange(t, "GET /topics/smuggled HTTP/1.1\r\nHost: e2e\r\n\r\n", "GET"); g.StatusCode != 404 {
			t.Fatalf("%s: the request pipelined behind the refused one was executed: GET /topics/smuggled is %d", tc.name, g.StatusCode)
		}
		d.healthz(t)
	}
	d.checkLeaks(t, base)
}

// runAccepted sends each request (which must be answered 200 with body "hello") with a GET /healthz
// pipelined behind it: both answers arrive, in order, on the one connection, so the daemon found the
// end of the body exactly where the sender meant it.
func runAccepted(t *testing.T, d *daemon, cases []hostileCase) {
	t.Helper()
	for _, tc := range cases {
		c := d.dial(t)
		if _, err := io.WriteString(c, tc.req+"GET /healthz HTTP/1.1\r\nHost: e2e\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		r := readResponse(t, c, br, "POST", false)
		if r.StatusCode != 200 || string(r.body) != "hello" || r.Close {
			t.Errorf("%s: %d %q close=%v, want 200 \"hello\" kept alive\n%s", tc.name, r.StatusCode, r.body, r.Close, r.head)
			c.Close()
			continue
		}
		if h := readResponse(t, c, br, "GET", false); h.StatusCode != 200 || string(h.body) != "ok" {
			t.Errorf("%s: the pipelined GET /healthz got %d %q", tc.name, h.StatusCode, h.body)
		}
		c.Close()
	}
}

func post(headers, body string) string {
	return "POST /echo HTTP/1.1\r\nHost: e2e\r\n" + headers + "\r\n" + body
}

const chunkedHello = "5\r\nhello\r\n0\r\n\r\n"

// TestH8_SmugglingRefused: every way to make two parsers disagree on a body's framing is refused:
// Content-Length with Transfer-Encoding in either order, differing Content-Lengths, malformed ones,
// codings other than a final chunked, chunked twice, Transfer-Encoding in HTTP/1.0 or hidden by
// obs-fold, whitespace before the colon, control bytes (CONTRACT H5, H8). Spelling variants that RFC
// 9110 allows (case, optional whitespace, equal Content-Length values) are accepted and framed exactly.
func TestH8_SmugglingRefused(t *testing.T) {
	d := hostileDaemon(t)
	runRefused(t, d, []hostileCase{
		{"CL then TE", post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", chunkedHello), 400},
		{"TE then CL", post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", chunkedHello), 400},
		{"TE then CL 0", post("Transfer-Encoding: chunked\r\nContent-Length: 0\r\n", chunkedHello), 400},
		{"two differing CL", post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"), 400},
		{"differing CL list", post("Content-Length: 5, 6\r\n", "hello!"), 400},
		{"CL plus sign", post("Content-Length: +5\r\n", "hello"), 400},
		{"CL minus sign", post("Content-Length: -5\r\n", "hello"), 400},
		{"CL hex", post("Content-Length: 0x5\r\n", "hello"), 400},
		{"CL inner space", post("Content-Length: 5 5\r\n", "hello"), 400},
		{"CL overflow", post("Content-Length: 99999999999999999999\r\n", "hello"), 400},
		{"CL empty", post("Content-Length: \r\n", "hello"), 400},
		{"TE chunked, identity", post("Transfer-Encoding: chunked, identity\r\n", chunkedHello), 501},
		{"TE identity, chunked", post("Transfer-Encoding: identity, chunked\r\n", chunkedHello), 501},
		{"TE gzip, chunked", post("Transfer-Encoding: gzip, chunked\r\n", chunkedHello), 501},
		{"TE chunked twice in a list", post("Transfer-Encoding: chunked, chunked\r\n", chunkedHello), 400},
		{"TE chunked in two headers", post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", chunkedHello), 400},
		{"TE xchunked", post("Transfer-Encoding: xchunked\r\n", chunkedHello), 501},
		{"TE chunked with a parameter", post("Transfer-Encoding: chunked;q=1\r\n", chunkedHello), 501},
		{"TE quoted", post("Transfer-Encoding: \"chunked\"\r\n", chunkedHello), 501},
		{"TE empty", post("Transfer-Encoding: \r\n", chunkedHello), 400},
		{"TE in HTTP/1.0", "POST /echo HTTP/1.0\r\nHost: e2e\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedHello, 400},
		{"TE obs-fold", post("Transfer-Encoding: identity\r\n chunked\r\n", chunkedHello), 400},
		{"TE folded onto another header", post("X-Pad: a\r\n\tTransfer-Encoding: chunked\r\n", chunkedHello), 400},
		{"TE space before colon", post("Transfer-Encoding : chunked\r\n", chunkedHello), 400},
		{"TE tab before colon", post("Transfer-Encoding\t: chunked\r\n", chunkedHello), 400},
		{"TE vertical tab", post("Transfer-Encoding:\x0bchunked\r\n", chunkedHello), 400},
		{"TE form feed", post("Transfer-Encoding: chunked\x0c\r\n", chunkedHello), 400},
		{"TE NUL", post("Transfer-Encoding: chunked\x00\r\n", chunkedHello), 400},
		{"TE bare CR", post("Transfer-Encoding: chunked\rX: y\r\n", chunkedHello), 400},
		{"TE bare LF", post("Transfer-Encoding: chunked\nX: y\r\n", chunkedHello), 400},
		{"CL bare LF", post("Content-Length: 5\n", "hello"), 400},
	})
	runAccepted(t, d, []hostileCase{
		{"TE Chunked", post("Transfer-Encoding: Chunked\r\n", chunkedHello), 200},
		{"TE CHUNKED", post("Transfer-Encoding: CHUNKED\r\n", chunkedHello), 200},
		{"TE tab before the value", post("Transfer-Encoding:\tchunked\r\n", chunkedHello), 200},
		{"TE trailing whitespace", post("Transfer-Encoding: chunked \t\r\n", chunkedHello), 200},
		{"TE no space", post("Transfer-Encoding:chunked\r\n", chunkedHello), 200},
		{"TE empty list elements", post("Transfer-Encoding: , chunked\r\n", chunkedHello), 200},
		{"equal CL list", post("Content-Length: 5, 5\r\n", "hello"), 200},
		{"two equal CL", post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"), 200},
		{"CL leading zeros", post("Content-Length: 0005\r\n", "hello"), 200},
	})
}

// TestH9_ChunkedHostile: chunk sizes that overflow, carry a sign or a prefix, or are missing; framing
// bytes that are not CRLF; data longer than its size; control bytes in extensions and trailers;
// extensions and trailers beyond B; chunks that add up past --max-body (CONTRACT H5, H9, H10).
func TestH9_ChunkedHostile(t *testing.T) {
	d := hostileDaemon(t)
	te := "Transfer-Encoding: chunked\r\n"
	runRefused(t, d, []hostileCase{
		{"size overflow (18 digits)", post(te, "ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"), 400},
		{"size overflow (17 digits)", post(te, "10000000000000000\r\nhello\r\n0\r\n\r\n"), 400},
		{"size overflow, leading zeros kept", post(te, "0000fffffffffffffffff\r\nhello\r\n0\r\n\r\n"), 400},
		{"size plus sign", post(te, "+5\r\nhello\r\n0\r\n\r\n"), 400},
		{"size minus sign", post(te, "-5\r\nhello\r\n0\r\n\r\n"), 400},
		{"size 0x prefix", post(te, "0x5\r\nhello\r\n0\r\n\r\n"), 400},
		{"size missing", post(te, "\r\nhello\r\n0\r\n\r\n"), 400},
		{"size not hex", post(te, "5g\r\nhello\r\n0\r\n\r\n"), 400},
		{"size bare LF", post(te, "5\nhello\r\n0\r\n\r\n"), 400},
		{"size bare CR", post(te, "5\rhello\r\n0\r\n\r\n"), 400},
		{"data bare LF", post(te, "5\r\nhello\n0\r\n\r\n"), 400},
		{"data longer than size", post(te, "5\r\nhelloXX\r\n0\r\n\r\n"), 400},
		{"data shorter than size", post(te, "6\r\nhello\r\n0\r\n\r\n"), 400},
		{"last chunk bare LF", post(te, "5\r\nhello\r\n0\n\r\n"), 400},
		{"end bare LF", post(te, "5\r\nhello\r\n0\r\n\n"), 400},
		{"NUL in extension", post(te, "5;a=\x00\r\nhello\r\n0\r\n\r\n"), 400},
		{"extensions beyond B", post(te, "5;"+strings.Repeat("e", 2100)+"\r\nhello\r\n0\r\n\r\n"), 400},
		{"trailer obs-fold", post(te, "5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n"), 400},
		{"trailer NUL", post(te, "5\r\nhello\r\n0\r\nX-T: a\x00b\r\n\r\n"), 400},
		{"trailer bare LF", post(te, "5\r\nhello\r\n0\r\nX-T: a\n\r\n"), 400},
		{"trailer no colon", post(te, "5\r\nhello\r\n0\r\nX-T a\r\n\r\n"), 400},
		{"trailers beyond B", post(te, "5\r\nhello\r\n0\r\n"+strings.Repeat("X-T: aaaaaaaaaaaaaaaaaaaaaaaaa\r\n", 80)+"\r\n"), 400},
		{"huge size, data past --max-body", post(te, "7fffffffffffffff\r\n"+strings.Repeat("z", 1100)), 413},
		{"chunks adding up past --max-body", post(te, "300\r\n"+strings.Repeat("a", 0x300)+"\r\n300\r\n"+strings.Repeat("b", 0x300)+"\r\n0\r\n\r\n"), 413},
	})
	runAccepted(t, d, []hostileCase{
		{"leading zeros", post(te, "00000000000000000005\r\nhello\r\n0\r\n\r\n"), 200},
		{"upper-case hex", post(te, "5\r\nhello\r\n000\r\n\r\n"), 200},
		{"extensions", post(te, "5;name=value;flag\r\nhello\r\n0;last\r\n\r\n"), 200},
		{"whitespace before an extension", post(te, "5 ;name=value\r\nhello\r\n0\r\n\r\n"), 200},
		{"trailers", post(te, "2\r\nhe\r\n3\r\nllo\r\n0\r\nX-Checksum: abc\r\nX-Other: d\r\n\r\n"), 200},
	})
}

// TestH5_ForbiddenBytes: NUL, bare CR, bare LF and other control bytes in the request line, header
// names and header values; bytes outside visible ASCII (invalid UTF-8 included) and spaces, tabs or
// '#' in the target; malformed header names (CONTRACT H3, H5). obs-text (bytes 0x80-0xff) in a header
// value is allowed by RFC 9110 5.5 and passes.
func TestH5_ForbiddenBytes(t *testing.T) {
	d := hostileDaemon(t)
	get := func(target, header string) string {
		return "GET " + target + " HTTP/1.1\r\nHost: e2e\r\n" + header + "\r\n"
	}
	runRefused(t, d, []hostileCase{
		{"NUL in a header value", get("/healthz", "X-A: a\x00b\r\n"), 400},
		{"NUL in a header name", get("/healthz", "X-\x00A: b\r\n"), 400},
		{"NUL in the target", get("/health\x00z", ""), 400},
		{"NUL in the method", "GE\x00T /healthz HTTP/1.1\r\nHost: e2e\r\n\r\n", 400},
		{"NUL in the version", "GET /healthz HTTP/1.1\x00\r\nHost: e2e\r\n\r\n", 400},
		{"bare CR in a header value", get("/healthz", "X-A: a\rb\r\n"), 400},
		{"bare CR in the request line", "GET /healthz\r HTTP/1.1\r\nHost: e2e\r\n\r\n", 400},
		{"bare CR ending the head", get("/healthz", "X-A: b\r\n\r"), 400},
		{"bare LF ending a header", get("/healthz", "X-A: b\n"), 400},
		{"SOH in a header value", get("/healthz", "X-A: a\x01b\r\n"), 400},
		{"US in a header value", get("/healthz", "X-A: a\x1fb\r\n"), 400},
		{"DEL in a header value", get("/healthz", "X-A: a\x7fb\r\n"), 400},
		{"ESC in a header value", get("/healthz", "X-A: \x1b[31mred\r\n"), 400},
		{"invalid UTF-8 in the target", get("/healthz\xff\xfe", ""), 400},
		{"UTF-8 in the target", get("/h\xc3\xa9", ""), 400},
		{"control byte in the target", get("/health\x01z", ""), 400},
		{"DEL in the target", get("/health\x7fz", ""), 400},
		{"tab in the target", get("/health\tz", ""), 400},
		{"space in the target", get("/health z", ""), 400},
		{"fragment in the target", get("/healthz#frag", ""), 400},
		{"two spaces after the method", "GET  /healthz HTTP/1.1\r\nHost: e2e\r\n\r\n", 400},
		{"tab separator", "GET\t/healthz HTTP/1.1\r\nHost: e2e\r\n\r\n", 400},
		{"lower-case version", "GET /healthz http/1.1\r\nHost: e2e\r\n\r\n", 400},
		{"empty header name", get("/healthz", ": b\r\n"), 400},
		{"header name with a space", get("/healthz", "X A: b\r\n"), 400},
		{"header name with a parenthesis", get("/healthz", "X(A): b\r\n"), 400},
		{"header name with UTF-8", get("/healthz", "X-\xc3\xa9: b\r\n"), 400},
		{"header without a colon", get("/healthz", "X-A b\r\n"), 400},
		{"Host with a NUL", "GET /healthz HTTP/1.1\r\nHost: e2e\x00evil\r\n\r\n", 400},
		{"TLS hello", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 400},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
	})
	c := d.dial(t)
	if _, err := io.WriteString(c, get("/healthz", "X-A: caf\xe9 \xff\xfe\x80\r\n")); err != nil {
		t.Fatal(err)
	}
	if r := readResponse(t, c, bufio.NewReader(c), "GET", false); r.StatusCode != 200 {
		t.Errorf("obs-text in a header value: %d, want 200", r.StatusCode)
	}
}

// TestH2_HeaderFloods: more header lines than --max-headers, a header larger than the buffer, a
// request line larger than the buffer, endless empty lines before the request line, and a head that
// never ends while the client keeps writing: each is answered (431, 414, 400) and closed, without the
// daemon reading more than its buffer (CONTRACT H2, H18).
func TestH2_HeaderFloods(t *testing.T) {
	d := hostileDaemon(t)
	many := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "X-%d: v\r\n", i)
		}
		return b.String()
	}
	get := "GET /healthz HTTP/1.1\r\nHost: e2e\r\n"
	runRefused(t, d, []hostileCase{
		{"65 header lines", get + many(64) + "\r\n", 431},
		{"a header of 3000 bytes", get + "X-Big: " + strings.Repeat("b", 3000) + "\r\n\r\n", 431},
		{"1000 short headers", get + strings.Repeat("X:\r\n", 1000) + "\r\n", 431},
		{"a request line of 3000 bytes", "GET /" + strings.Repeat("a", 3000) + " HTTP/1.1\r\nHost: e2e\r\n\r\n", 414},
		{"a method of 3000 bytes", strings.Repeat("G", 3000) + " / HTTP/1.1\r\nHost: e2e\r\n\r\n", 414},
		{"10000 empty lines first", strings.Repeat("\r\n", 10000) + get + "\r\n", 400},
	})

	// A head that never ends: the client writes header lines until the daemon answers and closes
	// (bounded at 4 MiB); the answer is 431 and it comes while the client is still writing.
	base := d.baseline(t)
	c := d.dial(t)
	if _, err := io.WriteString(c, get); err != nil {
		t.Fatal(err)
	}
	wrote := make(chan int64, 1)
	go func() {
		line := []byte("X-Endless: " + strings.Repeat("e", 100) + "\r\n")
		var n int64
		for n < 4<<20 {
			k, err := c.Write(line)
			n += int64(k)
			if err != nil {
				break
			}
		}
		wrote <- n
	}()
	r := readResponse(t, c, bufio.NewReader(c), "GET", false)
	if r.StatusCode != 431 || !r.Close {
		t.Errorf("endless head: %d close=%v, want 431 with Connection: close", r.StatusCode, r.Close)
	}
	c.Close()
	t.Logf("endless head: answered %d after the client wrote %d bytes", r.StatusCode, <-wrote)
	d.healthz(t)
	d.checkLeaks(t, base)
}

// TestH18_NothingRunsAfterABadRequest: on a keep-alive connection a good request is answered, the bad
// one after it is refused, and the request pipelined behind the bad one is never executed, even when
// all three arrive in one write (CONTRACT H18, H21).
func TestH18_NothingRunsAfterABadRequest(t *testing.T) {
	d := hostileDaemon(t)
	good := "GET /healthz HTTP/1.1\r\nHost: e2e\r\n\r\n"
	for _, tc := range []hostileCase{
		{"smuggling", post("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 400},
		{"body over --max-body", post("Content-Length: 5000\r\n", ""), 413},
		{"unknown coding", post("Transfer-Encoding: br\r\n", ""), 501},
		{"broken chunk", post("Transfer-Encoding: chunked\r\n", "zz\r\n"), 400},
		{"garbage line", "\x00\x01\x02 garbage\r\n\r\n", 400},
		{"HTTP/3.0", "GET /healthz HTTP/3.0\r\nHost: e2e\r\n\r\n", 505},
		{"expectation", post("Expect: teapot\r\nContent-Length: 0\r\n", ""), 417},
	} {
		c := d.dial(t)
		if _, err := io.WriteString(c, good+tc.req+smuggled); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		if r := readResponse(t, c, br, "GET", false); r.StatusCode != 200 {
			t.Errorf("%s: the good request before got %d", tc.name, r.StatusCode)
		}
		r := readResponse(t, c, br, "POST", false)
		if r.StatusCode != tc.code || !r.Close {
			t.Errorf("%s: %d close=%v, want %d with Connection: close", tc.name, r.StatusCode, r.Close, tc.code)
		}
		_ = c.SetReadDeadline(time.Now().Add(waitLimit))
		if rest, err := io.ReadAll(br); len(rest) != 0 || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s: after the %d: %q, %v; want the connection closed", tc.name, r.StatusCode, rest, err)
		}
		c.Close()
		if g := d.exchange(t, "GET /topics/smuggled HTTP/1.1\r\nHost: e2e\r\n\r\n", "GET"); g.StatusCode != 404 {
			t.Fatalf("%s: the request behind the refused one was executed", tc.name)
		}
	}
	d.healthz(t)
}

// TestH14_NoResponseHeaderInjection: what a client controls never becomes a response header line. A
// topic value with CRLF and header lines in it comes back as body bytes only; a Content-Type with a
// CR, LF, NUL or an obs-fold cannot even be published (CONTRACT H5), so GET and /echo never repeat one;
// a file or directory whose name holds CRLF is served (or redirected to) without its name reaching a
// header raw; an encoded CRLF in a topic name is refused (CONTRACT H14, D4, D5).
func TestH14_NoResponseHeaderInjection(t *testing.T) {
	root := t.TempDir()
	evil := "a\r\nX-Injected: 1\r\nSet-Cookie: s=1"
	if err := os.Mkdir(filepath.Join(root, evil), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, evil, "index.html"), []byte("<p>dir\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, evil+".txt"), []byte("file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, nil, "--enable-echo", "--webroot", root)
	injected := func(what string, r rawResponse) {
		t.Helper()
		for _, h := range []string{"X-Injected", "Set-Cookie"} {
			if _, ok := r.Header[h]; ok {
				t.Errorf("%s: the response carries %s:\n%s", what, h, r.head)
			}
		}
		if strings.Count(r.head, "\r\n\r\n") != 1 || strings.Contains(strings.ReplaceAll(r.head, "\r\n", ""), "\n") {
			t.Errorf("%s: malformed response head %q", what, r.head)
		}
	}

	// A value with CRLF and header lines: body bytes only, over HTTP and WebSocket.
	value := "v\r\nX-Injected: 1\r\n\r\nHTTP/1.1 200 OK\r\nSet-Cookie: s=1\r\n\r\n"
	r := d.exchange(t, "PUT /topics/inject HTTP/1.1\r\nHost: e2e\r\nContent-Type: text/plain\r\nContent-Length: "+
		fmt.Sprint(len(value))+"\r\n\r\n"+value, "PUT")
	if r.StatusCode != 201 {
		t.Fatalf("publish: %d", r.StatusCode)
	}
	r = d.exchange(t, "GET /topics/inject HTTP/1.1\r\nHost: e2e\r\n\r\n", "GET")
	injected("GET of a topic holding CRLF", r)
	if string(r.body) != value {
		t.Errorf("GET /topics/inject: body %q, want the value", r.body)
	}
	sub := d.gorillaDial(t, "/topics/inject")
	if _, msg, err := sub.ReadMessage(); err != nil || string(msg) != value {
		t.Errorf("subscriber: %q, %v", msg, err)
	}

	// A Content-Type that would carry a header line is refused before any handler runs.
	for _, ct := range []string{"text/plain\r\n X-Injected: 1", "text/plain\rX-Injected: 1", "text/plain\x00X-Injected: 1",
		"text/plain\nX-Injected: 1"} {
		for _, target := range []string{"/topics/inject", "/echo"} {
			r := d.exchange(t, "PUT "+target+" HTTP/1.1\r\nHost: e2e\r\nContent-Type: "+ct+"\r\nContent-Length: 1\r\n\r\nx", "PUT")
			if r.StatusCode != 400 {
				t.Errorf("PUT %s with Content-Type %q: %d, want 400", target, ct, r.StatusCode)
			}
			injected("PUT "+target+" with a bad Content-Type", r)
		}
	}
	r = d.exchange(t, "GET /topics/inject HTTP/1.1\r\nHost: e2e\r\n\r\n", "GET")
	if ct := r.Header.Get("Content-Type"); ct != "text/plain" {
		t.Errorf("the topic's Content-Type is %q after the refused publishes, want text/plain", ct)
	}
	injected("GET after refused publishes", r)

	// Echo repeats the request's Content-Type: only a valid one can get there.
	r = d.exchange(t, "POST /echo HTTP/1.1\r\nHost: e2e\r\nContent-Type: text/x-ok; a=\"b\"\r\nContent-Length: 2\r\n\r\nhi", "POST")
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != `text/x-ok; a="b"` {
		t.Errorf("echo: %d, Content-Type %q", r.StatusCode, r.Header.Get("Content-Type"))
	}

	// Names with CRLF in the web root, asked for percent-encoded: the file is served, the directory
	// redirected with the name still encoded in Location.
	enc := strings.NewReplacer("\r", "%0D", "\n", "%0A", " ", "%20", ":", "%3A", ";", "%3B", "=", "%3D").Replace(evil)
	r = d.exchange(t, "GET /"+enc+".txt HTTP/1.1\r\nHost: e2e\r\n\r\n", "GET")
	if r.StatusCode != 200 || string(r.body) != "file\n" {
		t.Errorf("file with CRLF in its name: %d %q", r.StatusCode, r.body)
	}
	injected("file with CRLF in its name", r)
	r = d.exchange(t, "GET /"+enc+" HTTP/1.1\r\nHost: e2e\r\n\r\n", "GET")
	if r.StatusCode != 301 || r.Header.Get("Location") != "/"+enc+"/" {
		t.Errorf("directory with CRLF in its name: %d, Location %q, want 301 to the encoded name", r.StatusCode, r.Header.Get("Location"))
	}
	injected("redirect to a directory with CRLF in its name", r)
	r = d.exchange(t, "GET /"+enc+"/ HTTP/1.1\r\nHost: e2e\r\n\r\n", "GET")
	if r.StatusCode != 200 {
		t.Errorf("index of a directory with CRLF in its name: %d", r.StatusCode)
	}
	injected("index of a directory with CRLF in its name", r)

	// Topic names are [A-Za-z0-9._-/]: an encoded CRLF is refused.
	r = d.exchange(t, "PUT /topics/a%0D%0AX-Injected:%201 HTTP/1.1\r\nHost: e2e\r\nContent-Length: 1\r\n\r\nx", "PUT")
	if r.StatusCode != 400 {
		t.Errorf("topic name with an encoded CRLF: %d, want 400", r.StatusCode)
	}
	injected("topic name with an encoded CRLF", r)
	d.healthz(t)
}

// TestH18_ResetMidBodyIsNoServerError: clients that reset the connection (SO_LINGER 0) while /echo
// waits for the rest of their body have gone: they get no response, and the exchanges are counted as
// closed connections (client_closed), never as 500s, which would raise a server-error alarm for what
// clients did. Clients that half-close instead get 400 (the body ended early, CONTRACT H9, H18).
func TestH18_ResetMidBodyIsNoServerError(t *testing.T) {
	const n = 5
	d := startDaemon(t, nil, "--enable-echo", "--workers", "2", "--metrics-listen", "127.0.0.1:0")
	for i := range 2 * n {
		c := d.dial(t)
		if _, err := io.WriteString(c, "POST /echo HTTP/1.1\r\nHost: e2e\r\nContent-Length: 100000\r\n\r\n0123456789"); err != nil {
			t.Fatal(err)
		}
		d.waitValue(t, "edged_workers_busy", 1) // the handler waits for the rest of the body
		if i < n {
			resetClose(c)
		} else {
			c.(*net.TCPConn).CloseWrite()
			if r := readResponse(t, c, bufio.NewReader(c), "POST", false); r.StatusCode != 400 {
				t.Errorf("half-closed mid-body: %d, want 400", r.StatusCode)
			}
			c.Close()
		}
		d.waitValue(t, "edged_workers_busy", 0)
	}
	s := d.series(t)
	if v := s[`edged_http_requests_total{code="500",method="POST"}`]; v != 0 {
		t.Errorf("%v resets counted as 500", v)
	}
	if v := s[`edged_http_requests_total{code="400",method="POST"}`]; v != n {
		t.Errorf("%v half-closes counted as 400, want %d", v, n)
	}
	if v := s[`edged_connections_closed_total{reason="client_closed"}`]; v != n {
		t.Errorf("%v connections closed for client_closed, want %d", v, n)
	}
}
