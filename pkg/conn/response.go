package conn

import (
	"strconv"
	"time"
	"unsafe"
)

// Response framings (CONTRACT H15).
const (
	framingNone    uint8 = iota // HEAD, 1xx, 204, 304: no body, no terminator
	framingLength               // Content-Length
	framingChunked              // HTTP/1.1, length unknown when the head goes out
	framingClose                // HTTP/1.0, length unknown: the body ends when the connection closes
)

// Sizes of the write buffer's parts. The head is assembled in front of the buffered body, so that a
// whole response leaves in one write (CONTRACT H16).
const (
	arenaSize   = 1024                             // response header lines set by the handler
	maxReason   = 64                               // longest custom reason phrase
	headReserve = 16 + maxReason + arenaSize + 192 // status line, arena, edged's own headers, chunk size line
	tailReserve = 8                                // CRLF after a chunk, "0\r\n\r\n"
)

// response is the response half of a Connection.
type response struct {
	wbuf    []byte // [headReserve][body W][tailReserve]
	n       int    // end of buffered body bytes; the body starts at headReserve
	bodyEnd int    // headReserve + W
	arena   []byte // "Name: value\r\n" lines, cap arenaSize
	hbuf    []byte // head assembly, cap headReserve

	code        int
	reason      string
	cl          int64 // declared Content-Length, -1 if none
	written     int64 // body bytes accepted
	committed   bool  // status chosen
	headSent    bool  // head written to the stream
	framing     uint8
	dateSet     bool
	connClose   bool
	connUpgrade bool
	upgradeHdr  bool  // an Upgrade header is among the headers set
	err         error // sticky: a refused header, a timeout
}

func (r *response) init(w int) {
	r.wbuf = make([]byte, headReserve+w+tailReserve)
	r.bodyEnd = headReserve + w
	r.arena = make([]byte, 0, arenaSize)
	r.hbuf = make([]byte, 0, headReserve)
}

func (r *response) reset() {
	r.n = headReserve
	r.arena = r.arena[:0]
	r.code, r.reason, r.cl, r.written = 0, "", -1, 0
	r.committed, r.headSent, r.framing = false, false, framingNone
	r.dateSet, r.connClose, r.connUpgrade, r.upgradeHdr, r.err = false, false, false, false, nil
}

// ResponseStarted reports whether a response head has been committed.
func (c *Connection) ResponseStarted() bool { return c.resp.committed }

// SetHeader adds a response header line. Content-Length, Connection, Transfer-Encoding and Date are
// interpreted: framing stays edged's job (CONTRACT H15), so Transfer-Encoding is dropped and Connection
// only contributes its close and upgrade tokens (upgrade goes out on a 101; on another response, such
// as a 426, it goes out whenever the handler set an Upgrade header, Connection or not). It returns
// ErrBadResponseHeader for a name that is not a token or a value with CR, LF, NUL or another control
// byte but HTAB, and the whole response is then refused with 500 (CONTRACT H14).
func (c *Connection) SetHeader(name, value string) error {
	return c.addHeader(name, unsafe.Slice(unsafe.StringData(value), len(value)))
}

// SetHeaderBytes is SetHeader with the value as bytes (copied).
func (c *Connection) SetHeaderBytes(name string, value []byte) error {
	return c.addHeader(name, value)
}

func (c *Connection) addHeader(name string, value []byte) error {
	r := &c.resp
	if c.state != StateRequest {
		return ErrInvalidState
	}
	if r.err != nil {
		return r.err
	}
	if !isTokenString(name) {
		return c.refuse(ErrBadResponseHeader)
	}
	for _, b := range value {
		// CR, LF and NUL would split the response; the other control bytes make it malformed
		// (RFC 9110 5.5): strict clients refuse it whole, as edged refuses them in requests (H5).
		if !valueTable[b] {
			return c.refuse(ErrBadResponseHeader)
		}
	}
	switch len(name) {
	case 4:
		if equalFoldString([]byte(name), "date") {
			r.dateSet = true
		}
	case 10:
		if equalFoldString([]byte(name), "connection") {
			for list := value; list != nil; {
				var tok []byte
				tok, list = nextToken(list)
				switch {
				case equalFold(tok, "close"):
					r.connClose = true
				case equalFold(tok, "upgrade"):
					r.connUpgrade = true
				}
			}
			return nil
		}
	case 14:
		if equalFoldString([]byte(name), "content-length") {
			n, ok := parseContentLength(trimOWS(value))
			if !ok {
				return c.refuse(ErrBadResponseHeader)
			}
			r.cl = n
			return nil
		}
	case 17:
		if equalFoldString([]byte(name), "transfer-encoding") {
			return nil
		}
	}
	if len(r.arena)+len(name)+len(value)+4 > cap(r.arena) {
		return c.refuse(ErrHeaderSpace)
	}
	if len(name) == 7 && equalFoldString([]byte(name), "upgrade") {
		r.upgradeHdr = true
	}
	r.arena = append(r.arena, name...)
	r.arena = append(r.arena, ": "...)
	r.arena = append(r.arena, value...)
	r.arena = append(r.arena, "\r\n"...)
	return nil
}

