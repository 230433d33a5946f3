//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const curlBin = "/usr/bin/curl"

// curl runs curl with a time limit and returns its stdout and stderr.
func curl(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	requireTool(t, curlBin)
	cmd := exec.Command(curlBin, append([]string{"-sS", "--max-time", fmt.Sprint(int(waitLimit / time.Second))}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("curl %v: %v\n%s", args, err, errOut.String())
	}
	return out.String(), errOut.String()
}

// TestD3_HealthzCurl checks /healthz over HTTP/1.0 and HTTP/1.1 with curl.
func TestD3_HealthzCurl(t *testing.T) {
	d := startDaemon(t, nil)
	for _, tc := range []struct{ flag, status string }{
		{"--http1.0", "HTTP/1.0 200 OK\r\n"},
		{"--http1.1", "HTTP/1.1 200 OK\r\n"},
	} {
		out, _ := curl(t, tc.flag, "-i", d.url("/healthz"))
		head, body, _ := strings.Cut(out, "\r\n\r\n")
		if !strings.HasPrefix(out, tc.status) {
			t.Errorf("%s: status line %q, want %q", tc.flag, strings.SplitN(out, "\r\n", 2)[0], tc.status)
		}
		if !strings.Contains(strings.ToLower(head), "\r\ncontent-type: text/plain; charset=utf-8\r\n") {
			t.Errorf("%s: no text/plain Content-Type in\n%s", tc.flag, head)
		}
		if body != "ok" {
			t.Errorf("%s: body %q, want %q", tc.flag, body, "ok")
		}
	}
	// HEAD: the same head, no body.
	out, _ := curl(t, "-I", d.url("/healthz"))
	if !strings.HasPrefix(out, "HTTP/1.1 200 OK\r\n") || !strings.Contains(strings.ToLower(out), "\r\ncontent-length: 2\r\n") ||
		!strings.HasSuffix(out, "\r\n\r\n") {
		t.Errorf("HEAD /healthz:\n%q", out)
	}
	out, _ = curl(t, "-i", d.url("/no/such/page"))
	if !strings.HasPrefix(out, "HTTP/1.1 404 ") {
		t.Errorf("unknown path: %q", out)
	}
	out, _ = curl(t, "-i", "--data-binary", "x", d.url("/echo"))
	if !strings.HasPrefix(out, "HTTP/1.1 404 ") {
		t.Errorf("/echo without --enable-echo: %q", out)
	}
}

// TestH7_KeepAliveCurl checks, in socket-queue mode and in accept mode, that curl reuses one connection
// for two URLs (HTTP/1.1 by default, HTTP/1.0 when it asks for keep-alive), and that requests are not
// logged at the info level (D6).
func TestH7_KeepAliveCurl(t *testing.T) {
	for _, mode := range [][]string{{"--socket-queue", "8"}, {"--socket-queue", "0"}, {"--park-idle=false"}} {
		t.Run(strings.Join(mode, " "), func(t *testing.T) {
			d := startDaemon(t, nil, mode...)
			// The start-up records (the start-up line, then any warnings, which can reach the log
			// after startDaemon has seen the start-up line) are all written before the daemon serves
			// its first request: records timestamped after an answered request are the requests' own.
			if out, _ := curl(t, d.url("/healthz")); out != "ok" {
				t.Fatalf("first request: body %q, want %q", out, "ok")
			}
			since := time.Now()
			for _, args := range [][]string{
				{"--http1.1"},
				{"--http1.0", "-H", "Connection: keep-alive"},
			} {
				out, errOut := curl(t, append(args, "-v", d.url("/healthz"), d.url("/healthz?again"))...)
				if out != "okok" {
					t.Errorf("%v: bodies %q, want %q", args, out, "okok")
				}
				if !strings.Contains(errOut, "Re-using existing connection") {
					t.Errorf("%v: curl did not reuse the connection:\n%s", args, errOut)
				}
			}
			if n := len(d.logRecordsSince(since)); n != 0 {
				t.Errorf("requests wrote %d log records at the info level, want none:\n%s", n, d.stderrText())
			}
		})
	}
}

// TestS1_IPv6Loopback serves /healthz on [::1] where the system has IPv6.
func TestS1_IPv6Loopback(t *testing.T) {
	probe, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	probe.Close()
	d := startDaemon(t, nil, "--listen", "[::1]:0")
	if !strings.HasPrefix(d.addr, "[::1]:") {
		t.Fatalf("bound address %q, want [::1]:PORT", d.addr)
	}
	if out, _ := curl(t, "-g", d.url("/healthz")); out != "ok" {
		t.Errorf("body %q", out)
	}
}

// TestD3_EchoCurl sends bodies larger than the buffers to /echo with curl, chunked and with
// Content-Length, and compares the bytes that come back.
func TestD3_EchoCurl(t *testing.T) {
	d := startDaemon(t, nil, "--enable-echo")
	dir := t.TempDir()
	body := make([]byte, 300<<10)
	if _, err := rand.Read(body); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "in")
	if err := os.WriteFile(in, body, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		extra []string
	}{
		{"chunked", []string{"-H", "Transfer-Encoding: chunked"}},
		{"content-length", nil},
		{"expect-continue", []string{"-H", "Expect: 100-continue"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, tc.name+".out")
			headers := filepath.Join(dir, tc.name+".headers")
			args := append([]string{"--http1.1", "--data-binary", "@" + in, "-H", "Content-Type: application/x-edged-test",
				"-D", headers, "-o", out}, tc.extra...)
			curl(t, append(args, d.url("/echo"))...)
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, body) {
				t.Errorf("echoed %d bytes, want the %d sent", len(got), len(body))
			}
			h, _ := os.ReadFile(headers)
			if !strings.Contains(strings.ToLower(string(h)), "\r\ncontent-type: application/x-edged-test\r\n") {
				t.Errorf("response does not carry the request's Content-Type:\n%s", h)
			}
		})
	}
}

