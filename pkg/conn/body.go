package conn

import (
	"errors"
	"io"
	"math"
	"os"
	"time"
)

// Body kinds of a request (RFC 9112 6.3).
const (
	bodyNone uint8 = iota
	bodyLength
	bodyChunked
)

// States of the chunked decoder (RFC 9112 7.1).
const (
	csSize         uint8 = iota // hex digits of chunk-size
	csSizeWS                    // whitespace after the size, before ';' or CR
	csExt                       // chunk extensions, skipped
	csSizeLF                    // LF ending the size line
	csData                      // chunk data
	csDataCR                    // CR after chunk data
	csDataLF                    // LF after chunk data
	csTrailer                   // start of a trailer line or of the final blank line
	csTrailerName               // trailer field name
	csTrailerValue              // trailer field value
	csTrailerLF                 // LF ending a trailer line
	csEndLF                     // LF of the final blank line
)

// Read reads the request body (io.Reader). It returns io.EOF at the end of the body, at once for a
// request without one; a malformed, too large or cut short body is an error, and the connection then
// closes after the response. For an Expect: 100-continue request the first Read sends
// HTTP/1.1 100 Continue (CONTRACT H11), unless the handler sent a 100 itself (WriteHeader(100)) or the
// final response head has already gone out (Flush): as in net/http, no interim response follows the
// final head, and the client sends the body when it stops waiting for the 100.
func (c *Connection) Read(p []byte) (int, error) {
	if c.state != StateRequest && c.state != StateResponse {
		return 0, ErrInvalidState
	}
	return c.readBody(p)
}

