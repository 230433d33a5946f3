package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	sdnotify "github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// notifyReady sends READY=1 to systemd (CONTRACT D7) and, when the unit sets WatchdogSec, WATCHDOG=1 at
// half the interval until the returned function is called. Without NOTIFY_SOCKET it does nothing.
//
// Each ping vouches for the daemon: it is sent only after alive has returned nil, within a quarter of
// the interval, so that two pings are never more than three quarters of it apart. While alive fails
// (an event loop that no longer turns serves nobody), the pings stop and systemd restarts edged once
// the interval has passed, as WatchdogSec is meant to.
func notifyReady(ctx context.Context, log *slog.Logger, alive func(context.Context) error) (stop func()) {
	if _, err := sdnotify.SdNotify(false, sdnotify.SdNotifyReady); err != nil {
		log.Warn("sd_notify READY failed", "error", err)
	}
	interval, err := sdnotify.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval / 2)
		defer t.Stop()
		withheld := false
		for {
			check, cancelCheck := context.WithTimeout(ctx, interval/4)
			err := alive(check)
			cancelCheck()
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				if !withheld {
					log.Error("event loop not responding: watchdog ping withheld", "error", err,
						"waited", (interval / 4).String(), "watchdog", interval.String())
				}
				withheld = true
			default:
				if withheld {
					log.Warn("event loop responding again: watchdog pings resumed")
				}
				withheld = false
				sdnotify.SdNotify(false, sdnotify.SdNotifyWatchdog)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

// notifyStopping sends STOPPING=1 to systemd when the drain starts (CONTRACT D7).
func notifyStopping() {
	sdnotify.SdNotify(false, sdnotify.SdNotifyStopping)
}

// inheritedListeners adopts the listening sockets of systemd socket activation (CONTRACT S12): the one
// named "metrics" (FileDescriptorName=metrics) serves --metrics-listen, every other one the main
// listener. Without LISTEN_FDS it returns none and edged binds --listen itself.
func inheritedListeners(log *slog.Logger) (listeners, error) {
	var l listeners
	files := activation.Files(true)
	for _, f := range files {
		fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return l, fmt.Errorf("socket activation: duplicate fd %d: %w", f.Fd(), err)
		}
		name := f.Name()
		f.Close()
		if name == "metrics" {
			l.metrics = append(l.metrics, fd)
		} else {
			l.main = append(l.main, fd)
		}
		log.Info("adopted listening socket from systemd", "name", name, "fd", fd)
	}
	return l, nil
}
