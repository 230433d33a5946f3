package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/edged/edged/internal/topics"
	"github.com/edged/edged/pkg/conn"
	"github.com/edged/edged/pkg/server"
	"github.com/edged/edged/pkg/ws"
)

// envPrefix starts the environment twin of every flag (CONTRACT D1): --socket-queue is read from
// EDGED_SOCKET_QUEUE when the command line does not set it.
const envPrefix = "EDGED_"

// settings is the daemon configuration that serve and check share: one field per flag.
type settings struct {
	listen            string
	workers           int
	procs             int
	socketQueue       int
	bufferSize        int
	maxHeaders        int
	backlog           int
	parkIdle          bool
	evictIdle         bool
	evictMinIdle      time.Duration
	maxConnsPerClient int
	keepAliveTimeout  time.Duration
	headerTimeout     time.Duration
	ioTimeout         time.Duration
	handlerTimeout    time.Duration
	maxBody           int64
	maxDrain          int64
	enableEcho        bool
	wsMaxConns        int
	wsMaxMessage      int64
	wsPingInterval    time.Duration
	wsOrigins         string
	topicsMax         int
	topicMaxBytes     int64
	webroot           string
	metricsListen     string
	memoryLimit       int64
	shutdownGrace     time.Duration
	logLevel          string
	logFormat         string

	// backlogUnused: every listener comes from systemd, whose socket unit sets the backlog.
	backlogUnused bool
	// unknownEnv: EDGED_* variables that are no flag's twin, most likely misspelt.
	unknownEnv []string
}

// defaultSettings returns the defaults of CONTRACT D2 and S6.
func defaultSettings() settings {
	return settings{
		listen:            ":8080",
		workers:           4,
		socketQueue:       8,
		bufferSize:        conn.DefaultBufferSize,
		maxHeaders:        conn.DefaultMaxHeaders,
		backlog:           128,
		parkIdle:          true,
		evictIdle:         true,
		evictMinIdle:      time.Second,
		maxConnsPerClient: 0,
		keepAliveTimeout:  conn.DefaultKeepAliveTimeout,
		headerTimeout:     conn.DefaultHeaderTimeout,
		ioTimeout:         conn.DefaultIOTimeout,
		handlerTimeout:    conn.DefaultHandlerTimeout,
		maxBody:           conn.DefaultMaxBody,
		maxDrain:          conn.DefaultMaxDrain,
		enableEcho:        false,
		wsMaxConns:        ws.DefaultMaxSessions,
		wsMaxMessage:      ws.DefaultMaxMessage,
		wsPingInterval:    ws.DefaultPingInterval,
		topicsMax:         topics.DefaultMaxTopics,
		topicMaxBytes:     topics.DefaultMaxValueBytes,
		shutdownGrace:     10 * time.Second,
		logLevel:          "info",
		logFormat:         "text",
	}
}

