//go:build linux

package static

import (
	"path"
	"strings"
	"testing"
)

// FuzzParseRange: any Range header gives either nothing (ignored), an unsatisfiable range, or a range
// inside the file; never a panic.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-0", "bytes=2-5", "bytes=-3", "bytes=5-", "bytes=0-,1-2", " bytes = 1-2",
		"bytes=99999999999999999999-", "bytes=+1-2", "bytes=-0", "bytes=3-2", "bytes=--1"} {
		f.Add([]byte(s), int64(10))
	}
	f.Fuzz(func(t *testing.T, h []byte, size int64) {
		if size < 0 {
			size = -size
		}
		if size < 0 { // the smallest int64
			size = 0
		}
		start, n, ok, satisfiable := parseRange(h, size)
		if !ok && satisfiable {
			t.Fatalf("%q: satisfiable but not ok", h)
		}
		if satisfiable && (start < 0 || n < 1 || start > size-n) {
			t.Fatalf("%q against %d bytes: range %d+%d outside the file", h, size, start, n)
		}
	})
}

// FuzzParseHTTPDate: any If-Modified-Since value parses or does not, never panics, and a date it
// accepts is a real one that reads back the same in the IMF-fixdate format.
func FuzzParseHTTPDate(f *testing.F) {
	for _, s := range []string{"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
		"Sun Nov  6 08:49:37 1994", "Thu Feb 29 23:59:60 2024", "Sun, 31 Apr 1994 08:49:37 GMT", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := parseHTTPDate(b)
		if !ok {
			return
		}
		if got.Year() < 0 || got.Year() > 10000 {
			t.Fatalf("%q: year %d", b, got.Year())
		}
		if got.Year() >= 1000 && got.Year() <= 9999 {
			again, ok := parseHTTPDate([]byte(got.Format(httpTime)))
			if !ok || !again.Equal(got) {
				t.Fatalf("%q: %v, and its IMF form %q reads back as %v %v", b, got, got.Format(httpTime), again, ok)
			}
		}
	})
}

// FuzzRelativePath checks the step from a decoded request path to a path under the web root (CONTRACT
// D5): what is accepted is relative, already clean (path.Clean leaves it as it is: no ".", ".." or
// empty segment), holds no backslash or NUL, and isDir reports exactly a trailing slash.
func FuzzRelativePath(f *testing.F) {
	for _, s := range []string{"/", "/a/b.txt", "/a/", "/../etc/passwd", "/a/./b", "//a", "/a\\b", "/a\x00", "a", "/.hidden", "/a/.."} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		rel, isDir, ok := relativePath(p)
		if !ok {
			return
		}
		s := string(rel)
		if strings.ContainsAny(s, "\\\x00") || strings.HasPrefix(s, "/") || isDir != (s == "" || strings.HasSuffix(s, "/")) {
			t.Fatalf("relativePath(%q) = %q, isDir %v", p, rel, isDir)
		}
		if trimmed := strings.TrimSuffix(s, "/"); trimmed != "" && path.Clean(trimmed) != trimmed {
			t.Fatalf("relativePath(%q) = %q, which is not clean (%q)", p, rel, path.Clean(trimmed))
		}
		for _, seg := range strings.Split(strings.TrimSuffix(s, "/"), "/") {
			if seg == ".." || seg == "." {
				t.Fatalf("relativePath(%q) = %q, with a %q segment", p, rel, seg)
			}
		}
	})
}
