package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// idleHold is how long idleconns keeps its connections idle; the memory is read in the middle.
const idleHold = 3 * time.Second

// cpuTime returns the CPU time (user + system) pids have used, from /proc/PID/stat. The kernel reports
// it in USER_HZ ticks, which are 1/100 s on Linux whatever the kernel's own tick rate.
func cpuTime(pids []int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ...: after the last ')', utime and stime are the 12th and 13th fields.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// footprintRow holds one server's memory figures in KiB, from /proc/PID/status (nginx: the sum over the
// master and its workers). RSS counts touched pages only, file-backed ones (the binary's text) included.
type footprintRow struct {
	name             string
	idleRSS, idleHWM int64 // fresh start, no request yet
	idleAnon         int64 // of idleRSS: private pages (heap, stacks, written data): RssAnon
	idleFile         int64 // of idleRSS: file-backed pages (the binary, shared libraries): RssFile
	baseRSS          int64 // after a few requests: the baseline of the per-connection figure
	parkedRSS        int64 // while idleconns holds its connections
	alive            string
	loadRSS, loadHWM int64 // during and after the 256-connection load
	err              string
}

// readMem returns the summed VmRSS and VmHWM of pids, in KiB.
func readMem(pids []int) (rss, hwm int64) {
	m := readStatus(pids, "VmRSS:", "VmHWM:")
	return m[0], m[1]
}

// readStatus returns the sums over pids of the given fields of /proc/PID/status, in KiB.
func readStatus(pids []int, fields ...string) []int64 {
	sums := make([]int64, len(fields))
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			for k, name := range fields {
				if f[0] == name {
					v, _ := strconv.ParseInt(f[1], 10, 64)
					sums[k] += v
				}
			}
		}
	}
	return sums
}

// warmUp sends a few keep-alive requests, so that the code and buffers of the request path are touched
// before the baseline is read.
func warmUp(addr string) error {
	c := &http.Client{Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	for range 20 {
		resp, err := c.Get("http://" + addr + "/healthz")
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return nil
}

// settle lets a server's background work (the Go runtime's start-up, nginx's workers) finish before its
// memory is read.
const settle = 500 * time.Millisecond

// footprint measures each server's memory idle, holding parked idle connections, and under load.
func (r *report) footprint(ctx context.Context, dir, root string) error {
	o := r.opts
	q := fmt.Sprint(2 * o.parked)
	type target struct {
		name          string
		start         func() (*server, error)
		parked, load  bool
		edgedDefaults bool
	}
	targets := []target{
		{name: "edged (defaults)", start: func() (*server, error) { return startEdged(ctx, o.edged, "edged (defaults)") }},
		{name: "edged --socket-queue " + q, parked: true, load: true, start: func() (*server, error) {
			return startEdged(ctx, o.edged, "edged", "--socket-queue", q)
		}},
		{name: "net/http", parked: true, load: true, start: func() (*server, error) {
			return startPeer(ctx, o.peer, "net/http", "nethttp", root)
		}},
		{name: "fasthttp", parked: true, load: true, start: func() (*server, error) {
			return startPeer(ctx, o.peer, "fasthttp", "fasthttp", root)
		}},
		{name: "nginx", parked: true, load: true, start: func() (*server, error) {
			return startNginx(ctx, filepath.Join(dir, "nginx-fp"), root)
		}},
	}
	if o.smoke {
		targets = targets[1:2]
		targets[0].load = false
	}
	for _, t := range targets {
		row := footprintRow{name: t.name}
		err := func() error {
			s, err := t.start()
			if err != nil {
				return err
			}
			defer s.stop()
			time.Sleep(settle)
			m := readStatus(s.pids(), "VmRSS:", "VmHWM:", "RssAnon:", "RssFile:")
			row.idleRSS, row.idleHWM, row.idleAnon, row.idleFile = m[0], m[1], m[2], m[3]
			if err := warmUp(s.addr); err != nil {
				return err
			}
			time.Sleep(settle)
			row.baseRSS, _ = readMem(s.pids())
			if t.parked {
				rss, alive, err := holdIdle(ctx, o.idleconns, s, o.parked)
				if err != nil {
					return err
				}
				row.parkedRSS, row.alive = rss, alive
			}
			if t.load {
				rss, hwm, err := underLoad(ctx, s, 256, o.duration)
				if err != nil {
					return err
				}
				row.loadRSS, row.loadHWM = rss, hwm
			}
			return nil
		}()
		if err != nil {
			row.err = err.Error()
		}
		r.fp = append(r.fp, row)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// holdIdle runs idleconns against s and reads the memory while the connections are held.
func holdIdle(ctx context.Context, bin string, s *server, n int) (rss int64, alive string, err error) {
	cmd := exec.CommandContext(ctx, bin, "-addr", s.addr, "-n", fmt.Sprint(n), "-hold", idleHold.String())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, "", err
	}
	if err := cmd.Start(); err != nil {
		return 0, "", err
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "holding ") {
			time.Sleep(idleHold / 2)
			rss, _ = readMem(s.pids())
		}
		if a, ok := strings.CutPrefix(line, "alive "); ok {
			alive = a
		}
	}
	if err := cmd.Wait(); err != nil {
		return 0, "", fmt.Errorf("idleconns: %w", err)
	}
	if rss == 0 || alive == "" {
		return 0, "", fmt.Errorf("idleconns did not report its connections")
	}
	return rss, alive, nil
}

// underLoad runs wrk with conns connections against /healthz of s and returns the largest RSS seen
// during the run and the high-water mark after it.
func underLoad(ctx context.Context, s *server, conns int, d time.Duration) (rss, hwm int64, err error) {
	done := make(chan error, 1)
	go func() {
		_, err := runWrk(ctx, wrkArgs(conns, d, false, "http://"+s.addr+"/healthz"), d)
		done <- err
	}()
	tick := time.NewTicker(d / 8)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			_, hwm = readMem(s.pids())
			return rss, hwm, err
		case <-tick.C:
			rss = max(rss, func() int64 { v, _ := readMem(s.pids()); return v }())
		}
	}
}

