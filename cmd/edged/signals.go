package main

import (
	"os"
	"os/signal"
	"syscall"
)

// shutdownSignals start a graceful drain (CONTRACT D7).
var shutdownSignals = []os.Signal{syscall.SIGTERM, syscall.SIGINT}

// ignoreBrokenPipe keeps a log line written after stderr's reader has gone (a log pipe whose reader
// exited, a broken journal stream) from killing the daemon: the Go runtime ends a program with SIGPIPE
// on EPIPE from stdout or stderr unless SIGPIPE is ignored, and would so abort the requests in flight
// and the drain that the line was about. Ignored, the write fails with EPIPE and the log line is lost.
func ignoreBrokenPipe() {
	signal.Ignore(syscall.SIGPIPE)
}

// watchHangup calls ignored on every SIGHUP until the returned function is called. edged has no
// configuration to reload, and SIGHUP's default action would end it at once, cutting the requests in
// flight: an operator's `kill -HUP` (nginx's reload) or a closed terminal would stop the gateway, and
// systemd counts death by SIGHUP as a clean exit, which Restart=on-failure does not restart. Caddy
// ignores SIGHUP for the same reason.
func watchHangup(ignored func(os.Signal)) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-ch:
				ignored(sig)
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}

// watchSignals calls drain on the first SIGTERM or SIGINT and force on the second (CONTRACT D7). The
// returned function stops watching; signals that arrive after it take their default action.
func watchSignals(drain, force func(os.Signal)) (stop func()) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, shutdownSignals...)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			drain(sig)
		case <-done:
			return
		}
		select {
		case sig := <-ch:
			force(sig)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}
