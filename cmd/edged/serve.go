package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/edged/edged/internal/routes"
	"github.com/edged/edged/pkg/server"
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

// serve binds the listener, logs the start-up line and serves until the first SIGTERM or SIGINT, then
// drains within --shutdown-grace (CONTRACT D7, S9).
func serve(ctx context.Context, s *settings, stderr io.Writer) error {
	logger := newLogger(s, stderr)
	router := routes.New(routes.Config{
		Workers:    s.workers,
		EchoBuffer: s.bufferSize,
		EnableEcho: s.enableEcho,
	})
	srv, err := server.New(server.Config{
		Listen:            s.listen,
		Workers:           s.workers,
		SocketQueue:       s.socketQueue,
		Backlog:           s.backlog,
		ParkIdle:          s.parkIdle,
		EvictIdle:         s.evictIdle,
		MaxConnsPerClient: s.maxConnsPerClient,
		ShutdownGrace:     s.shutdownGrace,
		Conn:              s.connConfig(),
		Logger:            logger,
	}, router)
	if err != nil {
		if errors.As(err, new(*server.BindError)) {
			return &exitError{exitBind, fmt.Errorf("cannot listen on --listen %s: %w", s.listen, err)}
		}
		if errors.Is(err, server.ErrInvalidConfig) { // the flags' own checks should have caught it
			return &exitError{exitUsage, err}
		}
		return &exitError{exitFail, fmt.Errorf("cannot start: %w", err)}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The first signal starts the drain; the watcher is in place before the start-up line says the
	// daemon is listening, so a signal that follows that line is always a graceful stop.
	stopWatching := watchSignals(func(sig os.Signal) {
		logger.Info("signal received", "signal", sig.String(), "action", "drain", "grace", s.shutdownGrace.String())
		cancel()
	}, func(sig os.Signal) {
		logger.Warn("signal received", "signal", sig.String(), "action", "exit")
		os.Exit(exitFail)
	})
	defer stopWatching()

	attrs := append([]slog.Attr{
		slog.String("addr", srv.Addr()),
		slog.String("version", version),
		slog.String("commit", commit),
		slog.String("go", runtime.Version()),
		slog.Int("pid", os.Getpid()),
	}, s.attrs()...)
	logger.LogAttrs(ctx, slog.LevelInfo, "edged started", attrs...)

	if err := srv.Serve(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return &exitError{exitFail, fmt.Errorf("serve: %w", err)}
	}
	logger.Info("edged stopped")
	return nil
}