func kib(v int64) string {
	if v == 0 {
		return "-"
	}
	if v >= 10240 {
		return fmt.Sprintf("%.1f MiB", float64(v)/1024)
	}
	return fmt.Sprintf("%d KiB", v)
}

func (r *report) footprintTable() string {
	var b strings.Builder
	n := r.opts.parked
	fmt.Fprintf(&b, "\n| server | idle VmRSS | of which private | of which file-backed | idle VmHWM | after 20 requests | %d idle keep-alive conns | per conn | alive after | 256-conn load VmRSS | VmHWM after |\n", n)
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, f := range r.fp {
		if f.err != "" {
			fmt.Fprintf(&b, "| %s | failed: %s |\n", f.name, strings.ReplaceAll(f.err, "\n", " "))
			continue
		}
		per := "-"
		if f.parkedRSS > 0 {
			per = fmt.Sprintf("%.2f KiB", float64(f.parkedRSS-f.baseRSS)/float64(n))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", f.name, kib(f.idleRSS), kib(f.idleAnon),
			kib(f.idleFile), kib(f.idleHWM), kib(f.baseRSS), kib(f.parkedRSS), per, orDash(f.alive), kib(f.loadRSS), kib(f.loadHWM))
	}
	fmt.Fprintf(&b, "\nper conn = (VmRSS with the %d connections - VmRSS after 20 requests) / %d. RSS counts pages the process touched (its binary's text included), not the kernel's socket buffers. Private = RssAnon: heap, stacks and written data, memory only this process holds. File-backed = RssFile: pages of the binary (and of shared libraries for nginx) mapped in, clean, shared with the page cache, and reclaimable under memory pressure.\n\n", n, n)
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// syscallRun is one strace -c count of edged under wrk.
type syscallRun struct {
	conns      int
	straceArgv []string
	wrkArgs    []string
	pid, addr  string // shown as PID and ADDR in the report's commands
	requests   int64
	calls      []syscallCount
	err        string
}

type syscallCount struct {
	name          string
	calls, errors int64
}

var reStraceLine = regexp.MustCompile(`^\s*[0-9.]+\s+[0-9.]+\s+[0-9]+\s+([0-9]+)\s+([0-9]*)\s*([a-z0-9_]+)\s*$`)

// syscalls counts edged's system calls with strace -c -f during short wrk runs of /healthz keep-alive
// (no pipelining), at 64 connections and at one; and, where perf works, again with perf stat counting
// the syscall tracepoints in the kernel, which does not slow the server down as ptrace does.
func (r *report) syscalls(ctx context.Context, root string) error {
	for _, conns := range []int{64, 1} {
		run, err := r.straceRun(ctx, root, conns)
		if err != nil {
			return err
		}
		r.sys = append(r.sys, run)
	}
	if _, err := exec.LookPath("perf"); err != nil {
		r.notes = append(r.notes, "perf not found: syscalls counted with strace only")
		return nil
	}
	for _, conns := range []int{64, 4, 1} {
		run, err := r.perfRun(ctx, root, conns)
		if err != nil {
			r.notes = append(r.notes, "perf stat failed: "+err.Error())
			return nil
		}
		r.perf = append(r.perf, run)
	}
	return nil
}

// perfSyscalls are the tracepoints perfRun counts; raw_syscalls:sys_enter counts every call.
var perfSyscalls = []string{"read", "write", "epoll_pwait", "futex", "recvfrom", "nanosleep"}

func (r *report) perfRun(ctx context.Context, root string, conns int) (syscallRun, error) {
	run := syscallRun{conns: conns}
	s, err := startEdged(ctx, r.opts.edged, "edged", r.opts.edgedArgs(root)...)
	if err != nil {
		return run, err
	}
	defer s.stop()
	if err := warmUp(s.addr); err != nil {
		return run, err
	}
	events := "raw_syscalls:sys_enter"
	for _, sc := range perfSyscalls {
		events += ",syscalls:sys_enter_" + sc
	}
	out := filepath.Join(r.dir, fmt.Sprintf("perf-%d.txt", conns))
	run.pid, run.addr = strconv.Itoa(s.cmd.Process.Pid), s.addr
	run.straceArgv = []string{"perf", "stat", "-e", events, "-p", run.pid, "-o", out}
	ps := exec.CommandContext(ctx, run.straceArgv[0], run.straceArgv[1:]...)
	if err := ps.Start(); err != nil {
		return run, err
	}
	time.Sleep(300 * time.Millisecond) // perf attached
	d := 2 * time.Second
	run.wrkArgs = wrkArgs(conns, d, false, "http://"+s.addr+"/healthz")
	smp, werr := runWrk(ctx, run.wrkArgs, d)
	ps.Process.Signal(syscall.SIGINT)
	ps.Wait()
	if werr != nil {
		return run, werr
	}
	run.requests = smp.requests
	b, err := os.ReadFile(out)
	if err != nil {
		return run, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, err := strconv.ParseInt(strings.ReplaceAll(f[0], ",", ""), 10, 64)
		if err != nil {
			continue
		}
		name, ok := strings.CutPrefix(f[1], "syscalls:sys_enter_")
		if f[1] == "raw_syscalls:sys_enter" {
			name, ok = "all", true
		}
		if ok {
			run.calls = append(run.calls, syscallCount{name: name, calls: n})
		}
	}
	if len(run.calls) == 0 {
		return run, fmt.Errorf("no counts in perf's output:\n%s", b)
	}
	return run, nil
}

func (r *report) perfTable() string {
	if len(r.perf) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\nperf stat (syscall tracepoints counted in the kernel; the server runs at full speed), per request:\n\n")
	b.WriteString("| wrk | requests |")
	for _, sc := range perfSyscalls {
		fmt.Fprintf(&b, " %s |", sc)
	}
	b.WriteString(" all syscalls |\n|---|--:|")
	for range perfSyscalls {
		b.WriteString("--:|")
	}
	b.WriteString("--:|\n")
	for _, p := range r.perf {
		fmt.Fprintf(&b, "| -c%d | %d |", p.conns, p.requests)
		per := map[string]float64{}
		for _, c := range p.calls {
			per[c.name] = float64(c.calls) / float64(max(p.requests, 1))
		}
		for _, sc := range perfSyscalls {
			fmt.Fprintf(&b, " %.3f |", per[sc])
		}
		fmt.Fprintf(&b, " %.3f |\n", per["all"])
	}
	return b.String()
}

func (r *report) straceRun(ctx context.Context, root string, conns int) (syscallRun, error) {
	run := syscallRun{conns: conns}
	s, err := startEdged(ctx, r.opts.edged, "edged", r.opts.edgedArgs(root)...)
	if err != nil {
		return run, err
	}
	defer s.stop()
	if err := warmUp(s.addr); err != nil {
		return run, err
	}
	out := filepath.Join(r.dir, fmt.Sprintf("strace-%d.txt", conns))
	if r.dir == "" {
		out = filepath.Join(os.TempDir(), fmt.Sprintf("edged-strace-%d.txt", conns))
		defer os.Remove(out)
	}
	run.pid, run.addr = strconv.Itoa(s.cmd.Process.Pid), s.addr
	run.straceArgv = []string{"strace", "-c", "-f", "-p", run.pid, "-o", out}
	st := exec.CommandContext(ctx, run.straceArgv[0], run.straceArgv[1:]...)
	stderr, err := st.StderrPipe()
	if err != nil {
		return run, err
	}
	if err := st.Start(); err != nil {
		return run, fmt.Errorf("strace: %w (scripts/install-test-deps.sh installs it)", err)
	}
	attached := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			if strings.Contains(sc.Text(), "attached") && !once {
				once = true
				close(attached)
			}
		}
		if !once {
			close(attached)
		}
	}()
	select {
	case <-attached:
	case <-time.After(5 * time.Second):
	}
	time.Sleep(200 * time.Millisecond) // every thread attached
	d := 2 * time.Second
	run.wrkArgs = wrkArgs(conns, d, false, "http://"+s.addr+"/healthz")
	smp, werr := runWrk(ctx, run.wrkArgs, d)
	st.Process.Signal(syscall.SIGINT)
	st.Wait()
	if werr != nil {
		return run, werr
	}
	run.requests = smp.requests
	b, err := os.ReadFile(out)
	if err != nil {
		return run, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		m := reStraceLine.FindStringSubmatch(line)
		if m == nil || m[3] == "total" {
			continue
		}
		c := syscallCount{name: m[3]}
		c.calls, _ = strconv.ParseInt(m[1], 10, 64)
		c.errors, _ = strconv.ParseInt(m[2], 10, 64)
		run.calls = append(run.calls, c)
	}
	sort.Slice(run.calls, func(i, j int) bool { return run.calls[i].calls > run.calls[j].calls })
	return run, nil
}

