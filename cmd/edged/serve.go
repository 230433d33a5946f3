package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func newServeCmd() *cobra.Command {
	var cpuProfile, execTrace string
	cmd := newConfigCmd("serve", "Serve HTTP on --listen until SIGTERM or SIGINT",
		func(cmd *cobra.Command, s *settings) error {
			for _, d := range []struct {
				path  string
				start func(string) (func(), error)
			}{{cpuProfile, startCPUProfile}, {execTrace, startTrace}} {
				if d.path != "" {
					stop, err := d.start(d.path)
					if err != nil {
						return &exitError{exitFail, err}
					}
					defer stop()
				}
			}
			return serve(cmd.Context(), s, cmd.ErrOrStderr())
		})
	cmd.Flags().StringVar(&cpuProfile, debugCPUProfileFlag, "", "write a CPU profile of the run to this file")
	cmd.Flags().StringVar(&execTrace, debugTraceFlag, "", "write an execution trace of the run to this file")
	_ = cmd.Flags().MarkHidden(debugCPUProfileFlag)
	_ = cmd.Flags().MarkHidden(debugTraceFlag)
	return cmd
}

// newLogger returns the daemon's logger: slog to stderr (journald collects it), text or JSON
// (CONTRACT D6).
//
// Times are logged in UTC (RFC 3339, ending in Z), as Prometheus logs them: the lines of gateways set
// to different time zones line up, and journald stamps each line with its own local time anyway.
// Formatting a local time would also make the daemon load the zone database (/etc/localtime) at its
// first log line: 0.25 MiB more resident memory for the life of the process.
func newLogger(s *settings, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: s.level(), ReplaceAttr: utcTime}
	if s.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// utcTime is the handlers' ReplaceAttr: a record's time in UTC.
func utcTime(groups []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey && len(groups) == 0 && a.Value.Kind() == slog.KindTime {
		a.Value = slog.TimeValue(a.Value.Time().UTC())
	}
	return a
}

// inheritedMetrics stands for --metrics-listen when the metrics listener is a socket from systemd.
const inheritedMetrics = "systemd:metrics"

// serve builds the daemon, logs the start-up line, tells systemd it is ready, and serves until the first
// SIGTERM or SIGINT, then drains within --shutdown-grace (CONTRACT D6, D7, S9).
func serve(ctx context.Context, s *settings, stderr io.Writer) error {
	ignoreBrokenPipe()
	logger := newLogger(s, stderr)
	stopHangup := watchHangup(func(sig os.Signal) {
		logger.Warn("signal ignored: edged has no configuration to reload; restart it to apply a new one", "signal", sig.String())
	})
	defer stopHangup()
	inherited, err := inheritedListeners(logger)
	if err != nil {
		return &exitError{exitFail, err}
	}
	if len(inherited.metrics) > 0 && s.metricsListen == "" {
		// CONTRACT S12: a socket systemd names "metrics" serves /metrics on its own, as --metrics-listen
		// would; the socket unit is then the one place that says so. Otherwise it would be adopted
		// and never accepted on.
		s.metricsListen = inheritedMetrics
	}
	s.backlogUnused = len(inherited.main) > 0 && (s.metricsListen == "" || s.metricsListen == inheritedMetrics)
	if err := s.checkBudget(); err != nil {
		return err
	}
	if s.procs > 0 {
		// See "Choosing --procs" in the README. The runtime then no longer follows the CPUs edged may use.
		runtime.GOMAXPROCS(s.procs)
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
		slog.Int("gomaxprocs", runtime.GOMAXPROCS(0)),
		slog.Int("pid", os.Getpid()),
	}
	if d.metricsS != nil {
		attrs = append(attrs, slog.String("metrics_addr", d.metricsS.Addr()))
	}
	attrs = append(attrs, s.attrs()...)
	attrs = append(attrs, d.budget.parts()...)
	attrs = append(attrs, slog.Int64("go_memory_limit", limitMemory(d.budget.total())))
	logger.LogAttrs(ctx, slog.LevelInfo, "edged started", attrs...)
	for _, w := range s.warnings() {
		logger.Warn("configuration warning", "detail", w)
	}
	if n := s.sessionLimit(); n < s.wsMaxConns {
		logger.Warn("WebSocket sessions limited by the socket queue: each holds a slot, and the workers keep theirs",
			"ws_max_conns", s.wsMaxConns, "ws_sessions", n, "socket_queue", s.queueSlots(), "workers", s.workers,
			"hint", "raise --socket-queue to at least --workers plus --ws-max-conns")
	}
	stopNotify := notifyReady(ctx, logger, d.alive)
	defer stopNotify()

	if err := d.run(ctx); err != nil {
		return &exitError{exitFail, err}
	}
	logger.Info("edged stopped")
	return nil
}

// runtimeAllowance is what the Go runtime and the daemon's fixed parts (the binary's data, the
// Prometheus registry, goroutine stacks, the collector's metadata) need besides the pools' budget,
// with headroom for garbage (scrapes, log records).
const runtimeAllowance = 12 << 20

// limitMemory sets the Go runtime's soft memory limit to the budget plus runtimeAllowance, unless the
// environment sets GOMEMLIMIT, and returns the limit in force (CONTRACT D8). The pools are live heap,
// so the collector's default pacing (GOGC=100) would let garbage grow the heap by as much again before
// it collects: a 64 MiB topic budget could cost 128 MiB. With the limit the collector runs earlier.
func limitMemory(budget int64) int64 {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(budget + runtimeAllowance)
	}
	return debug.SetMemoryLimit(-1)
}
