package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// report collects everything one run of the suite measured.
type report struct {
	opts              *options
	started, finished time.Time
	machine           string
	loadStart         string
	loadEnd           string
	dir               string // the temporary directory, shown as $DIR in commands

	wls     []workload
	results map[string]map[string][]sample // workload title -> server key -> one sample per round
	argv    map[string][]string            // server key -> its command line
	failed  []string

	fp          []footprintRow
	sys         []syscallRun
	perf        []syscallRun
	profileText string
	profileCmds []string
	bench       []benchRow
	allocs      []allocRow
	allocIdle   float64 // the idle daemon's allocations per second
	sizes       []sizeRow
	notes       []string
}

// rounds runs every workload against every server, round after round; within a workload the order of
// the servers is rotated each round, so that none always runs first or last.
func (r *report) rounds(ctx context.Context, dir, root string) error {
	srv, stopAll, err := startAll(ctx, r.opts, dir, root)
	if err != nil {
		return err
	}
	defer stopAll()
	r.argv = map[string][]string{}
	for k, s := range srv {
		r.argv[k] = s.argv
	}
	r.wls = workloads(r.opts.smoke, r.opts.only)
	r.results = map[string]map[string][]sample{}
	for _, w := range r.wls {
		r.results[w.title] = map[string][]sample{}
	}
	d := r.opts.duration
	for round := range r.opts.rounds {
		for _, w := range r.wls {
			if w.wsSize > 0 {
				continue
			}
			n := len(w.servers)
			for k := range n {
				key := w.servers[(k+round)%n]
				s := srv[key]
				pids := s.pids()
				cpu0 := cpuTime(pids)
				var err error
				var smp sample
				if w.timed {
					smp, err = runLatency(ctx, r.opts.latency, latencyArgs(w.conns, d, s.addr, w.path), d)
				} else {
					smp, err = runWrk(ctx, wrkArgs(w.conns, d, w.close, "http://"+s.addr+w.path), d)
				}
				smp.cpu = cpuTime(pids) - cpu0
				if ctx.Err() != nil {
					return ctx.Err()
				}
				select {
				case <-s.done:
					err = errors.Join(err, fmt.Errorf("%s exited:\n%s", s.name, s.tail))
				default:
				}
				r.record(round, w, key, smp, err)
			}
		}
		if err := r.wsRound(ctx, round); err != nil {
			return err
		}
	}
	return nil
}

// wsRound runs the WebSocket echo workloads of one round through scripts/bench-ws.sh, which starts
// its own edged and gorilla/websocket peer and runs bench/cmd/wsload against each in turn.
func (r *report) wsRound(ctx context.Context, round int) error {
	var sizes []string
	conns := 0
	for _, w := range r.wls {
		if w.wsSize > 0 {
			sizes = append(sizes, strconv.Itoa(w.wsSize))
			conns = w.conns
		}
	}
	if len(sizes) == 0 {
		return nil
	}
	env, argv := r.wsCommand(strings.Join(sizes, " "), conns)
	got, err := runWSScript(ctx, env, argv, r.opts.duration*time.Duration(2*len(sizes)))
	if ctx.Err() != nil {
		return ctx.Err()
	}
	for _, w := range r.wls {
		if w.wsSize == 0 {
			continue
		}
		for _, key := range w.servers {
			smp, ok := got[wsKey{w.wsSize, key}]
			var serr error
			switch {
			case err != nil:
				serr = err
			case !ok:
				serr = fmt.Errorf("no figure from %s", r.opts.wsScript)
			}
			r.record(round, w, key, smp, serr)
		}
	}
	return nil
}

// wsCommand returns the environment and command line of one bench-ws.sh round.
func (r *report) wsCommand(sizes string, conns int) (env, argv []string) {
	env = []string{"ROUNDS=1", "SIZES=" + sizes, "CONNS=" + strconv.Itoa(conns), "DURATION=" + r.opts.duration.String()}
	argv = append([]string{"bash", r.opts.wsScript, r.opts.edged}, strings.Fields(r.opts.edgedFlags)...)
	return env, argv
}

