package conn_test

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/edged/edged/pkg/conn"
)

// diffCases are raw requests for TestDifferentialNetHTTP: valid ones, the H-rule edge cases and classic
// request smuggling vectors. Only the first request of each counts.
var diffCases = []struct{ name, raw string }{
	{"simple GET", get("/")},
	{"GET with query", get("/a/b?x=1&y=%20")},
	{"POST with body", post("/", "hello")},
	{"chunked POST", chunkedPost("/", "5\r\nhello\r\n0\r\n\r\n")},
	{"chunked with extension and trailer", chunkedPost("/", "5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\n")},
	{"HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n"},
	{"absolute-form", "GET http://h/p?q HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"CONNECT authority", "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n"},
	{"lowercase method", "get / HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"unknown method", "BREW / HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: x\r\n\r\n"},
	{"empty header value", "GET / HTTP/1.1\r\nHost: x\r\nX-E:\r\n\r\n"},
	{"Connection list", "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n\r\n"},
	{"CL list of equal values", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello"},
	{"two equal CL headers", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"},
	{"CL with leading zeros", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 005\r\n\r\nhello"},
	{"Expect 100-continue", "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello"},
	{"empty Expect", "POST / HTTP/1.1\r\nHost: x\r\nExpect:\r\nContent-Length: 5\r\n\r\nhello"},

	{"double space", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"tab separator", "GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"trailing space on request line", "GET / HTTP/1.1 \r\nHost: x\r\n\r\n"},
	{"target without slash", "GET foo HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"asterisk for GET", "GET * HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"authority-form for GET", "GET 127.0.0.1:80 HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"control byte in target", "GET /a\x01 HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: x\r\n\r\n"},
	{"HTTP/0.9", "GET / HTTP/0.9\r\nHost: x\r\n\r\n"},
	{"HTTP/1.01", "GET / HTTP/1.01\r\nHost: x\r\n\r\n"},
	{"lowercase version", "GET / http/1.1\r\nHost: x\r\n\r\n"},
	{"HTTP/1", "GET / HTTP/1\r\nHost: x\r\n\r\n"},
	{"missing Host", "GET / HTTP/1.1\r\n\r\n"},
	{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
	{"Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"},
	{"Host with a path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"},
	{"Host IPv6 literal with port", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"},
	{"space before colon", "GET / HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n\r\n"},
	{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n"},
	{"NUL in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n"},
	{"CTL in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x07b\r\n\r\n"},
	{"bare CR in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n"},
	{"bare LF line endings", "GET / HTTP/1.1\nHost: x\n\n"},
	{"bare LF blank line", "GET / HTTP/1.1\r\nHost: x\r\n\n"},
	{"no colon", "GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n"},
	{"non-token header name", "GET / HTTP/1.1\r\nHost: x\r\nX@Y: 1\r\n\r\n"},
	{"TLS ClientHello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"},

	{"CL.TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG"},
	{"TE.CL", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n"},
	{"TE with space before colon", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n1\r\nZ\r\n0\r\n\r\n"},
	{"TE xchunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"},
	{"TE chunked then identity", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n"},
	{"TE gzip, chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"},
	{"TE chunked, chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"},
	{"TE obs-fold", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"},
	{"TE vertical tab", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n"},
	{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
	{"two different CLs", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello"},
	{"CL list of different values", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!"},
	{"CL with plus", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello"},
	{"CL negative", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"},
	{"CL inner space", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5 5\r\n\r\nhello"},
	{"CL overflow", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\nhello"},
	{"CL hex", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello"},
	{"chunk size bare LF", chunkedPost("/", "5\nhello\r\n0\r\n\r\n")},
	{"chunk data bare LF", chunkedPost("/", "5\r\nhello\n0\r\n\r\n")},
	{"chunk trailer bare LF", chunkedPost("/", "5\r\nhello\r\n0\r\nX: y\n\r\n")},
	{"chunk size overflow", chunkedPost("/", "10000000000000000\r\nhello\r\n0\r\n\r\n")},
	{"chunk size with sign", chunkedPost("/", "+5\r\nhello\r\n0\r\n\r\n")},
	{"chunk size with 0x", chunkedPost("/", "0x5\r\nhello\r\n0\r\n\r\n")},
	{"chunk extension with BWS", chunkedPost("/", "5 ;a=1\r\nhello\r\n0\r\n\r\n")},
	{"chunk size followed by space", chunkedPost("/", "5 \r\nhello\r\n0\r\n\r\n")},
	{"chunk data too long", chunkedPost("/", "5\r\nhelloXX\r\n0\r\n\r\n")},
	{"chunked body truncated", chunkedPost("/", "5\r\nhello\r\n")},
	{"CL body truncated", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello"},
	{"chunked trailer obs-fold", chunkedPost("/", "5\r\nhello\r\n0\r\nX: a\r\n b\r\n\r\n")},
}

// netHTTPDifferences lists the cases where edged and net/http's ReadRequest deliberately disagree,
// with the reason. The test fails when a listed case stops differing, so the list stays true.
var netHTTPDifferences = map[string]string{
	// edged accepts, net/http refuses.
	"CL list of equal values":  "CONTRACT H8 / RFC 9110 8.6: a list of identical Content-Length values counts as one; ReadRequest parses the whole value as one number",
	"chunk extension with BWS": "RFC 9112 7.1.1 allows BWS before ';' in a chunk extension; net/http parses the size up to ';' and refuses the space",

	// edged refuses, net/http's ReadRequest accepts (its Server adds these checks).
	"HTTP/2.0":          "CONTRACT H4: 505 for a major version other than 1; ReadRequest parses any HTTP/x.y, net/http's Server then answers 505 too",
	"HTTP/0.9":          "CONTRACT H4: 505 for major version 0; ReadRequest parses it, net/http's Server answers 505 too",
	"missing Host":      "CONTRACT H6: HTTP/1.1 without Host is 400; ReadRequest leaves the check to net/http's Server, which answers 400 too",
	"Host with a space": "CONTRACT H6 / RFC 9112 3.2: an invalid Host value is 400; ReadRequest leaves the check to net/http's Server, which answers 400 too",
	"Host with a path":  "CONTRACT H6 / RFC 9112 3.2: an invalid Host value is 400; ReadRequest leaves the check to net/http's Server, which answers 400 too",

	// edged refuses, net/http accepts: edged is strict where net/http is lenient.
	"asterisk for GET":           "RFC 9112 3.2.4: asterisk-form only for OPTIONS; net/http takes '*' as the path of any method",
	"space before colon":         "CONTRACT H5 / RFC 9112 5.1: whitespace before the colon is a 400; net/http's textproto trims it",
	"obs-fold":                   "CONTRACT H5: obs-fold is a 400; net/http unfolds the continuation line",
	"bare LF line endings":       "CONTRACT H5: bare LF line endings are a 400; net/http's textproto accepts LF alone",
	"bare LF blank line":         "CONTRACT H5: bare LF line endings are a 400; net/http's textproto accepts LF alone",
	"CL.TE":                      "CONTRACT H8 / RFC 9112 6.3: Transfer-Encoding with Content-Length is refused (smuggling); net/http drops Content-Length and reads chunked",
	"TE.CL":                      "CONTRACT H8 / RFC 9112 6.3: Transfer-Encoding with Content-Length is refused (smuggling); net/http drops Content-Length and reads chunked",
	"TE with space before colon": "CONTRACT H5: whitespace before the colon is a 400; net/http trims it and then reads the body as chunked, ignoring Content-Length",
	"TE obs-fold":                "CONTRACT H5: obs-fold is a 400; net/http unfolds it into Transfer-Encoding: chunked",
	"TE in HTTP/1.0":             "CONTRACT H8: Transfer-Encoding in HTTP/1.0 is a 400; net/http ignores it and reads no body",
	"chunked trailer obs-fold":   "CONTRACT H5, H9: trailers are header lines under the same strict rules; net/http unfolds obs-fold in trailers",
}

// edgedAccepts serves raw with a handler that reads the body; the request is accepted when the handler
// got the whole body and the answer is its 200.
func edgedAccepts(raw string) (bool, string) {
	c := conn.New(conn.Config{})
	s := newMemStream(raw)
	r := serveAll(c, s, echoHandler, 1)
	if len(r.finals) == 0 {
		return false, "no response (" + errName(r.serves[0].err) + ")"
	}
	st := r.finals[0].status
	return st == 200 && len(r.reqs) == 1 && r.reqs[0]["BodyErr"] == "", http.StatusText(st)
}

// netHTTPAccepts parses raw with http.ReadRequest and reads the body.
func netHTTPAccepts(raw string) (bool, string) {
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		return false, err.Error()
	}
	if _, err := io.ReadAll(req.Body); err != nil {
		return false, "body: " + err.Error()
	}
	return true, "ok"
}

func TestDifferentialNetHTTP(t *testing.T) {
	names := map[string]bool{}
	for _, tc := range diffCases {
		if names[tc.name] {
			t.Fatalf("duplicate case name %q", tc.name)
		}
		names[tc.name] = true
		eOK, eWhy := edgedAccepts(tc.raw)
		nOK, nWhy := netHTTPAccepts(tc.raw)
		reason, listed := netHTTPDifferences[tc.name]
		switch {
		case eOK != nOK && !listed:
			t.Errorf("%s: edged accepts=%v (%s), net/http accepts=%v (%s): an unexplained difference\ninput: %q", tc.name, eOK, eWhy, nOK, nWhy, tc.raw)
		case eOK == nOK && listed:
			t.Errorf("%s: listed as a difference (%s) but both accept=%v now", tc.name, reason, eOK)
		}
	}
	for name := range netHTTPDifferences {
		if !names[name] {
			t.Errorf("difference listed for a case that does not exist: %q", name)
		}
	}
}
