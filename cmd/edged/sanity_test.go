package main

import (
	"strings"
	"testing"
	"time"
)

// TestD8_BudgetBeyondMemoryRefused: pools that could never be allocated (more than the machine's
// memory, or than a 32-bit process can address) are refused with a usage error naming the flags of the
// largest part, on every architecture (the products are computed in int64, so they cannot wrap on
// 32-bit ARM and pass as small); the defaults pass.
func TestD8_BudgetBeyondMemoryRefused(t *testing.T) {
	s := defaultSettings()
	if err := s.checkBudget(); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	for _, tc := range []struct {
		set  func(*settings)
		want string
	}{
		{func(s *settings) { s.workers, s.bufferSize = 1<<16, maxBufferSize }, "--workers or --buffer-size"},
		{func(s *settings) { s.wsMaxConns, s.wsMaxMessage, s.socketQueue = 1<<16, maxMessageBytes, 1<<20 }, "--ws-max-conns or --ws-max-message"},
		{func(s *settings) { s.topicsMax, s.topicMaxBytes = 1<<20, maxMessageBytes }, "--topics-max or --topic-max-bytes"},
	} {
		s := defaultSettings()
		tc.set(&s)
		if b := s.memoryBudget().total(); b < 1<<40 {
			t.Errorf("budget %d for a configuration of over a TiB: an overflow", b)
		}
		err := s.checkBudget()
		if _, ok := err.(*usageError); !ok || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("checkBudget: %v; want a usage error naming %s", err, tc.want)
		}
	}
}

// TestD2_Warnings: the combinations README "Combinations" lists are warned of, one line each; the
// defaults are not.
func TestD2_Warnings(t *testing.T) {
	s := defaultSettings()
	if w := s.warnings(); len(w) != 0 {
		t.Errorf("defaults warned: %q", w)
	}
	s.socketQueue, s.workers = 2, 4
	s.headerTimeout, s.handlerTimeout = 20*time.Second, 5*time.Second
	s.topicMaxBytes, s.wsMaxMessage = 128<<10, 64<<10
	w := s.warnings()
	if len(w) != 3 || !strings.HasPrefix(w[0], "--socket-queue 2") || !strings.HasPrefix(w[1], "--header-timeout 20s") ||
		!strings.HasPrefix(w[2], "--topic-max-bytes 128KiB") {
		t.Errorf("warnings %q", w)
	}
	for _, line := range w {
		if strings.Contains(line, "\n") {
			t.Errorf("a warning of more than one line: %q", line)
		}
	}
	s = defaultSettings()
	s.socketQueue = 0 // accept mode: Q is P, nothing to warn of
	if w := s.warnings(); len(w) != 0 {
		t.Errorf("accept mode warned: %q", w)
	}

	// A backlog above net.core.somaxconn is cut by the kernel without a word; edged says so.
	defer func(f func() int) { somaxconn = f }(somaxconn)
	somaxconn = func() int { return 4096 }
	s = defaultSettings()
	if s.backlog = 4096; len(s.warnings()) != 0 {
		t.Errorf("--backlog 4096 with somaxconn 4096 warned: %q", s.warnings())
	}
	s.backlog = 10000
	if w := s.warnings(); len(w) != 1 || w[0] != "--backlog 10000 is above net.core.somaxconn 4096: the kernel cuts the listen backlog to 4096" {
		t.Errorf("--backlog 10000 with somaxconn 4096: warnings %q", w)
	}
	s.backlogUnused = true // every listener from systemd: its socket unit sets the backlog
	if w := s.warnings(); len(w) != 0 {
		t.Errorf("--backlog 10000 with every listener from systemd: warnings %q", w)
	}
	s.backlogUnused = false
	somaxconn = func() int { return 0 } // unknown: nothing to compare with
	if w := s.warnings(); len(w) != 0 {
		t.Errorf("--backlog 10000 with somaxconn unknown: warnings %q", w)
	}
}
