package ws

import (
	"encoding/binary"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edged/edged/pkg/conn"
)

// Config sizes and times a Conn. Zero fields take their defaults.
type Config struct {
	// MaxMessage is the largest message accepted, reassembled (CONTRACT W7). Default 64 KiB.
	MaxMessage int
	// ReadBufferSize is the frame read buffer. Default 4 KiB plus a frame header.
	ReadBufferSize int
	// WriteBufferSize is the frame write buffer: a frame that fits leaves in one write. Default 4 KiB
	// plus a frame header.
	WriteBufferSize int
	// WriteTimeout bounds each control frame the Conn writes (a pong, a close, a ping): every one gets
	// a deadline this long from its start, whatever SetWriteDeadline set for data (CONTRACT W5, W6).
	// Default 10s.
	WriteTimeout time.Duration
}

// Defaults of Config. The buffers hold a 4 KiB payload with its frame header, so that such a message
// costs one read(2) and one write(2) rather than two of each.
const (
	DefaultMaxMessage      = 64 << 10
	DefaultReadBufferSize  = 4<<10 + MaxHeaderSize
	DefaultWriteBufferSize = 4<<10 + MaxHeaderSize
)

func (cfg Config) withDefaults() Config {
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = DefaultMaxMessage
	}
	if cfg.ReadBufferSize < MaxHeaderSize*2 {
		cfg.ReadBufferSize = DefaultReadBufferSize
	}
	if cfg.WriteBufferSize < MaxHeaderSize*2 {
		cfg.WriteBufferSize = DefaultWriteBufferSize
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	return cfg
}

// BufferBytes returns the memory one Conn of cfg holds (for memory budgets, CONTRACT D8).
func (cfg Config) BufferBytes() int {
	cfg = cfg.withDefaults()
	return cfg.MaxMessage + cfg.ReadBufferSize + cfg.WriteBufferSize + 2*maxControl
}

const maxControl = 125

// Conn is the server side of a WebSocket session over a conn.Stream: it reassembles messages, enforces
// every framing rule of RFC 6455 (CONTRACT W3-W7), answers pings and runs the close handshake.
//
// Concurrency: one goroutine reads (ReadMessage) while any number of goroutines write (WriteMessage,
// WritePing, WriteClose); writers are serialised by a mutex, so a message is never interleaved with
// another (CONTRACT W8). The Stream must allow one Read and one Write at the same time.
type Conn struct {
	cfg Config
	s   conn.Stream

	// Reader state; owned by the reading goroutine.
	rbuf      []byte
	r, w      int
	msg       []byte // message being reassembled; cap MaxMessage
	msgLen    int
	msgOp     Opcode // opcode of the message in progress, 0 when none
	returned  bool   // msg[:msgLen] was handed out; reset on the next read
	fr        Header // frame in progress
	frRemain  int64
	inFrame   bool
	maskPos   int
	ctrl      [maxControl]byte
	ctrlLen   int
	utf8      utf8State
	closeRecv bool
	frames    atomic.Uint64 // frames received, for liveness checks (CONTRACT W10)

	// Writer state, under wmu.
	wmu       sync.Mutex
	wbuf      []byte
	pong      [maxControl]byte
	closeSent bool
	wdl       time.Time // the deadline of data writes, set by SetWriteDeadline
	// werr is the error of the first write that failed: part of that frame may be on the wire, so
	// nothing more is written and every later write returns it.
	werr error

	// onCloseSent, when set (by the Session that owns c), runs under wmu when c is about to send a
	// close frame, whoever asked for it: before the frame can reach the peer. It must not write.
	onCloseSent func()
}

// NewConn allocates a Conn and its buffers (CONTRACT W9: sessions' buffers are preallocated).
func NewConn(cfg Config) *Conn {
	cfg = cfg.withDefaults()
	return &Conn{
		cfg:  cfg,
		rbuf: make([]byte, cfg.ReadBufferSize),
		msg:  make([]byte, cfg.MaxMessage),
		wbuf: make([]byte, cfg.WriteBufferSize),
	}
}