func (r *report) syscallTable() string {
	var b strings.Builder
	b.WriteString(r.perfTable())
	for _, s := range r.sys {
		fmt.Fprintf(&b, "\nwrk -c%d, %d requests while strace was attached (strace slows every call, so this counts calls, not speed):\n\n", s.conns, s.requests)
		b.WriteString("| syscall | calls | errors | per request |\n|---|--:|--:|--:|\n")
		var total int64
		for _, c := range s.calls {
			total += c.calls
			fmt.Fprintf(&b, "| %s | %d | %d | %.3f |\n", c.name, c.calls, c.errors, float64(c.calls)/float64(max(s.requests, 1)))
		}
		fmt.Fprintf(&b, "| all | %d | | %.3f |\n", total, float64(total)/float64(max(s.requests, 1)))
	}
	b.WriteString("\n")
	return b.String()
}

// profile builds edged with -tags pprof, runs it with its hidden --debug-cpu-profile flag under wrk and
// summarises the profile.
func (r *report) profile(ctx context.Context, dir, root string) error {
	bin := filepath.Join(dir, "edged-pprof")
	build := []string{"build", "-tags", "pprof", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/edged"}
	cmd := exec.CommandContext(ctx, r.opts.goCmd, build...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build -tags pprof: %v\n%s", err, out)
	}
	prof := filepath.Join(dir, "edged-cpu.pprof")
	s, err := startEdged(ctx, bin, "edged", append(r.opts.edgedArgs(root), "--debug-cpu-profile", prof)...)
	if err != nil {
		return err
	}
	d := max(r.opts.duration, 5*time.Second)
	r.profileCmds = []string{
		"CGO_ENABLED=0 " + r.cmdline(append([]string{r.opts.goCmd}, build...)),
		r.cmdline(s.argv) + "   # under: " + r.cmdline(append([]string{"wrk"}, wrkArgs(64, d, false, "http://ADDR/healthz")...)),
		"go tool pprof -top -nodecount=25 $DIR/edged-cpu.pprof; go tool pprof -top -cum -nodecount=25 $DIR/edged-cpu.pprof",
	}
	_, werr := runWrk(ctx, wrkArgs(64, d, false, "http://"+s.addr+"/healthz"), d)
	s.stop()
	if werr != nil {
		return werr
	}
	var b strings.Builder
	for _, sortBy := range []string{"-top", "-top -cum"} {
		args := append([]string{"tool", "pprof"}, strings.Fields(sortBy)...)
		args = append(args, "-nodecount=25", prof)
		out, err := exec.CommandContext(ctx, r.opts.goCmd, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("go tool pprof: %v\n%s", err, out)
		}
		fmt.Fprintf(&b, "$ go tool pprof %s -nodecount=25 edged-cpu.pprof\n%s\n", sortBy, out)
	}
	r.profileText = b.String()
	return nil
}

// goBenchArgs runs the Go benchmarks of the hot paths with allocation counts.
var goBenchArgs = []string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-benchtime", "500ms",
	"./pkg/conn", "./pkg/ws", "./pkg/server", "./internal/routes"}

