package conn

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"time"
)

// header is one request header line; both slices point into the read buffer.
type header struct {
	name, value []byte
}

// slashPath is the path of an absolute-form target without one (RFC 9112 3.2.2).
var slashPath = []byte("/")

// readHead reads bytes until a whole request head is buffered and parses it (CONTRACT H1, H2, H5).
// Bytes after the head stay in the buffer as body or as the next pipelined request.
func (c *Connection) readHead() error {
	// Move leftover bytes of the previous exchange to the front; the new head starts at 0.
	if c.r > 0 {
		c.w = copy(c.rbuf, c.rbuf[c.r:c.w])
		c.r = 0
	}
	limit := c.cfg.BufferSize
	scanned := 0 // bytes of rbuf[:c.w] already checked for line endings
	skipped := 0 // empty lines skipped before the request line
	for {
		if scanned == 0 {
			// RFC 9112 2.2: ignore empty lines before the request line, within the buffer's size.
			s := 0
			for c.w-s >= 2 && c.rbuf[s] == '\r' && c.rbuf[s+1] == '\n' {
				s += 2
			}
			if s > 0 {
				if skipped += s; skipped > limit {
					return wrapProto(ErrBadRequest, "too many empty lines")
				}
				c.w = copy(c.rbuf, c.rbuf[s:c.w])
			}
		}
		// Every LF must follow a CR and every CR must precede a LF (CONTRACT H5); the head ends at
		// the first CRLFCRLF.
		for scanned < c.w {
			switch c.rbuf[scanned] {
			case '\r':
				if scanned+1 == c.w {
					goto more // decide once the next byte is here
				}
				if c.rbuf[scanned+1] != '\n' {
					return wrapProto(ErrBadRequest, "bare CR")
				}
			case '\n':
				if scanned == 0 || c.rbuf[scanned-1] != '\r' {
					return wrapProto(ErrBadRequest, "bare LF")
				}
				if scanned >= 3 && c.rbuf[scanned-2] == '\n' {
					end := scanned + 1
					c.r, c.headEnd = end, end
					return c.parseHead(c.rbuf[:end])
				}
			}
			scanned++
		}
	more:
		if c.w >= limit {
			if bytes.IndexByte(c.rbuf[:c.w], '\n') < 0 {
				return ErrURITooLong
			}
			return ErrHeadTooLarge
		}
		if err := c.fillHead(limit, c.w > 0 || skipped > 0); err != nil {
			return err
		}
	}
}

