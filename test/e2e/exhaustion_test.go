//go:build e2e

package e2e

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Resource exhaustion: when descriptors, socket slots or WebSocket sessions run out, the daemon neither
// crashes nor spins, says so in bounded words, and serves again by itself once clients leave (CONTRACT
// S4, S7, S13, W9).

// TestS7_DescriptorLimit: the daemon runs with RLIMIT_NOFILE 64 and a socket queue of 256, so the
// descriptors run out first. Clients connect until one is not answered: accept fails with EMFILE. The
// daemon backs off: over a window of seconds it logs "accept failed" about once a second and uses
// little CPU (from /proc/PID/stat), and edged_accept_errors_total counts the failures. Once the held
// connections close, the waiting client is answered without anyone's help.
func TestS7_DescriptorLimit(t *testing.T) {
	const (
		nofile  = 64
		window  = 3 * time.Second
		maxHeld = 2 * nofile // bound on the connections opened
	)
	// The shell sets both limits (the Go runtime raises a soft limit to the hard one) and execs edged,
	// so the PID and the signals are the daemon's.
	d := startDaemonCmd(t, []string{"/bin/sh", "-c", "ulimit -n " + strconv.Itoa(nofile) + ` && exec "$0" "$@"`, edgedBin}, nil,
		"--socket-queue", "256", "--workers", "2", "--backlog", "256")
	pid := int(d.waitLog("edged started")["pid"].(float64))
	if pid != d.cmd.Process.Pid {
		t.Fatalf("start-up line pid %d, process %d: the shell did not exec edged", pid, d.cmd.Process.Pid)
	}
	accepts := func() int { return strings.Count(d.stderrText(), `"msg":"accept failed; backing off"`) }

	// Hold connections, each answered once, until one is not answered: its connection waits in the
	// backlog because accept4 fails.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	var waiting net.Conn
	var waitingBr *bufio.Reader
	for len(held) < maxHeld {
		c, err := net.DialTimeout("tcp", d.addr, waitLimit)
		if err != nil {
			t.Fatalf("connect %d: %v", len(held), err)
		}
		br := bufio.NewReader(c)
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: e2e\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		// Answered, or waiting: then accept4 failed and said so. A slow answer is not taken for a
		// failed accept, and no fixed wait decides.
		answered, deadline := false, time.Now().Add(waitLimit)
		for !answered && accepts() == 0 {
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			_, err := br.Peek(1)
			var ne net.Error
			switch {
			case err == nil:
				answered = true
			case !errors.As(err, &ne) || !ne.Timeout():
				t.Fatalf("connection %d: %v", len(held), err)
			case time.Now().After(deadline):
				t.Fatalf("connection %d: neither answered nor refused by accept within %v", len(held), waitLimit)
			}
		}
		if !answered {
			waiting, waitingBr = c, br
			break
		}
		_ = c.SetReadDeadline(time.Now().Add(waitLimit))
		if r := readResponse(t, c, br, "GET", false); r.StatusCode != 200 {
			t.Fatalf("connection %d: %d", len(held), r.StatusCode)
		}
		held = append(held, c)
	}
	if waiting == nil {
		t.Fatalf("%d connections all answered with RLIMIT_NOFILE %d", len(held), nofile)
	}
	defer waiting.Close()
	d.waitLog("accept failed; backing off")
	rec := d.logLines()
	for _, r := range rec {
		if r["msg"] == "accept failed; backing off" && !strings.Contains(r["error"].(string), "too many open files") {
			t.Errorf("accept failed with %v, want EMFILE", r["error"])
		}
	}

	// The back-off: few log lines and little CPU over the window.
	logs0, cpu0, start := accepts(), procCPU(t, pid), time.Now()
	time.Sleep(window) // measures a rate over a window: the absence of spinning and of log floods
	logs, cpu, elapsed := accepts()-logs0, procCPU(t, pid)-cpu0, time.Since(start)
	if maxLogs := int(elapsed/time.Second) + 2; logs > maxLogs || logs < 1 {
		t.Errorf("%d accept-failure log lines in %v, want 1 to %d (at most one a second)", logs, elapsed, maxLogs)
	}
	if cpuBound := scaledBound(elapsed / 10); cpu > cpuBound {
		t.Errorf("the daemon used %v of CPU in %v while accept failed (bound %v): it spins", cpu, elapsed, cpuBound)
	}
	t.Logf("%d connections held with RLIMIT_NOFILE %d; while accept failed: %d log lines and %v of CPU in %v",
		len(held), nofile, logs, cpu, elapsed)

	// Clients leave; the waiting one is answered once the back-off (at most 1 s) ends.
	for _, c := range held {
		c.Close()
	}
	held = nil
	recovered := time.Now()
	_ = waiting.SetReadDeadline(time.Now().Add(waitLimit))
	if r := readResponse(t, waiting, waitingBr, "GET", false); r.StatusCode != 200 {
		t.Fatalf("the waiting client: %d", r.StatusCode)
	}
	t.Logf("the waiting client was answered %v after the others left", time.Since(recovered))
	if took := time.Since(recovered); took > scaledBound(3*time.Second) {
		t.Errorf("serving again took %v after descriptors were freed", took)
	}
	if n := d.value(t, "edged_accept_errors_total"); n < 2 {
		t.Errorf("edged_accept_errors_total = %v, want the failures counted", n)
	}
	d.healthz(t)
}

