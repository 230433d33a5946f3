package conn

import (
	"errors"
	"io"
	"runtime/debug"
	"time"
)

// Connection is one worker's HTTP/1.x connection engine. It is allocated once per worker (New) with all
// its buffers, bound to a transport with Reset, and serves one exchange per call to Serve. It is not safe
// for concurrent use: the worker goroutine that owns it is the only caller.
type Connection struct {
	cfg   Config
	s     Stream
	state State

	// Read side. rbuf holds B bytes of head plus slack for body bytes; rbuf[r:w] is unread.
	rbuf         []byte
	r, w         int
	headEnd      int
	headDeadline time.Time
	hs           headState
	hdrs         []header
	nhdr         int
	scratch      []byte // DecodedPath and draining

	// The request.
	method      Method
	methodName  []byte
	target      []byte
	path, query []byte
	authority   []byte // host[:port] of an absolute-form target; nil for the other forms
	minor       uint8
	keepAlive   bool
	connUpgrade bool
	expect100   bool
	sent100     bool

	// The request body.
	bodyKind    uint8
	bodyDone    bool
	bodyErr     error
	reqCL       int64 // Content-Length of the request
	bodyRemain  int64 // Content-Length bodies: bytes not yet read
	bodyRead    int64 // chunked bodies: bytes delivered
	cs          uint8 // chunked decoder state
	chunkRemain int64
	sizeDigits  int
	metaBytes   int

	// The response: see response.go.
	resp response

	flushedAt time.Time // clock read of the last flush: the end of the exchange
	// more: the bytes being written are followed at once by a file body (SendFile), so they go out
	// with MoreWriter.WriteMore: head and file leave in the same TCP segments.
	more       bool
	closing    bool // graceful shutdown: every response closes
	closeAfter bool // this exchange ends the connection
	deadline   time.Time
	stats      ExchangeStats

	dateSec int64
	date    [29]byte
}

// New allocates a Connection and all of its buffers for cfg (CONTRACT S2). Invalid fields are replaced
// by their defaults; use Config.Validate first to refuse them.
func New(cfg Config) *Connection {
	cfg = cfg.withDefaults()
	c := &Connection{
		cfg:     cfg,
		rbuf:    make([]byte, cfg.BufferSize+bodySlack),
		hdrs:    make([]header, cfg.MaxHeaders),
		scratch: make([]byte, cfg.BufferSize),
		state:   StateClosed,
	}
	c.resp.init(cfg.WriteBufferSize)
	return c
}

// bodySlack is read-buffer space beyond B, so that body bytes can always be read even when the head
// filled all B bytes (fixes R3.6).
const bodySlack = 512

