//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edged/edged/internal/statuspage"
)

// Flag combinations that make no sense, or less sense than the user may think (CONTRACT D2, D8, S6):
// each nonsense one is refused by serve and check with exit 2 and one line naming what to change,
// never a crash; each doubtful one is accepted with a warning in the start-up log and on check's
// stderr.

// TestD2_NonsenseConfigurationsRefused: sizes whose buffers cannot be allocated (one flag too large, or
// flags whose product is more than the machine's memory), a metrics listener on the main address and
// a web root that is a file: exit 2 with one line, and no Go runtime crash ("fatal error: out of
// memory" was what a --buffer-size of 100 GB gave before).
func TestD2_NonsenseConfigurationsRefused(t *testing.T) {
	file := t.TempDir() + "/file"
	if err := writeFile(file, "x"); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	taken := ln.Addr().String()
	ln.Close()
	for _, tc := range []struct {
		args []string
		want string // in the one line
	}{
		{[]string{"--buffer-size", "100000000000"}, "--buffer-size"},
		{[]string{"--buffer-size", "16777217"}, "--buffer-size"},
		{[]string{"--max-headers", "100000000"}, "--max-headers"},
		{[]string{"--ws-max-message", "1GiB"}, "--ws-max-message"},
		{[]string{"--topic-max-bytes", "100GiB"}, "--topic-max-bytes"},
		{[]string{"--workers", "65536", "--buffer-size", "16777216"}, "--workers or --buffer-size"},
		{[]string{"--ws-max-conns", "65536", "--ws-max-message", "256MiB", "--socket-queue", "1048576"}, "--ws-max-conns"},
		{[]string{"--topics-max", "1048576", "--topic-max-bytes", "256MiB"}, "--topics-max"},
		{[]string{"--webroot", file}, "--webroot"},
		{[]string{"--listen", taken, "--metrics-listen", taken}, "--metrics-listen"},
	} {
		for _, cmd := range []string{"check", "serve"} {
			args := append([]string{cmd}, tc.args...)
			if cmd == "serve" && tc.args[0] != "--listen" {
				args = append(args, "--listen", "127.0.0.1:0")
			}
			code, _, errOut := runEdged(t, nil, args...)
			if code != 2 || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "edged: invalid ") || !strings.Contains(errOut, tc.want) {
				t.Errorf("%s %v: exit %d, stderr %q; want 2 and one line naming %s", cmd, tc.args, code, clip([]byte(errOut)), tc.want)
			}
		}
	}
}

// TestD2_DoubtfulConfigurationsWarned: a socket queue below the worker count (only Q workers can ever
// be busy), a header timeout above the handler timeout (the head gets the handler timeout), a topic
// value limit above the WebSocket message limit (a larger value drops every subscriber): accepted,
// with one warning line each from check (on stderr; stdout stays key=value) and from serve (a
// "configuration warning" log record), and the daemon serves.
func TestD2_DoubtfulConfigurationsWarned(t *testing.T) {
	type doubtful struct {
		args []string
		want string
	}
	cases := []doubtful{
		{[]string{"--socket-queue", "2", "--workers", "4"}, "--socket-queue 2 is below --workers 4"},
		{[]string{"--header-timeout", "20s", "--handler-timeout", "5s"}, "--header-timeout 20s is above --handler-timeout 5s"},
		{[]string{"--topic-max-bytes", "128KiB"}, "--topic-max-bytes 128KiB is above --ws-max-message 64KiB"},
	}
	// A backlog the kernel cuts to net.core.somaxconn.
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		t.Fatal(err)
	}
	max, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if max < math.MaxInt32 { // otherwise no backlog edged accepts is above it
		above := strconv.Itoa(max + 1)
		cases = append(cases, doubtful{[]string{"--backlog", above},
			fmt.Sprintf("--backlog %s is above net.core.somaxconn %d: the kernel cuts the listen backlog to %d", above, max, max)})
	}
	for _, tc := range cases {
		code, out, errOut := runEdged(t, nil, append([]string{"check"}, tc.args...)...)
		if code != 0 || !strings.HasPrefix(out, "configuration ok\n") || strings.Count(errOut, "\n") != 1 ||
			!strings.HasPrefix(errOut, "edged: warning: "+tc.want) {
			t.Errorf("check %v: exit %d, stderr %q; want 0 and one warning starting %q", tc.args, code, errOut, tc.want)
		}
		d := startDaemon(t, nil, tc.args...)
		rec := d.waitLog("configuration warning")
		if detail, _ := rec["detail"].(string); !strings.HasPrefix(detail, tc.want) || rec["level"] != "WARN" {
			t.Errorf("serve %v: warning record %v, want detail starting %q", tc.args, rec, tc.want)
		}
		d.healthz(t)
	}
	// A configuration that makes sense warns of nothing.
	if code, _, errOut := runEdged(t, nil, "check", "--socket-queue", "8", "--workers", "4"); code != 0 || errOut != "" {
		t.Errorf("check of a sound configuration: exit %d, stderr %q", code, errOut)
	}
}

