package conn

import (
	"bytes"
	"net/url"
	"strconv"
	"testing"
)

// FuzzParseContentLength compares parseContentLength with strconv.ParseInt: a Content-Length is digits
// only (no sign, no spaces, no underscores) that fit in int64 (CONTRACT H8), and then both agree on its
// value.
func FuzzParseContentLength(f *testing.F) {
	for _, s := range []string{"0", "42", "007", "9223372036854775807", "9223372036854775808", "+1", "-1", " 1", "1_0", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, ok := parseContentLength(b)
		digits := len(b) > 0
		for _, c := range b {
			if c < '0' || c > '9' {
				digits = false
			}
		}
		ref, err := strconv.ParseInt(string(b), 10, 64)
		want := digits && err == nil
		if ok != want || ok && n != ref {
			t.Fatalf("parseContentLength(%q) = %d, %v; strconv.ParseInt: %d, %v (digits only: %v)", b, n, ok, ref, err, digits)
		}
	})
}

// FuzzDecodedPath compares DecodedPath with net/url's PathUnescape: what edged decodes, net/url decodes
// to the same bytes; what edged refuses is a malformed escape for net/url too, or an encoded NUL, which
// edged refuses on purpose (CONTRACT H3).
func FuzzDecodedPath(f *testing.F) {
	for _, s := range []string{"/a%20b", "/%", "/%4", "/%zz", "/%00", "/%2F%2e%2E", "/+%41"} {
		f.Add([]byte(s))
	}
	c := New(Config{BufferSize: MinBufferSize})
	f.Fuzz(func(t *testing.T, p []byte) {
		c.path = p
		got, err := c.DecodedPath()
		ref, rerr := url.PathUnescape(string(p))
		switch {
		case err == nil && (rerr != nil || string(got) != ref):
			t.Fatalf("DecodedPath(%q) = %q; url.PathUnescape: %q, %v", p, got, ref, rerr)
		case err != nil && rerr == nil && !bytes.Contains([]byte(ref), []byte{0}):
			t.Fatalf("DecodedPath(%q) refused (%v); url.PathUnescape: %q", p, err, ref)
		}
	})
}
