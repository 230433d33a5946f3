//go:build linux

package static

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edged/edged/pkg/conn"
	"github.com/edged/edged/pkg/conn/conntest"
)

// webroot builds a web root with an outside directory next to it, for escape attempts.
func webroot(t *testing.T) (root string, big []byte) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "www")
	outside := filepath.Join(base, "secret")
	for _, d := range []string{root, filepath.Join(root, "sub"), filepath.Join(root, "noindex"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, b []byte) {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "index.html"), []byte("<h1>home</h1>"))
	write(filepath.Join(root, "sub", "index.html"), []byte("<h1>sub</h1>"))
	write(filepath.Join(root, "app.js"), []byte("console.log(1)"))
	write(filepath.Join(root, "data.json"), []byte(`{"a":1}`))
	write(filepath.Join(root, "ten.txt"), []byte("0123456789"))
	write(filepath.Join(outside, "key.txt"), []byte("SECRET"))
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write([]byte(strings.Repeat("body { color: red }\n", 50)))
	zw.Close()
	write(filepath.Join(root, "style.css"), []byte(strings.Repeat("body { color: red }\n", 50)))
	write(filepath.Join(root, "style.css.gz"), gz.Bytes())
	big = make([]byte, 3<<20+17)
	for i := range big {
		big[i] = byte(i*7 + i>>11)
	}
	write(filepath.Join(root, "big.bin"), big)
	// Symlinks: one inside the root (allowed), two leaving it (refused).
	os.Symlink("ten.txt", filepath.Join(root, "link-inside.txt"))
	os.Symlink(filepath.Join(outside, "key.txt"), filepath.Join(root, "link-abs.txt"))
	os.Symlink("../secret", filepath.Join(root, "link-dir"))
	return root, big
}

func serve(t *testing.T, r *Root, raw string, methods ...string) ([]*http.Response, [][]byte) {
	t.Helper()
	h := conn.HandlerFunc(func(_ int, c *conn.Connection) error { return r.Serve(c) })
	out := conntest.Do(conn.Config{}, h, raw)
	resps, bodies, err := conntest.Responses(out, methods...)
	if err != nil {
		t.Fatalf("parse responses: %v\n%q", err, out)
	}
	return resps, bodies
}

func get(t *testing.T, r *Root, path string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	raw := "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + strings.Join(headers, "") + "\r\n"
	resps, bodies := serve(t, r, raw)
	return resps[0], bodies[0]
}

// withoutOpenat2 makes newRoot's roots resolve paths as on kernels before openat2(2) (openChecked).
var withoutOpenat2 bool

func newRoot(t *testing.T) (*Root, []byte) {
	dir, big := webroot(t)
	r, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if withoutOpenat2 {
		r.openat2 = false
	}
	t.Cleanup(func() { r.Close() })
	return r, big
}

