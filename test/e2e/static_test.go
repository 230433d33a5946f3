//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

const straceBin = "/usr/bin/strace"

// secret is a file next to the web root, never to be served.
const secret = "the secret outside the web root\n"

// webroot builds a web root in a temporary directory with a secret file beside it, and returns the
// root and its files' contents.
func webroot(t *testing.T) (root string, files map[string][]byte) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "www")
	big := make([]byte, 5<<20+77) // larger than every buffer and socket buffer
	rand.New(rand.NewSource(5)).Read(big)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	js := []byte(strings.Repeat("console.log('edged');\n", 200))
	_, _ = zw.Write(js)
	_ = zw.Close()
	files = map[string][]byte{
		"index.html":     []byte("<!doctype html><title>device</title><p>hello\n"),
		"style.css":      []byte("body { color: #123; }\n"),
		"app.js":         js,
		"app.js.gz":      gz.Bytes(),
		"big.bin":        big,
		"sub/index.html": []byte("<p>sub\n"),
		"data/x.json":    []byte(`{"a":1}`),
	}
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(base, "secret.txt"), []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"up":         "..",                                // a directory outside
		"secret.txt": filepath.Join(base, "secret.txt"),   // an absolute link outside
		"rel-secret": "../secret.txt",                     // a relative link outside
		"sub/escape": "../../secret.txt",                  // from a subdirectory
		"inside":     "style.css",                         // a link that stays inside: served
		"etc":        "/etc",                              // the system
		"proc-root":  "/proc/self/root/etc/passwd",        // a magic link
		"loop":       "loop",                              // ELOOP
		"dangling":   filepath.Join(base, "missing.html"), // nothing there
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	return root, files
}

// request sends one request on a new connection, reads the response and closes the connection, so
// that idle connections do not fill the socket queue.
func (d *daemon) request(t *testing.T, method, target string, headers ...string) rawResponse {
	t.Helper()
	req := method + " " + target + " HTTP/1.1\r\nHost: device\r\n"
	for _, h := range headers {
		req += h + "\r\n"
	}
	return d.exchange(t, req+"\r\n", method)
}

// exchange sends req on a new connection, reads the response and closes the connection.
func (d *daemon) exchange(t *testing.T, req, method string) rawResponse {
	t.Helper()
	c := d.dial(t)
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatalf("write request: %v", err)
	}
	return readResponse(t, c, bufio.NewReader(c), method, false)
}

// TestD5_StaticFiles: content types, index.html for directories, a redirect for a directory without
// its slash, no listings, HEAD with the length GET would send, 405 with Allow for other methods.
func TestD5_StaticFiles(t *testing.T) {
	root, files := webroot(t)
	d := startDaemon(t, nil, "--webroot", root)
	for _, tc := range []struct {
		target, ctype string
		body          []byte
	}{
		{"/", "text/html; charset=utf-8", files["index.html"]},
		{"/index.html", "text/html; charset=utf-8", files["index.html"]},
		{"/style.css", "text/css; charset=utf-8", files["style.css"]},
		{"/data/x.json", "application/json", files["data/x.json"]},
		{"/sub/", "text/html; charset=utf-8", files["sub/index.html"]},
		{"/inside", "application/octet-stream", files["style.css"]},
		{"/st%79le.css", "text/css; charset=utf-8", files["style.css"]},
	} {
		r := d.request(t, "GET", tc.target)
		if r.StatusCode != 200 || r.Header.Get("Content-Type") != tc.ctype || !bytes.Equal(r.body, tc.body) {
			t.Errorf("GET %s: %d %q %q, want 200 %q %q", tc.target, r.StatusCode, r.Header.Get("Content-Type"), r.body, tc.ctype, tc.body)
		}
	}
	if r := d.request(t, "GET", "/sub?x=1"); r.StatusCode != 301 || r.Header.Get("Location") != "/sub/?x=1" {
		t.Errorf("GET /sub: %d Location %q, want 301 /sub/?x=1", r.StatusCode, r.Header.Get("Location"))
	}
	if r := d.request(t, "GET", "/data/"); r.StatusCode != 404 {
		t.Errorf("GET /data/ (no index.html): %d, want 404 and no listing", r.StatusCode)
	}

	// HEAD: the head GET would send, Content-Length included, and no body; the connection goes on.
	c := d.dial(t)
	br := bufio.NewReader(c)
	fmt.Fprint(c, "HEAD /big.bin HTTP/1.1\r\nHost: device\r\n\r\nGET /style.css HTTP/1.1\r\nHost: device\r\n\r\n")
	head := readResponse(t, c, br, "HEAD", false)
	if head.StatusCode != 200 || head.Header.Get("Content-Length") != strconv.Itoa(len(files["big.bin"])) || head.Header.Get("ETag") == "" {
		t.Errorf("HEAD /big.bin: %d\n%s", head.StatusCode, head.head)
	}
	if next := readResponse(t, c, br, "GET", false); next.StatusCode != 200 || !bytes.Equal(next.body, files["style.css"]) {
		t.Errorf("the request after HEAD: %d %q: the HEAD response carried a body", next.StatusCode, next.body)
	}

	for _, m := range []string{"POST", "PUT", "DELETE", "OPTIONS", "PATCH"} {
		r := d.exchange(t, m+" /index.html HTTP/1.1\r\nHost: device\r\nContent-Length: 0\r\n\r\n", m)
		if r.StatusCode != 405 || r.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s /index.html: %d Allow %q, want 405 GET, HEAD", m, r.StatusCode, r.Header.Get("Allow"))
		}
	}
}

