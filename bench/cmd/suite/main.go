// Command suite is edged's comparative benchmark (make bench) and its smoke run (make bench-smoke).
// It starts edged and the reference servers on loopback (net/http and fasthttp from bench/cmd/peer,
// and nginx), runs wrk against each in turn, round after round with the order rotated, runs the
// WebSocket echo comparison with gorilla/websocket through scripts/bench-ws.sh once per round, and
// prints one table of medians with each rate divided by edged's. The full run also measures memory
// (idle, holding 1,000 idle keep-alive connections, under load), system calls per request (strace),
// allocations (the Go benchmarks), stripped binary sizes and a CPU profile, and writes it all into the
// generated section of docs/BENCHMARKS.md.
//
// Run from the repository root, after make build bench-tools:
//
//	bin/bench/suite -edged bin/edged -rounds 5 -duration 3s -out docs/BENCHMARKS.md
//	bin/bench/suite -smoke   # each workload once for 1 s at 4 connections; fails only if a run fails
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

type options struct {
	edged, peer, idleconns, wsload, wsScript string
	latency                                  string
	edgedFlags                               string
	goCmd                                    string
	rounds                                   int
	duration                                 time.Duration
	smoke                                    bool
	out                                      string
	parked                                   int
	extras                                   bool // footprint under load, syscalls, allocations, sizes, profile
	only                                     *regexp.Regexp
	memory                                   bool // measure the memory footprint
}

// workload is one row group of the table.
type workload struct {
	title   string
	path    string
	conns   int
	close   bool // Connection: close on every request
	timed   bool // every request timed by bench/cmd/latency instead of wrk's sampling
	wsSize  int  // > 0: WebSocket echo of messages of this size
	servers []string
}

// Server keys. gorilla is the net/http peer, whose /echo is gorilla/websocket.
const (
	kEdged    = "edged"
	kDefaults = "edged-defaults"
	kNetHTTP  = "nethttp"
	kFastHTTP = "fasthttp"
	kNginx    = "nginx"
	kGorilla  = "gorilla"
	// The same servers on one processor (GOMAXPROCS=1): edged with --procs 1, and fasthttp so that
	// edged's one-processor figures have a peer configured the same way.
	kEdgedP1    = "edged-procs1"
	kFastHTTPP1 = "fasthttp-procs1"
)

var labels = map[string]string{
	kEdged:    "edged",
	kDefaults: "edged (defaults: Q=8)",
	kNetHTTP:  "net/http",
	kFastHTTP: "fasthttp",
	kNginx:    "nginx",
	kGorilla:  "gorilla/websocket",

	kEdgedP1:    "edged --procs 1",
	kFastHTTPP1: "fasthttp, GOMAXPROCS=1",
}

// Static files served by every server.
const (
	file4K = "4k.bin"
	file1M = "1m.bin"
)

// timedTitle is the workload whose every request is timed (bench/cmd/latency): one goroutine per
// connection, so that the latency is the server's and the loopback's, not a client thread's queue.
const timedTitle = "/healthz keep-alive, 4 conns, each request timed"

// wsConns is the number of WebSocket echo connections; edged gets --ws-max-conns above it.
const wsConns = 16

func workloads(smoke bool, only *regexp.Regexp) []workload {
	all := allWorkloads(smoke)
	if only == nil {
		return all
	}
	var some []workload
	for _, w := range all {
		if only.MatchString(w.title) {
			some = append(some, w)
		}
	}
	return some
}

