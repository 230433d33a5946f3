//go:build e2e

package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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

// Helpers of the reliability tests (hostile input, slow clients, exhaustion, crashes): every case
// ends with the daemon still serving, and with nothing left behind once the clients have gone.

// scaledBound stretches a latency bound under the race detector, which slows the daemon several times.
func scaledBound(d time.Duration) time.Duration {
	if raceEnabled {
		return 3 * d
	}
	return d
}

// metricsURLs caches each daemon's /metrics URL: the main listener's, or --metrics-listen's.
var metricsURLs sync.Map

// metricsURL returns where the daemon serves /metrics: on --metrics-listen when the start-up line
// names a metrics address (then a scrape needs none of the main listener's workers), else on the main
// listener.
func (d *daemon) metricsURL() string {
	if u, ok := metricsURLs.Load(d); ok {
		return u.(string)
	}
	u := d.url("/metrics")
	if addr, _ := d.waitLog("edged started")["metrics_addr"].(string); addr != "" {
		u = "http://" + addr + "/metrics"
	}
	metricsURLs.Store(d, u)
	return u
}

// series scrapes /metrics on a connection of its own, closed afterwards, so that no keep-alive socket
// stays behind in the daemon's descriptors or sockets.
func (d *daemon) series(t *testing.T) map[string]float64 {
	t.Helper()
	c := http.Client{Timeout: waitLimit, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(d.metricsURL())
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d, %v", resp.StatusCode, err)
	}
	s, dups := parseExposition(t, string(body))
	if len(dups) > 0 {
		t.Fatalf("duplicate series: %v", dups)
	}
	return s
}

// value returns one series (name, or name{labels} as seriesKey writes it) from /metrics, -1 if absent.
func (d *daemon) value(t *testing.T, key string) float64 {
	t.Helper()
	if v, ok := d.series(t)[key]; ok {
		return v
	}
	return -1
}

// waitValue polls /metrics until the series key has the value want.
func (d *daemon) waitValue(t *testing.T, key string, want float64) {
	t.Helper()
	var got float64
	if !poll(func() bool { got = d.value(t, key); return got == want }, d.exited) {
		t.Fatalf("%s is %v, want %v within %v", key, got, want, waitLimit)
	}
}

// healthz sends GET /healthz on a new connection with Connection: close and returns how long the
// answer took; anything but 200 "ok" within waitLimit fails the test.
func (d *daemon) healthz(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	// exchange closes its connection at once: the daemon's lingering close then ends at once too.
	r := d.exchange(t, "GET /healthz HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\n\r\n", "GET")
	if r.StatusCode != 200 || string(r.body) != "ok" {
		t.Fatalf("GET /healthz: %d %q", r.StatusCode, r.body)
	}
	return time.Since(start)
}

// healthzWithin fails the test unless /healthz is answered within bound.
func (d *daemon) healthzWithin(t *testing.T, bound time.Duration, when string) time.Duration {
	t.Helper()
	took := d.healthz(t)
	if took > bound {
		t.Errorf("GET /healthz %s took %v, bound %v", when, took, bound)
	}
	return took
}

// leakBaseline is the daemon's descriptors and goroutines when no client is connected.
type leakBaseline struct {
	fds        int
	goroutines float64
}

// baseline waits until no client connection is open and the Go runtime's poller exists, and records
// the daemon's descriptors and goroutines (go_goroutines, from /metrics: the daemon gets nothing added
// for the tests).
func (d *daemon) baseline(t *testing.T) leakBaseline {
	t.Helper()
	d.waitIdle(t)
	servers := 1
	if d.metricsURL() != d.url("/metrics") {
		servers = 2
	}
	d.waitRuntimePoller(t, servers)
	return leakBaseline{fds: d.fdCount(t), goroutines: d.value(t, "go_goroutines")}
}

// waitRuntimePoller waits until the daemon holds an epoll instance per server plus the Go runtime's
// own. The runtime opens its poller (an epoll instance and an eventfd) when a goroutine first waits on
// a timer, which may come just after the start-up line: a descriptor baseline taken before would be
// two short, and every later count would look like a leak.
func (d *daemon) waitRuntimePoller(t *testing.T, servers int) {
	t.Helper()
	dir := filepath.Join("/proc", strconv.Itoa(d.cmd.Process.Pid), "fd")
	epolls := func() int {
		ents, _ := os.ReadDir(dir)
		n := 0
		for _, e := range ents {
			if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && target == "anon_inode:[eventpoll]" {
				n++
			}
		}
		return n
	}
	var n int
	if !poll(func() bool { n = epolls(); return n >= servers+1 }, d.exited) {
		t.Fatalf("the daemon holds %d epoll instances, want %d (one per server and the Go runtime's)", n, servers+1)
	}
}