type benchRow struct {
	pkg, name         string
	nsPerOp           float64
	bytesOp, allocsOp int64
}

var reBench = regexp.MustCompile(`^(Benchmark\S+)\s+\d+\s+([0-9.]+) ns/op.*?\s([0-9]+) B/op\s+([0-9]+) allocs/op`)

func (r *report) goBenchmarks(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, r.opts.goCmd, goBenchArgs...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(goBenchArgs, " "), err, out)
	}
	pkg := ""
	for _, line := range strings.Split(string(out), "\n") {
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimPrefix(p, "github.com/edged/edged/")
		}
		m := reBench.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		row := benchRow{pkg: pkg, name: m[1]}
		row.nsPerOp, _ = strconv.ParseFloat(m[2], 64)
		row.bytesOp, _ = strconv.ParseInt(m[3], 10, 64)
		row.allocsOp, _ = strconv.ParseInt(m[4], 10, 64)
		r.bench = append(r.bench, row)
	}
	return nil
}

func (r *report) benchTable() string {
	var b strings.Builder
	b.WriteString("\n| package | benchmark | ns/op | B/op | allocs/op |\n|---|---|--:|--:|--:|\n")
	for _, x := range r.bench {
		fmt.Fprintf(&b, "| %s | %s | %.0f | %d | %d |\n", x.pkg, x.name, x.nsPerOp, x.bytesOp, x.allocsOp)
	}
	b.WriteString("\n")
	return b.String()
}