// refuse records err as the response's fate: nothing of it is sent, the exchange ends in an error
// response (CONTRACT H14).
func (c *Connection) refuse(err error) error {
	if c.resp.err == nil {
		c.resp.err = err
	}
	return err
}

// SetContentLength declares the response body length.
func (c *Connection) SetContentLength(n int64) {
	if c.state == StateRequest && n >= 0 {
		c.resp.cl = n
	}
}

// WriteHeader commits the status code with its standard reason phrase (CONTRACT H13). Interim codes
// 100, 102 and 103 are sent at once with the headers set so far, and the response stays open. A 100
// sent this way takes the place of the automatic 100 Continue of Read (CONTRACT H11); other interim
// codes do not.
func (c *Connection) WriteHeader(code int) error { return c.WriteHeaderReason(code, "") }

// WriteHeaderReason commits the status code with the given reason phrase ("" for the standard one).
// The handler deadline is checked when the response is flushed: past it, a response whose head has not
// gone out is replaced by 503, and Flush, Write and Reply return ErrHandlerTimeout once they flush.
func (c *Connection) WriteHeaderReason(code int, reason string) error {
	r := &c.resp
	if c.state != StateRequest {
		return ErrInvalidState
	}
	if r.err != nil {
		return r.err
	}
	if code < 100 || code > 599 {
		return c.refuse(ErrBadStatus)
	}
	if len(reason) > maxReason {
		return c.refuse(ErrBadStatus)
	}
	for i := 0; i < len(reason); i++ {
		if b := reason[i]; b < 0x20 && b != '\t' || b == 0x7f {
			return c.refuse(ErrBadStatus)
		}
	}
	if code == 101 && c.minor == 0 {
		// RFC 9110 7.8, 15.2: no 1xx response to an HTTP/1.0 client, whose Upgrade is ignored.
		return c.refuse(ErrBadStatus)
	}
	if code < 200 && code != 101 {
		return c.sendInterim(code, reason)
	}
	if reason == "" {
		reason = reasonPhrase(code)
	}
	r.code, r.reason, r.committed = code, reason, true
	c.stats.Status = code
	c.state = StateResponse
	if code == 101 {
		c.closeAfter = true // after a switch, HTTP is over on this stream
	}
	return nil
}

// sendInterim writes a 1xx interim response head at once (RFC 9110 15.2).
func (c *Connection) sendInterim(code int, reason string) error {
	if c.minor == 0 {
		return nil // HTTP/1.0 clients do not understand interim responses
	}
	if code == 100 {
		// CONTRACT H11: the client is told to send the body once; Read sends no second 100, and a
		// body left unread is drained as after the automatic one (net/http's canWriteContinue).
		c.sent100 = true
	}
	if reason == "" {
		reason = reasonPhrase(code)
	}
	h := c.appendStatusLine(c.resp.hbuf[:0], code, reason)
	h = append(h, c.resp.arena...)
	h = append(h, "\r\n"...)
	// The headers set so far, a Date among them, left with the interim response: the final one gets
	// edged's Date again unless the handler sets another (CONTRACT H15).
	c.resp.arena = c.resp.arena[:0]
	c.resp.dateSet, c.resp.upgradeHdr = false, false
	if err := c.writeRaw(h); err != nil {
		return c.refuse(err)
	}
	return nil
}

func (c *Connection) appendStatusLine(h []byte, code int, reason string) []byte {
	if c.minor == 0 {
		h = append(h, "HTTP/1.0 "...)
	} else {
		h = append(h, "HTTP/1.1 "...)
	}
	h = strconv.AppendInt(h, int64(code), 10)
	h = append(h, ' ')
	h = append(h, reason...)
	return append(h, "\r\n"...)
}