func (c *Connection) readBody(p []byte) (int, error) {
	if c.bodyErr != nil {
		return 0, c.bodyErr
	}
	if c.bodyKind == bodyNone || c.bodyDone {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if c.expect100 && !c.sent100 && !c.resp.headSent {
		// CONTRACT H11: the client waits for this before sending the body.
		c.sent100 = true
		if err := c.writeRaw(continueLine); err != nil {
			return 0, c.failBody(err)
		}
	}
	var n int
	var err error
	if c.bodyKind == bodyLength {
		n, err = c.readLength(p)
	} else {
		n, err = c.readChunked(p)
	}
	if err != nil && err != io.EOF {
		return n, c.failBody(err)
	}
	return n, err
}

var continueLine = []byte("HTTP/1.1 100 Continue\r\n\r\n")

func (c *Connection) failBody(err error) error {
	c.bodyErr = err
	c.closeAfter = true
	return err
}

func (c *Connection) readLength(p []byte) (int, error) {
	if int64(len(p)) > c.bodyRemain {
		p = p[:c.bodyRemain]
	}
	var n int
	if c.r < c.w {
		n = copy(p, c.rbuf[c.r:c.w])
		c.r += n
	} else {
		// Large bodies go straight into the caller's buffer: never past the body's end, so the next
		// request's bytes stay in the socket (CONTRACT H1).
		var err error
		n, err = c.fill(p)
		if n == 0 {
			if err == io.EOF {
				err = ErrIncompleteBody
			}
			return 0, err
		}
	}
	c.bodyRemain -= int64(n)
	if c.bodyRemain == 0 {
		c.bodyDone = true
	}
	return n, nil
}

// fill reads from the stream into p under the io and handler deadlines (CONTRACT S6).
func (c *Connection) fill(p []byte) (int, error) {
	d, err := c.ioDeadline()
	if err != nil {
		return 0, err
	}
	c.s.SetReadDeadline(d)
	n, err := c.s.Read(p)
	c.stats.Received += int64(n)
	if n > 0 {
		return n, nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return 0, c.timeoutError(err, d)
}

// ioDeadline returns the deadline of the next read or write: the io timeout, capped by the handler
// deadline; ErrHandlerTimeout once that has passed.
func (c *Connection) ioDeadline() (time.Time, error) {
	now := time.Now()
	if !c.deadline.IsZero() && !now.Before(c.deadline) {
		return time.Time{}, ErrHandlerTimeout
	}
	d := now.Add(c.cfg.IOTimeout)
	if !c.deadline.IsZero() && c.deadline.Before(d) {
		d = c.deadline
	}
	return d, nil
}

// timeoutError turns a deadline error into ErrHandlerTimeout when the handler deadline was the one
// that expired.
func (c *Connection) timeoutError(err error, d time.Time) error {
	if errors.Is(err, os.ErrDeadlineExceeded) && d.Equal(c.deadline) {
		return ErrHandlerTimeout
	}
	return err
}

// refill makes buffered body bytes available: it reads into the free part of the read buffer after
// the head (which stays intact for the handler). There is always room: the buffer has slack beyond B.
func (c *Connection) refill() error {
	if c.r == c.w {
		c.r, c.w = c.headEnd, c.headEnd
	}
	n, err := c.fill(c.rbuf[c.w:])
	if n == 0 {
		if err == io.EOF {
			return ErrIncompleteBody // CONTRACT H9: EOF before the last chunk is never a clean end
		}
		return err
	}
	c.w += n
	return nil
}

// readChunked decodes the chunked coding (CONTRACT H9). It consumes bytes only up to the LF that ends
// the body, so a pipelined request after it is intact.
func (c *Connection) readChunked(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if c.r == c.w {
			if n > 0 {
				return n, nil // deliver what is decoded before blocking again
			}
			if err := c.refill(); err != nil {
				return 0, err
			}
		}
		if c.cs == csData {
			k := c.w - c.r
			if int64(k) > c.chunkRemain {
				k = int(c.chunkRemain)
			}
			if k > len(p)-n {
				k = len(p) - n
			}
			if c.bodyRead+int64(k) > c.cfg.MaxBody {
				return n, ErrBodyTooLarge // CONTRACT H10
			}
			copy(p[n:], c.rbuf[c.r:c.r+k])
			c.r += k
			n += k
			c.bodyRead += int64(k)
			c.chunkRemain -= int64(k)
			if c.chunkRemain == 0 {
				c.cs = csDataCR
			}
			continue
		}
		b := c.rbuf[c.r]
		c.r++
		if err := c.chunkByte(b); err != nil {
			return n, err
		}
		if c.bodyDone {
			return n, io.EOF
		}
	}
	return n, nil
}

// chunkByte advances the decoder over one framing byte.
func (c *Connection) chunkByte(b byte) error {
	switch c.cs {
	case csSize:
		if v, ok := unhex(b); ok {
			if c.chunkRemain > (math.MaxInt64-int64(v))>>4 {
				return wrapProto(ErrChunkedFraming, "chunk size overflows")
			}
			c.chunkRemain = c.chunkRemain<<4 | int64(v)
			c.sizeDigits++
			if c.sizeDigits > 16 {
				// Only leading zeros fit past 16 digits: they count with extensions and trailers
				// (CONTRACT H9), or a client could send them until the handler deadline.
				return c.countMeta()
			}
			return nil
		}
		if c.sizeDigits == 0 {
			return wrapProto(ErrChunkedFraming, "missing chunk size")
		}
		switch b {
		case ' ', '\t':
			c.cs = csSizeWS
		case ';':
			c.cs = csExt
		case '\r':
			// The CR ending a plain size line is framing, not an extension: counting it would refuse
			// any body of more than B chunks (CONTRACT H9 bounds extensions and trailers only).
			c.cs = csSizeLF
			return nil
		default:
			return wrapProto(ErrChunkedFraming, "invalid chunk size")
		}
		return c.countMeta()
	case csSizeWS:
		switch b {
		case ' ', '\t':
		case ';':
			c.cs = csExt
		case '\r':
			c.cs = csSizeLF
		default:
			return wrapProto(ErrChunkedFraming, "invalid chunk size line")
		}
		return c.countMeta()
	case csExt:
		switch {
		case b == '\r':
			c.cs = csSizeLF
		case !valueTable[b]:
			return wrapProto(ErrChunkedFraming, "control byte in chunk extension")
		}
		return c.countMeta()
	case csSizeLF:
		if b != '\n' {
			return wrapProto(ErrChunkedFraming, "bare CR in chunk size line")
		}
		if c.chunkRemain == 0 {
			c.cs = csTrailer
		} else {
			c.cs = csData
		}
	case csDataCR:
		if b != '\r' {
			return wrapProto(ErrChunkedFraming, "chunk data not followed by CRLF")
		}
		c.cs = csDataLF
	case csDataLF:
		if b != '\n' {
			return wrapProto(ErrChunkedFraming, "chunk data not followed by CRLF")
		}
		c.cs, c.sizeDigits = csSize, 0
	case csTrailer:
		switch {
		case b == '\r':
			c.cs = csEndLF
		case tokenTable[b]:
			c.cs = csTrailerName
		default:
			return wrapProto(ErrChunkedFraming, "malformed trailer")
		}
		return c.countMeta()
	case csTrailerName:
		switch {
		case b == ':':
			c.cs = csTrailerValue
		case !tokenTable[b]:
			return wrapProto(ErrChunkedFraming, "malformed trailer name")
		}
		return c.countMeta()
	case csTrailerValue:
		switch {
		case b == '\r':
			c.cs = csTrailerLF
		case !valueTable[b]:
			return wrapProto(ErrChunkedFraming, "control byte in trailer")
		}
		return c.countMeta()
	case csTrailerLF:
		if b != '\n' {
			return wrapProto(ErrChunkedFraming, "bare CR in trailer")
		}
		c.cs = csTrailer
	case csEndLF:
		if b != '\n' {
			return wrapProto(ErrChunkedFraming, "bare CR after trailers")
		}
		c.bodyDone = true
	}
	return nil
}

// countMeta bounds the bytes of chunk extensions and trailers per request (CONTRACT H9).
func (c *Connection) countMeta() error {
	c.metaBytes++
	if c.metaBytes > c.cfg.BufferSize {
		return ErrChunkedMetaTooBig
	}
	return nil
}

// drainBody discards the unread rest of the request body before a response head goes out, up to
// MaxDrain (CONTRACT H11, H12). It reports whether the connection can carry another request.
func (c *Connection) drainBody() bool {
	if c.bodyKind == bodyNone || c.bodyDone {
		return c.bodyErr == nil
	}
	if c.bodyErr != nil {
		return false
	}
	if c.expect100 && !c.sent100 {
		// CONTRACT H11: the client waits for 100 Continue; keep the connection only when the whole
		// body has arrived anyway.
		if c.bodyKind != bodyLength || int64(c.w-c.r) < c.bodyRemain {
			return false
		}
		c.r += int(c.bodyRemain)
		c.bodyRemain, c.bodyDone = 0, true
		return true
	}
	if c.bodyKind == bodyLength && c.bodyRemain-int64(c.w-c.r) > c.cfg.MaxDrain {
		return false
	}
	var drained int64
	scratch := c.scratch
	for drained <= c.cfg.MaxDrain {
		n, err := c.readBody(scratch)
		drained += int64(n)
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
	}
	return false
}
