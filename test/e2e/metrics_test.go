//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Paths of the Prometheus tools (Debian package prometheus; scripts/install-test-deps.sh installs it).
const (
	promtoolBin   = "/usr/bin/promtool"
	prometheusBin = "/usr/bin/prometheus"
)

// requiredFamilies are the metric families CONTRACT M requires.
var requiredFamilies = []string{
	"edged_build_info", "edged_connections_accepted_total", "edged_connections_active",
	"edged_connections_closed_total", "edged_socket_queue_length", "edged_sockets_parked", "edged_workers",
	"edged_workers_busy", "edged_accept_errors_total", "edged_http_requests_total",
	"edged_http_request_duration_seconds", "edged_http_request_errors_total", "edged_http_received_bytes_total",
	"edged_http_sent_bytes_total", "edged_websocket_sessions_active", "edged_websocket_messages_total",
	"edged_topics", "edged_handler_panics_total", "edged_memory_budget_bytes",
	"go_goroutines", "process_resident_memory_bytes",
}

// metricsText GETs a /metrics URL and returns the exposition.
func metricsText(t *testing.T, u string) string {
	t.Helper()
	c := &http.Client{Timeout: waitLimit}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d, %v", u, resp.StatusCode, err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("GET %s: Content-Type %q, want the text format 0.0.4", u, ct)
	}
	return string(body)
}

// seriesKey is name{label="value",...} with the labels sorted by name.
func seriesKey(name string, labels map[string]string) string {
	if len(labels) == 0 {
		return name
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(name + "{")
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", k, labels[k])
	}
	b.WriteByte('}')
	return b.String()
}

