package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edged/edged/internal/routes"
	"github.com/edged/edged/internal/topics"
	"github.com/edged/edged/pkg/server"
)

// testDaemon builds the daemon with its defaults on loopback ports, /metrics on a listener of its own,
// after set (if any) has changed the settings.
func testDaemon(t *testing.T, set func(*settings)) *daemon {
	t.Helper()
	s := defaultSettings()
	s.listen, s.metricsListen = "127.0.0.1:0", "127.0.0.1:0"
	if set != nil {
		set(&s)
	}
	d, err := build(&s, slog.New(slog.NewTextHandler(io.Discard, nil)), listeners{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// runDaemon runs d until the test ends, and checks that it then stops cleanly.
func runDaemon(t *testing.T, d *daemon) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
}

// TestD7_AliveChecksBothServers: the watchdog's check covers the main server and the metrics server:
// with the metrics server gone it fails and names it.
func TestD7_AliveChecksBothServers(t *testing.T) {
	d := testDaemon(t, nil)
	runDaemon(t, d)
	check := func() error {
		c, stop := context.WithTimeout(context.Background(), 5*time.Second)
		defer stop()
		return d.alive(c)
	}
	if err := check(); err != nil {
		t.Fatalf("alive with both servers running: %v", err)
	}
	if err := d.metricsS.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := check(); !errors.Is(err, server.ErrServerClosed) || !strings.Contains(err.Error(), "metrics listener") {
		t.Fatalf("alive with the metrics server stopped: %v, want ErrServerClosed naming the metrics listener", err)
	}
}

// TestD7_ServerFailureEndsDaemon: when a server's Serve fails, run drains the other and returns the
// error (so that edged exits 1 and systemd restarts it) instead of waiting for a signal.
func TestD7_ServerFailureEndsDaemon(t *testing.T) {
	d := testDaemon(t, nil)
	// Shutdown before Serve makes Serve fail at once with ErrServerClosed, as a failed epoll would.
	if err := d.metricsS.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.run(context.Background()) }()
	select {
	case err := <-done:
		if !errors.Is(err, server.ErrServerClosed) {
			t.Fatalf("run returned %v, want the metrics server's ErrServerClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run still running 10s after the metrics server failed")
	}
}

// TestD8_BudgetCountsStatusTopic: the topics' part of the memory budget has room for --topics-max
// client topics and the status topic, which does not count against the flag.
func TestD8_BudgetCountsStatusTopic(t *testing.T) {
	s := defaultSettings()
	per := int64(topics.Config{MaxTopics: 1, MaxValueBytes: int(s.topicMaxBytes)}.BufferBytes())
	if got, want := s.memoryBudget().topics, (int64(s.topicsMax)+1)*per; got != want {
		t.Errorf("topics budget %d, want %d: %d client topics and the status topic of %d bytes each", got, want, s.topicsMax, per)
	}
	if got, want := s.memoryBudget().topics, int64(s.topicsConfig().BufferBytes()); got != want {
		t.Errorf("topics budget %d, but the hub's own bound is %d", got, want)
	}
	// The router's per-worker buffers, as it counts them itself with the hub.
	rc := routes.Config{Workers: s.workers, EnableEcho: true, EchoBuffer: s.bufferSize, Hub: topics.New(s.topicsConfig())}
	s.enableEcho = true
	if got, want := s.memoryBudget().routes, int64(rc.BufferBytes()); got != want {
		t.Errorf("routes budget %d, but the router's own count is %d", got, want)
	}
}

// TestW9_SessionTakesWhatTheWorkerBufferedPastTheHandshake: with a --buffer-size larger than the
// WebSocket read buffer's default, frames that arrive with the upgrade request (up to B bytes) reach
// the session instead of getting it refused with 1009 (CONTRACT H1: nothing read is lost).
func TestW9_SessionTakesWhatTheWorkerBufferedPastTheHandshake(t *testing.T) {
	d := testDaemon(t, func(s *settings) { s.bufferSize, s.enableEcho = 16<<10, true })
	runDaemon(t, d)
	c, err := net.DialTimeout("tcp", d.main.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	// One masked binary frame of 8000 bytes (mask 0: the payload is sent as is), in the same write
	// as the handshake.
	payload := bytes.Repeat([]byte("q"), 8000)
	frame := append([]byte{0x82, 0x80 | 126, byte(len(payload) >> 8), byte(len(payload)), 0, 0, 0, 0}, payload...)
	req := "GET /echo HTTP/1.1\r\nHost: " + d.main.Addr() + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := c.Write(append([]byte(req), frame...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the handshake: %v", err)
		}
		if line == "\r\n" {
			break
		}
	}
	hdr := make([]byte, 4)
	if _, err := io.ReadFull(br, hdr); err != nil {
		t.Fatal(err)
	}
	if hdr[0] != 0x82 || hdr[1] != 126 || int(hdr[2])<<8|int(hdr[3]) != len(payload) {
		rest, _ := br.Peek(br.Buffered())
		t.Fatalf("first frame header % x (then %q), want the 8000-byte binary message echoed", hdr, rest)
	}
}

// TestD3_StatusSnapshotTooLargeIsWarned: with a --topic-max-bytes below the size of the status snapshot,
// the built-in status page gets no data; the daemon says so once at warning level (not at debug level,
// which the default --log-level hides) and names the flag.
func TestD3_StatusSnapshotTooLargeIsWarned(t *testing.T) {
	s := defaultSettings()
	s.listen, s.topicMaxBytes = "127.0.0.1:0", 256
	var logs lockedBuffer
	d, err := build(&s, slog.New(slog.NewTextHandler(&logs, nil)), listeners{})
	if err != nil {
		t.Fatal(err)
	}
	runDaemon(t, d)
	const msg = "status snapshot not published"
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), msg) {
		if time.Now().After(deadline) {
			t.Fatalf("no warning %q within 20s; log:\n%s", msg, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Three more snapshots fail (one a second): still one warning, at WARN level, naming the flag. A
	// repeated warning is an event that must not happen, so there is nothing to poll for: wait.
	time.Sleep(3500 * time.Millisecond)
	if out := logs.String(); strings.Count(out, msg) != 1 || !strings.Contains(out, "level=WARN") ||
		!strings.Contains(out, "--topic-max-bytes") {
		t.Errorf("want one WARN record naming --topic-max-bytes; log:\n%s", out)
	}
}

// TestS12_BadInheritedSocketNamesSystemd: a descriptor from systemd that is no listening stream socket
// (a socket unit with ListenDatagram=, say) is refused with exit status 3, and the message names the
// socket systemd passed rather than the --listen address, which edged did not try to bind.
func TestS12_BadInheritedSocketNamesSystemd(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := defaultSettings()
	_, err = build(&s, slog.New(slog.NewTextHandler(io.Discard, nil)), listeners{main: []int{int(f.Fd())}})
	var exit *exitError
	if !errors.As(err, &exit) || exit.code != exitBind || !strings.Contains(err.Error(), "systemd") ||
		strings.Contains(err.Error(), s.listen) {
		t.Fatalf("build with /dev/null as the inherited listener: %v; want exit status 3 naming systemd's socket, not %s", err, s.listen)
	}
}

// TestD3_StatusSnapshotIsJSONWhateverTheWebroot: the status snapshot is JSON (the status page and any
// subscriber JSON.parse it) even when a configuration string holds bytes Go's quoting writes as \x..:
// a --webroot may be named with control characters or with bytes that are not UTF-8 (a Latin-1 "é").
func TestD3_StatusSnapshotIsJSONWhateverTheWebroot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "web\x01\x7f\"q\\b\tcaf\xe9\u2028\U000e0001")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	d := testDaemon(t, func(s *settings) { s.webroot = root })
	runDaemon(t, d)
	snap := d.statusJSON(nil, 1.5, 3)
	var got struct {
		RPS    float64        `json:"rps"`
		Config map[string]any `json:"config"`
	}
	if err := json.Unmarshal(snap, &got); err != nil {
		t.Fatalf("status snapshot is not JSON: %v\n%s", err, snap)
	}
	// encoding/json's reading of the name: each byte that is not UTF-8 becomes U+FFFD.
	quoted, _ := json.Marshal(root)
	var want string
	json.Unmarshal(quoted, &want)
	if got.RPS != 1.5 || got.Config["webroot"] != want {
		t.Errorf("snapshot: rps %v, webroot %q; want 1.5, %q", got.RPS, got.Config["webroot"], want)
	}
}

// TestD3_StatusSnapshotRateIsJSON: the first snapshot's rate is taken over the time since the
// publisher started, which a coarse clock (1 µs on a Pi Zero) can measure as zero: 0/0 is NaN and n/0
// is +Inf, which strconv writes as "NaN" and "+Inf", no JSON. The snapshot stays JSON, with rate 0.
func TestD3_StatusSnapshotRateIsJSON(t *testing.T) {
	d := testDaemon(t, nil)
	runDaemon(t, d)
	for _, rps := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		snap := d.statusJSON(nil, rps, 0)
		var got struct {
			RPS float64 `json:"rps"`
		}
		if err := json.Unmarshal(snap, &got); err != nil || got.RPS != 0 {
			t.Errorf("rate %v: rps %v, err %v\n%s", rps, got.RPS, err, snap)
		}
	}
}
