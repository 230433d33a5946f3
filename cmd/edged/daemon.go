package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged/edged/internal/metrics"
	"github.com/edged/edged/internal/routes"
	"github.com/edged/edged/internal/static"
	"github.com/edged/edged/internal/statuspage"
	"github.com/edged/edged/internal/topics"
	"github.com/edged/edged/pkg/conn"
	"github.com/edged/edged/pkg/server"
	"github.com/edged/edged/pkg/ws"
)

// Sizes of the optional metrics listener (--metrics-listen): a scrape at a time is plenty.
const (
	metricsWorkers = 1
	metricsQueue   = 4
	// slotBytes is what one socket-queue slot costs in pkg/server: the slot, its queue entry and its
	// share of the event array.
	slotBytes = 128
)

// budget is the memory the configured pools can ever use (CONTRACT D8), by part.
type budget struct {
	workers, slots, routes, sessions, topics, metrics, metricsListener int64
}

func (b budget) total() int64 {
	return b.workers + b.slots + b.routes + b.sessions + b.topics + b.metrics + b.metricsListener
}

// parts returns the budget as key/value pairs, for `edged check` and the start-up line.
func (b budget) parts() []slog.Attr {
	return []slog.Attr{
		slog.Int64("memory_budget", b.total()),
		slog.Int64("budget_workers", b.workers),
		slog.Int64("budget_slots", b.slots),
		slog.Int64("budget_routes", b.routes),
		slog.Int64("budget_websocket", b.sessions),
		slog.Int64("budget_topics", b.topics),
		slog.Int64("budget_metrics", b.metrics+b.metricsListener),
	}
}

// sessionLimit returns the WebSocket sessions allowed at once: --ws-max-conns, but never so many that
// sessions could hold the socket slots the HTTP workers need. A session keeps its socket's slot
// (CONTRACT W9), so with Q slots and P workers at most Q-P sessions (at least one) may exist: past
// that, an upgrade gets 503 and HTTP clients, /healthz included, still find a slot.
func (s *settings) sessionLimit() int {
	room := max(s.queueSlots()-s.workers, 1)
	return min(s.wsMaxConns, room)
}

// poolConfig returns the WebSocket session pool of s.
func (s *settings) poolConfig() ws.PoolConfig {
	// A session starts with what the worker read past the handshake, up to B bytes: its read buffer
	// must hold them, or the session is refused and they are lost (CONTRACT H1, W9).
	wc := ws.Config{MaxMessage: int(s.wsMaxMessage), ReadBufferSize: max(ws.DefaultReadBufferSize, s.bufferSize)}
	return ws.PoolConfig{
		MaxSessions:  s.sessionLimit(),
		Conn:         wc,
		PingInterval: s.wsPingInterval,
		WriteTimeout: s.ioTimeout,
	}
}

func (s *settings) topicsConfig() topics.Config {
	return topics.Config{MaxTopics: s.topicsMax, MaxValueBytes: int(s.topicMaxBytes), Reserved: statuspage.Topic}
}

// queueSlots returns the number of sockets the main server may hold: Q, or P in accept mode.
func (s *settings) queueSlots() int {
	if s.socketQueue == 0 {
		return s.workers
	}
	return s.socketQueue
}

// memoryBudget computes the budget of s without allocating any of it. Each part is the cost of one
// unit (a worker, a session, a topic) times their number, multiplied in int64: the units' sizes fit
// an int on 32-bit ARM (the size flags are bounded), their products need not.
func (s *settings) memoryBudget() budget {
	cc := s.connConfig()
	session := ws.PoolConfig{MaxSessions: 1, Conn: s.poolConfig().Conn}.BufferBytes()
	// One topic more than --topics-max: the status topic does not count against it.
	topic := topics.Config{MaxTopics: 1, MaxValueBytes: int(s.topicMaxBytes)}.BufferBytes()
	b := budget{
		workers:  int64(s.workers) * int64(cc.BufferBytes()),
		slots:    int64(s.queueSlots()) * slotBytes,
		sessions: int64(s.sessionLimit()) * int64(session),
		topics:   (int64(s.topicsMax) + 1) * int64(topic),
		metrics:  int64(s.workers) * int64(metrics.WorkerBytes),
	}
	rc := routes.Config{Workers: 1, EnableEcho: s.enableEcho, EchoBuffer: s.bufferSize}
	b.routes = int64(s.workers) * (int64(rc.BufferBytes()) + s.topicMaxBytes)
	if s.metricsListen != "" {
		b.metricsListener = metricsWorkers*int64(cc.BufferBytes()) + metricsQueue*slotBytes
	}
	return b
}