// TestS4_SocketQueueFullNoEviction: with --socket-queue 3 and --evict-idle=false, three idle
// keep-alive clients hold every slot: a fourth waits in the backlog, unanswered (S4's plain bound). When
// one idle client leaves, the fourth is answered at once.
func TestS4_SocketQueueFullNoEviction(t *testing.T) {
	d := startDaemon(t, nil, "--socket-queue", "3", "--workers", "1", "--evict-idle=false", "--keepalive-timeout", "1m",
		"--metrics-listen", "127.0.0.1:0")
	base := d.baseline(t)
	var idle []net.Conn
	for range 3 {
		c := d.dial(t)
		if r := getOn(t, c, bufio.NewReader(c), "/healthz"); r.StatusCode != 200 {
			t.Fatal(r.StatusCode)
		}
		idle = append(idle, c)
	}
	d.waitValue(t, "edged_sockets_parked", 3)
	c := d.dial(t)
	br := bufio.NewReader(c)
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: e2e\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(scaledBound(500 * time.Millisecond)))
	if _, err := br.Peek(1); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a fourth client with every slot held: %v, want no answer yet", err)
	}
	if n := d.value(t, "edged_connections_active"); n != 3 {
		t.Errorf("edged_connections_active = %v, want 3 (Q)", n)
	}
	left := time.Now()
	resetClose(idle[0])
	_ = c.SetReadDeadline(time.Now().Add(waitLimit))
	if r := readResponse(t, c, br, "GET", false); r.StatusCode != 200 {
		t.Fatalf("after a slot was freed: %d", r.StatusCode)
	}
	t.Logf("the fourth client was answered %v after an idle one left", time.Since(left))
	c.Close()
	for _, c := range idle[1:] {
		c.Close()
	}
	d.checkLeaks(t, base)
}

// TestW9_PoolFullServiceResumes: with --ws-max-conns 2, a third upgrade gets 503 with Retry-After while
// HTTP clients are still served; a session that leaves with a TCP reset (no close frame) gives its
// entry back, and an upgrade succeeds again.
func TestW9_PoolFullServiceResumes(t *testing.T) {
	d := startDaemon(t, nil, "--enable-echo", "--ws-max-conns", "2", "--socket-queue", "16", "--metrics-listen", "127.0.0.1:0")
	base := d.baseline(t)
	a := d.wsDialRaw(t, "/echo")
	b := d.wsDialRaw(t, "/topics/pool")
	d.waitValue(t, "edged_websocket_sessions_active", 2)
	for range 3 {
		w, r := d.wsHandshake(t, "/echo", "")
		if r.StatusCode != 503 || r.Header.Get("Retry-After") == "" {
			t.Errorf("upgrade with the pool full: %d, Retry-After %q", r.StatusCode, r.Header.Get("Retry-After"))
		}
		w.c.Close()
		d.healthz(t)
	}
	resetClose(a.c)
	if !poll(func() bool {
		w, r := d.wsHandshake(t, "/echo", "")
		defer w.c.Close()
		if r.StatusCode != 101 {
			return false
		}
		if err := w.writeFrame(true, opText, []byte("back")); err != nil {
			t.Fatal(err)
		}
		_, msg, err := w.readMessage()
		return err == nil && string(msg) == "back"
	}, d.exited) {
		t.Fatal("no upgrade succeeded after a session left with a reset")
	}
	b.c.Close()
	d.waitValue(t, "edged_websocket_sessions_active", 0)
	d.checkLeaks(t, base)
}