type sizeRow struct {
	target string
	bytes  int64
	cmd    string
}

// binarySizes cross-builds edged the way the packages do and reports the stripped sizes.
func (r *report) binarySizes(ctx context.Context, dir string) error {
	for _, t := range []struct{ name, goarch, goarm string }{
		{"linux/arm (GOARM=6)", "arm", "6"}, {"linux/arm64", "arm64", ""}, {"linux/amd64", "amd64", ""},
	} {
		out := filepath.Join(dir, "edged-"+t.goarch)
		args := []string{"build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./cmd/edged"}
		cmd := exec.CommandContext(ctx, r.opts.goCmd, args...)
		env := "CGO_ENABLED=0 GOOS=linux GOARCH=" + t.goarch
		if t.goarm != "" {
			env += " GOARM=" + t.goarm
		}
		cmd.Env = append(os.Environ(), strings.Fields(env)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build for %s: %v\n%s", t.name, err, b)
		}
		fi, err := os.Stat(out)
		if err != nil {
			return err
		}
		argv := append([]string{r.opts.goCmd}, args...)
		argv[len(argv)-2] = "edged-" + t.goarch
		r.sizes = append(r.sizes, sizeRow{t.name, fi.Size(), env + " " + r.cmdline(argv)})
	}
	return nil
}

func (r *report) sizeTable() string {
	var b strings.Builder
	b.WriteString("\n| target | bytes | MiB |\n|---|--:|--:|\n")
	for _, s := range r.sizes {
		fmt.Fprintf(&b, "| %s | %d | %.2f |\n", s.target, s.bytes, float64(s.bytes)/(1<<20))
	}
	b.WriteString("\n")
	return b.String()
}

// describeMachine names the CPU, the kernel and the tools' versions.
func describeMachine(goCmd string) string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	first := func(name string, args ...string) string {
		out, _ := exec.Command(name, args...).CombinedOutput()
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return line
	}
	gover := first(goCmd, "env", "GOVERSION")
	wrkv, _, _ := strings.Cut(first("wrk", "-v"), " Copyright")
	nginxv := strings.TrimPrefix(first("nginx", "-v"), "nginx version: ")
	return fmt.Sprintf("%d CPUs (nproc), %s, Linux %s; %s; %s; %s", runtime.NumCPU(), model,
		strings.TrimSpace(string(kernel)), gover, strings.TrimSpace(wrkv), nginxv)
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// allocRow is the heap allocations of the running daemon per request or message, from the
// go_memstats_mallocs_total counter of its own /metrics (the scrapes' own allocations subtracted).
type allocRow struct {
	workload string
	ops      int64
	mallocs  int64
}