// TestD5_ConditionalRequests: ETag and Last-Modified, 304 on If-None-Match and If-Modified-Since,
// 200 when they do not match.
func TestD5_ConditionalRequests(t *testing.T) {
	root, files := webroot(t)
	d := startDaemon(t, nil, "--webroot", root)
	r := d.request(t, "GET", "/style.css")
	etag, lastMod := r.Header.Get("ETag"), r.Header.Get("Last-Modified")
	if r.StatusCode != 200 || etag == "" || lastMod == "" {
		t.Fatalf("GET: %d ETag %q Last-Modified %q", r.StatusCode, etag, lastMod)
	}
	for _, tc := range []struct {
		header string
		status int
	}{
		{"If-None-Match: " + etag, 304},
		{"If-None-Match: \"other\", " + etag, 304},
		{"If-None-Match: W/" + etag, 304},
		{"If-None-Match: *", 304},
		{"If-None-Match: \"other\"", 200},
		{"If-Modified-Since: " + lastMod, 304},
		{"If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT", 200},
		{"If-None-Match: \"other\"\r\nIf-Modified-Since: " + lastMod, 200}, // If-None-Match wins (RFC 9110 13.2.2)
	} {
		r := d.request(t, "GET", "/style.css", tc.header)
		if r.StatusCode != tc.status {
			t.Errorf("%q: %d, want %d", tc.header, r.StatusCode, tc.status)
		}
		switch tc.status {
		case 304:
			if len(r.body) != 0 || r.Header.Get("ETag") != etag {
				t.Errorf("%q: 304 with body %q, ETag %q", tc.header, r.body, r.Header.Get("ETag"))
			}
		case 200:
			if !bytes.Equal(r.body, files["style.css"]) {
				t.Errorf("%q: body %q", tc.header, r.body)
			}
		}
	}
	if r := d.request(t, "HEAD", "/style.css", "If-None-Match: "+etag); r.StatusCode != 304 {
		t.Errorf("HEAD with a matching If-None-Match: %d, want 304", r.StatusCode)
	}
}

// TestD5_Ranges: a single byte range gets 206 and Content-Range, an unsatisfiable one 416 with
// Content-Range bytes */size, a multi-range or malformed one the whole file, and If-Range with another
// validator the whole file.
func TestD5_Ranges(t *testing.T) {
	root, files := webroot(t)
	d := startDaemon(t, nil, "--webroot", root)
	big := files["big.bin"]
	size := len(big)
	etag := d.request(t, "HEAD", "/big.bin").Header.Get("ETag")
	for _, tc := range []struct {
		header     string
		status     int
		start, end int // inclusive, for 206
	}{
		{"Range: bytes=0-9", 206, 0, 9},
		{"Range: bytes=100-", 206, 100, size - 1},
		{"Range: bytes=-5", 206, size - 5, size - 1},
		{"Range: bytes=1000-999999999", 206, 1000, size - 1},
		{"Range: bytes=" + strconv.Itoa(size-1) + "-" + strconv.Itoa(size-1), 206, size - 1, size - 1},
		{"Range: bytes=" + strconv.Itoa(size) + "-", 416, 0, 0},
		{"Range: bytes=-0", 416, 0, 0},
		{"Range: bytes=0-1,5-6", 200, 0, 0},
		{"Range: bytes=9-2", 200, 0, 0},
		{"Range: items=0-9", 200, 0, 0},
		{"Range: bytes=0-9\r\nIf-Range: " + etag, 206, 0, 9},
		{"Range: bytes=0-9\r\nIf-Range: \"stale\"", 200, 0, 0},
	} {
		r := d.request(t, "GET", "/big.bin", tc.header)
		if r.StatusCode != tc.status {
			t.Errorf("%q: %d, want %d", tc.header, r.StatusCode, tc.status)
			continue
		}
		switch tc.status {
		case 206:
			want := fmt.Sprintf("bytes %d-%d/%d", tc.start, tc.end, size)
			if cr := r.Header.Get("Content-Range"); cr != want || !bytes.Equal(r.body, big[tc.start:tc.end+1]) {
				t.Errorf("%q: Content-Range %q (want %q), %d bytes", tc.header, cr, want, len(r.body))
			}
		case 416:
			if cr := r.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes */%d", size) {
				t.Errorf("%q: Content-Range %q", tc.header, cr)
			}
		case 200:
			if !bytes.Equal(r.body, big) {
				t.Errorf("%q: %d bytes, want the whole file", tc.header, len(r.body))
			}
		}
	}
}

