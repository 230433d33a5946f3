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

// pastDeadline makes a Stream read return at once when no byte is there, instead of waiting.
var pastDeadline = time.Unix(1, 0)

// slashPath is the path of an absolute-form target without one (RFC 9112 3.2.2).
var slashPath = []byte("/")

// headState is the progress of the head being read; each line is checked as soon as its CRLF arrives,
// so that garbage (a TLS hello, a broken request line) is answered at once (CONTRACT H18).
type headState struct {
	lineStart   int  // start of the line being received
	lines       int  // complete lines so far; 0 while the request line is pending
	methodDone  bool // the SP after the method was seen
	hosts       int
	clSeen      bool
	cl          int64
	teSeen      bool
	teChunked   bool
	teOther     bool
	teBad       bool
	expectOther bool
	connClose   bool
	connKeep    bool
}

// readHead reads bytes until a whole request head is buffered, checking each line as it completes
// (CONTRACT H1, H2, H5, H18). Bytes after the head stay in the buffer as body or as the next pipelined
// request.
func (c *Connection) readHead() error {
	// Move leftover bytes of the previous exchange to the front; the new head starts at 0.
	if c.r > 0 {
		c.w = copy(c.rbuf, c.rbuf[c.r:c.w])
		c.r = 0
	}
	c.hs = headState{}
	hs := &c.hs
	limit := c.cfg.BufferSize
	scanned := 0 // bytes of rbuf[:c.w] already checked
	skipped := 0 // bytes of empty lines skipped before the request line
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
		// Bytes past B (left over in the body slack after a chunked body) are not scanned: a head
		// must fit in B bytes whatever way it arrived (CONTRACT H2).
		for scanned < c.w && scanned < limit {
			b := c.rbuf[scanned]
			switch {
			case b == '\r':
				// Every CR must precede a LF (CONTRACT H5): decide once the next byte is here.
				if scanned+1 == c.w {
					goto more
				}
				if c.rbuf[scanned+1] != '\n' {
					return wrapProto(ErrBadRequest, "bare CR")
				}
			case b == '\n':
				if scanned == 0 || c.rbuf[scanned-1] != '\r' {
					return wrapProto(ErrBadRequest, "bare LF")
				}
				line := c.rbuf[hs.lineStart : scanned-1]
				hs.lineStart = scanned + 1
				var err error
				switch {
				case hs.lines == 0:
					err = c.parseRequestLine(line)
				case len(line) == 0:
					c.r, c.headEnd = scanned+1, scanned+1
					return c.finishHead()
				default:
					err = c.parseHeaderLine(line)
				}
				if err != nil {
					return err
				}
				hs.lines++
			case hs.lines == 0 && !hs.methodDone:
				// The method is a token: anything else (a TLS hello, binary noise) is refused at its
				// first byte rather than after a whole head or a timeout.
				if b == ' ' && scanned > 0 {
					hs.methodDone = true
				} else if !tokenTable[b] {
					return wrapProto(ErrBadRequest, "malformed method")
				}
			}
			scanned++
		}
	more:
		if c.w >= limit {
			if hs.lines == 0 {
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
	if !started {
		// Usually the socket is readable (a parked socket is handed to a worker when it is): try
		// without waiting first, which needs no clock read, then wait under the keep-alive timeout.
		c.s.SetReadDeadline(pastDeadline)
		n, err := c.s.Read(c.rbuf[c.w:limit])
		if n > 0 {
			c.startHead(time.Now())
			c.w += n
			c.stats.Received += int64(n)
			return nil
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			if err == io.EOF {
				return io.EOF
			}
			return err
		}
		c.s.SetReadDeadline(time.Now().Add(c.cfg.KeepAliveTimeout))
	} else if c.headDeadline.IsZero() {
		c.startHead(time.Now())
	}
	n, err := c.s.Read(c.rbuf[c.w:limit])
	if n > 0 {
		if c.headDeadline.IsZero() {
			// The first byte is here: the head deadline and the exchange's duration count from now,
			// not from when the wait began (CONTRACT S6).
			c.startHead(time.Now())
		}
		c.w += n
		c.stats.Received += int64(n)
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

// startHead starts the head deadline and the exchange's clock at the head's first byte.
func (c *Connection) startHead(now time.Time) {
	c.headDeadline = now.Add(c.cfg.HeaderTimeout)
	c.s.SetReadDeadline(c.headDeadline)
	if c.stats.Start.IsZero() {
		c.stats.Start = now
	}
}

// parseHeaderLine checks one header line and records what the framing needs (CONTRACT H5-H8).
func (c *Connection) parseHeaderLine(line []byte) error {
	hs := &c.hs
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
			// RFC 9112 3.2: a Host that is not uri-host [":" port] is refused like a missing one,
			// before a handler or a same-origin check can take it for an authority (CONTRACT H6).
			if !validHost(value) {
				return wrapProto(ErrBadRequest, "invalid Host")
			}
			hs.hosts++
		}
	case 6:
		if equalFold(name, "expect") {
			// RFC 9110 10.1.1, 5.6.1: Expect is a list; empty elements (an empty "Expect:") are
			// ignored, as net/http does, rather than refused as an unknown expectation.
			for list := value; list != nil; {
				var tok []byte
				tok, list = nextToken(list)
				switch {
				case len(tok) == 0:
				case equalFold(tok, "100-continue"):
					c.expect100 = true
				default:
					hs.expectOther = true
				}
			}
		}
	case 10:
		if equalFold(name, "connection") {
			for list := value; list != nil; {
				var tok []byte
				tok, list = nextToken(list)
				switch {
				case equalFold(tok, "close"):
					hs.connClose = true
				case equalFold(tok, "keep-alive"):
					hs.connKeep = true
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
				if !ok || (hs.clSeen && n != hs.cl) {
					return wrapProto(ErrBadRequest, "invalid Content-Length")
				}
				hs.clSeen, hs.cl = true, n
			}
		}
	case 17:
		if equalFold(name, "transfer-encoding") {
			hs.teSeen = true
			for list := value; list != nil; {
				var tok []byte
				tok, list = nextToken(list)
				switch {
				case len(tok) == 0:
				case equalFold(tok, "chunked"):
					if hs.teChunked {
						hs.teBad = true // chunked twice (RFC 9112 7: at most once)
					}
					hs.teChunked = true
				default:
					hs.teOther = true // CONTRACT H8: any coding but chunked is 501, also after chunked
				}
			}
		}
	}
	return nil
}

// finishHead applies the rules that need the whole head (CONTRACT H6, H7, H8, H10, H11).
func (c *Connection) finishHead() error {
	hs := &c.hs
	// CONTRACT H6: exactly one Host in HTTP/1.1, at most one in HTTP/1.0.
	if (c.minor == 1 && hs.hosts != 1) || hs.hosts > 1 {
		return wrapProto(ErrBadRequest, "missing or repeated Host")
	}
	// CONTRACT H8, RFC 9112 6.1 and 6.3.
	switch {
	case hs.teSeen && c.minor == 0:
		return wrapProto(ErrBadRequest, "Transfer-Encoding in an HTTP/1.0 request")
	case hs.teSeen && hs.clSeen:
		return wrapProto(ErrBadRequest, "both Transfer-Encoding and Content-Length")
	case hs.teBad:
		return wrapProto(ErrBadRequest, "chunked more than once")
	case hs.teOther:
		return ErrNotImplemented
	case hs.teSeen && !hs.teChunked:
		return wrapProto(ErrBadRequest, "empty Transfer-Encoding")
	case hs.teChunked:
		c.bodyKind = bodyChunked
	case hs.clSeen && hs.cl > 0:
		c.bodyKind = bodyLength
		c.reqCL, c.bodyRemain = hs.cl, hs.cl
	}
	if c.minor == 1 {
		c.keepAlive = !hs.connClose
	} else {
		c.keepAlive = hs.connKeep && !hs.connClose
		c.expect100 = false // RFC 9110 10.1.1: ignore 100-continue from HTTP/1.0 clients
	}
	if hs.expectOther && c.minor == 1 {
		return ErrExpectation
	}
	if c.bodyKind == bodyLength && hs.cl > c.cfg.MaxBody {
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
		// authority-form: uri-host ":" port, no path. RFC 9110 9.3.6: an empty or invalid port is
		// refused with 400.
		if i := bytes.LastIndexByte(t, ':'); i <= 0 || !validHost(t) || !validPort(t[i+1:]) {
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
			j = len(rest)
		}
		// The authority stands in for Host (RFC 9112 3.2.2), without its deprecated userinfo
		// (RFC 9110 4.2.4); it must be a valid host, and http(s) URIs need one (RFC 9110 4.2.1).
		auth := rest[:j]
		if k := bytes.LastIndexByte(auth, '@'); k >= 0 {
			auth = auth[k+1:]
		}
		scheme := t[:i]
		if !validHost(auth) || len(auth) == 0 && (equalFold(scheme, "http") || equalFold(scheme, "https")) {
			return wrapProto(ErrBadRequest, "malformed authority in absolute-form target")
		}
		c.authority = auth
		if j == len(rest) {
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

// validPort reports whether b is a port number from 1 to 65535.
func validPort(b []byte) bool {
	if len(b) == 0 || len(b) > 5 {
		return false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n >= 1 && n <= 65535
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
