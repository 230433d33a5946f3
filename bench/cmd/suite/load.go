package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// sample is the outcome of one load run.
type sample struct {
	rate     float64       // requests or messages per second
	requests int64         // completed in the run
	p50, p99 time.Duration // latency percentiles
	p999     time.Duration // timed workloads (bench/cmd/latency) only
	over1ms  int64         // timed workloads only: requests that took over 1 ms
	errors   string        // socket errors or non-2xx/3xx responses, as wrk reports them; empty if none
	cpu      time.Duration // CPU time (user + system) the server used during the run; 0 if unknown
	// client is the load generator's own CPU time (user + system) over the run; busy its share of one
	// core: when wrk -t1 is near 100%, the row measures the client as much as the server.
	client time.Duration
	busy   float64
}

var (
	reRate     = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	reRequests = regexp.MustCompile(`(?m)^\s*([0-9]+) requests in`)
	reP50      = regexp.MustCompile(`(?m)^\s*50(?:\.000)?%\s+([0-9.]+[a-z]+)`)
	reP99      = regexp.MustCompile(`(?m)^\s*99(?:\.000)?%\s+([0-9.]+[a-z]+)`)
	reSockErr  = regexp.MustCompile(`(?m)^\s*Socket errors: (.*)$`)
	reNon2xx   = regexp.MustCompile(`(?m)^\s*Non-2xx or 3xx responses: ([0-9]+)`)
)

// wrkArgs returns wrk's arguments for a run: one thread (the stable setting on two cores), --latency
// for the percentiles, and Connection: close for the non-keep-alive workload.
func wrkArgs(conns int, d time.Duration, closeConn bool, url string) []string {
	args := []string{"-t1", "-c" + strconv.Itoa(conns), "-d" + durationArg(d), "--latency"}
	if closeConn {
		args = append(args, "-H", "Connection: close")
	}
	return append(args, url)
}

// durationArg prints d the way wrk reads it: whole seconds, or milliseconds below that.
func durationArg(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.Itoa(int(d/time.Second)) + "s"
	}
	return strconv.Itoa(int(d/time.Millisecond)) + "ms"
}

// runWrk runs wrk once and parses its report.
func runWrk(ctx context.Context, args []string, d time.Duration) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "wrk", args...)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return sample{}, fmt.Errorf("wrk %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	s, err := parseWrk(string(out))
	s.client = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	s.busy = float64(s.client) / float64(time.Since(t0))
	return s, err
}

func parseWrk(out string) (sample, error) {
	var s sample
	m := reRate.FindStringSubmatch(out)
	if m == nil {
		return s, fmt.Errorf("no Requests/sec in wrk's report:\n%s", out)
	}
	s.rate, _ = strconv.ParseFloat(m[1], 64)
	if m := reRequests.FindStringSubmatch(out); m != nil {
		s.requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	var err error
	if m := reP50.FindStringSubmatch(out); m != nil {
		if s.p50, err = parseWrkDuration(m[1]); err != nil {
			return s, err
		}
	}
	if m := reP99.FindStringSubmatch(out); m != nil {
		if s.p99, err = parseWrkDuration(m[1]); err != nil {
			return s, err
		}
	}
	var errs []string
	if m := reSockErr.FindStringSubmatch(out); m != nil {
		errs = append(errs, "socket errors: "+m[1])
	}
	if m := reNon2xx.FindStringSubmatch(out); m != nil {
		errs = append(errs, m[1]+" non-2xx/3xx")
	}
	s.errors = strings.Join(errs, "; ")
	return s, nil
}

// parseWrkDuration reads wrk's latency figures: "412.00us", "1.20ms", "2.01s", "1.00m".
func parseWrkDuration(v string) (time.Duration, error) {
	i := strings.IndexFunc(v, func(r rune) bool { return r >= 'a' && r <= 'z' })
	if i <= 0 {
		return 0, fmt.Errorf("wrk latency %q", v)
	}
	x, err := strconv.ParseFloat(v[:i], 64)
	if err != nil {
		return 0, fmt.Errorf("wrk latency %q", v)
	}
	unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute}[v[i:]]
	if unit == 0 {
		return 0, fmt.Errorf("wrk latency unit %q", v)
	}
	return time.Duration(x * float64(unit)), nil
}

