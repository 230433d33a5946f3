package routes

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged/edged/internal/statuspage"
	"github.com/edged/edged/internal/topics"
	"github.com/edged/edged/pkg/conn"
	"github.com/edged/edged/pkg/conn/conntest"
)

func do(t *testing.T, r *Router, raw string, methods ...string) ([]*http.Response, [][]byte) {
	t.Helper()
	out := conntest.Do(conn.Config{}, r, raw)
	resps, bodies, err := conntest.Responses(out, methods...)
	if err != nil {
		t.Fatalf("parse: %v\n%q", err, out)
	}
	return resps, bodies
}

func TestD3_StatusPageWithoutWebroot(t *testing.T) {
	r := New(Config{Workers: 1})
	resps, bodies := do(t, r, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resps[0].StatusCode != 200 || !strings.HasPrefix(resps[0].Header.Get("Content-Type"), "text/html") ||
		string(bodies[0]) != string(statuspage.HTML) {
		t.Fatalf("status page: %d %q, %d bytes", resps[0].StatusCode, resps[0].Header.Get("Content-Type"), len(bodies[0]))
	}
}

func TestM_MetricsRoute(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "edged_test_total", Help: "A test counter."})
	c.Add(3)
	reg.MustRegister(c)
	r := New(Config{Workers: 1, Metrics: reg})
	resps, bodies := do(t, r, "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
	if resps[0].StatusCode != 200 || !strings.HasPrefix(resps[0].Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("metrics: %d %q", resps[0].StatusCode, resps[0].Header.Get("Content-Type"))
	}
	if !strings.Contains(string(bodies[0]), "edged_test_total 3") {
		t.Fatalf("metrics body: %q", bodies[0])
	}
	if resps, _ := do(t, New(Config{Workers: 1}), "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n"); resps[0].StatusCode != 404 {
		t.Fatalf("metrics on a router without a gatherer: %d", resps[0].StatusCode)
	}
}

func TestD4_TopicsOverHTTP(t *testing.T) {
	hub := topics.New(topics.Config{MaxValueBytes: 16})
	r := New(Config{Workers: 1, Hub: hub})
	raw := "PUT /topics/sensors/t1 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 4\r\n\r\n21.5" +
		"POST /topics/sensors/t1 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n22\r\n0\r\n\r\n" +
		"GET /topics/sensors/t1 HTTP/1.1\r\nHost: a\r\n\r\n" +
		"DELETE /topics/sensors/t1 HTTP/1.1\r\nHost: a\r\n\r\n" +
		"GET /topics/sensors/t1 HTTP/1.1\r\nHost: a\r\n\r\n" +
		"PATCH /topics/sensors/t1 HTTP/1.1\r\nHost: a\r\n\r\n" +
		"GET /topics/bad%20name HTTP/1.1\r\nHost: a\r\n\r\n"
	resps, bodies := do(t, r, raw)
	want := []int{201, 204, 200, 204, 404, 405, 400}
	if len(resps) != len(want) {
		t.Fatalf("%d responses, want %d", len(resps), len(want))
	}
	for i, code := range want {
		if resps[i].StatusCode != code {
			t.Errorf("response %d: %d, want %d", i, resps[i].StatusCode, code)
		}
	}
	if string(bodies[2]) != "22" || resps[2].Header.Get("Content-Type") != "application/json" || resps[2].Header.Get("ETag") == "" {
		t.Errorf("GET: %q %v", bodies[2], resps[2].Header)
	}
	etag := resps[2].Header.Get("ETag")
	hub.Publish([]byte("x"), nil, false, []byte("v"))
	resps, _ = do(t, r, "GET /topics/x HTTP/1.1\r\nHost: a\r\n\r\n")
	etag = resps[0].Header.Get("ETag")
	resps, bodies = do(t, r, "GET /topics/x HTTP/1.1\r\nHost: a\r\nIf-None-Match: "+etag+"\r\n\r\n")
	if resps[0].StatusCode != 304 || len(bodies[0]) != 0 {
		t.Errorf("If-None-Match: %d", resps[0].StatusCode)
	}
	resps, _ = do(t, r, "PUT /topics/big HTTP/1.1\r\nHost: a\r\nContent-Length: 17\r\n\r\n01234567890123456")
	if resps[0].StatusCode != 413 {
		t.Errorf("oversized value: %d", resps[0].StatusCode)
	}
	resps, _ = do(t, r, "PUT /topics/big HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n01234567890123456\r\n0\r\n\r\n")
	if resps[0].StatusCode != 413 {
		t.Errorf("oversized chunked value: %d", resps[0].StatusCode)
	}
}

