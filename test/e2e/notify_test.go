//go:build e2e

package e2e

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// notifySocket is a unixgram socket standing in for systemd's NOTIFY_SOCKET; it records every
// datagram with the time it arrived.
type notifySocket struct {
	path string
	msgs chan notifyMsg
}

type notifyMsg struct {
	text string
	at   time.Time
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	// A short directory: a unix socket path holds at most 107 bytes, and t.TempDir() can be long.
	dir, err := os.MkdirTemp("", "edged-notify-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ns := &notifySocket{path: filepath.Join(dir, "notify"), msgs: make(chan notifyMsg, 1024)}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: ns.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				close(ns.msgs)
				return
			}
			for line := range strings.SplitSeq(string(buf[:n]), "\n") {
				if line != "" {
					ns.msgs <- notifyMsg{line, time.Now()}
				}
			}
		}
	}()
	return ns
}

// next returns the next message, or fails after waitLimit.
func (ns *notifySocket) next(t *testing.T, what string) notifyMsg {
	t.Helper()
	select {
	case m, ok := <-ns.msgs:
		if !ok {
			t.Fatalf("notify socket closed while waiting for %s", what)
		}
		return m
	case <-time.After(waitLimit):
		t.Fatalf("no sd_notify message within %v while waiting for %s", waitLimit, what)
		return notifyMsg{}
	}
}

// expect reads messages until want arrives, and returns the ones it skipped.
func (ns *notifySocket) expect(t *testing.T, want string) (notifyMsg, []string) {
	t.Helper()
	var skipped []string
	for {
		m := ns.next(t, want)
		if m.text == want {
			return m, skipped
		}
		skipped = append(skipped, m.text)
	}
}

// TestD7_SdNotify: with NOTIFY_SOCKET and WATCHDOG_USEC=200000 set (WATCHDOG_PID the daemon's own pid,
// as systemd sets it), the daemon sends READY=1 once it answers requests, WATCHDOG=1 about every
// 100 ms, and STOPPING=1 on SIGTERM, then exits 0 after draining.
func TestD7_SdNotify(t *testing.T) {
	ns := listenNotify(t)
	// exec keeps the shell's pid, so $$ is the daemon's pid, as systemd's WATCHDOG_PID is.
	d := startDaemonCmd(t, []string{"/bin/sh", "-c", `WATCHDOG_PID=$$ exec "$@"`, "sh", edgedBin},
		[]string{"NOTIFY_SOCKET=" + ns.path, "WATCHDOG_USEC=200000"})

	ready, before := ns.expect(t, "READY=1")
	if len(before) > 0 {
		t.Errorf("messages before READY=1: %v", before)
	}
	// READY=1 follows the listening socket: a request right after it is answered.
	resp, err := http.Get(d.url("/healthz"))
	if err != nil {
		t.Fatalf("GET /healthz right after READY=1: %v", err)
	}
	resp.Body.Close()

	var beats []time.Time
	for len(beats) < 5 {
		m := ns.next(t, "WATCHDOG=1")
		if m.text != "WATCHDOG=1" {
			t.Fatalf("unexpected %q among the watchdog pings", m.text)
		}
		beats = append(beats, m.at)
	}
	// Half the interval, as sd_watchdog_enabled(3) advises: on average about 100ms apart, and not as
	// late as the interval itself (the bound stretches with waitLimit under the race detector, which
	// slows the daemon several times on a loaded machine).
	gap := beats[len(beats)-1].Sub(beats[0]) / time.Duration(len(beats)-1)
	if limit := 200 * time.Millisecond * (waitLimit / (20 * time.Second)); gap > limit || gap < 50*time.Millisecond {
		t.Errorf("WATCHDOG=1 every %v on average, want about 100ms and at most %v (WATCHDOG_USEC=200000)", gap, limit)
	}
	if beats[0].Before(ready.at) {
		t.Errorf("WATCHDOG=1 before READY=1")
	}

	d.signal(syscall.SIGTERM)
	ns.expect(t, "STOPPING=1")
	if code := d.wait(); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0; stderr:\n%s", code, d.stderrText())
	}
}

// TestD7_WatchdogOtherPid: WATCHDOG_PID naming another process means the watchdog is not ours
// (sd_watchdog_enabled(3)): READY=1 and STOPPING=1 still come, WATCHDOG=1 never does.
func TestD7_WatchdogOtherPid(t *testing.T) {
	ns := listenNotify(t)
	d := startDaemon(t, []string{"NOTIFY_SOCKET=" + ns.path, "WATCHDOG_USEC=100000", "WATCHDOG_PID=1"})
	ns.expect(t, "READY=1")
	// Pings would come every 50 ms: wait for six of them to be due. An absence can only be observed
	// over a span of time.
	time.Sleep(300 * time.Millisecond)
	d.signal(syscall.SIGTERM)
	if _, skipped := ns.expect(t, "STOPPING=1"); len(skipped) > 0 {
		t.Errorf("messages with WATCHDOG_PID of another process: %v", skipped)
	}
	if code := d.wait(); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
}

// TestD7_NoNotifySocket: without NOTIFY_SOCKET the daemon runs and stops as usual (exit 0), and a
// NOTIFY_SOCKET nobody listens on does not stop it either.
func TestD7_NoNotifySocket(t *testing.T) {
	for _, env := range [][]string{nil, {"NOTIFY_SOCKET=" + filepath.Join(t.TempDir(), "nobody"), "WATCHDOG_USEC=100000"}} {
		d := startDaemon(t, env)
		resp, err := http.Get(d.url("/healthz"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		d.signal(syscall.SIGTERM)
		if code := d.wait(); code != 0 {
			t.Errorf("%v: exit status %d, want 0; stderr:\n%s", env, code, d.stderrText())
		}
	}
}

// TestD7_ExitCodes: with NOTIFY_SOCKET set, a usage error exits 2 and an address that cannot be bound
// exits 3, both without READY=1; a clean drain exits 0 (TestD7_SdNotify).
func TestD7_ExitCodes(t *testing.T) {
	ns := listenNotify(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	env := []string{"NOTIFY_SOCKET=" + ns.path}
	if code, _, errOut := runEdged(t, env, "serve", "--workers", "0"); code != 2 {
		t.Errorf("--workers 0: exit %d, want 2; %s", code, errOut)
	}
	if code, _, errOut := runEdged(t, env, "serve", "--listen", ln.Addr().String()); code != 3 {
		t.Errorf("--listen %s (taken): exit %d, want 3; %s", ln.Addr(), code, errOut)
	}
	select {
	case m := <-ns.msgs:
		t.Errorf("%q from a daemon that did not start", m.text)
	case <-time.After(100 * time.Millisecond): // datagrams sent before exit are queued by now
	}
}