// Reset binds c to a stream whose handshake is done; buffered holds bytes already read past the
// handshake (the start of the first frame). Reset must not run concurrently with any other method.
// When buffered does not fit the read buffer, Reset returns ErrBufferedTooLarge with c bound to s
// and nothing buffered: the stream's place in the frames is lost, so nothing can be read, but a close
// can still be sent.
func (c *Conn) Reset(s conn.Stream, buffered []byte) error {
	var err error
	if len(buffered) > len(c.rbuf) {
		buffered, err = nil, ErrBufferedTooLarge
	}
	c.s = s
	c.r, c.w = 0, copy(c.rbuf, buffered)
	c.msgLen, c.msgOp, c.returned = 0, 0, false
	c.frRemain, c.inFrame, c.maskPos, c.ctrlLen = 0, false, 0, 0
	c.utf8 = utf8State{}
	// Nothing can be read from a stream whose start was dropped.
	c.closeRecv, c.closeSent = err != nil, false
	c.wdl, c.werr = time.Time{}, nil
	c.frames.Store(0)
	return err
}

// discard reads and drops what the peer sends until the stream ends or fails, or deadline passes; it
// returns the error that ended it (ErrInterrupted included). For a stream where no frame boundary is
// known any more, after a close was sent: the close is not lost to a reset caused by unread bytes.
func (c *Conn) discard(deadline time.Time) error {
	c.s.SetReadDeadline(deadline)
	for {
		n, err := c.s.Read(c.rbuf)
		if n == 0 {
			return c.streamErr(err)
		}
	}
}

// Frames returns the number of frames received since Reset, control frames included.
func (c *Conn) Frames() uint64 { return c.frames.Load() }

// Stream returns the stream c runs over.
func (c *Conn) Stream() conn.Stream { return c.s }

// ReadMessage returns the next whole message: its opcode (OpText or OpBinary) and its payload, valid
// until the next ReadMessage. Control frames are handled on the way: a ping is answered with a pong
// carrying its payload, a pong is ignored, a close is answered and ends the session with a *CloseError
// (CONTRACT W5, W6). A violation sends the matching close code and returns a *ProtocolError; a pong
// that cannot be written ends the session with a *WriteError. A stream error of the read (a
// deadline, EOF) is returned as is, and ReadMessage may be called again after a deadline error: its
// state survives.
func (c *Conn) ReadMessage() (Opcode, []byte, error) {
	if c.returned {
		c.msgLen, c.msgOp, c.returned = 0, 0, false
	}
	if c.closeRecv {
		return 0, nil, io.EOF
	}
	for {
		if !c.inFrame {
			h, n, err := ParseHeader(c.rbuf[c.r:c.w])
			if err != nil {
				return 0, nil, c.fail(CloseProtocolError, "64-bit length with the top bit set")
			}
			if n == 0 {
				if err := c.fill(); err != nil {
					return 0, nil, err
				}
				continue
			}
			c.r += n
			c.frames.Add(1)
			if err := c.checkHeader(&h); err != nil {
				return 0, nil, err
			}
			c.fr, c.frRemain, c.inFrame, c.maskPos, c.ctrlLen = h, h.Length, true, 0, 0
			if !h.Op.IsControl() && h.Op != OpContinuation {
				c.msgOp = h.Op
			}
		}
		if err := c.readPayload(); err != nil {
			return 0, nil, err
		}
		c.inFrame = false
		if c.fr.Op.IsControl() {
			if err := c.control(); err != nil {
				return 0, nil, err
			}
			continue
		}
		if !c.fr.Fin {
			continue
		}
		if c.msgOp == OpText && !c.utf8.complete() {
			return 0, nil, c.fail(CloseInvalidPayload, "text message ends inside a UTF-8 sequence")
		}
		c.utf8 = utf8State{}
		c.returned = true
		return c.msgOp, c.msg[:c.msgLen], nil
	}
}

// checkHeader applies the framing rules of CONTRACT W3 and the size limit of W7 before any payload
// byte is read.
func (c *Conn) checkHeader(h *Header) error {
	switch {
	case h.Rsv != 0:
		return c.fail(CloseProtocolError, "reserved bits set without an extension")
	case h.Op.isReserved():
		return c.fail(CloseProtocolError, "reserved opcode")
	case !h.Masked:
		return c.fail(CloseProtocolError, "client frame not masked")
	case h.Op.IsControl() && (h.Length > maxControl || !h.Fin):
		return c.fail(CloseProtocolError, "control frame fragmented or longer than 125 bytes")
	case h.Op == OpContinuation && c.msgOp == 0:
		return c.fail(CloseProtocolError, "continuation without a message")
	case (h.Op == OpText || h.Op == OpBinary) && c.msgOp != 0:
		return c.fail(CloseProtocolError, "new message inside a fragmented message")
	case !h.Op.IsControl() && h.Length > int64(c.cfg.MaxMessage-c.msgLen):
		return c.fail(CloseTooBig, "message larger than the limit")
	}
	return nil
}

