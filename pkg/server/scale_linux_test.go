package server

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/edged/edged/pkg/conn"
)

// osThreads returns the number of threads of the process.
func osThreads(t testing.TB) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads line")
	return 0
}

func TestS11_ThreadsAndGoroutinesBoundedWhateverQ(t *testing.T) {
	checkLeaks(t)
	const workers, conns = 4, 300
	g0, th0 := runtime.NumGoroutine(), osThreads(t)
	ts := startServer(t, Config{Workers: workers, SocketQueue: 1000, ParkIdle: true, EvictIdle: true}, echoPath)
	clients := make([]*client, conns)
	for i := range clients {
		clients[i] = dial(t, ts.Addr())
		clients[i].roundTrip("/", "/")
	}
	waitFor(t, "every socket to park", func() bool { return ts.Stats().SocketsParked == conns })
	for _, c := range clients[:50] { // and they come back from the parked set
		c.roundTrip("/again", "/again")
	}
	// The poller (Serve's goroutine) and the workers; nothing per connection.
	if g := runtime.NumGoroutine() - g0; g > workers+2 {
		t.Fatalf("%d goroutines for %d parked connections", g, conns)
	}
	// Workers block on channels, not in system calls: the threads are the runtime's GOMAXPROCS
	// threads plus the one blocked in epoll_wait and a few of the runtime's own.
	if th := osThreads(t); th > th0+runtime.GOMAXPROCS(0)+4 && th > runtime.GOMAXPROCS(0)+workers+8 {
		t.Fatalf("%d threads (%d before the server) for %d connections", th, th0, conns)
	}
}

func TestS11_GOMAXPROCS1(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	t.Run("keepalive", TestS1_KeepAliveOverLoopback)
	t.Run("parking", TestS5_ParkIdleFreesTheWorker)
	t.Run("eviction", TestS13_EvictLongestIdleParkedSocket)
	t.Run("pipelining", TestH21_PipelinedRequestsAnsweredInOrder)
	t.Run("shutdown", TestS9_GracefulShutdown)
	t.Run("lingering", TestS8_LingeringCloseAfterConnectionClose)
}

// rawClient is a keep-alive client that allocates nothing per request.
type rawClient struct {
	c    net.Conn
	req  []byte
	resp []byte
}

func newRawClient(t testing.TB, addr string) *rawClient {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	rc := &rawClient{c: c, req: []byte("GET /bench HTTP/1.1\r\nHost: test\r\n\r\n")}
	// Learn the response's length from the first one; Date has a fixed width.
	rc.c.Write(rc.req)
	resp, err := readOneResponse(bufio.NewReader(c))
	if err != nil {
		t.Fatal(err)
	}
	rc.resp = make([]byte, len(resp))
	return rc
}

func (rc *rawClient) roundTrip() error {
	if _, err := rc.c.Write(rc.req); err != nil {
		return err
	}
	_, err := io.ReadFull(rc.c, rc.resp)
	return err
}

func readOneResponse(br *bufio.Reader) ([]byte, error) {
	var head []byte
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		b, err := br.ReadByte()
		if err != nil {
			return nil, err
		}
		head = append(head, b)
	}
	i := bytes.Index(head, []byte("Content-Length: "))
	j := bytes.IndexByte(head[i:], '\r')
	n, err := strconv.Atoi(string(head[i+16 : i+j]))
	if err != nil {
		return nil, err
	}
	body := make([]byte, n)
	_, err = io.ReadFull(br, body)
	return append(head, body...), err
}

var hello = conn.HandlerFunc(func(_ int, c *conn.Connection) error {
	return c.Reply(200, "text/plain", helloBody)
})

func TestS2_NoAllocationPerKeepAliveRequest(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	checkLeaks(t)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			ts := startServer(t, m.cfg, hello)
			rc := newRawClient(t, ts.Addr())
			defer rc.c.Close()
			allocs := testing.AllocsPerRun(200, func() {
				if err := rc.roundTrip(); err != nil {
					t.Fatal(err)
				}
			})
			// Client and server share the process: both allocate nothing per request.
			if allocs > 0.05 {
				t.Fatalf("%.2f allocations per request", allocs)
			}
		})
	}
}

func BenchmarkKeepAlive(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			s, err := New(Config{Listen: "127.0.0.1:0", Workers: m.cfg.Workers, SocketQueue: m.cfg.SocketQueue,
				ParkIdle: m.cfg.ParkIdle}, hello)
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- s.Serve(b.Context()) }()
			rc := newRawClient(b, s.Addr())
			defer rc.c.Close()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := rc.roundTrip(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			rc.c.Close()
			s.Shutdown(b.Context())
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}

var helloBody = []byte("hello, gateway")
