// Package metrics exports edged's state in the Prometheus text format (CONTRACT M) through one
// explicit registry built by the daemon.
//
// Counting a request costs no allocation and touches no shared cache line: each worker owns a block of
// counters (RequestDone runs on the worker's goroutine), and a custom Collector turns them into const
// metrics at scrape time, as node_exporter does. The counters are atomics only so that a scrape may read
// them while the worker writes; no two goroutines ever add to the same one on the request path.
package metrics

import (
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/edged/edged/pkg/conn"
	"github.com/edged/edged/pkg/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
)

// durationBuckets are the upper bounds, in seconds, of edged_http_request_duration_seconds.
var durationBuckets = [...]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// codes are the status codes counted with their own label value; any other is counted as its class
// ("2xx" ...), which keeps label values bounded.
var codes = [...]int{100, 101, 200, 201, 204, 206, 301, 302, 304, 307, 308, 400, 401, 403, 404, 405, 408,
	409, 411, 412, 413, 414, 415, 416, 417, 426, 429, 431, 500, 501, 502, 503, 504, 505}

const numMethods = int(conn.MethodPatch) + 1

var (
	codeIndex [600]uint8 // status -> index in codes+classes
	codeNames []string
)

func init() {
	for i, c := range codes {
		codeIndex[c] = uint8(i)
		codeNames = append(codeNames, itoa3(c))
	}
	for class := 1; class <= 5; class++ {
		idx := uint8(len(codeNames))
		codeNames = append(codeNames, string(rune('0'+class))+"xx")
		for c := class * 100; c < class*100+100; c++ {
			if codeIndex[c] == 0 && c != codes[0] {
				codeIndex[c] = idx
			}
		}
	}
}

func itoa3(c int) string {
	return string([]byte{byte('0' + c/100), byte('0' + c/10%10), byte('0' + c%10)})
}

// workerCounters belong to one worker.
type workerCounters struct {
	requests [numMethods][len(codes) + 5]atomic.Uint64
	buckets  [len(durationBuckets) + 1]atomic.Uint64
	sumNanos atomic.Uint64
	received atomic.Uint64
	sent     atomic.Uint64
	_        [64]byte // keep the next worker's block off this cache line
}

// WorkerBytes is the memory of one worker's counters (CONTRACT D8).
const WorkerBytes = int(unsafe.Sizeof(workerCounters{}))

// RequestsTotal returns the requests answered since start, summed over the workers.
func (m *Metrics) RequestsTotal() uint64 {
	var n uint64
	for i := range m.workers {
		w := &m.workers[i]
		for b := range w.buckets {
			n += w.buckets[b].Load()
		}
	}
	return n
}

// Sources are the gauges read at scrape time.
type Sources struct {
	Server func() server.Stats
	// WebSocket returns the live sessions and the messages received and sent; nil when not used.
	WebSocket func() (active int, in, out uint64)
	// Topics returns the number of topics with a value; nil when not used.
	Topics func() int
}

// Metrics implements server.Observer and prometheus.Collector.
type Metrics struct {
	workers      []workerCounters
	accepted     atomic.Uint64
	acceptErrors atomic.Uint64
	panics       atomic.Uint64
	closed       [16]atomic.Uint64
	src          Sources
	budget       float64
	version      string

	descs map[string]*prometheus.Desc
}

