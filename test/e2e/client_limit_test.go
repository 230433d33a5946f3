//go:build e2e

package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The per-client limit (CONTRACT S14): at most --max-conns-per-client sockets per IPv4 address or IPv6
// /64; a connection over it is closed at once (reason client_limit) while other clients are served.

// limitedOut reports whether the daemon closed c at once without an answer to a request: the
// connection is over the per-client limit.
func limitedOut(t *testing.T, c net.Conn) bool {
	t.Helper()
	_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: e2e\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(waitLimit))
	b, err := bufio.NewReader(c).ReadByte()
	if err == nil {
		t.Logf("read %q: the connection was answered", b)
		return false
	}
	return !errors.Is(err, os.ErrDeadlineExceeded)
}

// served reports whether c gets 200 for GET /healthz, keeping it open.
func served(t *testing.T, c net.Conn) bool {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(waitLimit))
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: e2e\r\n\r\n"); err != nil {
		return false
	}
	resp, err := readResponseErr(bufio.NewReader(c))
	return err == nil && resp == 200
}

// readResponseErr reads a response's status line and head, and its Content-Length body, returning
// the status; unlike readResponse it reports a closed connection as an error instead of failing.
func readResponseErr(br *bufio.Reader) (int, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return 0, err
	}
	var code int
	if _, err := fmt.Sscanf(line, "HTTP/1.1 %d", &code); err != nil {
		return 0, fmt.Errorf("status line %q", line)
	}
	length := 0
	for {
		h, err := br.ReadString('\n')
		if err != nil {
			return 0, err
		}
		if h == "\r\n" {
			break
		}
		if v, ok := strings.CutPrefix(strings.ToLower(h), "content-length:"); ok {
			fmt.Sscan(strings.TrimSpace(v), &length)
		}
	}
	_, err = io.CopyN(io.Discard, br, int64(length))
	return code, err
}

// TestS14_OtherClientServed: with --max-conns-per-client 4, 127.0.0.1 holds four keep-alive
// connections and its fifth is closed at once; a client on 127.0.0.2 (another address of the loopback
// network) is served all along, up to its own four; when 127.0.0.1 closes one, it may connect again.
func TestS14_OtherClientServed(t *testing.T) {
	const limit = 4
	d := startDaemon(t, nil, "--max-conns-per-client", fmt.Sprint(limit), "--socket-queue", "64", "--metrics-listen", "127.0.0.1:0")
	var mine []net.Conn
	for i := range limit {
		c := dialFrom(t, "127.0.0.1", d.addr)
		if !served(t, c) {
			t.Fatalf("127.0.0.1 connection %d was not served", i)
		}
		mine = append(mine, c)
	}
	if !limitedOut(t, dialFrom(t, "127.0.0.1", d.addr)) {
		t.Errorf("a fifth connection from 127.0.0.1 was not closed")
	}
	for i := range limit {
		if !served(t, dialFrom(t, "127.0.0.2", d.addr)) {
			t.Errorf("127.0.0.2 connection %d was not served while 127.0.0.1 is at its limit", i)
		}
	}
	if !limitedOut(t, dialFrom(t, "127.0.0.2", d.addr)) {
		t.Errorf("a fifth connection from 127.0.0.2 was not closed")
	}
	d.waitValue(t, `edged_connections_closed_total{reason="client_limit"}`, 2)
	mine[0].Close()
	if !poll(func() bool { return served(t, dialFrom(t, "127.0.0.1", d.addr)) }, d.exited) {
		t.Errorf("127.0.0.1 was not served again after closing a connection")
	}
}

// ipBin is iproute2's ip (Debian package iproute2).
const ipBin = "/usr/sbin/ip"

var netnsSeq atomic.Int32

// netns creates a network namespace with the loopback up and the given addresses (CIDR) on it, and
// deletes it at the end of the test. Without the tool it fails under CI=true and skips elsewhere;
// without the privilege to create namespaces it skips (the /64 grouping is then covered by pkg/server's
// TestS14_ClientKeys only).
func netns(t *testing.T, addrs ...string) string {
	t.Helper()
	requireTool(t, ipBin)
	name := fmt.Sprintf("edged-e2e-%d-%d", os.Getpid(), netnsSeq.Add(1))
	if out, err := exec.Command(ipBin, "netns", "add", name).CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ip netns add: %v: %s", err, out)
		}
		t.Skipf("cannot create a network namespace (%v: %s); the /64 grouping is covered by pkg/server TestS14_ClientKeys", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(ipBin, "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ipBin, append([]string{"-n", name}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip -n %s %v: %v: %s", name, args, err, out)
		}
	}
	run("link", "set", "lo", "up")
	for _, a := range addrs {
		run("addr", "add", a, "dev", "lo", "nodad")
	}
	return name
}

