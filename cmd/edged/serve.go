package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"runtime"

	"github.com/spf13/cobra"
)

func newServeCmd() *cobra.Command {
	return newConfigCmd("serve", "Serve HTTP on --listen until SIGTERM or SIGINT",
		func(cmd *cobra.Command, s *settings) error {
			return serve(cmd.Context(), s, cmd.ErrOrStderr())
		})
}

// newLogger returns the daemon's logger: slog to stderr (journald collects it), text or JSON
// (CONTRACT D6).
func newLogger(s *settings, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: s.level()}
	if s.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve builds the daemon, logs the start-up line, tells systemd it is ready, and serves until the first
// SIGTERM or SIGINT, then drains within --shutdown-grace (CONTRACT D6, D7, S9).
func serve(ctx context.Context, s *settings, stderr io.Writer) error {
	if err := s.checkBudget(); err != nil {
		return err
	}
	logger := newLogger(s, stderr)
	inherited, err := inheritedListeners(logger)
	if err != nil {
		return &exitError{exitFail, err}
	}
	d, err := build(s, logger, inherited)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The first signal starts the drain; the watcher is in place before the start-up line says the
	// daemon is listening, so a signal that follows that line is always a graceful stop.
	stopWatching := watchSignals(func(sig os.Signal) {
		logger.Info("signal received", "signal", sig.String(), "action", "drain", "grace", s.shutdownGrace.String())
		notifyStopping()
		cancel()
	}, func(sig os.Signal) {
		logger.Warn("signal received", "signal", sig.String(), "action", "exit")
		os.Exit(exitFail)
	})
	defer stopWatching()

	attrs := []slog.Attr{
		slog.String("addr", d.main.Addr()),
		slog.String("version", version),
		slog.String("commit", commit),
		slog.String("go", runtime.Version()),
		slog.Int("pid", os.Getpid()),
	}
	if d.metricsS != nil {
		attrs = append(attrs, slog.String("metrics_addr", d.metricsS.Addr()))
	}
	attrs = append(attrs, s.attrs()...)
	attrs = append(attrs, d.budget.parts()...)
	logger.LogAttrs(ctx, slog.LevelInfo, "edged started", attrs...)
	stopNotify := notifyReady(ctx, logger)
	defer stopNotify()

	if err := d.run(ctx); err != nil {
		return &exitError{exitFail, err}
	}
	logger.Info("edged stopped")
	return nil
}
