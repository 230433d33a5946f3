package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// lockedBuffer is a log destination safe for the watchdog goroutine and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestD7_WatchdogPingsOnlyWhileAlive: WATCHDOG=1 vouches for the event loop. While the liveness check
// fails no ping is sent (so that systemd restarts a daemon whose loop is stuck) and one error record
// says why; once the check passes again the pings resume.
func TestD7_WatchdogPingsOnlyWhileAlive(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "100000") // a check and a ping every 50ms
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))

	var stuck atomic.Bool
	stuck.Store(true)
	alive := func(ctx context.Context) error {
		if stuck.Load() {
			<-ctx.Done() // as a stuck loop does: no answer until the check gives up
			return ctx.Err()
		}
		return nil
	}
	var logs lockedBuffer
	stop := notifyReady(context.Background(), slog.New(slog.NewTextHandler(&logs, nil)), alive)
	defer stop()

	next := func(wait time.Duration) (string, bool) {
		buf := make([]byte, 256)
		pc.SetReadDeadline(time.Now().Add(wait))
		n, err := pc.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return "", false
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n]), true
	}
	if m, ok := next(5 * time.Second); m != "READY=1" {
		t.Fatalf("first message %q (received: %v), want READY=1", m, ok)
	}
	// Six checks fall due and fail: no ping may come.
	if m, ok := next(300 * time.Millisecond); ok {
		t.Fatalf("%q sent while the event loop does not respond", m)
	}
	if n := strings.Count(logs.String(), "watchdog ping withheld"); n != 1 {
		t.Errorf("%d records of the withheld ping, want 1:\n%s", n, logs.String())
	}
	stuck.Store(false)
	for k := 0; k < 3; k++ {
		if m, ok := next(5 * time.Second); m != "WATCHDOG=1" {
			t.Fatalf("after the loop recovered: %q (received: %v), want WATCHDOG=1", m, ok)
		}
	}
	if !strings.Contains(logs.String(), "watchdog pings resumed") {
		t.Errorf("no record of the resumed pings:\n%s", logs.String())
	}
}
