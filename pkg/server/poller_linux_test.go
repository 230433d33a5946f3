package server

import (
	"testing"
	"time"

	"github.com/edged/edged/pkg/conn"
)

// TestS5_ParkWakesNoPoller: with parking on and nothing else to wait for, the poller sleeps at most the
// keep-alive timeout, so that a socket parked afterwards never expires before the poller wakes and
// park need not wake it through the eventfd (one write, one read and one epoll_wait saved per park).
// Without parking nothing can expire and the poller sleeps without a timeout.
func TestS5_ParkWakesNoPoller(t *testing.T) {
	const keepAlive = 7 * time.Second
	for _, park := range []bool{true, false} {
		s, err := New(Config{Listen: "127.0.0.1:0", Workers: 1, SocketQueue: 4, ParkIdle: park,
			Conn: conn.Config{KeepAliveTimeout: keepAlive}}, hello)
		if err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		now := s.clock()
		msec := s.timeoutLocked(now)
		// What park checks, for a socket parked right after the poller went to sleep.
		wouldNotify := now+s.keepAlive < s.sleepUntil
		s.mu.Unlock()
		if err := s.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		switch {
		case park && (msec != int(keepAlive/time.Millisecond) || wouldNotify):
			t.Errorf("parking: poller timeout %d ms (want %d), park would wake it: %v", msec,
				keepAlive/time.Millisecond, wouldNotify)
		case !park && msec != -1:
			t.Errorf("no parking: poller timeout %d ms, want -1 (none)", msec)
		}
	}
}
