package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/edged/edged/pkg/conn"
	"github.com/edged/edged/pkg/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func newTest(t *testing.T) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := New(reg, 2, 12345, "1.2.3", Sources{
		Server: func() server.Stats {
			return server.Stats{Workers: 2, WorkersBusy: 1, SocketQueueLength: 3, SocketsParked: 4, SocketsOpen: 5}
		},
		WebSocket: func() (int, uint64, uint64) { return 2, 7, 9 },
		Topics:    func() int { return 6 },
	})
	return m, reg
}

func TestM_CountsMatchTraffic(t *testing.T) {
	m, reg := newTest(t)
	for i := 0; i < 3; i++ {
		m.RequestDone(0, conn.ExchangeStats{Method: conn.MethodGet, Status: 200, Received: 10, Sent: 20, Duration: time.Millisecond})
	}
	m.RequestDone(1, conn.ExchangeStats{Method: conn.MethodPost, Status: 404, Received: 1, Sent: 2, Duration: 2 * time.Second})
	m.RequestDone(1, conn.ExchangeStats{Method: conn.MethodOther, Status: 599, Duration: time.Microsecond})
	m.Accepted()
	m.Closed(server.ReasonProtocolError)
	m.AcceptError(nil)
	want := `
# HELP edged_http_requests_total HTTP requests answered, by method and status code.
# TYPE edged_http_requests_total counter
edged_http_requests_total{code="200",method="GET"} 3
edged_http_requests_total{code="404",method="POST"} 1
edged_http_requests_total{code="5xx",method="OTHER"} 1
# HELP edged_http_received_bytes_total Bytes read from HTTP clients (heads and bodies).
# TYPE edged_http_received_bytes_total counter
edged_http_received_bytes_total 31
# HELP edged_http_sent_bytes_total Bytes written to HTTP clients.
# TYPE edged_http_sent_bytes_total counter
edged_http_sent_bytes_total 62
# HELP edged_connections_active Accepted sockets that exist now (never above the socket queue size).
# TYPE edged_connections_active gauge
edged_connections_active 5
# HELP edged_sockets_parked Idle keep-alive sockets parked in epoll.
# TYPE edged_sockets_parked gauge
edged_sockets_parked 4
# HELP edged_memory_budget_bytes Memory the configured pools can ever use.
# TYPE edged_memory_budget_bytes gauge
edged_memory_budget_bytes 12345
# HELP edged_topics Topics with a retained value.
# TYPE edged_topics gauge
edged_topics 6
`
	names := []string{"edged_http_requests_total", "edged_http_received_bytes_total", "edged_http_sent_bytes_total",
		"edged_connections_active", "edged_sockets_parked", "edged_memory_budget_bytes", "edged_topics"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "edged_http_request_duration_seconds" {
			h := mf.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() != 5 {
				t.Errorf("histogram count = %d, want 5", h.GetSampleCount())
			}
			if s := h.GetSampleSum(); s < 2.003 || s > 2.004 {
				t.Errorf("histogram sum = %v, want about 2.003", s)
			}
		}
		if mf.GetName() == "edged_http_request_errors_total" {
			for _, mm := range mf.GetMetric() {
				if mm.GetLabel()[0].GetValue() == "protocol_error" && mm.GetCounter().GetValue() != 1 {
					t.Errorf("protocol_error errors = %v, want 1", mm.GetCounter().GetValue())
				}
			}
		}
	}
}

func TestM_RequiredFamiliesAndLint(t *testing.T) {
	m, reg := newTest(t)
	m.RequestDone(0, conn.ExchangeStats{Method: conn.MethodGet, Status: 200})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, mf := range mfs {
		have[mf.GetName()] = true
	}
	for _, name := range []string{
		"edged_build_info", "edged_connections_accepted_total", "edged_connections_active",
		"edged_connections_closed_total", "edged_socket_queue_length", "edged_sockets_parked",
		"edged_workers", "edged_workers_busy", "edged_accept_errors_total", "edged_http_requests_total",
		"edged_http_request_duration_seconds", "edged_http_request_errors_total",
		"edged_http_received_bytes_total", "edged_http_sent_bytes_total", "edged_websocket_sessions_active",
		"edged_websocket_messages_total", "edged_topics", "edged_handler_panics_total",
		"edged_memory_budget_bytes", "go_goroutines", "process_resident_memory_bytes",
	} {
		if !have[name] {
			t.Errorf("family %s missing", name)
		}
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestM_RequestDoneAllocatesNothing(t *testing.T) {
	m, _ := newTest(t)
	st := conn.ExchangeStats{Method: conn.MethodGet, Status: 200, Received: 10, Sent: 20, Duration: time.Millisecond}
	if a := testing.AllocsPerRun(1000, func() { m.RequestDone(1, st) }); a != 0 {
		t.Fatalf("RequestDone allocates %v times", a)
	}
}
