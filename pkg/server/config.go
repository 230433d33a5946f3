package server

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/edged/edged/pkg/conn"
)

// Config configures a Server. The zero value of a field means its default, where it has one.
type Config struct {
	// Listen is the address to bind: "host:port", ":port" (every IPv4 and IPv6 address), "[::1]:0".
	// The host is an IP literal or "localhost"; port 0 picks a free port (see Server.Addr) (CONTRACT S1).
	Listen string
	// Listeners are descriptors of sockets already listening, adopted instead of binding Listen
	// (systemd socket activation, CONTRACT S12). When non-empty, Listen is ignored.
	Listeners []int
	// Workers is P, the number of worker goroutines, each with its own buffers. Default 4.
	Workers int
	// SocketQueue is Q, the number of accepted sockets that may exist at once (CONTRACT S4). 0 selects
	// accept mode (CONTRACT S3): at most P sockets, each served by one worker until it closes.
	SocketQueue int
	// Backlog is the kernel's listen backlog, where clients wait while every slot is taken. Default 128.
	Backlog int
	// ParkIdle hands idle keep-alive sockets back to epoll so that their worker serves another socket
	// (CONTRACT S5). Queue mode only.
	ParkIdle bool
	// EvictIdle closes the longest-idle parked socket when all Q slots are taken and a new client waits
	// (CONTRACT S13). Queue mode with ParkIdle only.
	EvictIdle bool
	// EvictMinIdle is how long a parked socket must have been idle before it may be evicted. Under a
	// load of more clients than slots, every parked socket is only microseconds idle: without a
	// minimum, new clients would evict each other's connections between requests (thrashing). With
	// one, the extra clients wait in the backlog as S4's plain bound says, and a socket that really sits
	// idle still gives way. 0 is no minimum; the daemon's default is 1s (--evict-min-idle).
	EvictMinIdle time.Duration
	// MaxConnsPerClient bounds the sockets of one IPv4 address or IPv6 /64 (CONTRACT S14). 0 is no limit.
	MaxConnsPerClient int
	// ShutdownGrace bounds the graceful drain of a shutdown (CONTRACT S9). Default 10s.
	ShutdownGrace time.Duration
	// Conn holds the buffer sizes, header slots, body limits and timeouts of each worker's connection.
	Conn conn.Config
	// Observer receives events; nil discards them.
	Observer Observer
	// Logger receives the server's log records; nil discards them.
	Logger *slog.Logger
}

// Defaults of Config (CONTRACT D2, S9).
const (
	DefaultWorkers       = 4
	DefaultBacklog       = 128
	DefaultShutdownGrace = 10 * time.Second
	// MaxTimeout bounds every duration the server adds to its clock (nanoseconds since start, in an
	// int64): longer ones (ShutdownGrace, EvictMinIdle, conn's KeepAliveTimeout) are cut to it, which
	// is forever in practice, instead of wrapping round to the past.
	MaxTimeout = 100 * 365 * 24 * time.Hour
	// MaxSocketQueue bounds Q so that slot indices fit the epoll event data.
	MaxSocketQueue = 1 << 20
	// MaxWorkers bounds P.
	MaxWorkers = 1 << 16
)

// withDefaults validates cfg and returns it with defaults filled in.
func (cfg Config) withDefaults() (Config, error) {
	switch {
	case cfg.Workers < 0:
		return cfg, configError("workers must be >= 1")
	case cfg.Workers > MaxWorkers:
		return cfg, configError("workers must be <= %d", MaxWorkers)
	case cfg.SocketQueue < 0:
		return cfg, configError("socket queue must be >= 0")
	case cfg.SocketQueue > MaxSocketQueue:
		return cfg, configError("socket queue must be <= %d", MaxSocketQueue)
	case cfg.Backlog < 0:
		return cfg, configError("backlog must be >= 0")
	case cfg.MaxConnsPerClient < 0:
		return cfg, configError("max conns per client must be >= 0")
	case cfg.ShutdownGrace < 0:
		return cfg, configError("shutdown grace must be >= 0")
	case len(cfg.Listeners) == 0 && cfg.Listen == "":
		return cfg, configError("listen address must not be empty")
	}
	for _, fd := range cfg.Listeners {
		if fd < 0 {
			return cfg, configError("listener descriptor %d is negative", fd)
		}
	}
	if err := cfg.Conn.Validate(); err != nil {
		return cfg, configError("%v", err)
	}
	if len(cfg.Listeners) == 0 {
		if _, err := parseListenAddr(cfg.Listen); err != nil {
			return cfg, configError("listen address %q: %v", cfg.Listen, err)
		}
	}
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Backlog == 0 {
		cfg.Backlog = DefaultBacklog
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = DefaultShutdownGrace
	}
	cfg.ShutdownGrace = min(cfg.ShutdownGrace, MaxTimeout)
	cfg.EvictMinIdle = min(cfg.EvictMinIdle, MaxTimeout)
	if cfg.SocketQueue == 0 {
		// CONTRACT S3 as the degenerate queue mode: one slot per worker, no parking, no eviction.
		cfg.ParkIdle, cfg.EvictIdle = false, false
	}
	if !cfg.ParkIdle {
		cfg.EvictIdle = false
	}
	return cfg, nil
}

// slotCount is the number of slots (acceptors): Q, or P in accept mode.
func (cfg Config) slotCount() int {
	if cfg.SocketQueue == 0 {
		return cfg.Workers
	}
	return cfg.SocketQueue
}

func configError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}