// register defines the flags of s on fs, with s's current values as defaults. Each value checks its own
// range when set, so a bad value is refused the same way from the command line and from the environment.
func (s *settings) register(fs *pflag.FlagSet) {
	fs.Var(&listenValue{&s.listen}, "listen", "address to listen on: host:port, host empty, localhost, IPv4 or [IPv6]")
	fs.Var(&intValue{&s.workers, 1, server.MaxWorkers}, "workers", "number of worker goroutines, each with its own buffers")
	fs.Var(&intValue{&s.procs, 0, maxProcs}, "procs", "processors running edged's goroutines at once, GOMAXPROCS (0 = the Go runtime's choice: $GOMAXPROCS, else the CPUs edged may use)")
	fs.Var(&intValue{&s.socketQueue, 0, server.MaxSocketQueue}, "socket-queue", "accepted sockets held at most (0 = accept mode)")
	fs.Var(&intValue{&s.bufferSize, conn.MinBufferSize, maxBufferSize}, "buffer-size", "per-worker read buffer in bytes: the largest request head")
	fs.Var(&intValue{&s.maxHeaders, 1, maxHeaderLines}, "max-headers", "request header lines accepted")
	fs.Var(&intValue{&s.backlog, 1, math.MaxInt32}, "backlog", "kernel listen backlog")
	boolVar(fs, &s.parkIdle, "park-idle", "hand idle keep-alive sockets back to epoll (socket-queue mode)")
	boolVar(fs, &s.evictIdle, "evict-idle", "close the longest-idle parked socket when a new client waits")
	fs.Var(&durationValue{&s.evictMinIdle}, "evict-min-idle", "idle time before a parked socket may be evicted (stops clients evicting each other under load)")
	fs.Var(&intValue{&s.maxConnsPerClient, 0, 0}, "max-conns-per-client", "sockets per IPv4 address or IPv6 /64 (0 = no limit)")
	fs.Var(&durationValue{&s.keepAliveTimeout}, "keepalive-timeout", "idle time allowed before a request's first byte")
	fs.Var(&durationValue{&s.headerTimeout}, "header-timeout", "time allowed for a whole request head, from its first byte")
	fs.Var(&durationValue{&s.ioTimeout}, "io-timeout", "inactivity allowed on each body read or write")
	fs.Var(&durationValue{&s.handlerTimeout}, "handler-timeout", "time allowed for a whole request-response exchange")
	fs.Var(&sizeValue{p: &s.maxBody}, "max-body", "largest request body (bytes, or a size like 64KiB, 1MiB)")
	fs.Var(&sizeValue{p: &s.maxDrain}, "max-drain", "unread request body discarded before a response (bytes or a size)")
	boolVar(fs, &s.enableEcho, "enable-echo", "serve /echo, which sends the request body (or each WebSocket message) back")
	fs.Var(&intValue{&s.wsMaxConns, 1, 1 << 16}, "ws-max-conns", "WebSocket sessions at once, each with preallocated buffers")
	fs.Var(&sizeValue{&s.wsMaxMessage, maxMessageBytes}, "ws-max-message", "largest WebSocket message (bytes or a size); larger ones get close 1009")
	fs.Var(&durationValue{&s.wsPingInterval}, "ws-ping-interval", "idle WebSocket sessions are pinged after this, and closed if silent as long again")
	fs.Var(&originsValue{&s.wsOrigins}, "ws-allowed-origins", "comma-separated Origins allowed besides same-origin (scheme://host[:port], or *)")
	fs.Var(&intValue{&s.topicsMax, 1, 1 << 20}, "topics-max", "topics at most")
	fs.Var(&sizeValue{&s.topicMaxBytes, maxMessageBytes}, "topic-max-bytes", "largest retained topic value (bytes or a size)")
	fs.Var(&webrootValue{&s.webroot}, "webroot", "serve files from this directory instead of the built-in status page")
	fs.Var(&optionalListenValue{&s.metricsListen}, "metrics-listen", "serve /metrics on this address instead of the main listener")
	fs.Var(&optionalSizeValue{&s.memoryLimit}, "memory-limit", "refuse a configuration whose memory budget exceeds this (bytes or a size; 0 = no limit)")
	fs.Var(&durationValue{&s.shutdownGrace}, "shutdown-grace", "time allowed for requests in flight after SIGTERM or SIGINT")
	fs.Var(&choiceValue{&s.logLevel, []string{"debug", "info", "warn", "error"}}, "log-level", "log level: debug, info, warn or error")
	fs.Var(&choiceValue{&s.logFormat, []string{"text", "json"}}, "log-format", "log format: text or json")

	fs.VisitAll(func(f *pflag.Flag) {
		f.Usage += " [$" + envName(f.Name) + "]"
		// pflag leaves out defaults that look like zero values; --help shows every default (CONTRACT D2).
		switch f.DefValue {
		case "":
			f.Usage += " (default none)"
		case "0", "false":
			f.Usage += " (default " + f.DefValue + ")"
		}
	})
}

// validate checks what no single flag can: --metrics-listen must not take the port of --listen, where
// the second bind would fail or, worse, share the port.
func (s *settings) validate() error {
	if s.metricsListen != "" && listenOverlap(s.listen, s.metricsListen) {
		return &usageError{fmt.Sprintf("invalid --metrics-listen: %s overlaps --listen %s; give /metrics a port of its own, or leave --metrics-listen empty to serve /metrics on the main listener",
			s.metricsListen, s.listen)}
	}
	return nil
}

// listenOverlap reports whether two listen addresses (checked by checkListen) would bind the same
// port on a common address: the same port, not 0, and the same host, or a host that covers the other
// (empty or [::]: every address; 0.0.0.0: every IPv4 address).
func listenOverlap(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	na, _ := strconv.ParseUint(pa, 10, 16)
	nb, _ := strconv.ParseUint(pb, 10, 16)
	if na != nb || na == 0 {
		return false
	}
	host := func(h string) netip.Addr {
		if h == "" {
			return netip.IPv6Unspecified()
		}
		if h == "localhost" {
			return netip.AddrFrom4([4]byte{127, 0, 0, 1})
		}
		addr, _ := netip.ParseAddr(h)
		return addr.Unmap()
	}
	x, y := host(ha), host(hb)
	covers := func(w, o netip.Addr) bool {
		return w == netip.IPv6Unspecified() || (w == netip.IPv4Unspecified() && o.Is4())
	}
	return x == y || covers(x, y) || covers(y, x)
}