// readPayload reads the rest of the current frame's payload into the message or control buffer.
func (c *Conn) readPayload() error {
	for c.frRemain > 0 {
		var dst []byte
		if c.fr.Op.IsControl() {
			dst = c.ctrl[c.ctrlLen : c.ctrlLen+int(c.frRemain)]
		} else {
			dst = c.msg[c.msgLen : c.msgLen+int(c.frRemain)]
		}
		var k int
		if c.r < c.w {
			k = copy(dst, c.rbuf[c.r:c.w])
			c.r += k
		} else if len(dst) >= len(c.rbuf) {
			// A large payload is read straight into the message buffer.
			n, err := c.s.Read(dst)
			if n == 0 {
				return c.streamErr(err)
			}
			k = n
		} else {
			if err := c.fill(); err != nil {
				return err
			}
			continue
		}
		c.maskPos = MaskBytes(c.fr.Mask, c.maskPos, dst[:k])
		c.frRemain -= int64(k)
		if c.fr.Op.IsControl() {
			c.ctrlLen += k
			continue
		}
		if c.msgOp == OpText && !c.utf8.feed(dst[:k]) {
			return c.fail(CloseInvalidPayload, "invalid UTF-8 in a text message")
		}
		c.msgLen += k
	}
	return nil
}

// control handles a complete control frame (CONTRACT W5, W6).
func (c *Conn) control() error {
	p := c.ctrl[:c.ctrlLen]
	switch c.fr.Op {
	case OpPing:
		c.wmu.Lock()
		defer c.wmu.Unlock()
		if c.closeSent {
			return nil
		}
		n := copy(c.pong[:], p)
		if err := c.writeControlLocked(OpPong, c.pong[:n]); err != nil {
			c.closeRecv = true // nothing more is read from a session that cannot write
			return &WriteError{Op: OpPong, Err: err}
		}
		return nil
	case OpPong:
		return nil
	}
	// Close.
	c.closeRecv = true
	code := CloseNoStatus
	var reason []byte
	switch {
	case len(p) == 1:
		return c.fail(CloseProtocolError, "one-byte close payload")
	case len(p) >= 2:
		code = int(binary.BigEndian.Uint16(p))
		reason = p[2:]
		if !validCloseCode(code) {
			return c.fail(CloseProtocolError, "invalid close code")
		}
		var u utf8State
		if !u.feed(reason) || !u.complete() {
			return c.fail(CloseInvalidPayload, "invalid UTF-8 in close reason")
		}
	}
	reply := code
	if code == CloseNoStatus {
		reply = CloseNormal
	}
	c.wmu.Lock()
	if !c.closeSent {
		c.markCloseSentLocked()
		var b [2]byte
		binary.BigEndian.PutUint16(b[:], uint16(reply))
		_ = c.writeControlLocked(OpClose, b[:])
	}
	c.wmu.Unlock()
	return &CloseError{Code: code, Reason: string(reason)}
}

// validCloseCode reports whether a peer may send code (RFC 6455 7.4; CONTRACT W6).
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// fail sends a close frame with code and returns the matching *ProtocolError (RFC 6455 7.1.7).
func (c *Conn) fail(code int, msg string) error {
	c.closeRecv = true // nothing more is read from a failed session
	_ = c.WriteClose(code, "")
	return &ProtocolError{Code: code, Msg: msg}
}

func (c *Conn) fill() error {
	if c.r == c.w {
		c.r, c.w = 0, 0
	} else if c.r > 0 && len(c.rbuf)-c.w < MaxHeaderSize {
		c.w = copy(c.rbuf, c.rbuf[c.r:c.w])
		c.r = 0
	}
	n, err := c.s.Read(c.rbuf[c.w:])
	if n == 0 {
		return c.streamErr(err)
	}
	c.w += n
	return nil
}

func (c *Conn) streamErr(err error) error {
	if err == nil {
		return io.ErrNoProgress
	}
	if err == io.EOF {
		return io.ErrUnexpectedEOF // TCP closed without a close frame (1006)
	}
	return err
}

