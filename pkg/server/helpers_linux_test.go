package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edged/edged/pkg/conn"
)

func TestMain(m *testing.M) {
	// The runtime's own poller (used by the test clients) opens its descriptors on first use; open
	// them now so that the leak check's baselines already include them.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err == nil {
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			c.Close()
		}
		ln.Close()
	}
	os.Exit(m.Run())
}

// scaled stretches a duration under the race detector, which slows everything down.
func scaled(d time.Duration) time.Duration {
	if raceEnabled {
		return 3 * d
	}
	return d
}

// patience is how long a test waits for something that must happen.
var patience = scaled(10 * time.Second)

// waitFor polls cond until it holds or patience runs out.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkLeaks records the goroutines and descriptors of the process and, when the test ends, waits
// until both are back to that baseline. Register it first: cleanups run last-in first-out, so it runs
// after the server was stopped and the clients closed.
func checkLeaks(t *testing.T) {
	t.Helper()
	g0, fd0 := runtime.NumGoroutine(), countFDs(t)
	t.Cleanup(func() {
		deadline := time.Now().Add(patience)
		for {
			g, fd := runtime.NumGoroutine(), countFDs(t)
			if g <= g0 && fd <= fd0 {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Fatalf("leak: goroutines %d -> %d, descriptors %d -> %d\n%s", g0, g, fd0, fd, buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(time.Millisecond)
		}
	})
}

func countFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents) - 1 // ReadDir's own descriptor
}

// acceptedSockets counts the descriptors of this process that are TCP sockets accepted on port: their
// local port is the port and they are not listening.
func acceptedSockets(t testing.TB, port int) int {
	t.Helper()
	inodes := map[string]bool{}
	for _, file := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] == "0A" {
				continue
			}
			local := f[1]
			p, err := strconv.ParseUint(local[strings.LastIndexByte(local, ':')+1:], 16, 16)
			if err == nil && int(p) == port {
				inodes["socket:["+f[9]+"]"] = true
			}
		}
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && inodes[target] {
			n++
		}
	}
	return n
}

// testServer is a running Server with its Serve goroutine.
type testServer struct {
	*Server
	t      *testing.T
	cancel context.CancelFunc
	done   chan error
	port   int
}

// startServer creates and runs a server; it is stopped, and Serve's result checked, when the test ends.
func startServer(t *testing.T, cfg Config, h conn.Handler) *testServer {
	t.Helper()
	if cfg.Listen == "" && len(cfg.Listeners) == 0 {
		cfg.Listen = "127.0.0.1:0"
	}
	s, err := New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	return runServer(t, s)
}

func runServer(t *testing.T, s *Server) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: s, t: t, cancel: cancel, done: make(chan error, 1)}
	if _, port, err := net.SplitHostPort(s.Addr()); err == nil {
		ts.port, _ = strconv.Atoi(port)
	}
	go func() { ts.done <- s.Serve(ctx) }()
	t.Cleanup(func() { ts.stop() })
	return ts
}

// stop cancels Serve and waits for it to return nil.
func (ts *testServer) stop() {
	ts.t.Helper()
	ts.cancel()
	select {
	case err, ok := <-ts.done:
		if ok && err != nil {
			ts.t.Errorf("Serve returned %v", err)
		}
		close(ts.done)
	case <-time.After(patience):
		ts.t.Fatal("Serve did not return after cancel")
	}
}

// client is a test HTTP client over one TCP connection.
type client struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cl := &client{t: t, c: c, br: bufio.NewReader(c)}
	t.Cleanup(func() { c.Close() })
	return cl
}

func (cl *client) send(s string) {
	cl.t.Helper()
	if _, err := io.WriteString(cl.c, s); err != nil {
		cl.t.Fatalf("send: %v", err)
	}
}

func (cl *client) get(path string) {
	cl.t.Helper()
	cl.send("GET " + path + " HTTP/1.1\r\nHost: test\r\n\r\n")
}

