package conn

import (
	"time"
)

// Stream is the byte transport a Connection runs over: a socket in pkg/server, an in-memory pipe in
// tests. Read and Write behave as io.Reader and io.Writer and block until progress, the deadline, or an
// error. A deadline that passes makes the call return an error satisfying errors.Is(err,
// os.ErrDeadlineExceeded). The zero time means no deadline.
type Stream interface {
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	SetReadDeadline(t time.Time)
	SetWriteDeadline(t time.Time)
}

// MoreWriter is implemented by streams that can hold bytes back until the next write joins them
// (MSG_MORE on a socket). SendFile writes the response head with WriteMore when the file's bytes follow
// it at once, so that a small file and its head leave in one segment and the client reads them in one
// go. WriteMore otherwise behaves as Write.
type MoreWriter interface {
	WriteMore(p []byte) (int, error)
}

// Handler answers one request on a Connection (CONTRACT H20). taskID is the worker's index, stable
// for the worker's lifetime, so a handler can keep per-worker state without locks.
type Handler interface {
	Handle(taskID int, c *Connection) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(taskID int, c *Connection) error

// Handle calls f(taskID, c).
func (f HandlerFunc) Handle(taskID int, c *Connection) error { return f(taskID, c) }

// State is where a Connection is in its request/response cycle (CONTRACT H19).
type State uint8

// The states of a Connection. Idle -> Request -> Response -> Idle (next request) or Closed;
// Request or Response -> Unbound when a handler takes the stream over (WebSocket).
const (
	StateIdle     State = iota // no request read yet, or the previous exchange is complete
	StateRequest               // request head read; no response byte committed
	StateResponse              // response head committed; body being written
	StateUnbound               // the stream was taken over with Unbind
	StateClosed                // the connection must not be used again
)

var stateNames = [...]string{"Idle", "Request", "Response", "Unbound", "Closed"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "State(?)"
}

// Config holds the limits and timeouts of a Connection. The zero value of a field means its default.
type Config struct {
	// BufferSize is B: the read buffer, and so the largest request head (CONTRACT H2). Default 2048.
	BufferSize int
	// WriteBufferSize is the response buffer (CONTRACT H16). Default: BufferSize.
	WriteBufferSize int
	// MaxHeaders is N: the number of request header lines accepted (CONTRACT H2). Default 64.
	MaxHeaders int
	// MaxBody is the largest request body (CONTRACT H10). Default 1 MiB.
	MaxBody int64
	// MaxDrain is how much unread request body is discarded before a response head goes out
	// (CONTRACT H12). Default 64 KiB.
	MaxDrain int64
	// KeepAliveTimeout bounds the wait for the first byte of a request (CONTRACT S6). Default 50s.
	KeepAliveTimeout time.Duration
	// HeaderTimeout bounds the whole head, from its first byte (CONTRACT S6). Default 10s; never more
	// than HandlerTimeout, which also counts from the head's first byte.
	HeaderTimeout time.Duration
	// IOTimeout bounds each read and write of a body (CONTRACT S6). Default 30s.
	IOTimeout time.Duration
	// HandlerTimeout bounds the whole request-response exchange after the head (CONTRACT S6). Default 60s.
	HandlerTimeout time.Duration
}

// Defaults of Config, as CONTRACT D2 and S6 name them.
const (
	DefaultBufferSize       = 2048
	DefaultMaxHeaders       = 64
	DefaultMaxBody          = 1 << 20
	DefaultMaxDrain         = 64 << 10
	DefaultKeepAliveTimeout = 50 * time.Second
	DefaultHeaderTimeout    = 10 * time.Second
	DefaultIOTimeout        = 30 * time.Second
	DefaultHandlerTimeout   = 60 * time.Second
	// MinBufferSize is the smallest BufferSize accepted (CONTRACT D2).
	MinBufferSize = 256
)

// ExchangeStats describes the last request/response exchange served by Serve, for observers.
type ExchangeStats struct {
	Method   Method
	Status   int   // status sent; 0 if no response was sent
	Received int64 // bytes read from the stream during the exchange (head and body)
	Sent     int64 // bytes written to the stream during the exchange
	Start    time.Time
	Duration time.Duration
}
