//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// socketActivate is the tool of systemd that holds listening sockets and execs a program with them,
// as systemd does for a socket unit (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES, fds from 3 on).
const socketActivate = "/usr/bin/systemd-socket-activate"

// startActivated runs `systemd-socket-activate -l ADDR... --fdname=NAMES edged serve --log-format json
// ARGS...` with one listening socket per name, each on a free loopback port, and waits until the
// sockets listen; ARGS are args(addresses by name), args may be nil. edged itself starts on the first
// connection; d.addr is the socket named "http". The sockets' addresses are returned by name.
func startActivated(t *testing.T, names []string, args func(addrs map[string]string) []string) (*daemon, map[string]string) {
	t.Helper()
	requireTool(t, socketActivate)
	// A free port may be taken between the probe and the bind: try again with new ones.
	for attempt := 0; ; attempt++ {
		addrs := map[string]string{}
		argv := []string{}
		for _, name := range names {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addrs[name] = ln.Addr().String()
			ln.Close()
			argv = append(argv, "-l", addrs[name])
		}
		argv = append(argv, "--fdname="+strings.Join(names, ":"), edgedBin, "serve", "--log-format", "json")
		if args != nil {
			argv = append(argv, args(addrs)...)
		}
		d := &daemon{t: t, exited: make(chan struct{}), addr: addrs["http"]}
		d.cmd = exec.Command(socketActivate, argv...)
		d.cmd.Env = daemonEnv()
		d.start(t, socketActivate)
		listening := func() bool {
			for _, a := range addrs {
				if !strings.Contains(d.stderrText(), "Listening on "+a+" as ") {
					return false
				}
			}
			return true
		}
		if poll(listening, d.exited) {
			return d, addrs
		}
		if attempt < 3 && strings.Contains(d.stderrText(), "Address already in use") {
			continue
		}
		t.Fatalf("%s did not listen on %v; output:\n%s", socketActivate, addrs, d.stderrText())
	}
}

// getFrom sends GET path to addr on a new connection and reads the response.
func getFrom(t *testing.T, addr, path string) rawResponse {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitLimit)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(waitLimit))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: gateway\r\n\r\n"); err != nil {
		t.Fatalf("write request: %v", err)
	}
	return readResponse(t, c, bufio.NewReader(c), "GET", false)
}

// adoptedNames returns the names of the sockets edged logged as adopted from systemd.
func (d *daemon) adoptedNames() []string {
	var names []string
	for _, r := range d.logLines() {
		if r["msg"] == "adopted listening socket from systemd" {
			names = append(names, fmt.Sprint(r["name"]))
		}
	}
	return names
}

// TestS12_SocketActivation: edged started by systemd-socket-activate serves on the socket it inherits.
// --listen names the same address: had edged bound it itself instead of adopting the socket, the bind
// would fail (the inherited socket holds the port) and edged would exit 3. systemd-socket-activate
// execs edged in its own process, so LISTEN_PID is edged's pid, which go-systemd's activation.Files
// requires; the start-up line's pid shows the exec. SIGTERM then stops it gracefully (CONTRACT D7).
// --backlog above net.core.somaxconn is not warned of: the socket unit sets the backlog of an
// inherited socket (CONTRACT D2).
func TestS12_SocketActivation(t *testing.T) {
	d, addrs := startActivated(t, []string{"http"}, func(addrs map[string]string) []string {
		return []string{"--listen", addrs["http"], "--backlog", "2147483647"}
	})
	// The first connection waits in the inherited socket's backlog until edged has started.
	for i := range 3 {
		r := getFrom(t, addrs["http"], "/healthz")
		if r.StatusCode != 200 || string(r.body) != "ok" {
			t.Fatalf("request %d through the inherited socket: %d %q", i, r.StatusCode, r.body)
		}
	}
	rec := d.waitLog("edged started")
	if rec["addr"] != addrs["http"] {
		t.Errorf("start-up line: addr %v, want the inherited socket's %s", rec["addr"], addrs["http"])
	}
	if pid, _ := rec["pid"].(float64); int(pid) != d.cmd.Process.Pid {
		t.Errorf("edged runs as pid %v, systemd-socket-activate was %d: not exec'd in place", rec["pid"], d.cmd.Process.Pid)
	}
	if got := d.adoptedNames(); len(got) != 1 || got[0] != "http" {
		t.Errorf("adopted sockets %v, want [http]", got)
	}
	d.signal(syscall.SIGTERM)
	if code := d.wait(); code != 0 {
		t.Fatalf("exit %d after SIGTERM; stderr:\n%s", code, d.stderrText())
	}
	if strings.Contains(d.stderrText(), "configuration warning") {
		t.Errorf("a configuration warning with every socket inherited:\n%s", d.stderrText())
	}
}

// TestS12_SocketActivationMetricsSocket: with two sockets named http and metrics, /metrics is served on
// the metrics socket and not on the http one, whether or not --metrics-listen is also given and in
// whichever order the sockets come (edged matches them by name, not position).
func TestS12_SocketActivationMetricsSocket(t *testing.T) {
	for _, tc := range []struct {
		name    string
		names   []string
		withArg bool
	}{
		{"names only", []string{"http", "metrics"}, false},
		{"metrics first", []string{"metrics", "http"}, false},
		{"with --metrics-listen", []string{"http", "metrics"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, addrs := startActivated(t, tc.names, func(addrs map[string]string) []string {
				if !tc.withArg {
					return nil
				}
				// The same address as the inherited socket: a bind would fail with exit 3.
				return []string{"--metrics-listen", addrs["metrics"]}
			})
			r := getFrom(t, addrs["metrics"], "/metrics")
			if r.StatusCode != 200 || !strings.Contains(string(r.body), "edged_build_info") {
				t.Fatalf("GET /metrics on the metrics socket: %d, %d bytes:\n%.300s", r.StatusCode, len(r.body), r.body)
			}
			if r := getFrom(t, addrs["http"], "/metrics"); r.StatusCode != 404 {
				t.Errorf("GET /metrics on the http socket: %d, want 404 (served on the metrics socket only)", r.StatusCode)
			}
			if r := getFrom(t, addrs["http"], "/healthz"); r.StatusCode != 200 {
				t.Errorf("GET /healthz on the http socket: %d", r.StatusCode)
			}
			rec := d.waitLog("edged started")
			if rec["addr"] != addrs["http"] || rec["metrics_addr"] != addrs["metrics"] {
				t.Errorf("start-up line: addr %v, metrics_addr %v; want %s and %s",
					rec["addr"], rec["metrics_addr"], addrs["http"], addrs["metrics"])
			}
			if got := strings.Join(d.adoptedNames(), ","); got != strings.Join(tc.names, ",") {
				t.Errorf("adopted sockets %s, want %s", got, strings.Join(tc.names, ","))
			}
		})
	}
}