// record keeps the outcome of one run and prints it.
func (r *report) record(round int, w workload, key string, smp sample, err error) {
	switch {
	case err != nil:
		r.failed = append(r.failed, fmt.Sprintf("round %d, %s, %s: %v", round+1, w.title, labels[key], err))
		fmt.Printf("round %d  %-40s %-22s FAILED: %v\n", round+1, w.title, labels[key], err)
		return
	case smp.requests == 0:
		r.failed = append(r.failed, fmt.Sprintf("round %d, %s, %s: no request completed", round+1, w.title, labels[key]))
	case r.opts.smoke && smp.errors != "":
		r.failed = append(r.failed, fmt.Sprintf("round %d, %s, %s: %s", round+1, w.title, labels[key], smp.errors))
	}
	r.results[w.title][key] = append(r.results[w.title][key], smp)
	fmt.Printf("round %d  %-40s %-22s %10.0f/s  p50 %-8s p99 %-8s %s\n", round+1, w.title, labels[key],
		smp.rate, fmtLatency(smp.p50), fmtLatency(smp.p99), smp.errors)
}

func (r *report) failures() []string {
	out := slices.Clone(r.failed)
	for _, f := range r.fp {
		if f.err != "" {
			out = append(out, f.name+": "+f.err)
		}
	}
	return out
}

func median[T int64 | float64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summary is a server's row: medians over the rounds.
type summary struct {
	rate, spread float64
	p50, p99     time.Duration
	p999         time.Duration // timed workloads only
	overPer10k   float64       // timed workloads only: requests over 1 ms per 10,000
	cpuPerReq    time.Duration // the server's CPU time per request; 0 if unknown
	busy         float64       // the client's CPU time over the run's length (1 = one core); 0 if unknown
	n            int
	errors       []string
}

func summarize(ss []sample) summary {
	var rates []float64
	var p50, p99, p999, cpu []time.Duration
	var busy, over []float64
	var sm summary
	for _, s := range ss {
		rates = append(rates, s.rate)
		p50 = append(p50, s.p50)
		p99 = append(p99, s.p99)
		if s.p999 > 0 {
			p999 = append(p999, s.p999)
			over = append(over, 1e4*float64(s.over1ms)/float64(max(s.requests, 1)))
		}
		if s.cpu > 0 && s.requests > 0 {
			cpu = append(cpu, s.cpu/time.Duration(s.requests))
		}
		if s.busy > 0 {
			busy = append(busy, s.busy)
		}
		if s.errors != "" {
			sm.errors = append(sm.errors, s.errors)
		}
	}
	sm.n = len(ss)
	sm.rate, sm.p50, sm.p99, sm.cpuPerReq, sm.busy = median(rates), median(p50), median(p99), median(cpu), median(busy)
	sm.p999, sm.overPer10k = median(p999), median(over)
	if sm.rate > 0 {
		sm.spread = (slices.Max(rates) - slices.Min(rates)) / sm.rate
	}
	return sm
}

func fmtLatency(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%dus", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// table returns the results as one Markdown table: medians, and each row's rate divided by edged's.
func (r *report) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n| workload | server | req/s | p50 | p99 | ÷ edged | spread | CPU/req | client CPU | notes |\n")
	fmt.Fprintf(&b, "|---|---|--:|--:|--:|--:|--:|--:|--:|---|\n")
	for _, w := range r.wls {
		for _, key := range w.servers {
			// A one-processor peer is compared with edged on one processor.
			baseKey := kEdged
			if key == kFastHTTPP1 {
				baseKey = kEdgedP1
			}
			base := summarize(r.results[w.title][baseKey])
			sm := summarize(r.results[w.title][key])
			ratio := "-"
			if key != kEdged && base.rate > 0 && sm.rate > 0 && !r.opts.smoke {
				ratio = fmt.Sprintf("%.2f", sm.rate/base.rate)
				if baseKey != kEdged {
					ratio += " ¹"
				}
			}
			unit := ""
			if w.wsSize > 0 {
				unit = " msg"
			}
			notes := ""
			if len(sm.errors) > 0 {
				notes = fmt.Sprintf("%d of %d runs: %s", len(sm.errors), sm.n, sm.errors[0])
			}
			if w.timed && sm.p999 > 0 {
				notes = strings.TrimPrefix(notes+fmt.Sprintf("; p99.9 %s, %.1f in 10,000 over 1 ms",
					fmtLatency(sm.p999), sm.overPer10k), "; ")
			}
			if sm.n < r.opts.rounds {
				notes = strings.TrimPrefix(notes+fmt.Sprintf("; %d of %d runs failed", r.opts.rounds-sm.n, r.opts.rounds), "; ")
			}
			cpu := "-"
			if sm.cpuPerReq > 0 {
				cpu = fmt.Sprintf("%.1fus", float64(sm.cpuPerReq)/float64(time.Microsecond))
			}
			client := "-"
			if sm.busy > 0 {
				client = fmt.Sprintf("%.0f%%", 100*sm.busy)
			}
			fmt.Fprintf(&b, "| %s | %s | %.0f%s | %s | %s | %s | %.0f%% | %s | %s | %s |\n", w.title, labels[key], sm.rate, unit,
				fmtLatency(sm.p50), fmtLatency(sm.p99), ratio, 100*sm.spread, cpu, client, notes)
		}
	}
	b.WriteString("\n")
	return b.String()
}

// Markers of the generated section of the report file; what lies outside them is kept.
const (
	beginMarker = "<!-- BEGIN make bench: generated, do not edit -->"
	endMarker   = "<!-- END make bench -->"
)

// write puts the report between the markers of path, creating the file if needed.
func (r *report) write(path string) error {
	gen := beginMarker + "\n" + r.markdown() + endMarker + "\n"
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		old = []byte("# edged benchmarks\n\n" + beginMarker + "\n" + endMarker + "\n")
	case err != nil:
		return err
	}
	i, j := bytes.Index(old, []byte(beginMarker)), bytes.Index(old, []byte(endMarker))
	if i < 0 || j < i {
		return fmt.Errorf("%s has no generated section (%q ... %q)", path, beginMarker, endMarker)
	}
	out := append(append(slices.Clone(old[:i]), gen...), old[j+len(endMarker)+1:]...)
	return os.WriteFile(path, out, 0o644)
}