func allWorkloads(smoke bool) []workload {
	http := []string{kEdged, kNetHTTP, kFastHTTP, kNginx}
	withDefaults := []string{kEdged, kDefaults, kNetHTTP, kFastHTTP, kNginx, kEdgedP1, kFastHTTPP1}
	withProcs1 := []string{kEdged, kNetHTTP, kFastHTTP, kNginx, kEdgedP1, kFastHTTPP1}
	ws := []string{kEdged, kGorilla}
	if smoke {
		return []workload{
			{title: "/healthz keep-alive, 4 conns", path: "/healthz", conns: 4, servers: withDefaults},
			{title: "/healthz Connection: close, 4 conns", path: "/healthz", conns: 4, close: true, servers: http},
			{title: timedTitle, path: "/healthz", conns: 4, timed: true, servers: withProcs1},
			{title: "static 4 KiB, 4 conns", path: "/" + file4K, conns: 4, servers: http},
			{title: "static 1 MiB, 4 conns", path: "/" + file1M, conns: 4, servers: http},
			{title: "WebSocket echo 64 B, 4 conns", wsSize: 64, conns: 4, servers: ws},
		}
	}
	return []workload{
		{title: "/healthz keep-alive, 4 conns", path: "/healthz", conns: 4, servers: withProcs1},
		{title: timedTitle, path: "/healthz", conns: 4, timed: true, servers: withProcs1},
		{title: "/healthz keep-alive, 64 conns", path: "/healthz", conns: 64, servers: withDefaults},
		{title: "/healthz keep-alive, 256 conns", path: "/healthz", conns: 256, servers: withDefaults},
		{title: "/healthz Connection: close, 16 conns", path: "/healthz", conns: 16, close: true, servers: http},
		{title: "static 4 KiB, 64 conns", path: "/" + file4K, conns: 64, servers: http},
		{title: "static 1 MiB, 16 conns", path: "/" + file1M, conns: 16, servers: http},
		{title: fmt.Sprintf("WebSocket echo 64 B, %d conns", wsConns), wsSize: 64, conns: wsConns, servers: ws},
		{title: fmt.Sprintf("WebSocket echo 4 KiB, %d conns", wsConns), wsSize: 4096, conns: wsConns, servers: ws},
	}
}

func main() {
	var o options
	flag.StringVar(&o.edged, "edged", "bin/edged", "edged binary")
	flag.StringVar(&o.peer, "peer", "bin/bench/peer", "bench/cmd/peer binary")
	flag.StringVar(&o.wsScript, "ws-script", "scripts/bench-ws.sh", "the WebSocket echo benchmark, run once per round")
	flag.StringVar(&o.idleconns, "idleconns", "bin/bench/idleconns", "bench/cmd/idleconns binary")
	flag.StringVar(&o.latency, "latency", "bin/bench/latency", "bench/cmd/latency binary")
	flag.StringVar(&o.wsload, "wsload", "bin/bench/wsload", "bench/cmd/wsload binary (for the daemon's allocations per message)")
	flag.StringVar(&o.edgedFlags, "edged-flags", "--workers 4 --socket-queue 1024",
		"edged's pool flags for the tuned rows (queue mode with parking, Q above every connection count)")
	flag.StringVar(&o.goCmd, "go", "go", "go command, for the Go benchmarks, cross builds and pprof")
	flag.IntVar(&o.rounds, "rounds", 5, "rounds; the table shows each figure's median")
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "length of each load run")
	flag.BoolVar(&o.smoke, "smoke", false, "one 1 s run of each workload at 4 connections, no comparisons, no extras")
	flag.StringVar(&o.out, "out", "", "write the report into this Markdown file's generated section")
	flag.IntVar(&o.parked, "parked", 1000, "idle keep-alive connections held for the memory figures")
	only := flag.String("only", "", "run only the workloads whose title matches this regular expression "+
		"(\"memory\" runs the memory footprint alone); no extras, nothing written: for tuning")
	flag.Parse()
	o.extras = !o.smoke
	o.memory = true
	if *only != "" {
		re, err := regexp.Compile(*only)
		if err != nil {
			log.Fatalf("suite: -only: %v", err)
		}
		o.only, o.extras, o.out = re, false, ""
		o.memory = re.MatchString("memory")
	}
	if o.smoke {
		o.rounds, o.duration, o.parked = 1, time.Second, 50
	}
	if o.rounds < 1 || o.duration < time.Second {
		log.Fatal("suite: -rounds must be >= 1 and -duration >= 1s")
	}
	log.SetFlags(0)
	log.SetPrefix("suite: ")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, &o); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, o *options) error {
	for _, tool := range []string{"wrk", "nginx"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (scripts/install-test-deps.sh installs it)", tool)
		}
	}
	for _, bin := range []string{o.edged, o.peer, o.idleconns, o.wsload, o.wsScript, o.latency} {
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("%s not found (make bench-tools builds it)", bin)
		}
	}
	dir, err := os.MkdirTemp("", "edged-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// nginx's workers run as nobody when started by root: they must be able to read the files.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	root := filepath.Join(dir, "www")
	if err := writeStatic(root); err != nil {
		return err
	}

	r := &report{opts: o, dir: dir, started: time.Now(), machine: describeMachine(o.goCmd)}
	r.loadStart = loadAvg()
	fmt.Printf("machine: %s\nload average: %s\n", r.machine, r.loadStart)

	if o.memory {
		fmt.Println("== memory footprint")
		if err := r.footprint(ctx, dir, root); err != nil {
			return err
		}
		fmt.Print(r.footprintTable())
	}

	fmt.Printf("== load: %d round(s) of %s per run\n", o.rounds, o.duration)
	if err := r.rounds(ctx, dir, root); err != nil {
		return err
	}
	fmt.Print(r.table())

	if o.extras {
		fmt.Println("== system calls per request (strace)")
		if err := r.syscalls(ctx, root); err != nil {
			r.notes = append(r.notes, "syscall count failed: "+err.Error())
			log.Print(err)
		}
		fmt.Print(r.syscallTable())
		fmt.Println("== CPU profile")
		if err := r.profile(ctx, dir, root); err != nil {
			r.notes = append(r.notes, "profile failed: "+err.Error())
			log.Print(err)
		}
		fmt.Print(r.profileText)
		fmt.Println("== Go benchmarks (allocations)")
		if err := r.goBenchmarks(ctx); err != nil {
			return err
		}
		fmt.Print(r.benchTable())
		if err := r.daemonAllocs(ctx, root); err != nil {
			return err
		}
		fmt.Print(r.allocTable())
		fmt.Println("== stripped binary sizes")
		if err := r.binarySizes(ctx, dir); err != nil {
			return err
		}
		fmt.Print(r.sizeTable())
	}
	r.loadEnd = loadAvg()
	r.finished = time.Now()
	fmt.Printf("load average at the end: %s; took %s\n", r.loadEnd, r.finished.Sub(r.started).Round(time.Second))

	if failed := r.failures(); len(failed) > 0 {
		return fmt.Errorf("failed runs:\n%s", strings.Join(failed, "\n"))
	}
	if o.out != "" && !o.smoke {
		if err := r.write(o.out); err != nil {
			return err
		}
		fmt.Printf("wrote %s\n", o.out)
	}
	return nil
}