// largest names the flags behind the largest part of the budget, for a refusal's hint.
func (b budget) largest() string {
	parts := []struct {
		n     int64
		flags string
	}{
		{b.workers, "--workers or --buffer-size"},
		{b.slots, "--socket-queue"},
		{b.routes, "--workers or --topic-max-bytes"},
		{b.sessions, "--ws-max-conns or --ws-max-message"},
		{b.topics, "--topics-max or --topic-max-bytes"},
	}
	best := parts[0]
	for _, p := range parts[1:] {
		if p.n > best.n {
			best = p
		}
	}
	return best.flags
}

// checkBudget refuses a configuration above --memory-limit (CONTRACT D8), and one whose pools could
// never be allocated: more than the machine's memory, or more than a 32-bit process can address. The
// Go runtime would otherwise die with "out of memory" at start, or later, when the pools' pages are
// first touched under load.
func (s *settings) checkBudget() error {
	b := s.memoryBudget()
	total := b.total()
	if s.memoryLimit > 0 && total > s.memoryLimit {
		return &usageError{fmt.Sprintf("invalid --memory-limit: the configured pools need %.1f MiB (%d bytes), above the limit of %d bytes",
			float64(total)/(1<<20), total, s.memoryLimit)}
	}
	ceiling, what := physicalMemory(), "the machine's memory"
	if math.MaxInt == math.MaxInt32 && (ceiling == 0 || ceiling > math.MaxInt32) {
		ceiling, what = math.MaxInt32, "what a 32-bit process can address"
	}
	if ceiling > 0 && total > ceiling {
		return &usageError{fmt.Sprintf("invalid configuration: the configured pools need %.1f MiB (%d bytes), more than %s (%.1f MiB); lower %s",
			float64(total)/(1<<20), total, what, float64(ceiling)/(1<<20), b.largest())}
	}
	// The service's own limit (MemoryMax= in the unit) is the memory edged really has: above it, the
	// kernel kills the daemon (SIGKILL) once load fills the pools, and systemd restarts it into the
	// same end. Refused at start instead, with what the runtime needs besides the pools.
	if cg := cgroupMemory(); cg > 0 && total+runtimeAllowance > cg {
		return &usageError{fmt.Sprintf("invalid configuration: the configured pools need %.1f MiB (%d bytes) and the Go runtime about %d MiB more, above the service's memory limit (cgroup memory.max, systemd's MemoryMax=) of %.1f MiB; lower %s or raise MemoryMax=",
			float64(total)/(1<<20), total, runtimeAllowance>>20, float64(cg)/(1<<20), b.largest())}
	}
	return nil
}