// metricsSnapshot holds the counters daemonAllocs reads from /metrics.
type metricsSnapshot struct {
	mallocs, requests, wsIn int64
}

func scrapeMetrics(addr string) (metricsSnapshot, error) {
	var m metricsSnapshot
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) != 2 || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		switch {
		case f[0] == "go_memstats_mallocs_total":
			m.mallocs = int64(v)
		case strings.HasPrefix(f[0], "edged_http_requests_total{"):
			m.requests += int64(v)
		case f[0] == `edged_websocket_messages_total{direction="received"}`:
			m.wsIn = int64(v)
		}
	}
	if m.mallocs == 0 {
		return m, fmt.Errorf("no go_memstats_mallocs_total in edged's /metrics")
	}
	return m, sc.Err()
}

// daemonAllocs measures the allocations per request and per WebSocket message of the daemon itself,
// routing, metrics and sessions included, which the Go benchmarks of single packages leave out. The
// daemon also allocates on its own (the status page's topic, the scrapes), so what one scrape costs
// (the median of three) and what an idle period of the same length costs are subtracted.
func (r *report) daemonAllocs(ctx context.Context, root string) error {
	s, err := startEdged(ctx, r.opts.edged, "edged", r.opts.edgedArgs(root)...)
	if err != nil {
		return err
	}
	defer s.stop()
	if err := warmUp(s.addr); err != nil {
		return err
	}
	prev, err := scrapeMetrics(s.addr)
	if err != nil {
		return err
	}
	var costs []int64
	for range 3 {
		m, err := scrapeMetrics(s.addr)
		if err != nil {
			return err
		}
		costs = append(costs, m.mallocs-prev.mallocs)
		prev = m
	}
	scrape := median(costs)
	d := r.opts.duration
	wsload := func(size string) func() error {
		return func() error {
			return exec.CommandContext(ctx, r.opts.wsload, "-url", "ws://"+s.addr+"/echo", "-c", "16", "-s", size,
				"-d", d.String()).Run()
		}
	}
	runs := []struct {
		name string
		run  func() error
	}{
		{"idle", func() error { time.Sleep(d); return nil }},
		{"/healthz keep-alive, wrk -c64", func() error {
			_, err := runWrk(ctx, wrkArgs(64, d, false, "http://"+s.addr+"/healthz"), d)
			return err
		}},
		{"WebSocket echo 64 B, 16 conns", wsload("64")},
		{"WebSocket echo 4 KiB, 16 conns", wsload("4096")},
	}
	var idlePerSec float64
	for _, x := range runs {
		t0 := time.Now()
		if err := x.run(); err != nil {
			return fmt.Errorf("%s: %w", x.name, err)
		}
		m, err := scrapeMetrics(s.addr)
		if err != nil {
			return err
		}
		el := time.Since(t0).Seconds()
		n := m.mallocs - prev.mallocs - scrape
		if x.name == "idle" {
			idlePerSec = float64(n) / el
			r.allocIdle = idlePerSec
			prev = m
			continue
		}
		row := allocRow{workload: x.name, mallocs: n - int64(idlePerSec*el)}
		if strings.HasPrefix(x.name, "WebSocket") {
			row.ops = m.wsIn - prev.wsIn
		} else {
			row.ops = m.requests - prev.requests - 1 // the scrape's own request
		}
		r.allocs = append(r.allocs, row)
		prev = m
	}
	return nil
}

func (r *report) allocTable() string {
	var b strings.Builder
	b.WriteString("\n| workload (the daemon, from its /metrics) | requests or messages | heap allocations | per request or message |\n|---|--:|--:|--:|\n")
	for _, a := range r.allocs {
		fmt.Fprintf(&b, "| %s | %d | %d | %.4f |\n", a.workload, a.ops, a.mallocs, float64(a.mallocs)/float64(max(a.ops, 1)))
	}
	fmt.Fprintf(&b, "\nAllocations counted by go_memstats_mallocs_total between scrapes of /metrics, minus what one scrape allocates and what the idle daemon allocates in as long (%.0f per second here: the status page's topic, timers); WebSocket runs include their 16 handshakes and sessions. Differences of a few hundred are noise.\n\n", r.allocIdle)
	return b.String()
}
