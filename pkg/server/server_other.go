//go:build !linux

package server

import (
	"context"
	"errors"

	"github.com/edged/edged/pkg/conn"
)

// Server serves HTTP/1.x on raw sockets and epoll; it exists on Linux only. Elsewhere New returns
// errors.ErrUnsupported, so that the module builds and its portable packages test anywhere.
type Server struct{}

// TakenStream is a socket taken over from HTTP; it exists on Linux only (see the Linux documentation).
type TakenStream struct{}

// UnboundHandler receives a socket taken over from HTTP (see the Linux documentation).
type UnboundHandler func(worker int, st conn.Stream, release func())

// New validates cfg and returns errors.ErrUnsupported: the server needs Linux.
func New(cfg Config, h conn.Handler) (*Server, error) {
	if _, err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	return nil, errors.ErrUnsupported
}

// Addr returns "".
func (s *Server) Addr() string { return "" }

// SetUnboundHandler does nothing.
func (s *Server) SetUnboundHandler(UnboundHandler) {}

// Serve returns errors.ErrUnsupported.
func (s *Server) Serve(context.Context) error { return errors.ErrUnsupported }

// Shutdown returns nil.
func (s *Server) Shutdown(context.Context) error { return nil }

// Alive returns errors.ErrUnsupported.
func (s *Server) Alive(context.Context) error { return errors.ErrUnsupported }

// Stats returns zero values.
func (s *Server) Stats() Stats { return Stats{} }