// TestS6_HeaderTimeoutCappedByHandlerTimeout: with --header-timeout 20s and --handler-timeout 1s a
// head that stops arriving is answered 408 after the handler timeout, not after 20 s (the handler
// timeout counts from the head's first byte too, so the head can never have more).
func TestS6_HeaderTimeoutCappedByHandlerTimeout(t *testing.T) {
	const handlerTimeout = time.Second
	d := startDaemon(t, nil, "--header-timeout", "20s", "--handler-timeout", handlerTimeout.String())
	c := d.dial(t)
	start := time.Now()
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: e2e\r\n"); err != nil {
		t.Fatal(err)
	}
	r := readResponse(t, c, bufio.NewReader(c), "GET", true)
	took := time.Since(start)
	checkErrorResponse(t, r, 408)
	if took < handlerTimeout*9/10 || took > scaledBound(handlerTimeout+2*time.Second) {
		t.Errorf("408 after %v, want about the handler timeout %v", took, handlerTimeout)
	}
}

// TestH12_MaxDrainAboveMaxBody: --max-drain above --max-body is accepted without a warning, because
// it cannot take effect: a body over --max-body is refused (413) before it is read, and a chunked body
// being drained stops at --max-body. A body within both is drained and the connection kept.
func TestH12_MaxDrainAboveMaxBody(t *testing.T) {
	if code, _, errOut := runEdged(t, nil, "check", "--max-body", "1KiB", "--max-drain", "1MiB"); code != 0 || errOut != "" {
		t.Fatalf("check: exit %d, stderr %q", code, errOut)
	}
	d := startDaemon(t, nil, "--max-body", "1KiB", "--max-drain", "1MiB")
	// /healthz does not read a body: the 1000 bytes are drained, and the connection serves on.
	c := d.dial(t)
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "POST /healthz HTTP/1.1\r\nHost: e2e\r\nContent-Length: 1000\r\n\r\n%s", strings.Repeat("d", 1000))
	if r := readResponse(t, c, br, "POST", false); r.StatusCode != 405 || r.Close {
		t.Errorf("POST with a drainable body: %d close=%v, want 405 kept alive", r.StatusCode, r.Close)
	}
	if r := getOn(t, c, br, "/healthz"); r.StatusCode != 200 {
		t.Errorf("the next request on the connection: %d", r.StatusCode)
	}
	// Over --max-body by Content-Length: 413 unread.
	r := d.roundTrip(t, "POST /healthz HTTP/1.1\r\nHost: e2e\r\nContent-Length: 2000\r\n\r\n", "POST", true)
	checkErrorResponse(t, r, 413)
	// Chunked past --max-body while being drained: the drain stops there, and the connection closes.
	r = d.roundTrip(t, "POST /healthz HTTP/1.1\r\nHost: e2e\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n"+
		strings.Repeat("c", 0x800)+"\r\n0\r\n\r\n", "POST", true)
	if r.StatusCode != 405 || !r.Close || !r.closed {
		t.Errorf("chunked body past --max-body on a handler that does not read it: %d close=%v closed=%v, want 405 and a close",
			r.StatusCode, r.Close, r.closed)
	}
}

// TestD3_StatusPageSmallBuffer: with the smallest buffers (--buffer-size 256, which also sizes the write
// buffer) the 5-6 KB status page and the /metrics exposition, both far larger than the write buffer,
// are streamed whole and intact.
func TestD3_StatusPageSmallBuffer(t *testing.T) {
	d := startDaemon(t, nil, "--buffer-size", "256")
	c := http.Client{Timeout: waitLimit, Transport: &http.Transport{DisableKeepAlives: true}}
	code, _, body := httpDo(t, &c, "GET", d.url("/"), "", nil)
	if code != 200 || !bytes.Equal(body, statuspage.HTML) {
		t.Errorf("GET / with --buffer-size 256: %d, %d bytes, want 200 and the %d-byte page", code, len(body), len(statuspage.HTML))
	}
	code, _, body = httpDo(t, &c, "GET", d.url("/metrics"), "", nil)
	if code != 200 || !bytes.Contains(body, []byte("edged_memory_budget_bytes")) || !bytes.HasSuffix(body, []byte("\n")) {
		t.Errorf("GET /metrics with --buffer-size 256: %d, %d bytes", code, len(body))
	}
	t.Logf("--buffer-size 256: status page %d bytes, /metrics %d bytes, both whole", len(statuspage.HTML), len(body))
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o644) }
