//go:build !linux

package static

import (
	"errors"

	"github.com/edged/edged/pkg/conn"
)

// Root serves files below one directory; only Linux is supported.
type Root struct{}

// New returns errors.ErrUnsupported outside Linux.
func New(dir string) (*Root, error) { return nil, errors.ErrUnsupported }

// Close does nothing.
func (r *Root) Close() error { return nil }

// Dir returns "".
func (r *Root) Dir() string { return "" }

// Serve answers 404.
func (r *Root) Serve(c *conn.Connection) error {
	return c.Reply(404, "text/plain; charset=utf-8", []byte("not found\n"))
}