// fillHead reads more head bytes. The first byte is awaited under the keep-alive timeout; from the first
// byte on, the whole head must arrive within the head timeout (CONTRACT S6).
func (c *Connection) fillHead(limit int, started bool) error {
	now := time.Now()
	if !started {
		c.s.SetReadDeadline(now.Add(c.cfg.KeepAliveTimeout))
	} else if c.headDeadline.IsZero() {
		c.headDeadline = now.Add(c.cfg.HeaderTimeout)
		c.s.SetReadDeadline(c.headDeadline)
	}
	n, err := c.s.Read(c.rbuf[c.w:limit])
	if n > 0 {
		if c.w == 0 && c.stats.Start.IsZero() {
			c.stats.Start = now
		}
		c.w += n
		c.stats.Received += int64(n)
		if c.headDeadline.IsZero() {
			c.headDeadline = now.Add(c.cfg.HeaderTimeout)
			c.s.SetReadDeadline(c.headDeadline)
		}
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	empty := !started
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		if empty {
			return ErrIdle
		}
		return ErrHeadTimeout
	case err == io.EOF && !empty:
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseHead parses a complete head ending in CRLFCRLF (CONTRACT H3-H8).
func (c *Connection) parseHead(h []byte) error {
	eol := bytes.IndexByte(h, '\r')
	if err := c.parseRequestLine(h[:eol]); err != nil {
		return err
	}
	rest := h[eol+2:]
	var (
		hosts               int
		clSeen, teSeen      bool
		cl                  int64
		teChunked, teOther  bool
		teBad               bool
		expectOther         bool
		connClose, connKeep bool
	)
	c.nhdr = 0
	for {
		eol = bytes.IndexByte(rest, '\r')
		if eol == 0 {
			break // the blank line
		}
		line := rest[:eol]
		rest = rest[eol+2:]
		if line[0] == ' ' || line[0] == '\t' {
			return wrapProto(ErrBadRequest, "obsolete line folding")
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return wrapProto(ErrBadRequest, "malformed header name")
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		for _, b := range value {
			if !valueTable[b] {
				return wrapProto(ErrBadRequest, "control byte in header value")
			}
		}
		if c.nhdr == len(c.hdrs) {
			return ErrTooManyHeaders
		}
		c.hdrs[c.nhdr] = header{name, value}
		c.nhdr++
		switch len(name) {
		case 4:
			if equalFold(name, "host") {
				hosts++
			}
		case 6:
			if equalFold(name, "expect") {
				if equalFold(value, "100-continue") {
					c.expect100 = true
				} else {
					expectOther = true
				}
			}
		case 10:
			if equalFold(name, "connection") {
				for list := value; list != nil; {
					var tok []byte
					tok, list = nextToken(list)
					switch {
					case equalFold(tok, "close"):
						connClose = true
					case equalFold(tok, "keep-alive"):
						connKeep = true
					case equalFold(tok, "upgrade"):
						c.connUpgrade = true
					}
				}
			}
		case 14:
			if equalFold(name, "content-length") {
				for list := value; list != nil; {
					var tok []byte
					tok, list = nextToken(list)
					n, ok := parseContentLength(tok)
					if !ok || (clSeen && n != cl) {
						return wrapProto(ErrBadRequest, "invalid Content-Length")
					}
					clSeen, cl = true, n
				}
			}
		case 17:
			if equalFold(name, "transfer-encoding") {
				teSeen = true
				for list := value; list != nil; {
					var tok []byte
					tok, list = nextToken(list)
					switch {
					case len(tok) == 0:
					case equalFold(tok, "chunked"):
						if teChunked {
							teBad = true // chunked twice (RFC 9112 7: at most once)
						}
						teChunked = true
					default:
						if teChunked {
							teBad = true // a coding after chunked (RFC 9112 6.3)
						}
						teOther = true
					}
				}
			}
		}
	}

	// CONTRACT H6: exactly one Host in HTTP/1.1, at most one in HTTP/1.0.
	if (c.minor == 1 && hosts != 1) || hosts > 1 {
		return wrapProto(ErrBadRequest, "missing or repeated Host")
	}
	// CONTRACT H8, RFC 9112 6.1 and 6.3.
	switch {
	case teSeen && c.minor == 0:
		return wrapProto(ErrBadRequest, "Transfer-Encoding in an HTTP/1.0 request")
	case teSeen && clSeen:
		return wrapProto(ErrBadRequest, "both Transfer-Encoding and Content-Length")
	case teBad:
		return wrapProto(ErrBadRequest, "chunked is not the final transfer coding")
	case teOther:
		return ErrNotImplemented
	case teSeen && !teChunked:
		return wrapProto(ErrBadRequest, "empty Transfer-Encoding")
	case teChunked:
		c.bodyKind = bodyChunked
	case clSeen && cl > 0:
		c.bodyKind = bodyLength
		c.reqCL, c.bodyRemain = cl, cl
	}
	if c.minor == 1 {
		c.keepAlive = !connClose
	} else {
		c.keepAlive = connKeep && !connClose
		c.expect100 = false // RFC 9110 10.1.1: ignore 100-continue from HTTP/1.0 clients
	}
	if expectOther && c.minor == 1 {
		return ErrExpectation
	}
	if c.bodyKind == bodyLength && cl > c.cfg.MaxBody {
		return ErrBodyTooLarge // CONTRACT H10: refused before any body byte is read
	}
	if c.bodyKind == bodyNone {
		c.expect100 = false
	}
	return nil
}

// parseRequestLine parses "method SP target SP version" (CONTRACT H3, H4).
func (c *Connection) parseRequestLine(line []byte) error {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 || !isToken(line[:sp1]) {
		return wrapProto(ErrBadRequest, "malformed method")
	}
	c.methodName = line[:sp1]
	c.method = lookupMethod(c.methodName)
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return wrapProto(ErrBadRequest, "malformed request line")
	}
	target, version := rest[:sp2], rest[sp2+1:]
	for _, b := range target {
		if !targetTable[b] {
			return wrapProto(ErrBadRequest, "invalid byte in request target")
		}
	}
	// CONTRACT H4: HTTP/1.0 and HTTP/1.1; 1.x with x > 1 is served as 1.1; other majors get 505.
	if len(version) != 8 || string(version[:5]) != "HTTP/" || version[6] != '.' ||
		version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9' {
		return wrapProto(ErrBadRequest, "malformed HTTP version")
	}
	if version[5] != '1' {
		return ErrVersion
	}
	c.minor = 1
	if version[7] == '0' {
		c.minor = 0
	}
	c.target = target
	return c.splitTarget()
}

// splitTarget derives Path and Query from the four target forms of RFC 9112 3.2.
func (c *Connection) splitTarget() error {
	t := c.target
	switch {
	case t[0] == '/':
		if c.method == MethodConnect {
			return wrapProto(ErrBadRequest, "CONNECT needs an authority-form target")
		}
		c.path, c.query = splitQuery(t)
	case len(t) == 1 && t[0] == '*':
		if c.method != MethodOptions {
			return wrapProto(ErrBadRequest, "asterisk-form target outside OPTIONS")
		}
		c.path = t
	case c.method == MethodConnect:
		// authority-form: host:port, no path.
		if bytes.IndexByte(t, '/') >= 0 || bytes.IndexByte(t, '?') >= 0 || bytes.IndexByte(t, ':') <= 0 {
			return wrapProto(ErrBadRequest, "malformed authority-form target")
		}
		c.path = t
	default:
		// absolute-form: scheme "://" authority [path-abempty] ["?" query].
		i := bytes.Index(t, []byte("://"))
		if i <= 0 || !isScheme(t[:i]) {
			return wrapProto(ErrBadRequest, "malformed request target")
		}
		rest := t[i+3:]
		j := bytes.IndexAny(rest, "/?")
		if j < 0 {
			c.path = slashPath
			return nil
		}
		p, q := splitQuery(rest[j:])
		if len(p) == 0 {
			p = slashPath
		}
		c.path, c.query = p, q
	}
	return nil
}

func splitQuery(t []byte) (path, query []byte) {
	if i := bytes.IndexByte(t, '?'); i >= 0 {
		return t[:i], t[i+1:]
	}
	return t, nil
}

func isScheme(b []byte) bool {
	for i, c := range b {
		isAlpha := ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
		if !isAlpha && (i == 0 || !(('0' <= c && c <= '9') || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return len(b) > 0
}

// parseContentLength parses 1*DIGIT into an int64 (CONTRACT H8: no sign, no inner spaces, no overflow).
func parseContentLength(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (math.MaxInt64-int64(c-'0'))/10 {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