// TestH18_ProtocolErrors sends malformed and oversized requests on raw sockets: each gets its status
// code with Connection: close, and the connection closes (CONTRACT H2-H10, H18).
func TestH18_ProtocolErrors(t *testing.T) {
	d := startDaemon(t, nil, "--enable-echo", "--max-headers", "4", "--max-body", "1KiB", "--header-timeout", "1s")
	long := strings.Repeat("a", 2100)
	for _, tc := range []struct {
		name string
		req  string
		code int
	}{
		{"H3 bad request line", "GET  /healthz HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"H3 garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400},
		{"H4 malformed version", "GET /healthz HTTP/1.one\r\nHost: a\r\n\r\n", 400},
		{"H6 missing Host", "GET /healthz HTTP/1.1\r\nAccept: */*\r\n\r\n", 400},
		{"H6 two Hosts", "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"H5 obs-fold", "GET /healthz HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n", 400},
		{"H5 bare LF in head", "GET /healthz HTTP/1.1\r\nHost: a\nAccept: */*\r\n\r\n", 400},
		{"H5 bare LF request line", "GET /healthz HTTP/1.1\nHost: a\r\n\r\n", 400},
		{"H5 space before colon", "GET /healthz HTTP/1.1\r\nHost : a\r\n\r\n", 400},
		{"H8 CL and TE", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400},
		{"H8 bad Content-Length", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello", 400},
		{"H10 Content-Length over max-body", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1025\r\n\r\n", 413},
		{"H2 request line over buffer", "GET /" + long + " HTTP/1.1\r\nHost: a\r\n\r\n", 414},
		{"H2 too many headers", "GET /healthz HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 431},
		{"H2 head over buffer", "GET /healthz HTTP/1.1\r\nHost: a\r\nX-A: " + long[:1100] + "\r\nX-B: " + long[:1100] + "\r\n\r\n", 431},
		{"H8 unknown transfer coding", "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"H4 HTTP/2.0", "GET /healthz HTTP/2.0\r\nHost: a\r\n\r\n", 505},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := d.roundTrip(t, tc.req, "GET", true)
			checkErrorResponse(t, r, tc.code)
		})
	}
}

func checkErrorResponse(t *testing.T, r rawResponse, code int) {
	t.Helper()
	if r.StatusCode != code || !strings.HasPrefix(r.head, fmt.Sprintf("HTTP/1.1 %d ", code)) {
		t.Errorf("status line %q, want HTTP/1.1 %d", strings.SplitN(r.head, "\r\n", 2)[0], code)
	}
	if !strings.Contains(r.head, "\r\nConnection: close\r\n") {
		t.Errorf("no Connection: close in\n%s", r.head)
	}
	if len(r.body) == 0 {
		t.Errorf("no text body")
	}
	if !r.closed {
		t.Errorf("the connection stayed open after %d", code)
	}
}

// TestH10_ChunkedOverMaxBody: a chunked body that grows past --max-body gets 413.
func TestH10_ChunkedOverMaxBody(t *testing.T) {
	d := startDaemon(t, nil, "--enable-echo", "--max-body", "1KiB")
	r := d.roundTrip(t, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n"+strings.Repeat("z", 0x800)+"\r\n0\r\n\r\n", "POST", true)
	checkErrorResponse(t, r, 413)
}

// TestS6_HeaderTimeout: a head that stops arriving gets 408 after --header-timeout.
func TestS6_HeaderTimeout(t *testing.T) {
	const timeout = time.Second
	d := startDaemon(t, nil, "--header-timeout", timeout.String())
	c := d.dial(t)
	start := time.Now()
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: a\r\n"); err != nil {
		t.Fatal(err)
	}
	r := readResponse(t, c, bufio.NewReader(c), "GET", true)
	if elapsed := time.Since(start); elapsed < timeout/2 {
		t.Errorf("answered after %v, before the header timeout of %v", elapsed, timeout)
	}
	checkErrorResponse(t, r, 408)
}

// TestD3_HealthzMethodNotAllowed: POST /healthz gets 405 with Allow; with Connection: close it closes,
// without it the connection serves the next request.
func TestD3_HealthzMethodNotAllowed(t *testing.T) {
	d := startDaemon(t, nil)
	r := d.roundTrip(t, "POST /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc", "POST", true)
	if r.StatusCode != 405 || !strings.HasPrefix(r.head, "HTTP/1.1 405 Method Not Allowed\r\n") {
		t.Errorf("status line %q, want 405", strings.SplitN(r.head, "\r\n", 2)[0])
	}
	if !strings.Contains(r.head, "\r\nAllow: GET, HEAD\r\n") || !strings.Contains(r.head, "\r\nConnection: close\r\n") || !r.closed {
		t.Errorf("want Allow: GET, HEAD and Connection: close, then a close; got closed=%v\n%s", r.closed, r.head)
	}

	c := d.dial(t)
	br := bufio.NewReader(c)
	if _, err := io.WriteString(c, "DELETE /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if r := readResponse(t, c, br, "DELETE", false); r.StatusCode != 405 || r.Close {
		t.Errorf("keep-alive DELETE: status %d, close %v", r.StatusCode, r.Close)
	}
	if r := readResponse(t, c, br, "GET", false); r.StatusCode != 200 || string(r.body) != "ok" {
		t.Errorf("pipelined GET after 405: status %d, body %q", r.StatusCode, r.body)
	}
}

// TestH15_FramingWithH11 reads edged's responses with python3-h11, a strict HTTP/1.1 parser: keep-alive
// GET, HEAD and 404 on one connection, then a request with Connection: close, after which the server closes.
func TestH15_FramingWithH11(t *testing.T) {
	const python = "/usr/bin/python3"
	requireTool(t, python)
	if err := exec.Command(python, "-c", "import h11").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3-h11 is missing: %v", err)
		}
		t.Skipf("python3-h11 is missing: %v", err)
	}
	d := startDaemon(t, nil, "--enable-echo")
	host, port, _ := strings.Cut(d.addr, ":")
	cmd := exec.Command(python, "-c", h11Script, host, port)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("h11 client: %v\n%s", err, out)
	}
	want := "GET /healthz 200 b'ok'\nHEAD /healthz 200 b''\nGET /missing 404\nPOST /echo 200 b'hello h11'\nGET /healthz 200 b'ok' closed\n"
	if string(out) != want {
		t.Errorf("h11 client printed\n%s\nwant\n%s", out, want)
	}
}

