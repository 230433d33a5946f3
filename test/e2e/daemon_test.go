//go:build e2e

// Package e2e tests the edged binary end to end: it builds cmd/edged, starts it on a free loopback
// port and talks to it with real clients (curl, raw sockets, Python's h11) and signals. Run with
// `go test -tags e2e ./test/e2e/` (make test does). Under CI=true a missing tool fails the test.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Build-time values the tests check in `edged version`.
const (
	testVersion = "9.8.7-e2e"
	testCommit  = "e2ec0mm"
)

// edgedBin is the daemon built by TestMain.
var edgedBin string

// waitLimit bounds every wait for something observable; generous, and more so under the race
// detector, which slows the daemon several times.
var waitLimit = 20 * time.Second

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if raceEnabled {
		waitLimit *= 3
	}
	dir, err := os.MkdirTemp("", "edged-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	edgedBin = filepath.Join(dir, "edged")
	gobin, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: go not found in PATH:", err)
		return 1
	}
	args := []string{"build", "-trimpath", "-o", edgedBin,
		"-ldflags", "-X main.version=" + testVersion + " -X main.commit=" + testCommit}
	cgo := "CGO_ENABLED=0"
	if raceEnabled {
		args = append(args, "-race")
		cgo = "CGO_ENABLED=1"
	}
	build := exec.Command(gobin, append(args, "github.com/edged/edged/cmd/edged")...)
	build.Env = append(os.Environ(), cgo)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building edged:", err)
		return 1
	}
	return m.Run()
}

// requireTool fails the test when path is missing under CI=true, and skips it elsewhere.
func requireTool(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing (scripts/install-test-deps.sh installs it)", path)
	}
	t.Skipf("%s is missing (scripts/install-test-deps.sh installs it)", path)
}

// daemonEnv is the environment without EDGED_* variables, plus extra.
func daemonEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EDGED_") {
			env = append(env, kv)
		}
	}
	if raceEnabled && os.Getenv("GORACE") == "" {
		// The race runtime sleeps a second before every clean exit (atexit_sleep_ms); races are
		// reported when they happen, so the tests, which wait for many exits, skip the sleep.
		env = append(env, "GORACE=atexit_sleep_ms=0")
	}
	return append(env, extra...)
}

// daemon is a running `edged serve`.
type daemon struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string // host:port from the start-up line

	mu     sync.Mutex
	stderr bytes.Buffer

	exited  chan struct{}
	waitErr error
}

// Write collects the daemon's stderr.
func (d *daemon) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stderr.Write(p)
}

func (d *daemon) stderrText() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stderr.String()
}

