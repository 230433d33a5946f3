package ws

import (
	"errors"
	"strconv"
)

// Close codes of RFC 6455 7.4.1 that edged sends.
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001
	CloseProtocolError   = 1002
	CloseUnsupported     = 1003
	CloseNoStatus        = 1005 // never sent: a close frame without a code
	CloseInvalidPayload  = 1007
	ClosePolicyViolation = 1008
	CloseTooBig          = 1009
	CloseInternalError   = 1011
)

// CloseError is returned by ReadMessage when the peer closed the session: the peer's code (1005 when
// its close frame had none) and reason. The close reply has been sent (CONTRACT W6).
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return "ws: peer closed with " + strconv.Itoa(e.Code) + " " + e.Reason
}

// ProtocolError is returned by ReadMessage when the peer broke RFC 6455 or a limit: edged has sent a
// close frame with Code (1002, 1007, 1009) and the session must end (RFC 6455 7.1.7).
type ProtocolError struct {
	Code int
	Msg  string
}

func (e *ProtocolError) Error() string {
	return "ws: " + e.Msg + " (close " + strconv.Itoa(e.Code) + ")"
}

// WriteError is returned by ReadMessage when a frame it had to send on the way, a pong, could not be
// written (CONTRACT W5). Part of the frame may be on the wire: the Conn writes nothing more (every
// later write returns the stream's error) and the session must end. Err is the stream's error, kept
// for logs; WriteError does not unwrap to it, so that a write timeout is not taken for a read
// deadline, after which ReadMessage may be called again.
type WriteError struct {
	Op  Opcode
	Err error
}

func (e *WriteError) Error() string {
	return "ws: writing a " + e.Op.String() + " frame failed: " + e.Err.Error()
}

// Sentinel errors.
var (
	// ErrClosed is returned by writes after a close frame was sent.
	ErrClosed = errors.New("ws: close frame already sent")
	// ErrBufferedTooLarge is returned by Reset when the bytes read past the handshake do not fit the
	// read buffer; the Conn can still send a close (Session sends 1009).
	ErrBufferedTooLarge = errors.New("ws: bytes after the handshake larger than the read buffer")
	// ErrControlTooLarge is returned by WriteMessage for a control payload over 125 bytes.
	ErrControlTooLarge = errors.New("ws: control frame payload larger than 125 bytes")
	// ErrInvalidClose is returned by WriteMessage and WriteClose for a close payload a peer would
	// fail the session for (RFC 6455 5.5.1, 7.4; CONTRACT W6): one byte, a code no endpoint may send,
	// or a reason that is not UTF-8. The close is not sent and does not count as sent.
	ErrInvalidClose = errors.New("ws: invalid close payload")

	errLengthTopBit = &ProtocolError{CloseProtocolError, "64-bit frame length with the top bit set"}
)

// HandshakeError is a refused upgrade request: the HTTP status edged answered with (CONTRACT W1, W2).
type HandshakeError struct {
	Status int
	Msg    string
}

func (e *HandshakeError) Error() string { return "ws: handshake refused: " + e.Msg }