// waitIdle polls until the daemon holds no connection but the scrape's own (when the main listener
// serves /metrics).
func (d *daemon) waitIdle(t *testing.T) {
	t.Helper()
	own := 0.0
	if d.metricsURL() == d.url("/metrics") {
		own = 1
	}
	var got float64
	if !poll(func() bool { got = d.value(t, "edged_connections_active"); return got >= 0 && got <= own }, d.exited) {
		t.Fatalf("edged_connections_active = %v with no client connected", got)
	}
}

// checkLeaks polls until the daemon's descriptors and goroutines are back at the baseline.
func (d *daemon) checkLeaks(t *testing.T, b leakBaseline) {
	t.Helper()
	d.waitIdle(t)
	var fds int
	if !poll(func() bool { fds = d.fdCount(t); return fds <= b.fds }, d.exited) {
		t.Errorf("the daemon holds %d descriptors, %d before", fds, b.fds)
	}
	var g float64
	if !poll(func() bool { g = d.value(t, "go_goroutines"); return g <= b.goroutines }, d.exited) {
		t.Errorf("go_goroutines %v, %v before", g, b.goroutines)
	}
}

// exchangeRaw sends req on a new connection and reads one response, then everything the daemon sends
// until it closes the connection (or waitLimit passes): extra holds bytes after the first response
// (a second response would show there), closed whether the daemon closed.
func (d *daemon) exchangeRaw(t *testing.T, req, method string) (r rawResponse, extra string, closed bool) {
	t.Helper()
	c := d.dial(t)
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("write request: %v", err)
	}
	br := bufio.NewReader(c)
	r = readResponse(t, c, br, method, false)
	_ = c.SetReadDeadline(time.Now().Add(waitLimit))
	rest, err := io.ReadAll(br)
	var ne net.Error
	closed = !(errors.As(err, &ne) && ne.Timeout())
	return r, string(rest), closed
}

// dialFrom connects to addr from the local address local (port chosen by the kernel).
func dialFrom(t *testing.T, local, addr string) net.Conn {
	t.Helper()
	la, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(local, "0"))
	if err != nil {
		t.Fatal(err)
	}
	dl := net.Dialer{LocalAddr: la, Timeout: waitLimit}
	c, err := dl.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, local, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// resetClose closes c with a TCP RST (SO_LINGER 0) instead of a FIN.
func resetClose(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// getOn sends GET path on c (keep-alive) and reads the response.
func getOn(t *testing.T, c net.Conn, br *bufio.Reader, path string) rawResponse {
	t.Helper()
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: e2e\r\n\r\n", path); err != nil {
		t.Fatalf("write GET %s: %v", path, err)
	}
	return readResponse(t, c, br, "GET", false)
}

// procCPU returns the CPU time (user plus system) the process has used, from /proc/PID/stat.
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name in parentheses: state is field 3, utime 14, stime 15.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const clkTck = 100 // sysconf(_SC_CLK_TCK) on Linux
	return time.Duration(utime+stime) * time.Second / clkTck
}

var (
	testRoutesOnce sync.Once
	testRoutesBin  string
	testRoutesErr  error
)

// edgedTestRoutes returns a build of edged with -tags testroutes (internal/routes/debug_testroutes.go:
// routes that panic on purpose), with the race detector when the tests run with it.
func edgedTestRoutes(t *testing.T) string {
	t.Helper()
	testRoutesOnce.Do(func() {
		testRoutesBin = filepath.Join(filepath.Dir(edgedBin), "edged-testroutes")
		args := []string{"build", "-trimpath", "-tags", "testroutes", "-o", testRoutesBin}
		cgo := "CGO_ENABLED=0"
		if raceEnabled {
			args = append(args, "-race")
			cgo = "CGO_ENABLED=1"
		}
		cmd := exec.Command("go", append(args, "github.com/edged/edged/cmd/edged")...)
		cmd.Env = append(os.Environ(), cgo)
		if out, err := cmd.CombinedOutput(); err != nil {
			testRoutesErr = fmt.Errorf("building edged -tags testroutes: %v\n%s", err, out)
		}
	})
	if testRoutesErr != nil {
		t.Fatal(testRoutesErr)
	}
	return testRoutesBin
}