func (cfg Config) withDefaults() Config {
	if cfg.BufferSize < MinBufferSize {
		cfg.BufferSize = DefaultBufferSize
	}
	if cfg.WriteBufferSize < MinBufferSize {
		cfg.WriteBufferSize = cfg.BufferSize
	}
	if cfg.MaxHeaders <= 0 {
		cfg.MaxHeaders = DefaultMaxHeaders
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxDrain <= 0 {
		cfg.MaxDrain = DefaultMaxDrain
	}
	if cfg.KeepAliveTimeout <= 0 {
		cfg.KeepAliveTimeout = DefaultKeepAliveTimeout
	}
	if cfg.HeaderTimeout <= 0 {
		cfg.HeaderTimeout = DefaultHeaderTimeout
	}
	if cfg.IOTimeout <= 0 {
		cfg.IOTimeout = DefaultIOTimeout
	}
	if cfg.HandlerTimeout <= 0 {
		cfg.HandlerTimeout = DefaultHandlerTimeout
	}
	if cfg.HeaderTimeout > cfg.HandlerTimeout {
		// CONTRACT S6: both count from the head's first byte, and the handler timeout bounds the whole
		// exchange: a head still arriving past it could only be answered 503. It gets 408 then.
		cfg.HeaderTimeout = cfg.HandlerTimeout
	}
	return cfg
}

// Validate reports the first field of cfg that is out of range; zero fields take their defaults.
func (cfg Config) Validate() error {
	switch {
	case cfg.BufferSize != 0 && cfg.BufferSize < MinBufferSize:
		return errors.New("buffer size must be at least 256 bytes")
	case cfg.WriteBufferSize != 0 && cfg.WriteBufferSize < MinBufferSize:
		return errors.New("write buffer size must be at least 256 bytes")
	case cfg.MaxHeaders < 0:
		return errors.New("max headers must be >= 1")
	case cfg.MaxBody < 0:
		return errors.New("max body must be >= 0")
	case cfg.MaxDrain < 0:
		return errors.New("max drain must be >= 0")
	case cfg.KeepAliveTimeout < 0, cfg.HeaderTimeout < 0, cfg.IOTimeout < 0, cfg.HandlerTimeout < 0:
		return errors.New("timeouts must be positive")
	}
	return nil
}

// Config returns the effective configuration, defaults filled in.
func (c *Connection) Config() Config { return c.cfg }

// Reset binds c to a new stream and clears all per-connection state; buffered bytes of the previous
// stream are dropped.
func (c *Connection) Reset(s Stream) {
	c.s = s
	c.r, c.w = 0, 0
	c.closing = false
	c.more = false
	c.state = StateIdle
}

// Serve reads one request, runs h and completes the response. keepAlive reports whether the stream may
// carry another request. err is nil for a clean exchange; io.EOF when the peer closed before sending a
// byte; ErrIdle when no request came within the keep-alive timeout; io.ErrUnexpectedEOF when the peer
// closed in the middle of a head; a protocol error (already answered); a handler error or *PanicError
// (already answered with 500 or the response cut); or a stream error.
// After an Unbind, Serve returns keepAlive false, err nil and State() == StateUnbound.
func (c *Connection) Serve(taskID int, h Handler) (keepAlive bool, err error) {
	if c.state != StateIdle {
		return false, ErrInvalidState
	}
	c.beginExchange()
	if err := c.readHead(); err != nil {
		c.state = StateClosed
		// The method is known once the request line has been read: a refused GET counts as a GET.
		c.stats.Method = c.method
		var pe *ProtocolError
		if errors.As(err, &pe) {
			c.stats.Status = pe.Code
			c.sendError(pe.Code)
		}
		c.endStats()
		return false, err
	}
	if c.stats.Start.IsZero() {
		// A pipelined head was already buffered: it waited since the previous response went out.
		c.stats.Start = c.flushedAt
		if c.stats.Start.IsZero() {
			c.stats.Start = time.Now()
		}
	}
	c.stats.Method = c.method
	c.deadline = c.stats.Start.Add(c.cfg.HandlerTimeout)
	c.closeAfter = !c.keepAlive || c.closing
	c.state = StateRequest
	herr := c.callHandler(taskID, h)
	keepAlive, err = c.finish(herr)
	c.endStats()
	return keepAlive, err
}

func (c *Connection) beginExchange() {
	c.stats = ExchangeStats{}
	c.headDeadline = time.Time{}
	c.deadline = time.Time{}
	c.nhdr = 0
	c.method, c.methodName, c.target, c.path, c.query, c.authority = MethodOther, nil, nil, nil, nil, nil
	c.minor, c.keepAlive, c.connUpgrade, c.expect100, c.sent100 = 1, false, false, false, false
	c.bodyKind, c.bodyDone, c.bodyErr = bodyNone, false, nil
	c.reqCL, c.bodyRemain, c.bodyRead, c.cs, c.chunkRemain, c.sizeDigits, c.metaBytes = 0, 0, 0, csSize, 0, 0, 0
	c.closeAfter = false
	c.resp.reset()
}

func (c *Connection) endStats() {
	if c.stats.Start.IsZero() {
		return
	}
	end := c.flushedAt
	if end.Before(c.stats.Start) {
		end = time.Now()
	}
	c.stats.Duration = end.Sub(c.stats.Start)
}

// callHandler runs h, turning a panic into a *PanicError (CONTRACT H17).
func (c *Connection) callHandler(taskID int, h Handler) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return h.Handle(taskID, c)
}