// logLines returns the JSON log records written so far; lines that are not JSON are skipped.
func (d *daemon) logLines() []map[string]any {
	var recs []map[string]any
	for _, line := range strings.Split(d.stderrText(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil {
			recs = append(recs, rec)
		}
	}
	return recs
}

// logRecordsSince returns the JSON log records timestamped at or after t; a record without a valid
// time counts as one.
func (d *daemon) logRecordsSince(t time.Time) []map[string]any {
	var recs []map[string]any
	for _, rec := range d.logLines() {
		s, _ := rec["time"].(string)
		if at, err := time.Parse(time.RFC3339Nano, s); err != nil || !at.Before(t) {
			recs = append(recs, rec)
		}
	}
	return recs
}

// waitLog polls the log until a record with the given msg appears, and returns it.
func (d *daemon) waitLog(msg string) map[string]any {
	d.t.Helper()
	var rec map[string]any
	if !poll(func() bool {
		for _, r := range d.logLines() {
			if r["msg"] == msg {
				rec = r
				return true
			}
		}
		return false
	}, d.exited) {
		d.t.Fatalf("no log record %q within %v; stderr:\n%s", msg, waitLimit, d.stderrText())
	}
	return rec
}

// poll calls cond every few milliseconds until it is true (true), waitLimit passes or stop is closed
// (false).
func poll(cond func() bool, stop <-chan struct{}) bool {
	deadline := time.Now().Add(waitLimit)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-stop:
			return cond()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// startDaemon runs `edged serve --listen 127.0.0.1:0 --log-format json args...` and waits for its
// start-up line. The daemon is killed at the end of the test if it is still running.
func startDaemon(t *testing.T, env []string, args ...string) *daemon {
	t.Helper()
	return startDaemonCmd(t, []string{edgedBin}, env, args...)
}

// startDaemonCmd is startDaemon with another command line before "serve": another build of edged, or
// a wrapper that runs it (strace -f -o FILE edged, sh -c 'exec "$0" "$@"' edged ...). Signals and the
// exit status are then the wrapper's.
func startDaemonCmd(t *testing.T, argv0 []string, env []string, args ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, exited: make(chan struct{})}
	argv := append(append(append([]string(nil), argv0...), "serve", "--listen", "127.0.0.1:0", "--log-format", "json"), args...)
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Env = daemonEnv(env...)
	d.start(t, "edged")
	rec := d.waitLog("edged started")
	addr, _ := rec["addr"].(string)
	if _, _, err := net.SplitHostPort(addr); err != nil || strings.HasSuffix(addr, ":0") {
		t.Fatalf("start-up line has no bound address: %v", rec)
	}
	d.addr = addr
	return d
}

// url returns http://ADDR/path.
func (d *daemon) url(path string) string { return "http://" + d.addr + path }

// signal sends sig to the daemon.
func (d *daemon) signal(sig os.Signal) {
	d.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits for the daemon to exit and returns its exit status.
func (d *daemon) wait() int {
	d.t.Helper()
	select {
	case <-d.exited:
	case <-time.After(waitLimit):
		d.t.Fatalf("edged did not exit within %v; stderr:\n%s", waitLimit, d.stderrText())
	}
	var ee *exec.ExitError
	switch {
	case d.waitErr == nil:
		return 0
	case errors.As(d.waitErr, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			d.t.Fatalf("edged was killed by %v; stderr:\n%s", ws.Signal(), d.stderrText())
		}
		return ee.ExitCode()
	default:
		d.t.Fatalf("wait: %v", d.waitErr)
		return -1
	}
}

// dial opens a TCP connection to the daemon with a deadline of waitLimit, closed at the end of t.
func (d *daemon) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", d.addr, waitLimit)
	if err != nil {
		t.Fatalf("dial %s: %v", d.addr, err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(waitLimit))
	return c
}

// rawResponse is a response read from a raw socket, its head kept as received.
type rawResponse struct {
	StatusCode int
	Header     http.Header
	Close      bool   // the Connection header holds "close"
	head       string // status line and header lines as received
	body       []byte
	closed     bool // the server closed the connection after the response
}

// readResponse reads one response from br for a request with the given method, then, when
// checkClose is set, whether the server closes the connection next. It reads exactly the response's
// bytes (net/http's parser would drop the Connection header the tests check, and read ahead).
func readResponse(t *testing.T, c net.Conn, br *bufio.Reader, method string, checkClose bool) rawResponse {
	t.Helper()
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		head.WriteString(line)
		if err != nil {
			t.Fatalf("read response head: %v (received %q)", err, head.String())
		}
		if line == "\r\n" {
			break
		}
	}
	tp := textproto.NewReader(bufio.NewReader(strings.NewReader(head.String())))
	statusLine, _ := tp.ReadLine()
	proto, status, _ := strings.Cut(statusLine, " ")
	codeText, _, _ := strings.Cut(status, " ")
	code, err := strconv.Atoi(codeText)
	if !strings.HasPrefix(proto, "HTTP/1.") || err != nil {
		t.Fatalf("bad status line %q", statusLine)
	}
	mime, err := tp.ReadMIMEHeader()
	if err != nil {
		t.Fatalf("bad response head %q: %v", head.String(), err)
	}
	r := rawResponse{StatusCode: code, Header: http.Header(mime), head: head.String()}
	for _, v := range r.Header.Values("Connection") {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "close") {
				r.Close = true
			}
		}
	}
	switch cl := r.Header.Get("Content-Length"); {
	case method == "HEAD" || code < 200 || code == 204 || code == 304:
	case r.Header.Get("Transfer-Encoding") == "chunked":
		r.body, err = io.ReadAll(httputil.NewChunkedReader(br))
		for err == nil { // trailer section up to the blank line
			var line string
			if line, err = br.ReadString('\n'); line == "\r\n" {
				break
			}
		}
	case cl != "":
		n, perr := strconv.Atoi(cl)
		if perr != nil {
			t.Fatalf("bad Content-Length %q", cl)
		}
		r.body = make([]byte, n)
		_, err = io.ReadFull(br, r.body)
	default: // close-delimited
		r.body, err = io.ReadAll(br)
	}
	if err != nil {
		t.Fatalf("read response body: %v (head %q)", err, r.head)
	}
	if checkClose {
		_ = c.SetReadDeadline(time.Now().Add(waitLimit))
		var one [1]byte
		n, err := br.Read(one[:])
		r.closed = n == 0 && err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
	}
	return r
}

// roundTrip sends req on a new connection and reads one response.
func (d *daemon) roundTrip(t *testing.T, req, method string, checkClose bool) rawResponse {
	t.Helper()
	c := d.dial(t)
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatalf("write request: %v", err)
	}
	return readResponse(t, c, bufio.NewReader(c), method, checkClose)
}

// runEdged runs the binary to completion and returns its exit status and outputs.
func runEdged(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(edgedBin, args...)
	cmd.Env = daemonEnv(env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start edged: %v", err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(waitLimit):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("edged %v did not exit within %v; stderr:\n%s", args, waitLimit, errOut.String())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("edged %v: %v", args, err)
	}
	return code, out.String(), errOut.String()
}

// start runs d.cmd with its stderr captured, reaps it, and at the end of the test kills it if it is still
// running and fails the test on a data race the daemon reported.
func (d *daemon) start(t *testing.T, what string) {
	t.Helper()
	d.cmd.Stderr = d
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", what, err)
	}
	go func() {
		d.waitErr = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
		if strings.Contains(d.stderrText(), "WARNING: DATA RACE") {
			t.Errorf("the daemon reported a data race:\n%s", d.stderrText())
		}
	})
}