// TestD5_GzipSibling: NAME.gz is sent with Content-Encoding: gzip to a client that accepts gzip, NAME
// to one that does not; both carry Vary: Accept-Encoding. A request without Accept-Encoding gets the
// file without Vary: the sibling is not looked for.
func TestD5_GzipSibling(t *testing.T) {
	root, files := webroot(t)
	d := startDaemon(t, nil, "--webroot", root)
	for _, tc := range []struct {
		accept string
		gz     bool
	}{
		{"Accept-Encoding: gzip, deflate, br", true},
		{"Accept-Encoding: br;q=1.0, GZIP;q=0.5", true},
		{"Accept-Encoding: *", true},
		{"Accept-Encoding: gzip;q=0", false},
		{"Accept-Encoding: identity", false},
		{"X-None: 1", false},
	} {
		r := d.request(t, "GET", "/app.js", tc.accept)
		vary := "Accept-Encoding"
		if !strings.HasPrefix(tc.accept, "Accept-Encoding") {
			vary = ""
		}
		if r.StatusCode != 200 || r.Header.Get("Vary") != vary || r.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
			t.Errorf("%q: %d Vary %q Content-Type %q", tc.accept, r.StatusCode, r.Header.Get("Vary"), r.Header.Get("Content-Type"))
		}
		want, enc := files["app.js"], ""
		if tc.gz {
			want, enc = files["app.js.gz"], "gzip"
		}
		if r.Header.Get("Content-Encoding") != enc || !bytes.Equal(r.body, want) {
			t.Errorf("%q: Content-Encoding %q, %d bytes; want %q, %d bytes", tc.accept, r.Header.Get("Content-Encoding"), len(r.body), enc, len(want))
		}
	}
	// The client's own gzip reader gets the original back.
	resp, err := http.Get(d.url("/app.js"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(body, files["app.js"]) || !resp.Uncompressed {
		t.Errorf("net/http with transparent gzip: %d bytes, uncompressed %v", len(body), resp.Uncompressed)
	}
	if r := d.request(t, "GET", "/style.css", "Accept-Encoding: gzip"); r.Header.Get("Content-Encoding") != "" || r.Header.Get("Vary") != "" {
		t.Errorf("a file without a .gz sibling: Content-Encoding %q, Vary %q", r.Header.Get("Content-Encoding"), r.Header.Get("Vary"))
	}
}

// TestD5_Traversal: request targets sent as-is on a raw socket that try to leave the web root, by
// dot segments (plain, encoded, double-encoded, mixed case), backslashes, NUL bytes, absolute-form, or
// symlinks that point outside; each is refused with 404 (400 when the request line itself is not
// HTTP) and the secret never appears. Links that stay inside are served.
func TestD5_Traversal(t *testing.T) {
	root, _ := webroot(t)
	d := startDaemon(t, nil, "--webroot", root)
	for _, target := range []string{
		"/../secret.txt",
		"/sub/../../secret.txt",
		"/%2e%2e/secret.txt",
		"/%2E%2E/secret.txt",
		"/.%2e/secret.txt",
		"/%2e%2e%2fsecret.txt",
		"/sub/%2e%2e%2f%2e%2e%2fsecret.txt",
		"/%252e%252e/secret.txt",
		"/%252e%252e%252fsecret.txt",
		"/..%2fsecret.txt",
		"/..%5csecret.txt",
		"/..\\secret.txt",
		"/sub\\..\\..\\secret.txt",
		"/%5c..%5csecret.txt",
		"/index.html%00.css",
		"/%00/../secret.txt",
		"/./index.html",
		"//secret.txt",
		"/%2fetc%2fpasswd",
		"/up/secret.txt",
		"/secret.txt",
		"/rel-secret",
		"/sub/escape",
		"/etc/passwd",
		"/proc-root",
		"/loop",
		"/dangling",
		"/..",
		"/%2e%2e",
		"http://device/../secret.txt",
		"http://device/%2e%2e/secret.txt",
	} {
		r := d.exchange(t, "GET "+target+" HTTP/1.1\r\nHost: device\r\n\r\n", "GET")
		if r.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", target, r.StatusCode)
		}
		if bytes.Contains(r.body, []byte("secret")) || bytes.Contains(r.body, []byte("root:")) {
			t.Errorf("GET %s: leaked %q", target, r.body)
		}
	}
	// Raw bytes the request line does not allow: refused before routing.
	for _, target := range []string{"/index.html\x00", "/..\x00/secret.txt"} {
		r := d.exchange(t, "GET "+target+" HTTP/1.1\r\nHost: device\r\n\r\n", "GET")
		if r.StatusCode != 400 && r.StatusCode != 404 {
			t.Errorf("GET %q: %d, want 400 or 404", target, r.StatusCode)
		}
	}
	// curl --path-as-is, a client written by others, sends the dot segments unchanged.
	requireTool(t, curlBin)
	out, _ := curl(t, "-s", "--path-as-is", "-o", "/dev/null", "-w", "%{http_code}", d.url("/sub/../../secret.txt"))
	if out != "404" {
		t.Errorf("curl --path-as-is /sub/../../secret.txt: %s, want 404", out)
	}
}

