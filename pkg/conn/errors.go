package conn

import (
	"errors"
	"fmt"
	"os"
)

// ProtocolError is a request the connection refuses. Code is the HTTP status the server answers with
// (400, 408, 413, 414, 417, 431, 501, 505); the connection always closes after that answer (CONTRACT H18).
// The sentinel values below are compared with errors.Is; a wrapped one carries detail in its message.
type ProtocolError struct {
	Code int
	Msg  string
}

func (e *ProtocolError) Error() string { return "conn: " + e.Msg }

// Protocol errors, one per status code the contract names. Each maps to its Code through StatusCode.
var (
	ErrBadRequest        = &ProtocolError{400, "malformed request"}
	ErrHeadTimeout       = &ProtocolError{408, "request head not received in time"}
	ErrBodyTooLarge      = &ProtocolError{413, "request body larger than the limit"}
	ErrURITooLong        = &ProtocolError{414, "request line larger than buffer"}
	ErrExpectation       = &ProtocolError{417, "unsupported expectation"}
	ErrHeadTooLarge      = &ProtocolError{431, "request head larger than buffer"}
	ErrTooManyHeaders    = &ProtocolError{431, "more header lines than header slots"}
	ErrNotImplemented    = &ProtocolError{501, "transfer coding not implemented"}
	ErrVersion           = &ProtocolError{505, "HTTP major version not supported"}
	ErrIncompleteBody    = &ProtocolError{400, "request body ended before its declared end"}
	ErrChunkedFraming    = &ProtocolError{400, "malformed chunked body"}
	ErrChunkedMetaTooBig = &ProtocolError{400, "chunk extensions and trailers larger than the limit"}
)

// Errors returned to handlers and to the server.
var (
	// ErrInvalidState is returned when a method is called in a state that does not allow it
	// (for example WriteHeader twice, or Read after Unbind) (CONTRACT H19).
	ErrInvalidState = errors.New("conn: call not valid in this connection state")
	// ErrBadResponseHeader is returned by SetHeader for a name that is not a token or a value holding
	// CR, LF, NUL or another control byte but HTAB; the response is then refused as a whole (CONTRACT H14).
	ErrBadResponseHeader = errors.New("conn: invalid response header")
	// ErrHeaderSpace is returned by SetHeader when the response headers do not fit the header arena.
	ErrHeaderSpace = errors.New("conn: response headers larger than the header arena")
	// ErrBadStatus is returned for a status code outside 100-599, a reason phrase that is too long or
	// holds control bytes, and a 101 to an HTTP/1.0 request (CONTRACT H13).
	ErrBadStatus = errors.New("conn: status code outside 100-599")
	// ErrBodyNotAllowed is returned by Write for a response that carries no body (1xx, 204, 304). The
	// body of a HEAD response is counted (for its Content-Length) and dropped without an error.
	ErrBodyNotAllowed = errors.New("conn: response to this request carries no body")
	// ErrContentLength is returned by Write when the body would exceed the declared Content-Length.
	ErrContentLength = errors.New("conn: body longer than the declared Content-Length")
	// ErrBodyNotConsumed is returned by Unbind when the request body is not read to its end and cannot
	// be drained (larger than MaxDrain, or held back by a client waiting for 100 Continue): its bytes
	// would otherwise reach the new protocol.
	ErrBodyNotConsumed = errors.New("conn: request body not consumed before Unbind")
	// ErrHandlerTimeout is returned by reads and writes once the handler deadline has passed; a response
	// that has not started is then answered with 503 (CONTRACT S6).
	ErrHandlerTimeout = errors.New("conn: handler deadline exceeded")
	// ErrIdle is returned by Serve when the keep-alive (first byte) wait ended without a request:
	// the connection closes without a response (CONTRACT H18, S6).
	ErrIdle = errors.New("conn: no request before the keep-alive timeout")
	// ErrInterrupted is returned by a Stream's Read that was interrupted on purpose by another
	// goroutine (a WebSocket session woken to send queued messages).
	ErrInterrupted = errors.New("conn: read interrupted")
	// ErrHandlerPanic wraps a recovered handler panic (CONTRACT H17).
	ErrHandlerPanic = errors.New("conn: handler panicked")
)

// PanicError is returned by Serve when the handler panicked; Stack holds the goroutine stack.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("conn: handler panicked: %v", e.Value) }

// Unwrap lets errors.Is(err, ErrHandlerPanic) recognise a panic.
func (e *PanicError) Unwrap() error { return ErrHandlerPanic }

// StatusCode maps an error to the HTTP status a server answers it with: the ProtocolError's code,
// 503 for ErrHandlerTimeout, 408 for a request body that stalled past the io timeout (a stream
// deadline), and 500 for anything else.
func StatusCode(err error) int {
	var pe *ProtocolError
	switch {
	case errors.As(err, &pe):
		return pe.Code
	case errors.Is(err, ErrHandlerTimeout):
		return 503
	case errors.Is(err, os.ErrDeadlineExceeded):
		return 408
	default:
		return 500
	}
}

// wrapProto adds detail to a protocol sentinel; errors.Is still matches the sentinel.
func wrapProto(sentinel *ProtocolError, detail string) error {
	return fmt.Errorf("%w: %s", sentinel, detail)
}