// markdown renders the whole report.
func (r *report) markdown() string {
	var b strings.Builder
	o := r.opts
	fmt.Fprintf(&b, "## Results of %s\n\n", r.started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- Machine: %s\n", r.machine)
	fmt.Fprintf(&b, "- Load average (1, 5, 15 min) at the start: %s; at the end: %s. Other work on the machine shows in the spread column.\n",
		r.loadStart, r.loadEnd)
	fmt.Fprintf(&b, "- %d rounds; each figure is the median of the rounds; every run lasts %s; within a round the servers take turns, in an order rotated each round. Whole run: %s.\n",
		o.rounds, o.duration, r.finished.Sub(r.started).Round(time.Second))
	fmt.Fprintf(&b, "- `÷ edged`: the row's rate divided by edged's (below 1: edged is faster). `spread`: (max - min) / median of the rounds' rates. `CPU/req`: the server's CPU time (user + system, all its threads and processes, from /proc/PID/stat) per completed request (per echoed message for WebSocket), median of the rounds: what the server costs, whether or not the client is the bottleneck. `client CPU`: the load generator's own CPU time (user + system) over the run's length, median of the rounds, in per cent of one core; wrk -t1 cannot pass about 100%%, so a row near it is bounded by the client, and a faster server can only show as a lower `CPU/req` (wsload runs a goroutine per connection and can pass 100%%).\n")
	fmt.Fprintf(&b, "- edged: `%s` (queue mode with parking, Q above every connection count); `edged (defaults: Q=8)`: no pool flags, so at most 8 sockets are held and wrk's other connections wait in the backlog. `edged --procs 1` and `fasthttp, GOMAXPROCS=1`: the same servers on one processor (the Go runtime runs their goroutines on one thread at a time), the two are compared with each other (¹); every other Go server runs on all %d processors.\n",
		strings.Join(o.edgedArgs("$DIR/www"), " "), runtime.NumCPU())
	b.WriteString("- ¹ divided by the rate of `edged --procs 1`, not by edged's.\n")
	b.WriteString(r.table())
	for _, n := range r.notes {
		fmt.Fprintf(&b, "Note: %s\n\n", n)
	}
	b.WriteString("### Memory\n")
	b.WriteString(r.footprintTable())
	b.WriteString("### System calls per request\n")
	b.WriteString(r.syscallTable())
	b.WriteString("### Allocations\n")
	b.WriteString(r.benchTable())
	b.WriteString(r.allocTable())
	b.WriteString("### Stripped binary size\n")
	b.WriteString(r.sizeTable())
	b.WriteString("### CPU profile of edged under wrk\n\n")
	if r.profileText != "" {
		fmt.Fprintf(&b, "```\n%s```\n\n", r.profileText)
	}
	b.WriteString("### Commands\n\n")
	b.WriteString(r.commands())
	return b.String()
}

// shellQuote quotes an argument for a POSIX shell when it needs it.
func shellQuote(a string) string {
	if a != "" && strings.IndexFunc(a, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./:=,$", c))
	}) < 0 {
		return a
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}

// cmdline renders argv for the report, with the temporary directory written as $DIR.
func (r *report) cmdline(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if r.dir != "" {
			a = strings.ReplaceAll(a, r.dir, "$DIR")
		}
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

func (r *report) commands() string {
	var b strings.Builder
	o := r.opts
	b.WriteString("```\n")
	fmt.Fprintf(&b, "make bench BENCH_ROUNDS=%d BENCH_DURATION=%s   # runs bench/cmd/suite, which runs what follows\n", o.rounds, o.duration)
	b.WriteString("# servers ($DIR is a temporary directory, $DIR/www holds 4k.bin and 1m.bin; each prints its address)\n")
	for _, k := range []string{kEdged, kDefaults, kNetHTTP, kFastHTTP, kNginx, kEdgedP1, kFastHTTPP1} {
		if argv := r.argv[k]; argv != nil {
			fmt.Fprintf(&b, "%s\n", r.cmdline(argv))
		}
	}
	b.WriteString("# load, per workload and server\n")
	var sizes []string
	conns := 0
	for _, w := range r.wls {
		if w.wsSize > 0 {
			sizes, conns = append(sizes, strconv.Itoa(w.wsSize)), w.conns
			continue
		}
		if w.timed {
			fmt.Fprintf(&b, "%s\n", r.cmdline(append([]string{o.latency}, latencyArgs(w.conns, o.duration, "ADDR", w.path)...)))
			continue
		}
		fmt.Fprintf(&b, "%s\n", r.cmdline(append([]string{"wrk"}, wrkArgs(w.conns, o.duration, w.close, "http://ADDR"+w.path)...)))
	}
	if len(sizes) > 0 {
		env, argv := r.wsCommand(strings.Join(sizes, " "), conns)
		fmt.Fprintf(&b, "%s %s   # once per round: its own edged and gorilla peer, wsload against each\n",
			r.cmdline(env), r.cmdline(argv))
	}
	b.WriteString("# memory: /proc/PID/status VmRSS and VmHWM (nginx: master + workers), with idle connections from\n")
	fmt.Fprintf(&b, "%s\n", r.cmdline([]string{o.idleconns, "-addr", "ADDR", "-n", fmt.Sprint(o.parked), "-hold", idleHold.String()}))
	fmt.Fprintf(&b, "%s\n", r.cmdline(append([]string{"wrk"}, wrkArgs(256, o.duration, false, "http://ADDR/healthz")...)))
	for _, s := range append(slices.Clone(r.sys), r.perf...) {
		line := fmt.Sprintf("%s   # during: %s", r.cmdline(s.straceArgv), r.cmdline(append([]string{"wrk"}, s.wrkArgs...)))
		line = strings.ReplaceAll(strings.ReplaceAll(line, " "+s.pid+" ", " PID "), s.addr, "ADDR")
		fmt.Fprintf(&b, "%s\n", line)
	}
	for _, c := range r.profileCmds {
		fmt.Fprintf(&b, "%s\n", c)
	}
	fmt.Fprintf(&b, "%s\n", r.cmdline(append([]string{o.goCmd}, goBenchArgs...)))
	b.WriteString("# daemon allocations: curl http://ADDR/metrics before and after wrk -t1 -c64 /healthz and wsload -c 16 -s 64|4096 (go_memstats_mallocs_total)\n")
	for _, s := range r.sizes {
		fmt.Fprintf(&b, "%s\n", s.cmd)
	}
	b.WriteString("```\n")
	return b.String()
}