// TestD5_LargeFileSendfile: a 5 MiB file arrives intact (sha256) through curl and net/http, ranges of
// it too, and the daemon sends it with sendfile(2): strace on the daemon sees sendfile calls that add up
// to the file's size, and no write(2) carrying its bytes. The response head goes out with MSG_MORE, so
// that the kernel sends it together with the file's first bytes.
func TestD5_LargeFileSendfile(t *testing.T) {
	requireTool(t, straceBin)
	root, files := webroot(t)
	big := files["big.bin"]
	want := sha256.Sum256(big)
	trace := filepath.Join(t.TempDir(), "strace.out")
	d := startDaemonCmd(t, []string{straceBin, "-f", "-qq", "-e", "trace=sendfile,write,writev,sendmsg", "-o", trace, edgedBin}, nil,
		"--webroot", root)
	pid := int(d.waitLog("edged started")["pid"].(float64))

	resp, err := http.Get(d.url("/big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil || n != int64(len(big)) || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("GET /big.bin: %d bytes, %v; sha256 %x, want %d bytes, %x", n, err, h.Sum(nil), len(big), want)
	}
	out, _ := curl(t, "-s", "-o", "-", d.url("/big.bin"))
	if sum := sha256.Sum256([]byte(out)); sum != want {
		t.Errorf("curl: %d bytes, sha256 %x", len(out), sum)
	}

	// Stop the daemon so that strace has written everything.
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := d.wait(); code != 0 {
		t.Fatalf("edged under strace exited %d; stderr:\n%s", code, d.stderrText())
	}
	traced, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	var sent int
	// strace -f splits a call that another thread interrupts into "sendfile(... <unfinished ...>" and
	// "<... sendfile resumed>...) = N": both forms count.
	for _, m := range regexp.MustCompile(`(?m)(?:sendfile\(\d+, \d+, |<\.\.\. sendfile resumed>).*\) = (\d+)$`).FindAllSubmatch(traced, -1) {
		k, _ := strconv.Atoi(string(m[1]))
		sent += k
	}
	if sent < 2*len(big) {
		t.Errorf("sendfile(2) sent %d bytes, want at least %d (the file twice)\n%s", sent, 2*len(big), clipTrace(traced))
	}
	if heads := regexp.MustCompile(`sendmsg\(\d+, .*HTTP/1\.1 200 OK.*MSG_MORE`).FindAll(traced, -1); len(heads) < 2 {
		t.Errorf("%d response heads sent with sendmsg(MSG_MORE), want 2 (one per GET)\n%s", len(heads), clipTrace(traced))
	}
	for _, m := range regexp.MustCompile(`write\(\d+, .*\) = (\d+)`).FindAllSubmatch(traced, -1) {
		if k, _ := strconv.Atoi(string(m[1])); k > 64<<10 {
			t.Errorf("a write(2) of %d bytes: file bytes went through the buffers", k)
		}
	}
}

func clipTrace(b []byte) string {
	if len(b) > 4000 {
		return string(b[:4000]) + "..."
	}
	return string(b)
}