// envName returns the environment twin of a flag: --socket-queue -> EDGED_SOCKET_QUEUE.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyEnv sets every flag that the command line left alone from its environment twin, so that flags win
// over the environment (CONTRACT D1). An empty variable counts as unset.
func applyEnv(fs *pflag.FlagSet, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		name := envName(f.Name)
		v := getenv(name)
		if v == "" {
			return
		}
		if serr := f.Value.Set(v); serr != nil {
			err = &usageError{fmt.Sprintf("invalid %s (--%s): %v, got %q", name, f.Name, serr, v)}
		}
	})
	return err
}

// unknownEnv returns the EDGED_* variables of environ ("NAME=value" entries) that are no flag's
// twin: a misspelt name in an EnvironmentFile (EDGED_SOCKET_QUEU=1024) would otherwise leave its flag
// at the default without a word.
func unknownEnv(fs *pflag.FlagSet, environ []string) []string {
	known := map[string]bool{}
	fs.VisitAll(func(f *pflag.Flag) { known[envName(f.Name)] = true })
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, envPrefix) && !known[name] {
			out = append(out, name)
		}
	}
	return out
}

// connConfig returns the connection limits and timeouts of s.
func (s *settings) connConfig() conn.Config {
	return conn.Config{
		BufferSize:       s.bufferSize,
		MaxHeaders:       s.maxHeaders,
		MaxBody:          s.maxBody,
		MaxDrain:         s.maxDrain,
		KeepAliveTimeout: s.keepAliveTimeout,
		HeaderTimeout:    s.headerTimeout,
		IOTimeout:        s.ioTimeout,
		HandlerTimeout:   s.handlerTimeout,
	}
}

// mode names the run mode: accept mode (CONTRACT S3) or socket-queue mode (CONTRACT S4).
func (s *settings) mode() string {
	if s.socketQueue == 0 {
		return "accept"
	}
	return "socket-queue"
}

// attrs returns the effective configuration as log attributes, in flag order (CONTRACT D6). Durations
// are text ("50s") in both log formats.
func (s *settings) attrs() []slog.Attr {
	return []slog.Attr{
		slog.String("listen", s.listen),
		slog.String("mode", s.mode()),
		slog.Int("workers", s.workers),
		slog.Int("procs", s.procs),
		slog.Int("socket_queue", s.socketQueue),
		slog.Int("buffer_size", s.bufferSize),
		slog.Int("max_headers", s.maxHeaders),
		slog.Int("backlog", s.backlog),
		slog.Bool("park_idle", s.parkIdle),
		slog.Bool("evict_idle", s.evictIdle),
		slog.String("evict_min_idle", s.evictMinIdle.String()),
		slog.Int("max_conns_per_client", s.maxConnsPerClient),
		slog.String("keepalive_timeout", s.keepAliveTimeout.String()),
		slog.String("header_timeout", s.headerTimeout.String()),
		slog.String("io_timeout", s.ioTimeout.String()),
		slog.String("handler_timeout", s.handlerTimeout.String()),
		slog.Int64("max_body", s.maxBody),
		slog.Int64("max_drain", s.maxDrain),
		slog.Bool("enable_echo", s.enableEcho),
		slog.Int("ws_max_conns", s.wsMaxConns),
		slog.Int("ws_sessions", s.sessionLimit()),
		slog.Int64("ws_max_message", s.wsMaxMessage),
		slog.String("ws_ping_interval", s.wsPingInterval.String()),
		slog.String("ws_allowed_origins", s.wsOrigins),
		slog.Int("topics_max", s.topicsMax),
		slog.Int64("topic_max_bytes", s.topicMaxBytes),
		slog.String("webroot", s.webroot),
		slog.String("metrics_listen", s.metricsListen),
		slog.Int64("memory_limit", s.memoryLimit),
		slog.String("shutdown_grace", s.shutdownGrace.String()),
		slog.String("log_level", s.logLevel),
		slog.String("log_format", s.logFormat),
	}
}

// level returns the slog level named by --log-level.
func (s *settings) level() slog.Level {
	switch s.logLevel {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// intValue is an int flag with a lower bound and an upper bound (none when max is 0).
type intValue struct {
	p        *int
	min, max int
}

func (v *intValue) String() string { return strconv.Itoa(*v.p) }
func (v *intValue) Type() string   { return "int" }

func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return errors.New("not an integer")
	}
	if n < v.min {
		return fmt.Errorf("must be >= %d", v.min)
	}
	if v.max > 0 && n > v.max {
		return fmt.Errorf("must be <= %d", v.max)
	}
	*v.p = n
	return nil
}

