package routes

import (
	"errors"
	"fmt"
	"io"

	"github.com/edged/edged/pkg/conn"
)

// Config configures a Router.
type Config struct {
	// Workers is the number of workers that call Handle: taskIDs run from 0 to Workers-1.
	Workers int
	// EchoBuffer is the size of each worker's /echo scratch buffer. Default 2048.
	EchoBuffer int
	// EnableEcho serves /echo; without it /echo is 404 like any unknown path.
	EnableEcho bool
}

// DefaultEchoBuffer is the /echo scratch buffer size when Config.EchoBuffer is zero.
const DefaultEchoBuffer = 2048

// ErrTaskID is returned by Handle for a taskID outside 0..Config.Workers-1.
var ErrTaskID = errors.New("routes: task ID outside the configured workers")

const textPlain = "text/plain; charset=utf-8"

// Response bodies. Package-level byte slices, so that answering costs no allocation.
var (
	bodyOK               = []byte("ok")
	bodyNotFound         = []byte("404 page not found\n")
	bodyMethodNotAllowed = []byte("405 method not allowed\n")
)

// Router answers edged's routes. It implements conn.Handler.
type Router struct {
	echo    bool
	scratch [][]byte // per-worker /echo buffers, indexed by taskID
}

// New returns a Router for cfg, with every buffer it will ever use already allocated.
func New(cfg Config) *Router {
	r := &Router{echo: cfg.EnableEcho}
	if cfg.EnableEcho {
		size := cfg.EchoBuffer
		if size <= 0 {
			size = DefaultEchoBuffer
		}
		workers := max(cfg.Workers, 1)
		backing := make([]byte, workers*size)
		r.scratch = make([][]byte, workers)
		for i := range r.scratch {
			r.scratch[i] = backing[i*size : (i+1)*size : (i+1)*size]
		}
	}
	return r
}

// Handle answers one request (CONTRACT D3).
func (r *Router) Handle(taskID int, c *conn.Connection) error {
	switch path := c.Path(); string(path) {
	case "/healthz":
		return healthz(c)
	case "/echo":
		if r.echo {
			return r.serveEcho(taskID, c)
		}
	}
	return c.Reply(404, textPlain, bodyNotFound)
}

// healthz answers GET and HEAD with 200 "ok"; HEAD gets the same head, Content-Length included, and no
// body (CONTRACT H15).
func healthz(c *conn.Connection) error {
	switch c.Method() {
	case conn.MethodGet, conn.MethodHead:
		return c.Reply(200, textPlain, bodyOK)
	}
	return methodNotAllowed(c, "GET, HEAD")
}

// methodNotAllowed answers 405 with the Allow header RFC 9110 15.5.6 requires.
func methodNotAllowed(c *conn.Connection, allow string) error {
	if err := c.SetHeader("Allow", allow); err != nil {
		return err
	}
	return c.Reply(405, textPlain, bodyMethodNotAllowed)
}

// serveEcho streams the request body back through the worker's scratch buffer: any body length works,
// whatever the size of the write buffer, and nothing is allocated. A body with a Content-Length is
// answered with the same Content-Length; a chunked one is answered chunked (close-delimited to
// HTTP/1.0).
func (r *Router) serveEcho(taskID int, c *conn.Connection) error {
	if taskID < 0 || taskID >= len(r.scratch) {
		return fmt.Errorf("%w: %d", ErrTaskID, taskID)
	}
	buf := r.scratch[taskID]
	if ct := c.Header("Content-Type"); ct != nil {
		if err := c.SetHeaderBytes("Content-Type", ct); err != nil {
			return err
		}
	}
	if n := c.ContentLength(); n >= 0 {
		c.SetContentLength(n)
	}
	if c.Method() == conn.MethodHead {
		return c.WriteHeader(200)
	}
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			if !c.ResponseStarted() {
				return c.WriteHeader(200) // empty body: keep the Content-Type and Content-Length set above
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}