// response reads one response within patience.
func (cl *client) response() (*http.Response, string) {
	cl.t.Helper()
	resp, body, err := cl.tryResponse(patience)
	if err != nil {
		cl.t.Fatalf("reading response: %v", err)
	}
	return resp, body
}

// tryResponse reads one response within d.
func (cl *client) tryResponse(d time.Duration) (*http.Response, string, error) {
	cl.c.SetReadDeadline(time.Now().Add(d))
	defer cl.c.SetReadDeadline(time.Time{})
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// roundTrip sends GET path and expects 200 with body want ("" to skip the body check).
func (cl *client) roundTrip(path, want string) {
	cl.t.Helper()
	cl.get(path)
	resp, body := cl.response()
	if resp.StatusCode != 200 || (want != "" && body != want) {
		cl.t.Fatalf("GET %s: %d %q, want 200 %q", path, resp.StatusCode, body, want)
	}
}

// noResponse asserts that nothing arrives for a while: the connection waits in the backlog or the
// queue. The wait is a bound on an absence, not a wait for something to happen.
func (cl *client) noResponse() {
	cl.t.Helper()
	cl.c.SetReadDeadline(time.Now().Add(scaled(300 * time.Millisecond)))
	defer cl.c.SetReadDeadline(time.Time{})
	if _, err := cl.br.Peek(1); err == nil {
		cl.t.Fatal("got a response, want none yet")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		cl.t.Fatalf("want a timeout, got %v", err)
	}
}

// closed asserts that the server closed the connection: a read ends without data within patience.
func (cl *client) closed() {
	cl.t.Helper()
	cl.c.SetReadDeadline(time.Now().Add(patience))
	defer cl.c.SetReadDeadline(time.Time{})
	b, err := cl.br.ReadByte()
	if err == nil {
		cl.t.Fatalf("read %q, want the connection closed", b)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		cl.t.Fatal("connection still open")
	}
}

func (cl *client) localPort() int { return cl.c.LocalAddr().(*net.TCPAddr).Port }

// echoPath answers every request with its path.
var echoPath = conn.HandlerFunc(func(_ int, c *conn.Connection) error {
	return c.Reply(200, "text/plain", c.Path())
})

// recorder is an Observer that keeps what it is told.
type recorder struct {
	mu          sync.Mutex
	accepted    int
	closed      map[CloseReason]int
	statuses    []int
	acceptErrs  int
	panics      int
	requestDone int
}

func newRecorder() *recorder { return &recorder{closed: map[CloseReason]int{}} }

func (r *recorder) Accepted() { r.mu.Lock(); r.accepted++; r.mu.Unlock() }
func (r *recorder) Closed(reason CloseReason) {
	r.mu.Lock()
	r.closed[reason]++
	r.mu.Unlock()
}
func (r *recorder) RequestDone(_ int, st conn.ExchangeStats) {
	r.mu.Lock()
	r.requestDone++
	r.statuses = append(r.statuses, st.Status)
	r.mu.Unlock()
}
func (r *recorder) AcceptError(error) { r.mu.Lock(); r.acceptErrs++; r.mu.Unlock() }
func (r *recorder) HandlerPanic(int, *conn.PanicError) {
	r.mu.Lock()
	r.panics++
	r.mu.Unlock()
}

func (r *recorder) closedCount(reason CloseReason) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed[reason]
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("accepted %d closed %v statuses %v", r.accepted, r.closed, r.statuses)
}

func errorsAs[T error](err error, target *T) bool { return errors.As(err, target) }

// takeOver answers every request with 101 and takes the socket over (Unbind): the tests of taken-over
// sockets give it to the server and receive the socket in their UnboundHandler.
var takeOver = conn.HandlerFunc(func(_ int, c *conn.Connection) error {
	c.SetHeader("Upgrade", "test")
	c.SetHeader("Connection", "Upgrade")
	if err := c.WriteHeader(101); err != nil {
		return err
	}
	_, _, err := c.Unbind()
	return err
})

// dialSmallWindow connects to addr with a 4 KiB receive buffer, so that what the server writes and the
// client does not read soon fills the window and makes the server's writes wait. The connection is
// closed when the test ends.
func dialSmallWindow(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