// finish completes the response after the handler returned (CONTRACT H12, H15, H17).
func (c *Connection) finish(herr error) (bool, error) {
	if c.state == StateUnbound {
		return false, nil
	}
	if herr == nil {
		herr = c.resp.err // a refused header or a timeout the handler did not pass on
	}
	if herr != nil {
		c.state = StateClosed
		switch {
		case c.resp.headSent:
		case peerGone(herr):
			// CONTRACT H18: a client that has already gone (it reset the connection) gets no response,
			// and the exchange no status: it counts as a closed connection, not as a 500 of the server.
			c.stats.Status = 0
		default:
			code := StatusCode(herr)
			c.stats.Status = code
			c.sendError(code)
		}
		return false, herr
	}
	if !c.resp.committed {
		if err := c.WriteHeader(200); err != nil {
			c.state = StateClosed
			c.sendError(StatusCode(err))
			return false, err
		}
	}
	if err := c.endResponse(); err != nil {
		c.state = StateClosed
		// Refused before its head went out: the handler deadline passed (503). A client that has gone
		// meanwhile gets no 500 in place of the complete response.
		if !c.resp.headSent && !peerGone(err) {
			code := StatusCode(err)
			c.stats.Status = code
			c.sendError(code)
		}
		return false, err
	}
	if c.closeAfter {
		c.state = StateClosed
		return false, nil
	}
	c.state = StateIdle
	return true, nil
}

// Buffered returns the number of bytes read from the stream but not yet consumed: the start of a
// pipelined request. A server parks a connection only when Buffered() == 0 (CONTRACT S5).
func (c *Connection) Buffered() int { return c.w - c.r }

// SetClosing makes the current and every later response carry Connection: close (graceful shutdown,
// CONTRACT S9). When the current response's head has already gone out, the response is completed as
// its head announced it (a chunked body with its last chunk) and the connection then closes: a server
// may close after any complete response. Safe only from the owning goroutine.
func (c *Connection) SetClosing() {
	c.closing = true
	c.closeAfter = true
}

// State returns the connection state.
func (c *Connection) State() State { return c.state }

// LastExchange returns statistics of the exchange that the last Serve call handled.
func (c *Connection) LastExchange() ExchangeStats { return c.stats }

// Deadline returns the handler deadline of the current exchange (CONTRACT S6).
func (c *Connection) Deadline() time.Time { return c.deadline }

// Unbind takes the stream over (WebSocket): it flushes the response (normally a 101), moves the
// connection to StateUnbound and returns the stream and the bytes already read past the request. The
// returned slice is valid until the next Reset. Serve then returns without touching the stream.
// A request body must be read or drainable first: otherwise Unbind returns ErrBodyNotConsumed,
// nothing of the response has been sent, and the connection closes after the handler's answer. After a
// refused response (SetHeader, WriteHeader or a write returned an error) Unbind returns that error.
func (c *Connection) Unbind() (Stream, []byte, error) {
	if c.state != StateRequest && c.state != StateResponse {
		return nil, nil, ErrInvalidState
	}
	if c.resp.err != nil {
		// The response was refused (CONTRACT H14): no 101 went out, the exchange ends in an error
		// response, and the stream stays with the connection.
		return nil, nil, c.resp.err
	}
	// The new protocol starts after the request body: one not consumed (drained within MaxDrain,
	// and without a 100 Continue the client still waits for) would reach it as its first bytes.
	if c.bodyKind != bodyNone && !c.bodyDone && (c.resp.headSent || !c.drainBody() || !c.bodyDone) {
		c.closeAfter = true
		return nil, nil, ErrBodyNotConsumed
	}
	if c.resp.committed {
		if err := c.endResponse(); err != nil {
			return nil, nil, err
		}
	}
	c.state = StateUnbound
	buffered := c.rbuf[c.r:c.w]
	c.r = c.w
	return c.s, buffered, nil
}

// Request accessors. Slices returned point into the read buffer and are valid until the handler returns
// (or until Unbind); copy what must outlive the exchange.

// Method returns the request method's constant (MethodOther for unknown tokens).
func (c *Connection) Method() Method { return c.method }

// MethodName returns the request method token as sent.
func (c *Connection) MethodName() []byte { return c.methodName }

// Target returns the raw request-target.
func (c *Connection) Target() []byte { return c.target }

// Path returns the path of the target, not decoded: for origin-form the part before '?', for
// absolute-form the path after the authority ("/" when empty), "*" for asterisk-form, and the authority
// for CONNECT's authority-form (CONTRACT H3).
func (c *Connection) Path() []byte { return c.path }

// Query returns the part of the target after '?', without the '?'; nil when absent.
func (c *Connection) Query() []byte { return c.query }

// Host returns the authority the request is for: the host[:port] of an absolute-form target, else
// the Host field value (nil for an HTTP/1.0 request without Host). RFC 9112 3.2.2: with an
// absolute-form target the Host field is ignored, as net/http's Request.Host does.
func (c *Connection) Host() []byte {
	if c.authority != nil {
		return c.authority
	}
	return c.Header("Host")
}