// TestD4_NotModifiedKeepsCacheControl: a topic's 304 carries the ETag and the Cache-Control: no-cache
// of its 200 (RFC 9110 15.4.5), so that a cache that refreshes its stored response keeps revalidating.
func TestD4_NotModifiedKeepsCacheControl(t *testing.T) {
	hub := topics.New(topics.Config{MaxValueBytes: 16})
	r := New(Config{Workers: 1, Hub: hub})
	resps, _ := do(t, r, "PUT /topics/t HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nv"+
		"GET /topics/t HTTP/1.1\r\nHost: a\r\n\r\n")
	etag, cc := resps[1].Header.Get("ETag"), resps[1].Header.Get("Cache-Control")
	if resps[1].StatusCode != 200 || etag == "" || cc != "no-cache" {
		t.Fatalf("GET: %d %v", resps[1].StatusCode, resps[1].Header)
	}
	for _, inm := range []string{etag, "*", `"x", W/` + etag} {
		resps, bodies := do(t, r, "GET /topics/t HTTP/1.1\r\nHost: a\r\nIf-None-Match: "+inm+"\r\n\r\n")
		if resps[0].StatusCode != 304 || len(bodies[0]) != 0 {
			t.Fatalf("If-None-Match %s: %d", inm, resps[0].StatusCode)
		}
		if got := resps[0].Header.Get("ETag"); got != etag {
			t.Errorf("If-None-Match %s: 304 with ETag %q, want %q", inm, got, etag)
		}
		if got := resps[0].Header.Get("Cache-Control"); got != cc {
			t.Errorf("If-None-Match %s: 304 with Cache-Control %q, want %q as the 200", inm, got, cc)
		}
	}
}

// TestD4_PercentEncodedTopicName: a topic name spelled with percent escapes (encodeURIComponent
// writes "/" as %2F) names the same topic as the plain spelling; a malformed escape, or one that
// decodes to a character a name may not hold, is refused with 400.
func TestD4_PercentEncodedTopicName(t *testing.T) {
	hub := topics.New(topics.Config{MaxValueBytes: 16})
	r := New(Config{Workers: 1, Hub: hub})
	resps, bodies := do(t, r, "PUT /topics/sensors%2Ft1 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n21.5"+
		"GET /topics/sensors/t1 HTTP/1.1\r\nHost: a\r\n\r\n"+
		"GET /topics/sensors%2ft%31 HTTP/1.1\r\nHost: a\r\n\r\n"+
		"PUT /topics/a%2Db HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx"+
		"GET /topics/a-b HTTP/1.1\r\nHost: a\r\n\r\n")
	for i, want := range []struct {
		code int
		body string
	}{{201, ""}, {200, "21.5"}, {200, "21.5"}, {201, ""}, {200, "x"}} {
		if resps[i].StatusCode != want.code || string(bodies[i]) != want.body {
			t.Errorf("request %d: %d %q, want %d %q", i, resps[i].StatusCode, bodies[i], want.code, want.body)
		}
	}
	if n := hub.Len(); n != 2 {
		t.Errorf("%d topics, want 2: an escaped spelling made a topic of its own", n)
	}
	long := strings.Repeat("%61", topics.MaxNameLen) // 128 escaped letters: the longest valid name
	for _, tc := range []struct {
		path string
		code int
	}{
		{"/topics/" + long, 404},
		{"/topics/" + long + "a", 400},
		{"/topics/a%20b", 400}, // a space
		{"/topics/a%2", 400},   // cut short
		{"/topics/a%", 400},
		{"/topics/a%zz", 400},
		{"/topics/%2E%2E%2F", 404}, // "../" is a valid name of dots and a slash: no path is resolved
	} {
		resps, _ := do(t, r, "GET "+tc.path+" HTTP/1.1\r\nHost: a\r\n\r\n")
		if resps[0].StatusCode != tc.code {
			t.Errorf("GET %.40s: %d, want %d", tc.path, resps[0].StatusCode, tc.code)
		}
	}
}

func TestW9_UpgradeWithoutPoolIs404(t *testing.T) {
	r := New(Config{Workers: 1, EnableEcho: true})
	resps, _ := do(t, r, "GET /echo HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	if resps[0].StatusCode != 404 {
		t.Fatalf("upgrade without a pool: %d", resps[0].StatusCode)
	}
}

// recorder is a topic subscriber that keeps what it was delivered.
type recorder struct {
	binary []bool
}

func (r *recorder) Deliver(binary bool, _ []byte) bool {
	r.binary = append(r.binary, binary)
	return true
}

// TestD4_TextMediaTypeIgnoresCase: an HTTP publish reaches WebSocket subscribers as text when its
// Content-Type is text/* or JSON, whatever the case of the media type (RFC 9110 8.3.1: type and
// subtype are case-insensitive), so that "Text/Plain" is delivered as published, as text.
func TestD4_TextMediaTypeIgnoresCase(t *testing.T) {
	hub := topics.New(topics.Config{MaxValueBytes: 16})
	r := New(Config{Workers: 1, Hub: hub})
	rec := &recorder{}
	if err := hub.Subscribe([]byte("t"), rec); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ctype  string
		binary bool
	}{
		{"text/plain", false},
		{"Text/Plain; charset=UTF-8", false},
		{"TEXT/CSV", false},
		{"application/JSON", false},
		{"Application/Vnd.Api+Json", false},
		{"application/octet-stream", true},
		{"image/png", true},
	} {
		rec.binary = rec.binary[:0]
		resps, _ := do(t, r, "PUT /topics/t HTTP/1.1\r\nHost: a\r\nContent-Type: "+tc.ctype+"\r\nContent-Length: 2\r\n\r\n{}")
		if resps[0].StatusCode/100 != 2 || len(rec.binary) != 1 {
			t.Fatalf("%s: %d, %d deliveries", tc.ctype, resps[0].StatusCode, len(rec.binary))
		}
		if rec.binary[0] != tc.binary {
			t.Errorf("Content-Type %q delivered as binary=%v, want %v", tc.ctype, rec.binary[0], tc.binary)
		}
	}
}