// New returns a Metrics for workers workers, registers it with the Go and process collectors on reg,
// and reports memoryBudget as edged_memory_budget_bytes (CONTRACT D8).
func New(reg prometheus.Registerer, workers int, memoryBudget int64, version string, src Sources) *Metrics {
	m := &Metrics{
		workers: make([]workerCounters, workers),
		src:     src,
		budget:  float64(memoryBudget),
		version: version,
		descs:   make(map[string]*prometheus.Desc),
	}
	d := func(name, help string, labels ...string) {
		m.descs[name] = prometheus.NewDesc(name, help, labels, nil)
	}
	d("edged_build_info", "Build information; the value is always 1.", "version", "goversion")
	d("edged_connections_accepted_total", "Sockets accepted.")
	d("edged_connections_active", "Accepted sockets that exist now (never above the socket queue size).")
	d("edged_connections_closed_total", "Sockets closed, by reason.", "reason")
	d("edged_socket_queue_length", "Sockets ready and waiting for a worker.")
	d("edged_sockets_parked", "Idle keep-alive sockets parked in epoll.")
	d("edged_workers", "HTTP worker goroutines.")
	d("edged_workers_busy", "Workers serving a socket.")
	d("edged_accept_errors_total", "Accept errors that made the server back off.")
	d("edged_http_requests_total", "HTTP requests answered, by method and status code.", "method", "code")
	d("edged_http_request_duration_seconds", "Time from the first byte of a request to the end of its response.")
	d("edged_http_request_errors_total", "Exchanges that ended in an error, by kind.", "kind")
	d("edged_http_received_bytes_total", "Bytes read from HTTP clients (heads and bodies).")
	d("edged_http_sent_bytes_total", "Bytes written to HTTP clients.")
	d("edged_websocket_sessions_active", "Live WebSocket sessions.")
	d("edged_websocket_messages_total", "WebSocket messages, by direction.", "direction")
	d("edged_topics", "Topics with a retained value.")
	d("edged_handler_panics_total", "Handler panics recovered.")
	d("edged_memory_budget_bytes", "Memory the configured pools can ever use.")
	reg.MustRegister(m,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Observer events (server.Observer).

// Accepted counts an accepted socket.
func (m *Metrics) Accepted() { m.accepted.Add(1) }

// Closed counts a closed socket by reason.
func (m *Metrics) Closed(r server.CloseReason) {
	if int(r) < len(m.closed) {
		m.closed[r].Add(1)
	}
}

// RequestDone counts an exchange on the worker's own counters, without allocating.
func (m *Metrics) RequestDone(worker int, st conn.ExchangeStats) {
	if worker < 0 || worker >= len(m.workers) || st.Status < 100 || st.Status > 599 {
		return
	}
	w := &m.workers[worker]
	w.requests[st.Method][codeIndex[st.Status]].Add(1)
	secs := st.Duration.Seconds()
	b := 0
	for b < len(durationBuckets) && secs > durationBuckets[b] {
		b++
	}
	w.buckets[b].Add(1)
	w.sumNanos.Add(uint64(st.Duration))
	w.received.Add(uint64(st.Received))
	w.sent.Add(uint64(st.Sent))
}

// AcceptError counts an accept error.
func (m *Metrics) AcceptError(error) { m.acceptErrors.Add(1) }

// HandlerPanic counts a recovered panic.
func (m *Metrics) HandlerPanic(int, *conn.PanicError) { m.panics.Add(1) }

// errorKinds are the close reasons that count as request errors, with their kind label.
var errorKinds = []server.CloseReason{
	server.ReasonHeaderTimeout, server.ReasonIOTimeout, server.ReasonHandlerTimeout,
	server.ReasonProtocolError, server.ReasonHandlerError, server.ReasonIOError,
}

// Describe sends every descriptor (prometheus.Collector).
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range m.descs {
		ch <- d
	}
}

// Collect turns the counters into const metrics (prometheus.Collector).
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	c := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(m.descs[name], prometheus.CounterValue, v, labels...)
	}
	g := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(m.descs[name], prometheus.GaugeValue, v, labels...)
	}
	g("edged_build_info", 1, m.version, runtime.Version())
	c("edged_connections_accepted_total", float64(m.accepted.Load()))
	for _, r := range server.CloseReasons() {
		c("edged_connections_closed_total", float64(m.closed[r].Load()), r.String())
	}
	for _, r := range errorKinds {
		c("edged_http_request_errors_total", float64(m.closed[r].Load()), r.String())
	}
	c("edged_accept_errors_total", float64(m.acceptErrors.Load()))
	c("edged_handler_panics_total", float64(m.panics.Load()))
	g("edged_memory_budget_bytes", m.budget)
	g("edged_workers", float64(len(m.workers)))
	if m.src.Server != nil {
		st := m.src.Server()
		g("edged_connections_active", float64(st.SocketsOpen))
		g("edged_socket_queue_length", float64(st.SocketQueueLength))
		g("edged_sockets_parked", float64(st.SocketsParked))
		g("edged_workers_busy", float64(st.WorkersBusy))
	}
	var (
		wsActive     int
		wsIn, wsOut  uint64
		topics       int
		counts       [numMethods][len(codes) + 5]uint64
		buckets      [len(durationBuckets) + 1]uint64
		sum          time.Duration
		rx, tx, reqs uint64
	)
	if m.src.WebSocket != nil {
		wsActive, wsIn, wsOut = m.src.WebSocket()
	}
	if m.src.Topics != nil {
		topics = m.src.Topics()
	}
	g("edged_websocket_sessions_active", float64(wsActive))
	c("edged_websocket_messages_total", float64(wsIn), "received")
	c("edged_websocket_messages_total", float64(wsOut), "sent")
	g("edged_topics", float64(topics))
	for i := range m.workers {
		w := &m.workers[i]
		for mi := range counts {
			for ci := range counts[mi] {
				counts[mi][ci] += w.requests[mi][ci].Load()
			}
		}
		for b := range buckets {
			buckets[b] += w.buckets[b].Load()
		}
		sum += time.Duration(w.sumNanos.Load())
		rx += w.received.Load()
		tx += w.sent.Load()
	}
	c("edged_http_received_bytes_total", float64(rx))
	c("edged_http_sent_bytes_total", float64(tx))
	for mi := range counts {
		for ci, n := range counts[mi] {
			if n > 0 {
				c("edged_http_requests_total", float64(n), conn.Method(mi).String(), codeNames[ci])
			}
		}
	}
	cum := make(map[float64]uint64, len(durationBuckets))
	for b, ub := range durationBuckets {
		reqs += buckets[b]
		cum[ub] = reqs
	}
	reqs += buckets[len(durationBuckets)]
	ch <- prometheus.MustNewConstHistogram(m.descs["edged_http_request_duration_seconds"], reqs, sum.Seconds(), cum)
}

// Gatherer returns g with go_goroutines set to the number of goroutines when Gather was called.
// client_golang's registry gathers its collectors on helper goroutines, and the Go collector counts
// those that happen to be alive when it runs: up to one per collector plus one (four here), as many as
// the scheduler has started by then. A daemon whose goroutines did not change would report a number that moves between scrapes, and
// a leak check (a dashboard's, or a test's) would see goroutines come and go. The count taken before
// the scrape includes the goroutine that serves it, which is one of the daemon's own workers. It can
// still include the helpers of a scrape that ended microseconds before, while they return.
func Gatherer(g prometheus.Gatherer) prometheus.Gatherer { return goroutinesFirst{g} }

type goroutinesFirst struct{ prometheus.Gatherer }

func (g goroutinesFirst) Gather() ([]*dto.MetricFamily, error) {
	n := float64(runtime.NumGoroutine())
	mfs, err := g.Gatherer.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "go_goroutines" || mf.GetType() != dto.MetricType_GAUGE {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.Gauge != nil {
				m.Gauge.Value = &n
			}
		}
	}
	return mfs, err
}
