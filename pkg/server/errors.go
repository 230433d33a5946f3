package server

import "errors"

// Errors returned by the Server. Each is a sentinel compared with errors.Is; configuration errors wrap
// ErrInvalidConfig and name the offending field in their message.
var (
	// ErrInvalidConfig is wrapped by every error New returns for a Config field out of range.
	ErrInvalidConfig = errors.New("server: invalid configuration")
	// ErrServerClosed is returned by Serve when it is called a second time or after Shutdown, and by
	// the socket streams once a shutdown has force-closed them (CONTRACT S9).
	ErrServerClosed = errors.New("server: closed")
	// ErrShutdownIncomplete is returned by Serve when handlers were still running after the shutdown
	// grace period and the force-close that ends it, or sockets taken over (Unbind) were still open:
	// their goroutines or descriptors outlive Serve (CONTRACT S9).
	ErrShutdownIncomplete = errors.New("server: handlers still running after the shutdown grace period")
)

// BindError is returned by New when a listening socket cannot be created, bound or put into the
// listening state, or when an adopted descriptor is not a listening socket (CONTRACT S1, S12). The
// daemon exits with status 3 on it (CONTRACT D2).
type BindError struct {
	Addr string // the address as configured, or "fd N" for an adopted descriptor
	Err  error
}

func (e *BindError) Error() string { return "server: listen on " + e.Addr + ": " + e.Err.Error() }

// Unwrap returns the underlying system error.
func (e *BindError) Unwrap() error { return e.Err }