const h11Script = `
import socket, sys, h11

def exchange(sock, conn, method, target, body=b"", headers=()):
    hdrs = [("Host", "edged")] + list(headers)
    if body:
        hdrs.append(("Content-Length", str(len(body))))
    data = conn.send(h11.Request(method=method, target=target, headers=hdrs))
    if body:
        data += conn.send(h11.Data(data=body))
    data += conn.send(h11.EndOfMessage())
    sock.sendall(data)
    resp, chunks = None, []
    while True:
        ev = conn.next_event()
        if ev is h11.NEED_DATA:
            conn.receive_data(sock.recv(65536))
            continue
        if isinstance(ev, h11.Response):
            resp = ev
        elif isinstance(ev, h11.Data):
            chunks.append(bytes(ev.data))
        elif isinstance(ev, h11.EndOfMessage):
            return resp, b"".join(chunks)

host, port = sys.argv[1], int(sys.argv[2])
sock = socket.create_connection((host, port), timeout=20)
conn = h11.Connection(h11.CLIENT)
for method, target, body, extra in [("GET", "/healthz", b"", ()), ("HEAD", "/healthz", b"", ()),
                                    ("GET", "/missing", b"", ()),
                                    ("POST", "/echo", b"hello h11", [("Content-Type", "text/plain")])]:
    resp, data = exchange(sock, conn, method, target, body, extra)
    if resp.status_code == 404:
        print(method, target, resp.status_code)
    else:
        print(method, target, resp.status_code, data)
    conn.start_next_cycle()
resp, data = exchange(sock, conn, "GET", "/healthz", b"", [("Connection", "close")])
closed = sock.recv(1) == b""
print("GET /healthz", resp.status_code, data, "closed" if closed else "open")
`