// DecodedPath returns Path percent-decoded into the connection's scratch buffer, valid until the next
// call. It refuses (ErrBadRequest) malformed escapes and an encoded NUL.
func (c *Connection) DecodedPath() ([]byte, error) {
	p := c.path
	out := c.scratch[:0]
	for i := 0; i < len(p); i++ {
		b := p[i]
		if b == '%' {
			if i+2 >= len(p) {
				return nil, wrapProto(ErrBadRequest, "truncated percent escape")
			}
			hi, ok1 := unhex(p[i+1])
			lo, ok2 := unhex(p[i+2])
			if !ok1 || !ok2 {
				return nil, wrapProto(ErrBadRequest, "malformed percent escape")
			}
			b = hi<<4 | lo
			if b == 0 {
				return nil, wrapProto(ErrBadRequest, "encoded NUL in path")
			}
			i += 2
		}
		out = append(out, b)
	}
	return out, nil
}

// ProtoMinor returns 0 for HTTP/1.0 and 1 for HTTP/1.1 (an HTTP/1.x request with x > 1 is served as 1.1).
func (c *Connection) ProtoMinor() int { return int(c.minor) }

// Header returns the value of the first header named name (ASCII case-insensitive), or nil.
func (c *Connection) Header(name string) []byte {
	for i := 0; i < c.nhdr; i++ {
		if equalFoldString(c.hdrs[i].name, name) {
			return c.hdrs[i].value
		}
	}
	return nil
}

// NumHeaders returns the number of request header lines.
func (c *Connection) NumHeaders() int { return c.nhdr }

// HeaderAt returns the i-th request header line, name as sent and value with surrounding whitespace removed.
func (c *Connection) HeaderAt(i int) (name, value []byte) {
	if i < 0 || i >= c.nhdr {
		return nil, nil
	}
	return c.hdrs[i].name, c.hdrs[i].value
}

// HasToken reports whether the comma-separated header name contains token (ASCII case-insensitive),
// across all lines of that header (CONTRACT H7, W1).
func (c *Connection) HasToken(name, token string) bool {
	for i := 0; i < c.nhdr; i++ {
		if !equalFoldString(c.hdrs[i].name, name) {
			continue
		}
		for list := c.hdrs[i].value; list != nil; {
			var tok []byte
			tok, list = nextToken(list)
			if equalFoldString(tok, token) {
				return true
			}
		}
	}
	return false
}

// ContentLength returns the request body length: 0 without body headers, -1 for a chunked body.
func (c *Connection) ContentLength() int64 {
	switch c.bodyKind {
	case bodyChunked:
		return -1
	case bodyLength:
		return c.reqCL
	}
	return 0
}

// KeepAlive reports whether, as the request stands, the connection persists after this exchange.
func (c *Connection) KeepAlive() bool { return !c.closeAfter }

// writeRaw writes p to the stream at once, under the io and handler deadlines.
func (c *Connection) writeRaw(p []byte) error {
	d, err := c.ioDeadline()
	if err != nil {
		return err
	}
	return c.writeDeadline(p, d)
}

func (c *Connection) writeDeadline(p []byte, d time.Time) error {
	c.s.SetWriteDeadline(d)
	for len(p) > 0 {
		var n int
		var err error
		if c.more {
			n, err = c.s.(MoreWriter).WriteMore(p) // SendFile set more only for a MoreWriter
		} else {
			n, err = c.s.Write(p)
		}
		c.stats.Sent += int64(n)
		p = p[n:]
		if err != nil {
			return c.timeoutError(err, d)
		}
		if n == 0 {
			return io.ErrShortWrite
		}
	}
	return nil
}

// BufferBytes returns the memory one Connection of cfg holds in buffers, all allocated by New: the
// read buffer with its slack, the write buffer with its head reserve, the scratch buffer, the header
// arena and the header slots (CONTRACT D8).
func (cfg Config) BufferBytes() int {
	cfg = cfg.withDefaults()
	const headerSlot = 48 // two slice headers
	return cfg.BufferSize + bodySlack + headReserve + cfg.WriteBufferSize + tailReserve +
		cfg.BufferSize + arenaSize + headReserve + cfg.MaxHeaders*headerSlot
}