// Write writes response body bytes, committing 200 OK first if WriteHeader was not called. Writes to a
// response that carries no body return ErrBodyNotAllowed, except for HEAD, whose body is counted (for
// the Content-Length GET would have) and dropped.
func (c *Connection) Write(p []byte) (int, error) {
	if err := c.beginWrite(); err != nil {
		return 0, err
	}
	r := &c.resp
	p, lerr := c.clip(p)
	if c.noBody() {
		if c.method == MethodHead {
			r.written += int64(len(p))
			return len(p), lerr
		}
		return 0, ErrBodyNotAllowed
	}
	total := len(p)
	for len(p) > 0 {
		if r.n == headReserve && r.headSent && len(p) >= r.bodyEnd-headReserve && r.framing != framingChunked {
			// A large write with an empty buffer goes out without a copy.
			if err := c.writeRaw(p); err != nil {
				return total - len(p), c.refuse(err)
			}
			r.written += int64(len(p))
			return total, lerr
		}
		if r.n == r.bodyEnd {
			if err := c.flush(false); err != nil {
				return total - len(p), err
			}
		}
		k := copy(r.wbuf[r.n:r.bodyEnd], p)
		r.n += k
		r.written += int64(k)
		p = p[k:]
	}
	return total, lerr
}

// WriteString is Write for a string, without a copy to a []byte.
func (c *Connection) WriteString(s string) (int, error) {
	return c.Write(unsafe.Slice(unsafe.StringData(s), len(s)))
}

func (c *Connection) beginWrite() error {
	if c.state == StateRequest && !c.resp.committed {
		if err := c.WriteHeader(200); err != nil {
			return err
		}
	}
	if c.state != StateResponse {
		return ErrInvalidState
	}
	return c.resp.err
}

// clip cuts p to the declared Content-Length.
func (c *Connection) clip(p []byte) ([]byte, error) {
	r := &c.resp
	if r.cl >= 0 && r.written+int64(len(p)) > r.cl && c.method != MethodHead {
		return p[:r.cl-r.written], ErrContentLength
	}
	return p, nil
}

func (c *Connection) noBody() bool {
	code := c.resp.code
	return c.method == MethodHead || code < 200 || code == 204 || code == 304
}

// Flush sends everything buffered, the response head included (CONTRACT H16).
func (c *Connection) Flush() error {
	if err := c.beginWrite(); err != nil {
		return err
	}
	return c.flush(false)
}

// Reply sends a whole response: status, Content-Type (if not empty), Content-Length and body.
func (c *Connection) Reply(code int, contentType string, body []byte) error {
	if contentType != "" {
		if err := c.SetHeader("Content-Type", contentType); err != nil {
			return err
		}
	}
	c.SetContentLength(int64(len(body)))
	if err := c.WriteHeader(code); err != nil {
		return err
	}
	if len(body) == 0 || c.noBody() {
		return nil
	}
	_, err := c.Write(body)
	return err
}

// endResponse sends what is buffered and the body's terminator, and checks the declared length.
func (c *Connection) endResponse() error {
	r := &c.resp
	if err := c.flush(true); err != nil {
		return err
	}
	if !c.closeAfter && !c.drainBody() {
		c.closeAfter = true
	}
	if r.framing == framingLength && r.written < r.cl && c.method != MethodHead {
		return ErrContentLength // the body is visibly incomplete: the connection closes (CONTRACT H17)
	}
	return nil
}

// flush writes the buffered body, preceded by the head when it has not gone out yet. final marks the
// end of the response: a body that is all in the buffer then gets a Content-Length.
func (c *Connection) flush(final bool) error {
	r := &c.resp
	if r.err != nil {
		return r.err
	}
	start := headReserve
	// One clock read per flush: the handler deadline, the Date header, the write deadline and the
	// exchange's end.
	now := time.Now()
	c.flushedAt = now
	if !c.deadline.IsZero() && !now.Before(c.deadline) {
		// CONTRACT S6: past the handler deadline a response not started is answered 503 (finish),
		// and one that started is cut.
		return c.refuse(ErrHandlerTimeout)
	}
	if !r.headSent {
		// CONTRACT H12: drain the unread request body before the head of a complete response goes
		// out. A handler that flushes earlier may still be reading the body (streaming, echo), so its
		// rest is drained when it returns (endResponse).
		if final && c.bodyKind != bodyNone && !c.bodyDone && c.bodyErr == nil {
			if !c.drainBody() {
				c.closeAfter = true
			}
			// The drain may have waited on the client: the Date, the write deadline and the
			// handler deadline count from now, not from before it.
			now = time.Now()
			c.flushedAt = now
			if !c.deadline.IsZero() && !now.Before(c.deadline) {
				return c.refuse(ErrHandlerTimeout)
			}
		} else if final && !c.drainBody() {
			c.closeAfter = true
		}
		c.chooseFraming(final)
		h := c.appendHead(r.hbuf[:0], now)
		if r.framing == framingChunked && r.n > headReserve {
			start = c.prependChunkSize(start)
		}
		start -= len(h)
		copy(r.wbuf[start:], h)
		r.headSent = true
	} else if r.framing == framingChunked && r.n > headReserve {
		start = c.prependChunkSize(start)
	}
	end := r.n
	if r.framing == framingChunked {
		if r.n > headReserve {
			end += copy(r.wbuf[end:], "\r\n")
		}
		if final {
			end += copy(r.wbuf[end:], "0\r\n\r\n")
		}
	}
	r.n = headReserve
	if end == start {
		return nil
	}
	d := now.Add(c.cfg.IOTimeout)
	if !c.deadline.IsZero() && c.deadline.Before(d) {
		d = c.deadline
	}
	if err := c.writeDeadline(r.wbuf[start:end], d); err != nil {
		return c.refuse(c.timeoutError(err, d))
	}
	return nil
}

