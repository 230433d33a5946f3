package server

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edged/edged/pkg/conn"
)

func TestS1_KeepAliveOverLoopback(t *testing.T) {
	for _, mode := range []struct {
		name string
		cfg  Config
	}{
		{"accept", Config{Workers: 2}},
		{"queue", Config{Workers: 2, SocketQueue: 4}},
		{"parking", Config{Workers: 2, SocketQueue: 4, ParkIdle: true, EvictIdle: true}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			checkLeaks(t)
			rec := newRecorder()
			mode.cfg.Observer = rec
			ts := startServer(t, mode.cfg, echoPath)
			cl := dial(t, ts.Addr())
			for i := 0; i < 10; i++ {
				cl.roundTrip("/a"+strings.Repeat("x", i), "/a"+strings.Repeat("x", i))
			}
			if st := ts.Stats(); st.ConnectionsAccepted != 1 || st.SocketsOpen != 1 || st.Workers != 2 {
				t.Fatalf("stats %+v", st)
			}
			cl.c.Close()
			waitFor(t, "the socket to close", func() bool { return ts.Stats().SocketsOpen == 0 })
			if rec.closedCount(ReasonClientClosed) != 1 || rec.requestDone != 10 {
				t.Fatalf("observer: %v", rec)
			}
		})
	}
}

func TestS1_IPv6Loopback(t *testing.T) {
	checkLeaks(t)
	s, err := New(Config{Listen: "[::1]:0", SocketQueue: 2, ParkIdle: true}, echoPath)
	var be *BindError
	if errors.As(err, &be) {
		t.Skipf("no IPv6 loopback on this machine: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	ts := runServer(t, s)
	if !strings.HasPrefix(ts.Addr(), "[::1]:") {
		t.Fatalf("Addr() = %q", ts.Addr())
	}
	dial(t, ts.Addr()).roundTrip("/v6", "/v6")
}

func TestS1_BindErrorOnAddressInUse(t *testing.T) {
	checkLeaks(t)
	ts := startServer(t, Config{}, echoPath)
	_, err := New(Config{Listen: ts.Addr()}, echoPath)
	var be *BindError
	if !errors.As(err, &be) || be.Addr != ts.Addr() {
		t.Fatalf("New on a used address: %v, want a *BindError for %s", err, ts.Addr())
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	checkLeaks(t)
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Listen: ":0", Workers: -1}, "workers must be >= 1"},
		{Config{Listen: ":0", SocketQueue: -1}, "socket queue must be >= 0"},
		{Config{Listen: ":0", Backlog: -1}, "backlog must be >= 0"},
		{Config{Listen: ":0", ShutdownGrace: -1}, "shutdown grace"},
		{Config{Listen: ":0", MaxConnsPerClient: -1}, "max conns per client"},
		{Config{}, "listen address must not be empty"},
		{Config{Listen: "example.org:80"}, "listen address"},
		{Config{Listen: ":99999"}, "port"},
		{Config{Listen: ":0", Conn: conn.Config{BufferSize: 100}}, "buffer size"},
		{Config{Listen: ":0", Conn: conn.Config{IOTimeout: -time.Second}}, "timeouts"},
	} {
		_, err := New(tc.cfg, echoPath)
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one containing %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := New(Config{Listen: ":0"}, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("nil handler: %v", err)
	}
}

func TestS1_ParseListenAddr(t *testing.T) {
	for _, tc := range []struct {
		in, ip string
		port   uint16
		ok     bool
	}{
		{":8080", "invalid IP", 8080, true},
		{"0.0.0.0:80", "0.0.0.0", 80, true},
		{"127.0.0.1:0", "127.0.0.1", 0, true},
		{"localhost:1", "127.0.0.1", 1, true},
		{"[::1]:443", "::1", 443, true},
		{"[::]:0", "::", 0, true},
		{"[::ffff:10.0.0.1]:1", "10.0.0.1", 1, true},
		{"::1:80", "", 0, false},
		{"1.2.3.4", "", 0, false},
		{"1.2.3.4:", "", 0, false},
		{"1.2.3.4:+1", "", 0, false},
		{"1.2.3.4:65536", "", 0, false},
		{"[1.2.3.4]:1", "", 0, false},
		{"[fe80::1%eth0]:1", "", 0, false},
		{"gateway.local:80", "", 0, false},
	} {
		a, err := parseListenAddr(tc.in)
		if (err == nil) != tc.ok || (tc.ok && (a.ip.String() != tc.ip || a.port != tc.port)) {
			t.Errorf("parseListenAddr(%q) = %v %d, %v", tc.in, a.ip, a.port, err)
		}
	}
}

// acceptedNoDelay reports TCP_NODELAY of the sockets of this process that were accepted on port: the
// server's side of every connection (the test's clients are in the same process).
func acceptedNoDelay(t *testing.T, port int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || acc != 0 {
			continue // not a socket, or a listener
		}
		sa, err := unix.Getsockname(fd)
		if a, ok := sa.(*unix.SockaddrInet4); err != nil || !ok || a.Port != port {
			continue
		}
		v, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	return got
}

// TestH16_AcceptedSocketsHaveNoDelay: every accepted socket has TCP_NODELAY, so that a response's one
// write leaves at once. A listener bound by the server has the option before listen(2), and its
// sockets inherit it; so do those of an adopted listener that had it (S12, NoDelay=yes). An adopted
// listener without it may hold connections queued before the server started, which did not inherit
// it: they get it at accept.
func TestH16_AcceptedSocketsHaveNoDelay(t *testing.T) {
	checkLeaks(t)
	addrOf := func(fd int) string {
		sa, err := unix.Getsockname(fd)
		if err != nil {
			t.Fatal(err)
		}
		return "127.0.0.1:" + strconv.Itoa(sa.(*unix.SockaddrInet4).Port)
	}
	adopt := func(nodelay int) int {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, nodelay); err != nil {
			t.Fatal(err)
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Fatal(err)
		}
		if err := unix.Listen(fd, 16); err != nil {
			t.Fatal(err)
		}
		return fd
	}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"bound", Config{}},
		{"adopted with TCP_NODELAY", Config{Listeners: []int{adopt(1)}}},
		{"adopted without", Config{Listeners: []int{adopt(0)}}},
	} {
		tc.cfg.Listen, tc.cfg.Workers, tc.cfg.SocketQueue, tc.cfg.ParkIdle = "127.0.0.1:0", 2, 4, true
		// The first client connects before the server has the socket (adopted) or before it runs
		// (bound): it waits in the listener's backlog.
		var early *client
		if len(tc.cfg.Listeners) > 0 {
			early = dial(t, addrOf(tc.cfg.Listeners[0]))
		}
		s, err := New(tc.cfg, echoPath)
		if err != nil {
			t.Fatal(err)
		}
		if early == nil {
			early = dial(t, s.Addr())
		}
		ts := runServer(t, s)
		_, portText, _ := strings.Cut(ts.Addr(), ":")
		port, _ := strconv.Atoi(portText)
		clients := []*client{early}
		early.roundTrip("/x", "/x")
		for range 2 {
			cl := dial(t, ts.Addr())
			cl.roundTrip("/x", "/x")
			clients = append(clients, cl)
		}
		got := acceptedNoDelay(t, port)
		if len(got) != 3 || got[0] != 1 || got[1] != 1 || got[2] != 1 {
			t.Errorf("%s: TCP_NODELAY of the accepted sockets: %v, want [1 1 1]", tc.name, got)
		}
		for _, cl := range clients {
			cl.c.Close()
		}
		waitFor(t, "the sockets to close", func() bool { return ts.Stats().SocketsOpen == 0 })
	}
}