// dialIn connects from local to addr inside the network namespace ns: the socket is created on an OS
// thread that joined ns (a socket belongs to the namespace it was created in, whatever thread uses it
// later). The thread is never unlocked, so it ends with its goroutine instead of serving others.
func dialIn(t *testing.T, ns, local, addr string) net.Conn {
	t.Helper()
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, fmt.Errorf("setns: %w", err)}
			return
		}
		dl := net.Dialer{Timeout: waitLimit, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		c, err := dl.Dial("tcp", addr)
		ch <- result{c, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("dial %s from %s in %s: %v", addr, local, ns, r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return r.c
}

// TestS14_IPv6PrefixGrouping runs the daemon inside a network namespace with addresses in two /64
// prefixes. With --max-conns-per-client 2, two addresses of one /64 share the limit (the third
// connection from that prefix is closed, whichever address it comes from), while an address of the
// other /64 has its own.
func TestS14_IPv6PrefixGrouping(t *testing.T) {
	ns := netns(t, "2001:db8:1::1/64", "2001:db8:1::a/64", "2001:db8:1::b/64", "2001:db8:2::a/64")
	d := startDaemonCmd(t, []string{ipBin, "netns", "exec", ns, edgedBin}, nil,
		"--listen", "[::]:0", "--max-conns-per-client", "2", "--socket-queue", "32")
	if pid := int(d.waitLog("edged started")["pid"].(float64)); pid != d.cmd.Process.Pid {
		t.Fatalf("start-up line pid %d, process %d: ip netns exec did not exec edged", pid, d.cmd.Process.Pid)
	}
	_, port, _ := net.SplitHostPort(d.addr)
	srv := net.JoinHostPort("2001:db8:1::1", port)

	a1 := dialIn(t, ns, "2001:db8:1::a", srv)
	a2 := dialIn(t, ns, "2001:db8:1::b", srv)
	if !served(t, a1) || !served(t, a2) {
		t.Fatal("the first two connections of 2001:db8:1::/64 were not served")
	}
	for _, local := range []string{"2001:db8:1::a", "2001:db8:1::b"} {
		if !limitedOut(t, dialIn(t, ns, local, srv)) {
			t.Errorf("a third connection of 2001:db8:1::/64, from %s, was not closed", local)
		}
	}
	b1 := dialIn(t, ns, "2001:db8:2::a", srv)
	b2 := dialIn(t, ns, "2001:db8:2::a", srv)
	if !served(t, b1) || !served(t, b2) {
		t.Errorf("2001:db8:2::/64 was not served while 2001:db8:1::/64 is at its limit")
	}
	if !limitedOut(t, dialIn(t, ns, "2001:db8:2::a", srv)) {
		t.Errorf("a third connection of 2001:db8:2::/64 was not closed")
	}
	_ = a1.Close()
	if !poll(func() bool { return served(t, dialIn(t, ns, "2001:db8:1::b", srv)) }, d.exited) {
		t.Errorf("2001:db8:1::/64 was not served again after closing a connection")
	}
	// The count, from inside the namespace (on a connection of 2001:db8:2::/64, once b1 is gone).
	b1.Close()
	var body []byte
	if !poll(func() bool {
		mc := dialIn(t, ns, "2001:db8:2::a", srv)
		_ = mc.SetDeadline(time.Now().Add(waitLimit))
		_, _ = io.WriteString(mc, "GET /metrics HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\n\r\n")
		body, _ = io.ReadAll(mc)
		mc.Close()
		return strings.Contains(string(body), "edged_connections_closed_total")
	}, d.exited) {
		t.Fatal("no /metrics from inside the namespace")
	}
	var n float64
	for l := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, `edged_connections_closed_total{reason="client_limit"} `); ok {
			fmt.Sscan(v, &n)
		}
	}
	if n < 3 {
		t.Errorf("edged_connections_closed_total{reason=\"client_limit\"} = %v, want at least the 3 refused above", n)
	}
	t.Logf("IPv6 /64 grouping in namespace %s: client_limit closes %v", ns, n)
}