// warnings returns what the configuration accepts but probably does not mean, one line each, for the
// start-up log and `edged check`.
func (s *settings) warnings() []string {
	var w []string
	for _, name := range s.unknownEnv {
		w = append(w, fmt.Sprintf("%s is set but is no flag's twin and has no effect (misspelt? `edged serve --help` lists every variable)", name))
	}
	if s.socketQueue > 0 && s.socketQueue < s.workers {
		w = append(w, fmt.Sprintf("--socket-queue %d is below --workers %d: at most %d sockets are open at once, so %d workers never serve",
			s.socketQueue, s.workers, s.socketQueue, s.workers-s.socketQueue))
	}
	if s.headerTimeout > s.handlerTimeout {
		w = append(w, fmt.Sprintf("--header-timeout %v is above --handler-timeout %v, which bounds the whole exchange from the head's first byte: a head gets %v",
			s.headerTimeout, s.handlerTimeout, s.handlerTimeout))
	}
	if s.topicMaxBytes > s.wsMaxMessage {
		w = append(w, fmt.Sprintf("--topic-max-bytes %s is above --ws-max-message %s: a WebSocket subscriber cannot take a larger value and is dropped (close 1008) when one is published",
			formatSize(s.topicMaxBytes), formatSize(s.wsMaxMessage)))
	}
	if max := somaxconn(); max > 0 && s.backlog > max && !s.backlogUnused {
		w = append(w, fmt.Sprintf("--backlog %d is above net.core.somaxconn %d: the kernel cuts the listen backlog to %d",
			s.backlog, max, max))
	}
	return w
}