// parseExposition parses the text format into series -> value, and lists the series that appear more
// than once (promtool does not catch those).
func parseExposition(t *testing.T, text string) (series map[string]float64, dups []string) {
	t.Helper()
	series = map[string]float64{}
	for line := range strings.SplitSeq(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		labels := map[string]string{}
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if strings.HasPrefix(rest, "{") {
			rest = rest[1:]
			for !strings.HasPrefix(rest, "}") {
				eq := strings.IndexByte(rest, '=')
				if eq < 0 || len(rest) < eq+2 || rest[eq+1] != '"' {
					t.Fatalf("bad labels in %q", line)
				}
				k := rest[:eq]
				v, err := strconv.QuotedPrefix(rest[eq+1:])
				if err != nil {
					t.Fatalf("bad label value in %q: %v", line, err)
				}
				labels[k], _ = strconv.Unquote(v)
				rest = strings.TrimPrefix(rest[eq+1+len(v):], ",")
			}
			rest = rest[1:]
		}
		fields := strings.Fields(rest)
		if len(fields) < 1 {
			t.Fatalf("no value in %q", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			t.Fatalf("bad value in %q: %v", line, err)
		}
		key := seriesKey(name, labels)
		if _, seen := series[key]; seen {
			dups = append(dups, key)
		}
		series[key] = v
	}
	return series, dups
}

// scrape returns the series of a /metrics URL.
func scrape(t *testing.T, u string) map[string]float64 {
	t.Helper()
	s, dups := parseExposition(t, metricsText(t, u))
	if len(dups) > 0 {
		t.Fatalf("duplicate series: %v", dups)
	}
	return s
}

// waitSeries polls a /metrics URL until every series in want has its value, and fails with the last
// values otherwise.
func waitSeries(t *testing.T, d *daemon, u string, want map[string]float64) {
	t.Helper()
	var last map[string]float64
	ok := poll(func() bool {
		last = scrape(t, u)
		for k, v := range want {
			if last[k] != v {
				return false
			}
		}
		return true
	}, d.exited)
	if !ok {
		var got []string
		for k, v := range want {
			got = append(got, fmt.Sprintf("%s = %v (want %v)", k, last[k], v))
		}
		sort.Strings(got)
		t.Fatalf("metrics did not reach the expected values within %v:\n  %s", waitLimit, strings.Join(got, "\n  "))
	}
}

// metricsAddr returns the --metrics-listen address the start-up line reports.
func (d *daemon) metricsAddr() string {
	d.t.Helper()
	addr, _ := d.waitLog("edged started")["metrics_addr"].(string)
	if _, _, err := net.SplitHostPort(addr); err != nil || strings.HasSuffix(addr, ":0") {
		d.t.Fatalf("start-up line has no bound metrics address: %q", addr)
	}
	return addr
}

// TestM_PromtoolClean: the exposition of a daemon that has served HTTP, a WebSocket session and a
// topic passes `promtool check metrics` without a word, holds every family of CONTRACT M and no series
// twice.
func TestM_PromtoolClean(t *testing.T) {
	requireTool(t, promtoolBin)
	d := startDaemon(t, nil, "--enable-echo")
	for _, req := range []string{
		"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
		"PUT /topics/sensors/t1 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n21.5",
		"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/9.0\r\nHost: a\r\n\r\n",
	} {
		d.exchange(t, req, "GET")
	}
	sess := newMiniWS(t, d.addr, "/echo")
	sess.send(t, "hello")
	if got := sess.receive(t); got != "hello" {
		t.Fatalf("echo: %q", got)
	}
	// A request is counted once its exchange has ended, which may be just after the client has read
	// the response: wait for the last one.
	waitSeries(t, d, d.url("/metrics"), map[string]float64{`edged_http_requests_total{code="505",method="GET"}`: 1})
	text := metricsText(t, d.url("/metrics"))

	cmd := exec.Command(promtoolBin, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	series, dups := parseExposition(t, text)
	if len(dups) > 0 {
		t.Errorf("duplicate series: %v", dups)
	}
	families := map[string]bool{}
	for line := range strings.SplitSeq(text, "\n") {
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name := strings.Fields(f)[0]
			if families[name] {
				t.Errorf("family %s declared twice", name)
			}
			families[name] = true
		}
	}
	for _, f := range requiredFamilies {
		if !families[f] {
			t.Errorf("family %s missing", f)
		}
	}
	if series[`edged_build_info{goversion="`+goVersion(t)+`",version="`+testVersion+`"}`] != 1 {
		t.Errorf("edged_build_info does not carry version %s", testVersion)
	}
	if series["edged_websocket_sessions_active"] != 1 || series["edged_topics"] < 2 { // sensors/t1 and edged/status
		t.Errorf("sessions %v, topics %v; want 1 and >= 2",
			series["edged_websocket_sessions_active"], series["edged_topics"])
	}
}

// goVersion is the Go version the daemon was built with: the one running the tests.
func goVersion(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		t.Fatalf("go env GOVERSION: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestM_CountersMatchTraffic: after a known set of requests, the counters say exactly that: requests by
// method and code, the duration histogram's count, accepted sockets, and the bytes both ways. The
// metrics are read on --metrics-listen, which the main listener does not serve and whose scrapes are
// not counted.
func TestM_CountersMatchTraffic(t *testing.T) {
	d := startDaemon(t, nil, "--metrics-listen", "127.0.0.1:0")
	murl := "http://" + d.metricsAddr() + "/metrics"
	// rx and tx are the bytes of every request and response, as the daemon must count them.
	var rx, tx int
	exchange := func(req string) rawResponse {
		r := d.exchange(t, req, "GET")
		rx += len(req)
		tx += len(r.head) + len(r.body)
		return r
	}
	if r := exchange("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n"); r.StatusCode != 404 {
		t.Errorf("/metrics on the main listener with --metrics-listen: %d, want 404", r.StatusCode)
	}

	requests := []struct {
		req    string
		method string
		code   int
	}{
		{"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", "GET", 200},
		{"HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n", "HEAD", 200},
		{"GET /no/such/page HTTP/1.1\r\nHost: a\r\n\r\n", "GET", 404},
		{"DELETE /healthz HTTP/1.1\r\nHost: a\r\n\r\n", "DELETE", 405},
		{"PUT /topics/a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", "PUT", 201},
		{"PUT /topics/a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz", "PUT", 204},
		{"GET /topics/a HTTP/1.1\r\nHost: a\r\n\r\n", "GET", 200},
	}
	repeat := []int{5, 3, 4, 2, 1, 2, 3}
	c := d.dial(t)
	counted := &countingConn{Conn: c}
	br := bufio.NewReader(counted)
	want := map[string]float64{}
	total := 0
	for i, r := range requests {
		for range repeat[i] {
			if _, err := io.WriteString(counted, r.req); err != nil {
				t.Fatal(err)
			}
			resp := readResponse(t, c, br, r.method, false)
			if resp.StatusCode != r.code {
				t.Fatalf("%q: %d, want %d", r.req, resp.StatusCode, r.code)
			}
			want[fmt.Sprintf(`edged_http_requests_total{code="%d",method=%q}`, r.code, r.method)]++
			total++
		}
	}
	_ = c.Close()
	// A malformed request on a second connection: 400, counted under its method.
	if r := exchange("GET / HTTP/1.1\r\n\r\n"); r.StatusCode != 400 {
		t.Fatalf("request without Host: %d, want 400", r.StatusCode)
	}
	want[`edged_http_requests_total{code="400",method="GET"}`] = 1
	total++
	want["edged_http_request_duration_seconds_count"] = float64(total + 1) // + the 404 of /metrics above
	want[`edged_http_requests_total{code="404",method="GET"}`]++
	want["edged_connections_accepted_total"] = 3
	want["edged_connections_active"] = 0
	want[`edged_connections_closed_total{reason="protocol_error"}`] = 1
	want["edged_http_received_bytes_total"] = float64(rx + counted.written)
	want["edged_http_sent_bytes_total"] = float64(tx + counted.read)
	waitSeries(t, d, murl, want)

	s := scrape(t, murl)
	for k, v := range s {
		if strings.HasPrefix(k, "edged_http_requests_total{") && want[k] != v {
			t.Errorf("%s = %v, want %v", k, v, want[k])
		}
	}
}

// countingConn counts the bytes a client writes and reads.
type countingConn struct {
	net.Conn
	written, read int
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written += n
	return n, err
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read += n
	return n, err
}

// holdHead opens a connection and sends the start of a request head without its end: a worker is
// busy reading it (or, with every worker busy, the socket waits in the queue).
func holdHead(t *testing.T, d *daemon) net.Conn {
	t.Helper()
	c := d.dial(t)
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: a\r\n"); err != nil {
		t.Fatal(err)
	}
	return c
}

// idleKeepAlive opens a connection, completes one request on it and leaves it open.
func idleKeepAlive(t *testing.T, d *daemon) net.Conn {
	t.Helper()
	c := d.dial(t)
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if r := readResponse(t, c, bufio.NewReader(c), "GET", false); r.StatusCode != 200 {
		t.Fatalf("status %d", r.StatusCode)
	}
	return c
}

// TestS4_GaugesQueueMode: with 2 workers and a socket queue of 6, the gauges follow connections held
// open: idle keep-alive sockets are parked, sockets sending a head keep workers busy, and sockets
// beyond the busy workers wait in the queue; everything returns to zero when the clients go.
func TestS4_GaugesQueueMode(t *testing.T) {
	d := startDaemon(t, nil, "--workers", "2", "--socket-queue", "6", "--metrics-listen", "127.0.0.1:0",
		"--header-timeout", fmt.Sprint(waitLimit*2), "--evict-idle=false")
	murl := "http://" + d.metricsAddr() + "/metrics"
	var conns []net.Conn
	gauges := func(active, parked, busy, queued float64) map[string]float64 {
		return map[string]float64{
			"edged_connections_active": active, "edged_sockets_parked": parked,
			"edged_workers_busy": busy, "edged_socket_queue_length": queued, "edged_workers": 2,
		}
	}
	waitSeries(t, d, murl, gauges(0, 0, 0, 0))
	for range 2 {
		conns = append(conns, idleKeepAlive(t, d))
	}
	waitSeries(t, d, murl, gauges(2, 2, 0, 0))
	for range 2 {
		conns = append(conns, holdHead(t, d))
	}
	waitSeries(t, d, murl, gauges(4, 2, 2, 0))
	for range 2 {
		conns = append(conns, holdHead(t, d))
	}
	waitSeries(t, d, murl, gauges(6, 2, 2, 2))
	// A parked socket whose client sends a request re-enters the queue behind the other two.
	if _, err := io.WriteString(conns[0], "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	waitSeries(t, d, murl, gauges(6, 1, 2, 3))
	for _, c := range conns {
		c.Close()
	}
	waitSeries(t, d, murl, gauges(0, 0, 0, 0))
}

// TestS3_GaugesAcceptMode: in accept mode (--socket-queue 0) each worker holds the socket it accepted;
// nothing is ever queued or parked, and a client beyond the workers waits in the kernel backlog, not
// counted as active.
func TestS3_GaugesAcceptMode(t *testing.T) {
	d := startDaemon(t, nil, "--workers", "2", "--socket-queue", "0", "--metrics-listen", "127.0.0.1:0",
		"--header-timeout", fmt.Sprint(waitLimit*2))
	murl := "http://" + d.metricsAddr() + "/metrics"
	gauges := func(active, busy float64) map[string]float64 {
		return map[string]float64{
			"edged_connections_active": active, "edged_workers_busy": busy,
			"edged_sockets_parked": 0, "edged_socket_queue_length": 0,
		}
	}
	idle := idleKeepAlive(t, d) // accept mode: the worker waits on its idle connection (R7.4)
	waitSeries(t, d, murl, gauges(1, 1))
	held := holdHead(t, d)
	waitSeries(t, d, murl, gauges(2, 2))
	waiting := d.dial(t)
	if _, err := io.WriteString(waiting, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	waitSeries(t, d, murl, gauges(2, 2)) // the third client is in the backlog
	idle.Close()
	if r := readResponse(t, waiting, bufio.NewReader(waiting), "GET", false); r.StatusCode != 200 {
		t.Fatalf("the waiting client got %d", r.StatusCode)
	}
	waitSeries(t, d, murl, gauges(2, 2))
	held.Close()
	waiting.Close()
	waitSeries(t, d, murl, gauges(0, 0))
	if s := scrape(t, murl); s["edged_connections_accepted_total"] != 3 {
		t.Errorf("accepted %v, want 3", s["edged_connections_accepted_total"])
	}
}

// freePort returns a loopback port that was free a moment ago, for a program that takes no port 0.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// promQuery runs an instant query on a Prometheus server and returns the values of the result, by
// the result's labels in the text form of seriesKey (without the name).
func promQuery(t *testing.T, base, query string) (map[string]float64, error) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(base + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("status %q", r.Status)
	}
	out := map[string]float64{}
	for _, s := range r.Data.Result {
		text, _ := s.Value[1].(string)
		v, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, err
		}
		delete(s.Metric, "__name__")
		out[seriesKey("", s.Metric)] = v
	}
	return out, nil
}

// TestM_PrometheusScrapes: a real Prometheus server scrapes the daemon every second; its query API
// shows the target up and the 404s the test made.
func TestM_PrometheusScrapes(t *testing.T) {
	requireTool(t, prometheusBin)
	d := startDaemon(t, nil)
	const notFound = 7
	for i := range notFound {
		if r := d.exchange(t, fmt.Sprintf("GET /missing/%d HTTP/1.1\r\nHost: a\r\n\r\n", i), "GET"); r.StatusCode != 404 {
			t.Fatalf("status %d", r.StatusCode)
		}
	}

	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: edged
    static_configs:
      - targets: [%q]
`, d.addr), 0o644); err != nil {
		t.Fatal(err)
	}
	promAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	var promLog bytes.Buffer
	prom := exec.Command(prometheusBin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	prom.Stdout, prom.Stderr = &promLog, &promLog
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	promDone := make(chan struct{})
	go func() { _ = prom.Wait(); close(promDone) }()
	t.Cleanup(func() {
		_ = prom.Process.Kill()
		<-promDone
	})

	base := "http://" + promAddr
	query := func(q string, check func(map[string]float64) bool) map[string]float64 {
		t.Helper()
		var last map[string]float64
		var lastErr error
		if !poll(func() bool {
			last, lastErr = promQuery(t, base, q)
			return lastErr == nil && check(last)
		}, promDone) {
			t.Fatalf("query %s: %v (error %v) within %v; prometheus log:\n%s", q, last, lastErr, waitLimit, promLog.String())
		}
		return last
	}
	up := query(`up{job="edged"}`, func(r map[string]float64) bool { return len(r) == 1 })
	for k, v := range up {
		if v != 1 {
			t.Errorf("up%s = %v, want 1", k, v)
		}
	}
	got := query(`edged_http_requests_total{job="edged",code="404"}`, func(r map[string]float64) bool { return len(r) > 0 })
	for k, v := range got {
		if v != notFound {
			t.Errorf("edged_http_requests_total%s = %v, want %d", k, v, notFound)
		}
	}
	t.Logf("prometheus: up %v, 404s %v", up, got)
}