// maxDuration bounds every duration flag: pkg/server adds timeouts to a monotonic clock in int64
// nanoseconds (now+grace, since+keepalive), which a duration near 292 years overflows.
const maxDuration = 24 * 365 * time.Hour

// durationValue is a positive duration flag ("10s", "1m30s", "500ms"): every timeout is finite and
// non-zero (CONTRACT S6).
type durationValue struct{ p *time.Duration }

func (v *durationValue) String() string { return v.p.String() }
func (v *durationValue) Type() string   { return "duration" }

func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return errors.New("not a duration (want e.g. 500ms, 10s, 1m)")
	}
	if d <= 0 {
		return errors.New("must be > 0")
	}
	if d > maxDuration {
		return fmt.Errorf("must be <= %v", maxDuration)
	}
	*v.p = d
	return nil
}

// boolValue is a boolean flag; "--park-idle" alone means true, "--park-idle=false" turns it off.
type boolValue struct{ p *bool }

func (v *boolValue) String() string   { return strconv.FormatBool(*v.p) }
func (v *boolValue) Type() string     { return "bool" }
func (v *boolValue) IsBoolFlag() bool { return true }

func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return errors.New("not a boolean (want true or false)")
	}
	*v.p = b
	return nil
}

func boolVar(fs *pflag.FlagSet, p *bool, name, usage string) {
	fs.Var(&boolValue{p}, name, usage)
	fs.Lookup(name).NoOptDefVal = "true"
}

// choiceValue is a string flag limited to a fixed set of words.
type choiceValue struct {
	p       *string
	choices []string
}

func (v *choiceValue) String() string { return *v.p }
func (v *choiceValue) Type() string   { return "string" }

func (v *choiceValue) Set(s string) error {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, c := range v.choices {
		if s == c {
			*v.p = c
			return nil
		}
	}
	return fmt.Errorf("must be one of %s", strings.Join(v.choices, ", "))
}

// listenValue is a listen address: host:port where host is empty (every address), "localhost", an IPv4
// address or a bracketed IPv6 address, and port is 0-65535 (0: any free port, reported in the start-up
// log line). Names other than localhost are refused, as the server refuses them: binding must not
// depend on a resolver.
type listenValue struct{ p *string }

func (v *listenValue) String() string { return *v.p }
func (v *listenValue) Type() string   { return "address" }

func (v *listenValue) Set(s string) error {
	s = strings.TrimSpace(s)
	if err := checkListen(s); err != nil {
		return err
	}
	*v.p = s
	return nil
}

func checkListen(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("not host:port (e.g. :8080, 127.0.0.1:8080, [::1]:8080)")
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return errors.New("port is not a number from 0 to 65535")
	}
	bracketed := strings.HasPrefix(s, "[")
	switch {
	case host == "" && !bracketed, host == "localhost" && !bracketed:
		return nil
	case bracketed:
		if addr, err := netip.ParseAddr(host); err != nil || !addr.Is6() || addr.Zone() != "" {
			return errors.New("host in brackets is not an IPv6 address")
		}
	default:
		if addr, err := netip.ParseAddr(host); err != nil || !addr.Is4() {
			return errors.New("host is not an IPv4 address, [IPv6] address or localhost")
		}
	}
	return nil
}

// Upper bounds of the flags that size preallocated buffers: each buffer then fits an int on 32-bit ARM,
// and its size times its count is checked against the machine's memory (checkBudget). A request
// head of 16 MiB, 65536 header lines or a WebSocket message or topic value of 256 MiB is already far
// beyond what a gateway serves.
const (
	maxBufferSize   = 16 << 20
	maxHeaderLines  = 1 << 16
	maxMessageBytes = 256 << 20
)

// maxProcs bounds --procs: the runtime keeps per-processor state (caches, run queues) for each, and no
// board edged runs on has a thousand cores.
const maxProcs = 1 << 10

// sizeValue is a byte count: plain digits, or a number with a binary unit (B, KiB, MiB, GiB; K, M, G
// mean the same). It must be at least 1, and at most max unless max is 0.
type sizeValue struct {
	p   *int64
	max int64
}

func (v *sizeValue) String() string { return formatSize(*v.p) }
func (v *sizeValue) Type() string   { return "size" }

func (v *sizeValue) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	if n < 1 {
		return errors.New("must be >= 1")
	}
	if v.max > 0 && n > v.max {
		return fmt.Errorf("must be <= %s", formatSize(v.max))
	}
	*v.p = n
	return nil
}