func TestD5_FilesTypesAndIndex(t *testing.T) {
	r, _ := newRoot(t)
	cases := []struct{ path, ctype, body string }{
		{"/", "text/html; charset=utf-8", "<h1>home</h1>"},
		{"/index.html", "text/html; charset=utf-8", "<h1>home</h1>"},
		{"/sub/", "text/html; charset=utf-8", "<h1>sub</h1>"},
		{"/app.js", "text/javascript; charset=utf-8", "console.log(1)"},
		{"/data.json", "application/json", `{"a":1}`},
		{"/link-inside.txt", "text/plain; charset=utf-8", "0123456789"},
	}
	for _, tc := range cases {
		resp, body := get(t, r, tc.path)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tc.ctype || string(body) != tc.body {
			t.Errorf("%s: %d %q %q", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		if resp.Header.Get("ETag") == "" || resp.Header.Get("Last-Modified") == "" {
			t.Errorf("%s: no ETag or Last-Modified", tc.path)
		}
	}
	if resp, _ := get(t, r, "/sub"); resp.StatusCode != 301 || resp.Header.Get("Location") != "/sub/" {
		t.Errorf("/sub without slash: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, p := range []string{"/noindex/", "/missing", "/sub/missing.html"} {
		if resp, _ := get(t, r, p); resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404 (no listings)", p, resp.StatusCode)
		}
	}
}

func TestD5_TraversalRefused(t *testing.T) {
	r, _ := newRoot(t)
	for _, p := range []string{
		"/../secret/key.txt", "/%2e%2e/secret/key.txt", "/%2E%2E/secret/key.txt", "/sub/../../secret/key.txt",
		"/sub/%2e%2e/%2e%2e/secret/key.txt", "/..%2fsecret/key.txt", "/%252e%252e/secret/key.txt",
		"/..\\secret\\key.txt", "/..%5csecret%5ckey.txt", "/link-abs.txt", "/link-dir/key.txt",
		"/ten.txt%00.html", "/./ten.txt", "//etc/passwd",
	} {
		resp, body := get(t, r, p)
		if resp.StatusCode != 404 && resp.StatusCode != 400 {
			t.Errorf("%s: %d, want 404", p, resp.StatusCode)
		}
		if bytes.Contains(body, []byte("SECRET")) {
			t.Errorf("%s: leaked the file outside the root", p)
		}
	}
}

func TestD5_Conditional(t *testing.T) {
	r, _ := newRoot(t)
	resp, _ := get(t, r, "/ten.txt")
	etag, lm := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	if resp, body := get(t, r, "/ten.txt", "If-None-Match: "+etag+"\r\n"); resp.StatusCode != 304 || len(body) != 0 {
		t.Errorf("If-None-Match: %d, body %q", resp.StatusCode, body)
	}
	if resp, _ := get(t, r, "/ten.txt", `If-None-Match: "other", `+etag+"\r\n"); resp.StatusCode != 304 {
		t.Errorf("If-None-Match list: %d", resp.StatusCode)
	}
	if resp, _ := get(t, r, "/ten.txt", "If-None-Match: \"nope\"\r\n"); resp.StatusCode != 200 {
		t.Errorf("stale If-None-Match: %d", resp.StatusCode)
	}
	if resp, _ := get(t, r, "/ten.txt", "If-Modified-Since: "+lm+"\r\n"); resp.StatusCode != 304 {
		t.Errorf("If-Modified-Since: %d", resp.StatusCode)
	}
	if lmt, err := http.ParseTime(lm); err != nil {
		t.Error(err)
	} else {
		// The obsolete formats a recipient must still accept (RFC 9110 5.6.7).
		for _, ims := range []string{lmt.Format("Monday, 02-Jan-06 15:04:05 GMT"), lmt.Format(time.ANSIC)} {
			if resp, _ := get(t, r, "/ten.txt", "If-Modified-Since: "+ims+"\r\n"); resp.StatusCode != 304 {
				t.Errorf("If-Modified-Since: %s: %d, want 304", ims, resp.StatusCode)
			}
		}
	}
	if resp, _ := get(t, r, "/ten.txt", "If-Modified-Since: Mon, 01 Jan 2001 00:00:00 GMT\r\n"); resp.StatusCode != 200 {
		t.Errorf("old If-Modified-Since: %d", resp.StatusCode)
	}
}

// TestD5_Preconditions: If-Match and If-Unmodified-Since are evaluated before If-None-Match,
// If-Modified-Since and Range (RFC 9110 13.2.2): a client resuming a download of a file that changed
// gets 412, not a range of the new file spliced onto the old one.
func TestD5_Preconditions(t *testing.T) {
	r, _ := newRoot(t)
	resp, _ := get(t, r, "/ten.txt")
	etag, lm := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	const old = "Mon, 01 Jan 2001 00:00:00 GMT"
	cases := []struct {
		name    string
		headers string
		status  int
	}{
		{"If-Match current", "If-Match: " + etag + "\r\n", 200},
		{"If-Match in a list", `If-Match: "other", ` + etag + "\r\n", 200},
		{"If-Match in a second line", "If-Match: \"other\"\r\nIf-Match: " + etag + "\r\n", 200},
		{"If-Match star", "If-Match: *\r\n", 200},
		{"If-Match stale", "If-Match: \"stale\"\r\n", 412},
		{"If-Match weak", "If-Match: W/" + etag + "\r\n", 412},
		{"If-Match stale before If-None-Match", "If-Match: \"stale\"\r\nIf-None-Match: " + etag + "\r\n", 412},
		{"If-Match current, then If-None-Match", "If-Match: " + etag + "\r\nIf-None-Match: " + etag + "\r\n", 304},
		{"If-Match stale with Range", "If-Match: \"stale\"\r\nRange: bytes=2-\r\n", 412},
		{"If-Unmodified-Since current", "If-Unmodified-Since: " + lm + "\r\n", 200},
		{"If-Unmodified-Since old", "If-Unmodified-Since: " + old + "\r\n", 412},
		{"If-Unmodified-Since old with Range", "If-Unmodified-Since: " + old + "\r\nRange: bytes=2-\r\n", 412},
		{"If-Unmodified-Since invalid", "If-Unmodified-Since: yesterday\r\n", 200},
		{"If-Unmodified-Since ignored after If-Match", "If-Match: " + etag + "\r\nIf-Unmodified-Since: " + old + "\r\n", 200},
	}
	for _, tc := range cases {
		resp, body := get(t, r, "/ten.txt", tc.headers)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
		if tc.status == 412 && bytes.Contains(body, []byte("0123456789")) {
			t.Errorf("%s: 412 carries the file: %q", tc.name, body)
		}
	}
}

func TestD5_Ranges(t *testing.T) {
	r, _ := newRoot(t)
	cases := []struct {
		rng    string
		status int
		body   string
		cr     string
	}{
		{"bytes=0-3", 206, "0123", "bytes 0-3/10"},
		{"bytes=7-", 206, "789", "bytes 7-9/10"},
		{"bytes=-2", 206, "89", "bytes 8-9/10"},
		{"bytes=5-100", 206, "56789", "bytes 5-9/10"},
		{"bytes=10-", 416, "", "bytes */10"},
		{"bytes=0-1,4-5", 200, "0123456789", ""},
		{"bytes=3-1", 200, "0123456789", ""},
		{"lines=1-2", 200, "0123456789", ""},
		{"bytes=+1-2", 200, "0123456789", ""}, // not digits: ignored, as nginx does
		{"bytes=1-+2", 200, "0123456789", ""},
	}
	for _, tc := range cases {
		resp, body := get(t, r, "/ten.txt", "Range: "+tc.rng+"\r\n")
		if resp.StatusCode != tc.status || resp.Header.Get("Content-Range") != tc.cr || (tc.status != 416 && string(body) != tc.body) {
			t.Errorf("%s: %d %q %q", tc.rng, resp.StatusCode, resp.Header.Get("Content-Range"), body)
		}
	}
	resp, _ := get(t, r, "/ten.txt")
	if resp, body := get(t, r, "/ten.txt", "Range: bytes=0-0\r\nIf-Range: \"stale\"\r\n"); resp.StatusCode != 200 || len(body) != 10 {
		t.Errorf("If-Range stale: %d", resp.StatusCode)
	}
	if resp, _ := get(t, r, "/ten.txt", "Range: bytes=0-0\r\nIf-Range: "+resp.Header.Get("ETag")+"\r\n"); resp.StatusCode != 206 {
		t.Errorf("If-Range current: %d", resp.StatusCode)
	}
}

// TestD5_UnsatisfiableRangeHeaders: a 416 carries one Content-Type, its own text's, and no
// Content-Encoding, also for a file with a gzip sibling: its body is the short text, not the file.
func TestD5_UnsatisfiableRangeHeaders(t *testing.T) {
	r, _ := newRoot(t)
	for _, tc := range []struct{ path, ae string }{
		{"/ten.txt", ""},
		{"/app.js", ""},
		{"/style.css", "Accept-Encoding: gzip\r\n"},
	} {
		resp, body := get(t, r, tc.path, "Range: bytes=100000-\r\n", tc.ae)
		if resp.StatusCode != 416 {
			t.Fatalf("%s: %d, want 416", tc.path, resp.StatusCode)
		}
		if ct := resp.Header.Values("Content-Type"); len(ct) != 1 || ct[0] != "text/plain; charset=utf-8" {
			t.Errorf("%s: Content-Type %q, want one, text/plain", tc.path, ct)
		}
		if ce := resp.Header.Values("Content-Encoding"); len(ce) != 0 {
			t.Errorf("%s: Content-Encoding %q on the plain text body %q", tc.path, ce, body)
		}
	}
	// The 206 and 200 of the sibling keep their encoding and the file's type.
	resp, _ := get(t, r, "/style.css", "Range: bytes=0-9\r\n", "Accept-Encoding: gzip\r\n")
	if resp.StatusCode != 206 || resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Content-Type") != "text/css; charset=utf-8" {
		t.Errorf("range of the gzip sibling: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestD5_GzipSibling(t *testing.T) {
	r, _ := newRoot(t)
	resp, body := get(t, r, "/style.css", "Accept-Encoding: br, gzip\r\n")
	if resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Vary") != "Accept-Encoding" ||
		resp.Header.Get("Content-Type") != "text/css; charset=utf-8" {
		t.Fatalf("gzip variant headers: %v", resp.Header)
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var plain bytes.Buffer
	plain.ReadFrom(zr)
	if plain.String() != strings.Repeat("body { color: red }\n", 50) {
		t.Fatal("gzip variant does not decode to the file")
	}
	for _, ae := range []string{"Accept-Encoding: gzip;q=1.0\r\n", "Accept-Encoding: identity;q=0, gzip; q=0.5\r\n",
		"Accept-Encoding: *\r\n", "Accept-Encoding: br;q=0, *\r\n"} {
		if resp, _ := get(t, r, "/style.css", ae); resp.Header.Get("Content-Encoding") != "gzip" {
			t.Errorf("%q: encoding %q, want gzip", ae, resp.Header.Get("Content-Encoding"))
		}
	}
	for _, ae := range []string{"", "Accept-Encoding: identity\r\n", "Accept-Encoding: gzip;q=0\r\n",
		"Accept-Encoding: gzip; q=0.000\r\n", "Accept-Encoding: gzip;Q=0, identity\r\n",
		// RFC 9110 12.5.3: "*" covers only the codings not listed; gzip;q=0 refuses gzip whatever its place.
		"Accept-Encoding: gzip;q=0, *\r\n", "Accept-Encoding: *, gzip;q=0\r\n", "Accept-Encoding: *;q=0\r\n"} {
		resp, body := get(t, r, "/style.css", ae)
		// Without Accept-Encoding the sibling is not looked for, so no Vary; with it, Vary.
		vary := "Accept-Encoding"
		if ae == "" {
			vary = ""
		}
		if resp.Header.Get("Content-Encoding") != "" || len(body) != 1000 || resp.Header.Get("Vary") != vary {
			t.Errorf("%q: encoding %q, %d bytes, Vary %q", ae, resp.Header.Get("Content-Encoding"), len(body), resp.Header.Get("Vary"))
		}
	}
}

func TestD5_HeadAndMethods(t *testing.T) {
	r, _ := newRoot(t)
	resps, bodies := serve(t, r, "HEAD /ten.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /ten.txt HTTP/1.1\r\nHost: x\r\n\r\n", "HEAD", "GET")
	if resps[0].StatusCode != 200 || resps[0].ContentLength != 10 || len(bodies[0]) != 0 {
		t.Errorf("HEAD: %d CL %d body %q", resps[0].StatusCode, resps[0].ContentLength, bodies[0])
	}
	if string(bodies[1]) != "0123456789" {
		t.Errorf("GET after HEAD on the same connection: %q", bodies[1])
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		resps, _ := serve(t, r, m+" /ten.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
		if resps[0].StatusCode != 405 || resps[0].Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d Allow %q", m, resps[0].StatusCode, resps[0].Header.Get("Allow"))
		}
	}
}

func TestD5_LargeFileIntact(t *testing.T) {
	r, big := newRoot(t)
	resp, body := get(t, r, "/big.bin")
	if resp.StatusCode != 200 || sha256.Sum256(body) != sha256.Sum256(big) {
		t.Fatalf("big file: %d, %d bytes, checksum differs", resp.StatusCode, len(body))
	}
}

func TestD2_BadWebroot(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "file")
	os.WriteFile(f, nil, 0o644)
	if _, err := New(f); err == nil {
		t.Error("a file as web root was accepted")
	}
	if _, err := New(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing web root was accepted")
	}
}

// TestNewCloseLeavesNoDescriptor: New opens the root (and probes openat2 with a descriptor it closes);
// Close releases the root, so that nothing stays open.
func TestNewCloseLeavesNoDescriptor(t *testing.T) {
	count := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	dir := t.TempDir()
	before := count()
	for range 5 {
		r, err := New(dir)
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	if after := count(); after != before {
		t.Errorf("descriptors: %d before, %d after five New and Close", before, after)
	}
}

// loopStream replays one request and discards the response, allocating nothing.
type loopStream struct {
	req []byte
	off int
}

func (s *loopStream) Read(p []byte) (int, error) {
	n := copy(p, s.req[s.off:])
	s.off += n
	return n, nil
}
func (s *loopStream) Write(p []byte) (int, error) { return len(p), nil }
func (s *loopStream) SetReadDeadline(time.Time)   {}
func (s *loopStream) SetWriteDeadline(time.Time)  {}

// TestD5_NoAllocationPerFileRequest: serving a file (opened, answered, closed) allocates nothing per
// request, with and without a precompressed sibling looked for, as H22 and S2 ask of every request
// path.
func TestD5_NoAllocationPerFileRequest(t *testing.T) {
	r, _ := newRoot(t)
	h := conn.HandlerFunc(func(_ int, c *conn.Connection) error { return r.Serve(c) })
	resp, _ := get(t, r, "/ten.txt")
	etag, lm := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	for _, req := range []string{
		"GET /ten.txt HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /style.css HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n",
		"GET /sub/ HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nRange: bytes=2-5\r\n\r\n",
		// A browser's revalidation, and q-values: 304 and 200 alike allocate nothing.
		"GET /ten.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"other\", " + etag + "\r\n\r\n",
		"GET /ten.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"other\"\r\nIf-Modified-Since: " + lm + "\r\n\r\n",
		"GET /ten.txt HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: " + lm + "\r\n\r\n",
		"GET /ten.txt HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT\r\n\r\n",
		"GET /ten.txt HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: yesterday\r\n\r\n",
		"GET /ten.txt HTTP/1.1\r\nHost: x\r\nIf-Match: \"other\", " + etag + "\r\n\r\n",
		"GET /ten.txt HTTP/1.1\r\nHost: x\r\nIf-Match: \"stale\"\r\n\r\n",
		"GET /ten.txt HTTP/1.1\r\nHost: x\r\nIf-Unmodified-Since: Sat, 01 Jan 2000 00:00:00 GMT\r\n\r\n",
		"GET /style.css HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip;q=1.0, identity; q=0.5\r\n\r\n",
		"GET /style.css HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br, gzip;q=0\r\n\r\n",
	} {
		if allocs := allocsPerRequest(t, h, req); allocs > 0 {
			t.Errorf("%q: %.1f allocations per request", req, allocs)
		}
	}
}

// TestD5_WithoutOpenat2: on a kernel without openat2(2) (before 5.6; also qemu-user), files are
// resolved by open plus a check of the real path in /proc: the same files are served, the same escapes
// refused, and nothing is allocated per request either.
// TestD5_Openat2RefusedBySeccomp: a seccomp filter that answers openat2 with EPERM (older container
// runtimes' defaults) makes the root resolve paths by hand, as on a kernel without openat2, instead of
// failing at start; any other error of the probe still fails New.
func TestD5_Openat2RefusedBySeccomp(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<p>ok</p>"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer func(f func(int) error) { probeOpenat2 = f }(probeOpenat2)
	probeOpenat2 = func(int) error { return unix.EPERM }
	r, err := New(dir)
	if err != nil {
		t.Fatalf("New with openat2 refused by seccomp: %v", err)
	}
	defer r.Close()
	if r.openat2 {
		t.Fatal("openat2 still in use after the probe was refused")
	}
	var f file
	d := r.acquire()
	if d == nil {
		t.Fatal("no web root directory")
	}
	defer d.release()
	if err := r.open(d.fd, []byte("index.html"), &f); err != nil {
		t.Fatalf("open through the fallback: %v", err)
	}
	unix.Close(f.fd)
	probeOpenat2 = func(int) error { return unix.EIO }
	if r, err := New(dir); err == nil {
		r.Close()
		t.Fatal("New succeeded although the probe failed with EIO")
	}
}

func TestD5_WithoutOpenat2(t *testing.T) {
	withoutOpenat2 = true
	defer func() { withoutOpenat2 = false }()
	t.Run("files", TestD5_FilesTypesAndIndex)
	t.Run("traversal", TestD5_TraversalRefused)
	t.Run("gzip", TestD5_GzipSibling)
	t.Run("allocations", TestD5_NoAllocationPerFileRequest)
}

// TestD5_IndexThatIsADirectoryIsNotFound: a directory whose index.html is itself a directory has no
// index: 404 (no listings), not a redirect to the same path with one more slash, which would 404 anyway.
func TestD5_IndexThatIsADirectoryIsNotFound(t *testing.T) {
	r, _ := newRoot(t)
	if err := os.MkdirAll(filepath.Join(r.Dir(), "odd", "index.html"), 0o755); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, r, "/odd/"); resp.StatusCode != 404 || resp.Header.Get("Location") != "" {
		t.Errorf("/odd/ with index.html a directory: %d Location %q, want 404", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := get(t, r, "/odd"); resp.StatusCode != 301 || resp.Header.Get("Location") != "/odd/" {
		t.Errorf("/odd without slash: %d Location %q, want 301 to /odd/", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestD5_WebrootSwappedWhileServing: a release deployed by pointing the web root's symlink at a new
// directory is served once the path is looked at again, and removing the old release then does not
// leave the root answering 404 to everything until a restart.
func TestD5_WebrootSwappedWhileServing(t *testing.T) {
	defer func(d time.Duration) { RevalidateEvery = d }(RevalidateEvery)
	RevalidateEvery = 0 // every request looks at the path
	base, current := releases(t, "v1", "v2")
	r, err := New(current)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if resp, body := get(t, r, "/"); resp.StatusCode != 200 || string(body) != "v1" {
		t.Fatalf("before the swap: %d %q, want 200 v1", resp.StatusCode, body)
	}
	swapRelease(t, current, "v2")
	if resp, body := get(t, r, "/"); resp.StatusCode != 200 || string(body) != "v2" {
		t.Errorf("after the swap: %d %q, want 200 v2", resp.StatusCode, body)
	}
	if err := os.RemoveAll(filepath.Join(base, "v1")); err != nil {
		t.Fatal(err)
	}
	if resp, body := get(t, r, "/"); resp.StatusCode != 200 || string(body) != "v2" {
		t.Errorf("after the old release was removed: %d %q, want 200 v2", resp.StatusCode, body)
	}
	// A web root that is gone altogether answers 404, and comes back with its directory.
	if err := os.Remove(current); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, r, "/"); resp.StatusCode != 404 {
		t.Errorf("web root removed: %d, want 404", resp.StatusCode)
	}
	swapRelease(t, current, "v2")
	if resp, body := get(t, r, "/"); resp.StatusCode != 200 || string(body) != "v2" {
		t.Errorf("web root back: %d %q, want 200 v2", resp.StatusCode, body)
	}
}

// TestD5_WebrootSwapWaitsForRevalidation: between two looks at the path, requests are served from
// the directory open since the last one, without a system call for the root.
func TestD5_WebrootSwapWaitsForRevalidation(t *testing.T) {
	defer func(d time.Duration) { RevalidateEvery = d }(RevalidateEvery)
	RevalidateEvery = time.Hour
	_, current := releases(t, "v1", "v2")
	r, err := New(current)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	swapRelease(t, current, "v2")
	if resp, body := get(t, r, "/"); resp.StatusCode != 200 || string(body) != "v1" {
		t.Errorf("within RevalidateEvery of the swap: %d %q, want 200 v1", resp.StatusCode, body)
	}
	RevalidateEvery = 0
	if resp, body := get(t, r, "/"); resp.StatusCode != 200 || string(body) != "v2" {
		t.Errorf("after RevalidateEvery: %d %q, want 200 v2", resp.StatusCode, body)
	}
}

// TestD5_WebrootSwapsUnderLoadCloseEveryDirectory: requests in flight while the root is swapped back
// and forth are each served whole from one release or the other, and every directory opened is closed
// once Close is done (run with -race).
func TestD5_WebrootSwapsUnderLoadCloseEveryDirectory(t *testing.T) {
	defer func(d time.Duration) { RevalidateEvery = d }(RevalidateEvery)
	RevalidateEvery = 0
	_, current := releases(t, "v1", "v2")
	before := openFDs(t)
	r, err := New(current)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, body := get(t, r, "/")
				if resp.StatusCode != 200 || (string(body) != "v1" && string(body) != "v2") {
					t.Errorf("during swaps: %d %q, want 200 v1 or v2", resp.StatusCode, body)
					return
				}
			}
		}()
	}
	for i := range 200 {
		swapRelease(t, current, []string{"v1", "v2"}[i%2])
	}
	close(stop)
	wg.Wait()
	r.Close()
	if after := openFDs(t); after != before {
		t.Errorf("open descriptors: %d before New, %d after Close", before, after)
	}
}

// releases makes the directories names under a temporary base, each with an index.html holding its
// name, and a symlink "current" to the first.
func releases(t *testing.T, names ...string) (base, current string) {
	t.Helper()
	base = t.TempDir()
	for _, v := range names {
		if err := os.MkdirAll(filepath.Join(base, v), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(base, v, "index.html"), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	current = filepath.Join(base, "current")
	if err := os.Symlink(names[0], current); err != nil {
		t.Fatal(err)
	}
	return base, current
}

// swapRelease points current at target the way a deployment does: a new symlink renamed over it.
func swapRelease(t *testing.T, current, target string) {
	t.Helper()
	if err := os.Symlink(target, current+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(current+".new", current); err != nil {
		t.Fatal(err)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestD5_RevalidationAllocatesNothing: looking at the web root's path again, when it still names the
// same directory, allocates nothing: the request that makes the look is on the request path too.
func TestD5_RevalidationAllocatesNothing(t *testing.T) {
	defer func(d time.Duration) { RevalidateEvery = d }(RevalidateEvery)
	RevalidateEvery = 0 // every request looks at the path
	r, _ := newRoot(t)
	h := conn.HandlerFunc(func(_ int, c *conn.Connection) error { return r.Serve(c) })
	if allocs := allocsPerRequest(t, h, "GET /ten.txt HTTP/1.1\r\nHost: x\r\n\r\n"); allocs > 0 {
		t.Errorf("%.1f allocations per request that revalidates the web root", allocs)
	}
}

// TestD5_WebrootKeptWhenDescriptorsRunOut: a look at the path that fails for want of descriptors
// (EMFILE under load) keeps the directory served; the web root does not answer 404 once descriptors
// are back.
func TestD5_WebrootKeptWhenDescriptorsRunOut(t *testing.T) {
	defer func(d time.Duration) { RevalidateEvery = d }(RevalidateEvery)
	_, current := releases(t, "v1")
	r, err := New(current)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = uint64(openFDs(t) + 16)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Skip("cannot lower RLIMIT_NOFILE:", err)
	}
	var held []int
	for {
		fd, err := unix.Dup(0)
		if err != nil {
			break
		}
		held = append(held, fd)
	}
	RevalidateEvery = 0
	if d := r.acquire(); d != nil { // the look fails with EMFILE
		d.release()
	}
	for _, fd := range held {
		unix.Close(fd)
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	RevalidateEvery = time.Hour
	if resp, body := get(t, r, "/"); resp.StatusCode != 200 || string(body) != "v1" {
		t.Errorf("after descriptors ran out: %d %q, want 200 v1", resp.StatusCode, body)
	}
}

// allocsPerRequest serves req with h 100 times on one connection and returns the mean allocations.
func allocsPerRequest(t *testing.T, h conn.Handler, req string) float64 {
	t.Helper()
	s := &loopStream{req: []byte(req)}
	c := conn.New(conn.Config{})
	return testing.AllocsPerRun(100, func() {
		s.off = 0
		c.Reset(s)
		if _, err := c.Serve(0, h); err != nil {
			t.Fatal(err)
		}
	})
}