// somaxconn returns the kernel's limit on listen backlogs (net.core.somaxconn), or 0 when unknown.
var somaxconn = func() int {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// daemon is edged assembled from its settings.
type daemon struct {
	s        *settings
	log      *slog.Logger
	hub      *topics.Hub
	pool     *ws.Pool
	metrics  *metrics.Metrics
	main     *server.Server
	metricsS *server.Server // nil without --metrics-listen
	static   *static.Root
	budget   budget
}

// listeners are sockets handed over by systemd (CONTRACT S12), by role.
type listeners struct {
	main, metrics []int
}

// build allocates every pool and binds the listeners.
func build(s *settings, log *slog.Logger, inherited listeners) (*daemon, error) {
	d := &daemon{s: s, log: log, budget: s.memoryBudget()}
	if s.webroot != "" {
		root, err := static.New(s.webroot)
		if err != nil {
			return nil, &usageError{fmt.Sprintf("invalid --webroot: %v", err)}
		}
		d.static = root
	}
	d.hub = topics.New(s.topicsConfig())
	pc := s.poolConfig()
	pc.OnPanic = d.sessionPanic
	d.pool = ws.NewPool(pc)
	reg := prometheus.NewRegistry()
	var mainSrv *server.Server
	d.metrics = metrics.New(reg, s.workers, d.budget.total(), version, metrics.Sources{
		Server: func() server.Stats {
			if mainSrv == nil {
				return server.Stats{}
			}
			return mainSrv.Stats()
		},
		WebSocket: func() (int, uint64, uint64) {
			in, out := d.pool.Messages()
			return d.pool.Active(), in, out
		},
		Topics: d.hub.Len,
	})
	gather := metrics.Gatherer(reg)
	onMain := gather
	if s.metricsListen != "" {
		onMain = nil // served by the metrics listener only
	}
	router := routes.New(routes.Config{
		Workers:    s.workers,
		EchoBuffer: s.bufferSize,
		EnableEcho: s.enableEcho,
		Metrics:    onMain,
		Hub:        d.hub,
		Pool:       d.pool,
		Upgrade:    &ws.UpgradeOptions{AllowedOrigins: s.origins()},
		Static:     d.static,
	})
	srv, err := server.New(server.Config{
		Listen:            s.listen,
		Listeners:         inherited.main,
		Workers:           s.workers,
		SocketQueue:       s.socketQueue,
		Backlog:           s.backlog,
		ParkIdle:          s.parkIdle,
		EvictIdle:         s.evictIdle,
		EvictMinIdle:      s.evictMinIdle,
		MaxConnsPerClient: s.maxConnsPerClient,
		ShutdownGrace:     s.shutdownGrace,
		Conn:              s.connConfig(),
		Observer:          d.metrics,
		Logger:            log,
	}, router)
	if err != nil {
		return nil, serverError("--listen", s.listen, inherited.main, err)
	}
	srv.SetUnboundHandler(router.Unbound)
	mainSrv, d.main = srv, srv
	if s.metricsListen != "" {
		mrouter := routes.New(routes.Config{Workers: metricsWorkers, Metrics: gather, NoStatusPage: true})
		d.metricsS, err = server.New(server.Config{
			Listen:        s.metricsListen,
			Listeners:     inherited.metrics,
			Workers:       metricsWorkers,
			SocketQueue:   metricsQueue,
			Backlog:       s.backlog,
			ParkIdle:      true,
			EvictIdle:     true,
			ShutdownGrace: s.shutdownGrace,
			Conn:          s.connConfig(),
			Logger:        log,
		}, mrouter)
		if err != nil {
			d.main.Shutdown(context.Background())
			return nil, serverError("--metrics-listen", s.metricsListen, inherited.metrics, err)
		}
	}
	return d, nil
}

// sessionPanic logs and counts a panic recovered from a WebSocket session's handler, as pkg/server
// does for HTTP handlers (CONTRACT H17); the session has been closed with 1011.
func (d *daemon) sessionPanic(v any, stack []byte) {
	d.log.Error("WebSocket session handler panicked", "panic", v, "stack", string(stack))
	d.metrics.HandlerPanic(-1, &conn.PanicError{Value: v, Stack: stack})
}

// serverError turns an error of server.New into the daemon's exit status. A listener handed over by
// systemd (inherited is not empty) replaces the flag's address, so the message names systemd's socket,
// not an address edged never tried to bind.
func serverError(flag, addr string, inherited []int, err error) error {
	if errors.As(err, new(*server.BindError)) {
		if len(inherited) > 0 {
			return &exitError{exitBind, fmt.Errorf("cannot listen on the socket systemd passed for %s (LISTEN_FDS): %w", flag, err)}
		}
		return &exitError{exitBind, fmt.Errorf("cannot listen on %s %s: %w", flag, addr, err)}
	}
	if errors.Is(err, server.ErrInvalidConfig) {
		return &exitError{exitUsage, err}
	}
	return &exitError{exitFail, fmt.Errorf("cannot start: %w", err)}
}

// run serves until ctx is cancelled, then drains: servers stop accepting and finish their requests,
// WebSocket sessions get close 1001 (CONTRACT S9, D7).
//
// A server whose Serve fails (its event loop could not be set up or failed) ends the daemon with that
// error, so that it exits 1 and systemd restarts it, instead of running on half alive: the other
// server drains as after a signal.
func (d *daemon) run(ctx context.Context) error {
	ctx, fail := context.WithCancel(ctx)
	defer fail()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	serveOne := func(srv *server.Server) {
		defer wg.Done()
		if err := srv.Serve(ctx); err != nil && !errors.Is(err, context.Canceled) {
			errs <- err
			fail()
		}
	}
	wg.Add(1)
	go serveOne(d.main)
	if d.metricsS != nil {
		wg.Add(1)
		go serveOne(d.metricsS)
	}
	stopStatus := d.publishStatus(ctx)
	<-ctx.Done()
	stopStatus()
	grace := make(chan struct{})
	timer := time.AfterFunc(d.s.shutdownGrace, func() { close(grace) })
	d.pool.Shutdown(grace)
	timer.Stop()
	wg.Wait()
	if d.static != nil {
		d.static.Close()
	}
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// alive reports whether the event loops of both servers turn (CONTRACT D7, systemd's watchdog).
func (d *daemon) alive(ctx context.Context) error {
	if err := d.main.Alive(ctx); err != nil {
		return fmt.Errorf("main listener: %w", err)
	}
	if d.metricsS != nil {
		if err := d.metricsS.Alive(ctx); err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
	}
	return nil
}

// publishStatus publishes a JSON snapshot on the status topic every second, for the built-in status
// page (CONTRACT D3). It returns a function that stops it.
func (d *daemon) publishStatus(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		var (
			buf       []byte
			lastReqs  uint64
			lastTime  = time.Now()
			name      = []byte(statuspage.Topic)
			ctypeJSON = []byte("application/json")
			failing   bool
		)
		for {
			now := time.Now()
			reqs := d.metrics.RequestsTotal()
			rps := float64(reqs-lastReqs) / now.Sub(lastTime).Seconds()
			lastReqs, lastTime = reqs, now
			buf = d.statusJSON(buf[:0], rps, reqs)
			switch _, err := d.hub.Publish(name, ctypeJSON, false, buf); {
			case err == nil:
				failing = false
			case !failing:
				// Once per failure, not every second: a snapshot larger than --topic-max-bytes leaves
				// the built-in status page without data for good, and says so where the operator looks.
				failing = true
				d.log.Warn("status snapshot not published: the built-in status page shows no data",
					"error", err, "snapshot_bytes", len(buf), "topic_max_bytes", d.s.topicMaxBytes,
					"hint", "raise --topic-max-bytes above snapshot_bytes")
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

// statusJSON appends the status snapshot to b.
func (d *daemon) statusJSON(b []byte, rps float64, reqs uint64) []byte {
	st := d.main.Stats()
	in, out := d.pool.Messages()
	num := func(b []byte, k string, v int64) []byte {
		b = appendJSONString(b, k)
		b = append(b, ':')
		return strconv.AppendInt(b, v, 10)
	}
	if math.IsNaN(rps) || math.IsInf(rps, 0) {
		// JSON has no NaN or Inf: the first snapshot's rate may be taken over no measurable time (a
		// Pi Zero's clock ticks once a microsecond), 0/0 or n/0.
		rps = 0
	}
	b = append(b, `{"rps":`...)
	b = strconv.AppendFloat(b, rps, 'f', 1, 64)
	b = append(b, ',')
	b = num(b, "connections_active", int64(st.SocketsOpen))
	b = append(b, ',')
	b = num(b, "workers_busy", int64(st.WorkersBusy))
	b = append(b, ',')
	b = num(b, "socket_queue_length", int64(st.SocketQueueLength))
	b = append(b, ',')
	b = num(b, "sockets_parked", int64(st.SocketsParked))
	b = append(b, ',')
	b = num(b, "websocket_sessions", int64(d.pool.Active()))
	b = append(b, `,"totals":{`...)
	b = num(b, "requests", int64(reqs))
	b = append(b, ',')
	b = num(b, "connections_accepted", int64(st.ConnectionsAccepted))
	b = append(b, ',')
	b = num(b, "websocket_messages_in", int64(in))
	b = append(b, ',')
	b = num(b, "websocket_messages_out", int64(out))
	b = append(b, ',')
	b = num(b, "topics", int64(d.hub.Len()))
	b = append(b, `},"build":{`...)
	b = appendPair(b, "version", version, true)
	b = appendPair(b, "commit", commit, true)
	b = appendPair(b, "go", runtime.Version(), true)
	b = appendPair(b, "arch", runtime.GOOS+"/"+runtime.GOARCH, false)
	b = append(b, `},"config":{`...)
	attrs := d.s.attrs() // once: it builds the list afresh
	for i, a := range attrs {
		b = appendPair(b, a.Key, a.Value.String(), i < len(attrs)-1)
	}
	b = append(b, ',')
	b = num(b, "memory_budget", d.budget.total())
	return append(b, "}}"...)
}

func appendPair(b []byte, k, v string, comma bool) []byte {
	b = appendJSONString(b, k)
	b = append(b, ':')
	b = appendJSONString(b, v)
	if comma {
		b = append(b, ',')
	}
	return b
}

// appendJSONString appends s as a JSON string (RFC 8259 7). Go's quoting (strconv.Quote) is not JSON:
// it writes \x01, \a or \U0001xxxx, which JSON.parse refuses, and a --webroot may hold any bytes but
// '/' and NUL. As encoding/json does, control characters are escaped and each byte that is not part
// of valid UTF-8 becomes U+FFFD; U+2028 and U+2029 are escaped for JavaScript's older parsers.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