var sizeUnits = []struct {
	suffix string
	shift  uint
}{
	{"kib", 10}, {"mib", 20}, {"gib", 30},
	{"k", 10}, {"m", 20}, {"g", 30},
	{"b", 0},
}

// parseSize parses "1048576", "1MiB", "64KiB", "64k" into bytes.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	lower := strings.ToLower(s)
	var shift uint
	for _, u := range sizeUnits {
		if strings.HasSuffix(lower, u.suffix) {
			shift = u.shift
			lower = strings.TrimSpace(strings.TrimSuffix(lower, u.suffix))
			break
		}
	}
	if lower == "" || lower[0] < '0' || lower[0] > '9' {
		return 0, errors.New("not a size (want bytes, or e.g. 64KiB, 1MiB)")
	}
	n, err := strconv.ParseInt(lower, 10, 64)
	if err != nil {
		return 0, errors.New("not a size (want bytes, or e.g. 64KiB, 1MiB)")
	}
	if n > (1<<63-1)>>shift {
		return 0, errors.New("too large")
	}
	return n << shift, nil
}

// formatSize writes n with the largest binary unit that divides it exactly: 1048576 -> "1MiB".
func formatSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10)
}

// originsValue is a comma-separated list of Origins: "*", or scheme://host[:port] as a browser sends it
// (CONTRACT W2). An Origin is compared as a whole, so an entry a browser never sends (no scheme, a path
// or trailing slash, a default port) would never match and its page's upgrades would get 403 without
// a word: such entries are refused. "null", the Origin of file:// pages, is taken as is.
type originsValue struct{ p *string }

func (v *originsValue) String() string { return *v.p }
func (v *originsValue) Type() string   { return "string" }

func (v *originsValue) Set(s string) error {
	s = strings.TrimSpace(s)
	for _, o := range strings.Split(s, ",") {
		if err := checkOrigin(strings.TrimSpace(o)); err != nil {
			return err
		}
	}
	*v.p = s
	return nil
}

func checkOrigin(o string) error {
	if o == "" || o == "*" || o == "null" {
		return nil
	}
	scheme, hostport, ok := strings.Cut(o, "://")
	if !ok || scheme == "" || hostport == "" {
		return fmt.Errorf("%q is not scheme://host[:port] (e.g. https://ui.example)", o)
	}
	if strings.ContainsAny(hostport, "/?#@ ") {
		return fmt.Errorf("%q is more than scheme://host[:port]: a browser's Origin has no path, not even a trailing slash", o)
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil // no port
	}
	if host == "" {
		return fmt.Errorf("%q has no host", o)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q has a port that is not a number from 0 to 65535", o)
	}
	if (strings.EqualFold(scheme, "https") && port == "443") || (strings.EqualFold(scheme, "http") && port == "80") {
		return fmt.Errorf("%q names the default port, which a browser leaves out of its Origin: drop :%s", o, port)
	}
	return nil
}

// webrootValue is a readable directory (CONTRACT D2: an unreadable web root is a usage error).
type webrootValue struct{ p *string }

func (v *webrootValue) String() string { return *v.p }
func (v *webrootValue) Type() string   { return "dir" }

func (v *webrootValue) Set(s string) error {
	s = strings.TrimSpace(s)
	if s == "" {
		*v.p = ""
		return nil
	}
	st, err := os.Stat(s)
	switch {
	case err != nil:
		return errors.New("cannot read the directory")
	case !st.IsDir():
		return errors.New("not a directory")
	}
	f, err := os.Open(s)
	if err != nil {
		return errors.New("cannot read the directory")
	}
	f.Close()
	*v.p = s
	return nil
}

// optionalListenValue is a listen address or empty (off).
type optionalListenValue struct{ p *string }

func (v *optionalListenValue) String() string { return *v.p }
func (v *optionalListenValue) Type() string   { return "address" }

func (v *optionalListenValue) Set(s string) error {
	s = strings.TrimSpace(s)
	if s != "" {
		if err := checkListen(s); err != nil {
			return err
		}
	}
	*v.p = s
	return nil
}

// optionalSizeValue is a byte count where 0 means "none".
type optionalSizeValue struct{ p *int64 }

func (v *optionalSizeValue) String() string { return formatSize(*v.p) }
func (v *optionalSizeValue) Type() string   { return "size" }

func (v *optionalSizeValue) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*v.p = n
	return nil
}

// origins returns --ws-allowed-origins as a list.
func (s *settings) origins() []string {
	var out []string
	for _, o := range strings.Split(s.wsOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}