// writeStatic creates the static files every server serves.
func writeStatic(root string) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	for name, size := range map[string]int{file4K: 4 << 10, file1M: 1 << 20} {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte('a' + i%26)
		}
		if err := os.WriteFile(filepath.Join(root, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// edgedArgs returns the flags of the tuned edged: the pool flags plus what every workload needs.
func (o *options) edgedArgs(root string) []string {
	return append(strings.Fields(o.edgedFlags), "--webroot", root, "--enable-echo",
		"--ws-max-conns", fmt.Sprint(4*wsConns))
}

// servers starts every server the workloads need.
func startAll(ctx context.Context, o *options, dir, root string) (map[string]*server, func(), error) {
	m := map[string]*server{}
	stopAll := func() {
		for k, s := range m {
			if k != kGorilla {
				s.stop()
			}
		}
	}
	steps := []struct {
		key   string
		start func() (*server, error)
	}{
		{kEdged, func() (*server, error) { return startEdged(ctx, o.edged, labels[kEdged], o.edgedArgs(root)...) }},
		{kDefaults, func() (*server, error) { return startEdged(ctx, o.edged, labels[kDefaults]) }},
		{kNetHTTP, func() (*server, error) { return startPeer(ctx, o.peer, labels[kNetHTTP], "nethttp", root) }},
		{kFastHTTP, func() (*server, error) { return startPeer(ctx, o.peer, labels[kFastHTTP], "fasthttp", root) }},
		{kNginx, func() (*server, error) { return startNginx(ctx, filepath.Join(dir, "nginx"), root) }},
		{kEdgedP1, func() (*server, error) {
			return startEdged(ctx, o.edged, labels[kEdgedP1], append(o.edgedArgs(root), "--procs", "1")...)
		}},
		{kFastHTTPP1, func() (*server, error) {
			return startPeer(ctx, o.peer, labels[kFastHTTPP1], "fasthttp", root, "GOMAXPROCS=1")
		}},
	}
	for _, st := range steps {
		s, err := st.start()
		if err != nil {
			stopAll()
			return nil, nil, err
		}
		m[st.key] = s
	}
	m[kGorilla] = m[kNetHTTP]
	return m, stopAll, nil
}
