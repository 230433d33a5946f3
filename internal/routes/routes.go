package routes

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged/edged/internal/static"
	"github.com/edged/edged/internal/statuspage"
	"github.com/edged/edged/internal/topics"
	"github.com/edged/edged/pkg/conn"
	"github.com/edged/edged/pkg/ws"
)

// Config configures a Router. Optional parts are off when nil.
type Config struct {
	// Workers is the number of workers that call Handle: taskIDs run from 0 to Workers-1.
	Workers int
	// EchoBuffer is the size of each worker's /echo scratch buffer. Default 2048.
	EchoBuffer int
	// EnableEcho serves /echo; without it /echo is 404 like any unknown path.
	EnableEcho bool
	// Metrics serves GET /metrics from this gatherer (CONTRACT D3, M).
	Metrics prometheus.Gatherer
	// Hub serves /topics/{name} (CONTRACT D4).
	Hub *topics.Hub
	// Pool runs WebSocket sessions (/echo and /topics upgrades, CONTRACT W9); without it upgrades get 404.
	Pool *ws.Pool
	// Upgrade holds the Origin allow-list and subprotocols of the WebSocket handshake (CONTRACT W2).
	Upgrade *ws.UpgradeOptions
	// Static serves every other path from a web root (CONTRACT D5); without it the built-in status page
	// is served at / and anything else is 404.
	Static *static.Root
	// NoStatusPage answers 404 instead of the status page (a listener that serves only /metrics and
	// /healthz).
	NoStatusPage bool
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
	echo     bool
	scratch  [][]byte // per-worker /echo buffers, indexed by taskID
	metrics  prometheus.Gatherer
	hub      *topics.Hub
	topicBuf [][]byte // per-worker topic value buffers, indexed by taskID
	pool     *ws.Pool
	upgrade  *ws.UpgradeOptions
	pending  []pendingSession // per worker: the session of an upgrade in progress
	static   *static.Root
	noStatus bool
}

// New returns a Router for cfg, with every buffer it will ever use already allocated.
func New(cfg Config) *Router {
	workers := max(cfg.Workers, 1)
	r := &Router{
		echo:     cfg.EnableEcho,
		metrics:  cfg.Metrics,
		hub:      cfg.Hub,
		pool:     cfg.Pool,
		upgrade:  cfg.Upgrade,
		static:   cfg.Static,
		noStatus: cfg.NoStatusPage,
		pending:  make([]pendingSession, workers),
	}
	if cfg.EnableEcho {
		size := cfg.EchoBuffer
		if size <= 0 {
			size = DefaultEchoBuffer
		}
		r.scratch = perWorker(workers, size)
	}
	if cfg.Hub != nil {
		r.topicBuf = perWorker(workers, cfg.Hub.Config().MaxValueBytes)
	}
	return r
}

// perWorker carves one allocation into a buffer per worker.
func perWorker(workers, size int) [][]byte {
	backing := make([]byte, workers*size)
	bufs := make([][]byte, workers)
	for i := range bufs {
		bufs[i] = backing[i*size : (i+1)*size : (i+1)*size]
	}
	return bufs
}

// BufferBytes returns the memory New allocates for cfg (CONTRACT D8).
func (cfg Config) BufferBytes() int {
	workers := max(cfg.Workers, 1)
	n := 0
	if cfg.EnableEcho {
		size := cfg.EchoBuffer
		if size <= 0 {
			size = DefaultEchoBuffer
		}
		n += workers * size
	}
	if cfg.Hub != nil {
		n += workers * cfg.Hub.Config().MaxValueBytes
	}
	return n
}

// Handle answers one request (CONTRACT D3).
func (r *Router) Handle(taskID int, c *conn.Connection) error {
	path := c.Path()
	switch string(path) {
	case "/healthz":
		return healthz(c)
	case "/metrics":
		if r.metrics != nil {
			return r.serveMetrics(c)
		}
	case "/echo":
		if r.echo {
			if ws.IsUpgrade(c) {
				return r.acceptSession(taskID, c, echoSessions{}, nil)
			}
			return r.serveEcho(taskID, c)
		}
		return r.fallback(c)
	}
	if r.hub != nil && bytes.HasPrefix(path, topicPrefix) {
		return r.serveTopic(taskID, c, path[len(topicPrefix):])
	}
	if debugRoute != nil && bytes.HasPrefix(path, debugPrefix) {
		return debugRoute(r, taskID, c)
	}
	return r.fallback(c)
}

// debugRoute serves /debug/... in builds with the testroutes tag (debug_testroutes.go): handlers that
// panic on purpose, for the crash-safety tests (CONTRACT H17). It is nil in every other build, where
// /debug/ is an ordinary path of the web root.
var debugRoute func(r *Router, taskID int, c *conn.Connection) error

var debugPrefix = []byte("/debug/")

// fallback serves the web root, or the built-in status page at / when there is none.
func (r *Router) fallback(c *conn.Connection) error {
	if r.static != nil {
		return r.static.Serve(c)
	}
	if r.noStatus {
		return c.Reply(404, textPlain, bodyNotFound)
	}
	switch string(c.Path()) {
	case "/", "/index.html":
		switch c.Method() {
		case conn.MethodGet, conn.MethodHead:
			if err := c.SetHeader("Cache-Control", "no-cache"); err != nil {
				return err
			}
			return c.Reply(200, "text/html; charset=utf-8", statuspage.HTML)
		}
		return methodNotAllowed(c, "GET, HEAD")
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
		if len(ct) > topics.MaxContentTypeLen {
			// The response's header space is bounded; one limit for the daemon, as for topics.
			return c.Reply(415, textPlain, bodyContentTypeTooLong)
		}
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