var reLatency = regexp.MustCompile(`(?m)^result rate=([0-9.]+) requests=([0-9]+) p50_us=([0-9]+) p99_us=([0-9]+) p999_us=([0-9]+) over1ms=([0-9]+)$`)

// latencyArgs returns bench/cmd/latency's arguments for a run: conns connections, every request
// timed for d.
func latencyArgs(conns int, d time.Duration, addr, path string) []string {
	return []string{"-addr", addr, "-path", path, "-c", strconv.Itoa(conns), "-d", d.String()}
}

// runLatency runs bench/cmd/latency once and parses its result line.
func runLatency(ctx context.Context, bin string, args []string, d time.Duration) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return sample{}, fmt.Errorf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out)
	}
	m := reLatency.FindStringSubmatch(string(out))
	if m == nil {
		return sample{}, fmt.Errorf("no result line in the latency client's report:\n%s", out)
	}
	var s sample
	s.rate, _ = strconv.ParseFloat(m[1], 64)
	s.requests, _ = strconv.ParseInt(m[2], 10, 64)
	us := func(v string) time.Duration {
		n, _ := strconv.ParseInt(v, 10, 64)
		return time.Duration(n) * time.Microsecond
	}
	s.p50, s.p99, s.p999 = us(m[3]), us(m[4]), us(m[5])
	s.over1ms, _ = strconv.ParseInt(m[6], 10, 64)
	s.client = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	s.busy = float64(s.client) / float64(time.Since(t0))
	return s, nil
}

// wsKey names one figure of bench-ws.sh: message size and server key.
type wsKey struct {
	size int
	key  string
}

var (
	reWSRound = regexp.MustCompile(`(?m)^round [0-9]+, ([0-9]+) B, (edged|gorilla): .*msgs_per_sec=([0-9.]+) p50_us=([0-9]+) p99_us=([0-9]+)(.*)$`)
	reWSMsgs  = regexp.MustCompile(`msgs=([0-9]+)`)
	reWSCPU   = regexp.MustCompile(`server_cpu_ms=([0-9]+)`)
	reWSLoad  = regexp.MustCompile(`client_cpu_ms=([0-9]+) secs=([0-9.]+)`)
)

// runWSScript runs scripts/bench-ws.sh for one round and parses the lines it prints per run.
func runWSScript(ctx context.Context, env, argv []string, d time.Duration) (map[wsKey]sample, error) {
	ctx, cancel := context.WithTimeout(ctx, d+2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	got := map[wsKey]sample{}
	for _, m := range reWSRound.FindAllStringSubmatch(string(out), -1) {
		size, _ := strconv.Atoi(m[1])
		key := kEdged
		if m[2] == "gorilla" {
			key = kGorilla
		}
		var s sample
		s.rate, _ = strconv.ParseFloat(m[3], 64)
		s.requests = int64(s.rate)
		// The messages of the run and the server's CPU time during it give the CPU per message.
		if m := reWSMsgs.FindStringSubmatch(m[6]); m != nil {
			s.requests, _ = strconv.ParseInt(m[1], 10, 64)
		}
		if m := reWSCPU.FindStringSubmatch(m[6]); m != nil {
			ms, _ := strconv.ParseInt(m[1], 10, 64)
			s.cpu = time.Duration(ms) * time.Millisecond
		}
		if m := reWSLoad.FindStringSubmatch(m[6]); m != nil {
			ms, _ := strconv.ParseInt(m[1], 10, 64)
			secs, _ := strconv.ParseFloat(m[2], 64)
			s.client = time.Duration(ms) * time.Millisecond
			if secs > 0 {
				s.busy = s.client.Seconds() / secs
			}
		}
		p50, _ := strconv.ParseInt(m[4], 10, 64)
		p99, _ := strconv.ParseInt(m[5], 10, 64)
		s.p50, s.p99 = time.Duration(p50)*time.Microsecond, time.Duration(p99)*time.Microsecond
		got[wsKey{size, key}] = s
	}
	if len(got) == 0 {
		return nil, fmt.Errorf("no figures in the output of %s:\n%s", strings.Join(argv, " "), out)
	}
	return got, nil
}