// prependChunkSize writes the hex size line of the buffered chunk just before it.
func (c *Connection) prependChunkSize(start int) int {
	r := &c.resp
	var tmp [18]byte
	line := strconv.AppendInt(tmp[:0], int64(r.n-headReserve), 16)
	line = append(line, "\r\n"...)
	start -= len(line)
	copy(r.wbuf[start:], line)
	return start
}

// chooseFraming decides how the body is delimited (CONTRACT H15).
func (c *Connection) chooseFraming(final bool) {
	r := &c.resp
	switch {
	case c.noBody():
		r.framing = framingNone
		if c.method == MethodHead && r.cl < 0 && final && r.written > 0 {
			r.cl = r.written
		}
	case r.cl >= 0:
		r.framing = framingLength
	case final:
		r.framing = framingLength
		r.cl = int64(r.n - headReserve)
	case c.minor == 1:
		r.framing = framingChunked
	default:
		r.framing = framingClose
		c.closeAfter = true
	}
	if r.connClose || c.closing {
		c.closeAfter = true
	}
}

// appendHead appends the status line and headers (CONTRACT H13, H15).
func (c *Connection) appendHead(h []byte, now time.Time) []byte {
	r := &c.resp
	h = c.appendStatusLine(h, r.code, r.reason)
	h = append(h, r.arena...)
	if !r.dateSet {
		h = append(h, "Date: "...)
		h = append(h, c.httpDate(now)...)
		h = append(h, "\r\n"...)
	}
	code := r.code
	if r.cl >= 0 && code >= 200 && code != 204 {
		h = append(h, "Content-Length: "...)
		h = strconv.AppendInt(h, r.cl, 10)
		h = append(h, "\r\n"...)
	}
	if r.framing == framingChunked {
		h = append(h, "Transfer-Encoding: chunked\r\n"...)
	}
	switch {
	case code == 101 && r.connUpgrade:
		h = append(h, "Connection: Upgrade\r\n"...)
	case code != 101 && r.upgradeHdr && c.closeAfter:
		// A response other than 101 with an Upgrade header (426: RFC 9110, 15.5.22) lists the
		// upgrade option too, so that intermediaries do not forward it (RFC 9110, 7.8).
		h = append(h, "Connection: Upgrade, close\r\n"...)
	case code != 101 && r.upgradeHdr && c.minor == 0:
		h = append(h, "Connection: Upgrade, keep-alive\r\n"...)
	case code != 101 && r.upgradeHdr:
		h = append(h, "Connection: Upgrade\r\n"...)
	case c.closeAfter:
		h = append(h, "Connection: close\r\n"...)
	case c.minor == 0:
		h = append(h, "Connection: keep-alive\r\n"...)
	}
	return append(h, "\r\n"...)
}

// httpDate returns the Date header value for now, formatted at most once a second (CONTRACT H15).
func (c *Connection) httpDate(now time.Time) []byte {
	if sec := now.Unix(); sec != c.dateSec {
		c.dateSec = sec
		now.UTC().AppendFormat(c.date[:0], "Mon, 02 Jan 2006 15:04:05 GMT")
	}
	return c.date[:]
}

// sendError answers a request that failed before any response byte was sent: a short text body (none
// for HEAD) and Connection: close (CONTRACT H17, H18).
func (c *Connection) sendError(code int) {
	reason := reasonPhrase(code)
	// The request's version once the request line gave it, HTTP/1.1 before that (CONTRACT H13).
	h := c.appendStatusLine(c.resp.wbuf[:0], code, reason)
	h = append(h, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: "...)
	h = strconv.AppendInt(h, int64(len(reason)+1), 10)
	h = append(h, "\r\nConnection: close\r\nDate: "...)
	h = append(h, c.httpDate(time.Now())...)
	h = append(h, "\r\n\r\n"...)
	if c.method != MethodHead {
		// RFC 9110 9.3.2, RFC 9112 6.3: a response to HEAD ends with its head, whatever its
		// Content-Length says (CONTRACT H15); the client would read a body as the next response.
		h = append(h, reason...)
		h = append(h, '\n')
	}
	c.resp.headSent = true
	_ = c.writeDeadline(h, time.Now().Add(c.cfg.IOTimeout))
}