// WriteMessage sends one whole message as a single frame; op is OpText or OpBinary (or a control
// opcode, whose payload must be at most 125 bytes; a close payload must be valid, see
// ErrInvalidClose). After a close frame it returns ErrClosed, after a write that failed that write's
// error, and sends nothing. Safe for concurrent use (CONTRACT W8).
func (c *Conn) WriteMessage(op Opcode, p []byte) error {
	if op.IsControl() && len(p) > maxControl {
		return ErrControlTooLarge
	}
	if op == OpClose && !validClosePayload(p) {
		return ErrInvalidClose
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	switch {
	case c.werr != nil:
		return c.werr
	case c.closeSent:
		return ErrClosed
	case !op.IsControl():
		return c.writeFrameLocked(op, p)
	case op == OpClose:
		c.markCloseSentLocked()
	}
	return c.writeControlLocked(op, p)
}

// WritePing sends a ping with payload p (at most 125 bytes).
func (c *Conn) WritePing(p []byte) error { return c.WriteMessage(OpPing, p) }

// WriteClose sends a close frame with code and reason, once; later calls return nil without sending
// (or the error of a write that failed, after which nothing is sent). An invalid code or a reason
// that is not UTF-8 is refused with ErrInvalidClose. After it, the reader should read until the
// peer's close (a *CloseError) within a bounded time and then end the session (CONTRACT W6).
func (c *Conn) WriteClose(code int, reason string) error {
	var p [maxControl]byte
	binary.BigEndian.PutUint16(p[:], uint16(code))
	// RFC 6455 5.5, 7.1.6: the reason is UTF-8 within 123 bytes; cut it at a character boundary.
	if len(reason) > maxControl-2 {
		cut := maxControl - 2
		for cut > 0 && reason[cut]&0xC0 == 0x80 {
			cut--
		}
		reason = reason[:cut]
	}
	n := 2 + copy(p[2:], reason)
	if code < 0 || code > 0xFFFF || !validClosePayload(p[:n]) {
		return ErrInvalidClose
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil || c.closeSent {
		return c.werr
	}
	c.markCloseSentLocked()
	return c.writeControlLocked(OpClose, p[:n])
}

// markCloseSentLocked records that a close frame is about to go out and tells c's owner.
func (c *Conn) markCloseSentLocked() {
	c.closeSent = true
	if c.onCloseSent != nil {
		c.onCloseSent()
	}
}

// validClosePayload reports whether p may go out as a close payload: empty, or a code a peer accepts
// followed by a UTF-8 reason (RFC 6455 5.5.1, 7.4; the peer applies CONTRACT W4 and W6 to it).
func validClosePayload(p []byte) bool {
	switch len(p) {
	case 0:
		return true
	case 1:
		return false
	}
	if !validCloseCode(int(binary.BigEndian.Uint16(p))) {
		return false
	}
	var u utf8State
	return u.feed(p[2:]) && u.complete()
}

// CloseSent reports whether a close frame was sent.
func (c *Conn) CloseSent() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.closeSent
}

// writeState reports whether a close frame was sent and the error of a failed write, if any.
func (c *Conn) writeState() (closeSent bool, werr error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.closeSent, c.werr
}

// SetWriteDeadline sets the deadline of the data writes that follow; it waits for a write in
// progress. Control frames have their own (Config.WriteTimeout).
func (c *Conn) SetWriteDeadline(t time.Time) {
	c.wmu.Lock()
	c.wdl = t
	c.s.SetWriteDeadline(t)
	c.wmu.Unlock()
}

// writeControlLocked writes a control frame under a deadline of its own, then puts back the deadline
// of data writes. The one set last may be long past, and a pong would then fail at once, or none, and
// a pong to a peer that does not read would block the reader forever (CONTRACT W5, W6).
func (c *Conn) writeControlLocked(op Opcode, p []byte) error {
	c.s.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
	err := c.writeFrameLocked(op, p)
	c.s.SetWriteDeadline(c.wdl)
	return err
}

// writeFrameLocked writes one unmasked final frame (servers do not mask, RFC 6455 5.1). After a write
// failed it writes nothing and returns that failure: a frame after a partial one would corrupt the
// stream.
func (c *Conn) writeFrameLocked(op Opcode, p []byte) error {
	if c.werr != nil {
		return c.werr
	}
	n := PutHeader(c.wbuf, Header{Fin: true, Op: op, Length: int64(len(p))})
	k := copy(c.wbuf[n:], p)
	err := writeAll(c.s, c.wbuf[:n+k])
	if err == nil && k < len(p) {
		err = writeAll(c.s, p[k:])
	}
	if err != nil {
		c.werr = err
	}
	return err
}

func writeAll(s conn.Stream, p []byte) error {
	for len(p) > 0 {
		n, err := s.Write(p)
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		p = p[n:]
	}
	return nil
}
