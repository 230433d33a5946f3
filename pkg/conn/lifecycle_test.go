package conn_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edged/edged/pkg/conn"
)

func TestH18_GarbageAndEOF(t *testing.T) {
	tlsHello := "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + strings.Repeat("\x5a", 32) + "\x20" + strings.Repeat("\x11", 32) + "\x00\x3e\x13\x02\x13\x03\x13\x01\xc0\x2c"
	runCases(t, []hcase{
		{name: "TLS ClientHello", in: tlsHello, want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "binary garbage", in: "\x00\x01\x02\x03\xff\xfe\r\n\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "garbage after a good request", in: get("/") + "\x16\x03\x01\x00", want: []wantResp{ok(""), bad(400)}, end: conn.ErrBadRequest},
		{name: "HTTP/2 preface", in: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", respAny: true, end: errAny, extra: statusIn(400, 505)},
		{name: "long line without newline", in: strings.Repeat("a", 3000), respAny: true, end: errAny, maxRead: 1024, extra: statusIn(400, 414)},
		// The clients below send a line and wait for the server: the garbage must be answered with
		// 400 as soon as it is recognised, not with a 408 when the head deadline passes.
		{name: "SSH banner", in: "SSH-2.0-OpenSSH_9.2\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "malformed request line, head not finished", in: "GET  / HTTP/1.1\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "malformed header line, head not finished", in: "GET / HTTP/1.1\r\nHost : x\r\n", want: []wantResp{bad(400)}, end: conn.ErrBadRequest},
		{name: "nothing sent", in: "", end: errClean},
		// RFC 9112 2.2: a server SHOULD ignore at least one empty line before a request-line.
		{name: "one CRLF before the request line", in: "\r\n" + get("/"), want: []wantResp{ok("")}, end: errClean},
		{name: "CRLF after a POST body", in: post("/a", "x") + "\r\n" + get("/b"), want: []wantResp{ok("x"), ok("")}, end: errClean},
		{
			name: "EOF in the middle of a head", in: "GET / HT", eofOnly: true, respAny: true, anyMode: true, end: errAny,
			extra: func(t *testing.T, r *runResult) {
				if len(r.finals) > 1 || (len(r.finals) == 1 && (r.finals[0].status != 400 || !r.finals[0].closes())) {
					t.Errorf("a client that left mid-head got %q; want nothing or a 400 that closes", r.s.out)
				}
			},
		},
		{
			name: "EOF in the middle of the second head", in: get("/") + "GET /2 HTTP/1.1\r\nHo", eofOnly: true, respAny: true, anyMode: true, end: errAny,
			extra: func(t *testing.T, r *runResult) {
				if len(r.finals) < 1 || r.finals[0].status != 200 || len(r.finals) > 2 || len(r.reqs) != 1 {
					t.Errorf("want the first request answered and the second dropped: %q", r.s.out)
				}
			},
		},
	})
}

func TestH19_States(t *testing.T) {
	names := map[conn.State]string{
		conn.StateIdle: "Idle", conn.StateRequest: "Request", conn.StateResponse: "Response",
		conn.StateUnbound: "Unbound", conn.StateClosed: "Closed",
	}
	for st, name := range names {
		if st.String() != name {
			t.Errorf("State(%d).String() = %q, want %q", st, st.String(), name)
		}
	}
	if got := conn.State(200).String(); got == "" || got == "Idle" {
		t.Errorf("an unknown state prints as %q", got)
	}

	c := conn.New(conn.Config{})
	s := newMemStream(get("/1") + get("/2"))
	c.Reset(s)
	if c.State() != conn.StateIdle {
		t.Errorf("after Reset: %v, want Idle", c.State())
	}
	var seen []conn.State
	var errs []error
	ka, err := c.Serve(0, conn.HandlerFunc(func(_ int, c *conn.Connection) error {
		seen = append(seen, c.State())
		if err := c.WriteHeader(200); err != nil {
			return err
		}
		seen = append(seen, c.State())
		errs = append(errs, c.WriteHeader(200), c.WriteHeaderReason(201, "x"), c.Reply(200, "", nil))
		if _, err := c.WriteString("x"); err != nil {
			return err
		}
		return nil
	}))
	if !ka || err != nil {
		t.Fatalf("Serve: %v, %v", ka, err)
	}
	if want := []conn.State{conn.StateRequest, conn.StateResponse}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("states in the handler %v, want %v", seen, want)
	}
	for i, e := range errs {
		if !errors.Is(e, conn.ErrInvalidState) {
			t.Errorf("second commit %d: %v, want ErrInvalidState", i, e)
		}
	}
	if c.State() != conn.StateIdle {
		t.Errorf("after a keep-alive exchange: %v, want Idle", c.State())
	}
	checkOutsideCalls(t, "between exchanges", c)

	// A closing exchange ends in Closed, and Serve refuses to run again.
	s2 := newMemStream("GET / HTTP/1.0\r\n\r\n" + get("/never"))
	c.Reset(s2)
	if ka, err := c.Serve(0, conn.HandlerFunc(func(int, *conn.Connection) error { return nil })); ka || err != nil {
		t.Fatalf("HTTP/1.0 Serve: %v, %v", ka, err)
	}
	if c.State() != conn.StateClosed {
		t.Errorf("after a closing exchange: %v, want Closed", c.State())
	}
	n := len(s2.out)
	called := false
	if ka, err := c.Serve(0, conn.HandlerFunc(func(int, *conn.Connection) error { called = true; return nil })); ka || !errors.Is(err, conn.ErrInvalidState) || called || len(s2.out) != n {
		t.Errorf("Serve on a closed connection: %v, %v, handler called %v; want false, ErrInvalidState, not called", ka, err, called)
	}
	checkOutsideCalls(t, "after close", c)

	// A Connection that was never bound refuses everything without panicking.
	fresh := conn.New(conn.Config{})
	if ka, err := fresh.Serve(0, conn.HandlerFunc(func(int, *conn.Connection) error { return nil })); ka || !errors.Is(err, conn.ErrInvalidState) {
		t.Errorf("Serve before Reset: %v, %v; want ErrInvalidState", ka, err)
	}
	checkOutsideCalls(t, "before Reset", fresh)
}

// checkOutsideCalls calls every handler-side method outside a handler: each must refuse with
// ErrInvalidState (or, for accessors, just not panic).
func checkOutsideCalls(t *testing.T, when string, c *conn.Connection) {
	t.Helper()
	defer func() {
		if v := recover(); v != nil {
			t.Errorf("%s: panic: %v", when, v)
		}
	}()
	_, rerr := c.Read(make([]byte, 8))
	_, werr := c.Write([]byte("x"))
	_, wserr := c.WriteString("x")
	_, _, uerr := c.Unbind()
	for name, err := range map[string]error{
		"Read": rerr, "Write": werr, "WriteString": wserr, "Unbind": uerr,
		"WriteHeader": c.WriteHeader(200), "WriteHeaderReason": c.WriteHeaderReason(200, "OK"),
		"Reply": c.Reply(200, "", nil), "Flush": c.Flush(), "SetHeader": c.SetHeader("X", "y"),
		"SetHeaderBytes": c.SetHeaderBytes("X", []byte("y")),
	} {
		if !errors.Is(err, conn.ErrInvalidState) {
			t.Errorf("%s: %s: %v, want ErrInvalidState", when, name, err)
		}
	}
	c.SetContentLength(5)
	_ = c.Method()
	_ = c.MethodName()
	_ = c.Target()
	_ = c.Path()
	_ = c.Query()
	_, _ = c.DecodedPath()
	_ = c.ProtoMinor()
	_ = c.Header("Host")
	_, _ = c.HeaderAt(0)
	_, _ = c.HeaderAt(-1)
	_ = c.NumHeaders()
	_ = c.HasToken("Connection", "close")
	_ = c.ContentLength()
	_ = c.KeepAlive()
	_ = c.ResponseStarted()
	_ = c.Buffered()
	_ = c.LastExchange()
	_ = c.Deadline()
}

func TestH19_ErrorsMapToStatus(t *testing.T) {
	cases := []struct {
		err  error
		code int
	}{
		{conn.ErrBadRequest, 400}, {conn.ErrHeadTimeout, 408}, {conn.ErrBodyTooLarge, 413},
		{conn.ErrURITooLong, 414}, {conn.ErrExpectation, 417}, {conn.ErrHeadTooLarge, 431},
		{conn.ErrTooManyHeaders, 431}, {conn.ErrNotImplemented, 501}, {conn.ErrVersion, 505},
		{conn.ErrIncompleteBody, 400}, {conn.ErrChunkedFraming, 400}, {conn.ErrChunkedMetaTooBig, 400},
		{fmt.Errorf("read body: %w", conn.ErrBodyTooLarge), 413},
		{conn.ErrHandlerTimeout, 503}, {fmt.Errorf("x: %w", conn.ErrHandlerTimeout), 503},
		{errors.New("anything else"), 500}, {&conn.PanicError{Value: 1}, 500}, {conn.ErrBadStatus, 500},
	}
	for _, tc := range cases {
		if got := conn.StatusCode(tc.err); got != tc.code {
			t.Errorf("StatusCode(%v) = %d, want %d", tc.err, got, tc.code)
		}
	}
	var pe *conn.ProtocolError
	if !errors.As(fmt.Errorf("wrapped: %w", conn.ErrTooManyHeaders), &pe) || pe.Code != 431 || !strings.HasPrefix(pe.Error(), "conn: ") {
		t.Errorf("errors.As on a wrapped ProtocolError: %v", pe)
	}
	p := &conn.PanicError{Value: "v", Stack: []byte("stack")}
	if !errors.Is(p, conn.ErrHandlerPanic) || !strings.Contains(p.Error(), "v") {
		t.Errorf("PanicError: Is %v, Error %q", errors.Is(p, conn.ErrHandlerPanic), p.Error())
	}
}

// allowOnly is a wrapping handler (CONTRACT H20): known methods outside its list get 405 with Allow,
// unknown methods 501; the rest goes to next, with a header added.
type allowOnly struct {
	next    conn.Handler
	methods []conn.Method
	allow   string
}

func (a allowOnly) Handle(taskID int, c *conn.Connection) error {
	if c.Method() == conn.MethodOther {
		return c.Reply(501, "text/plain", []byte("not implemented\n"))
	}
	for _, m := range a.methods {
		if c.Method() == m {
			if err := c.SetHeader("X-Wrapped", "1"); err != nil {
				return err
			}
			return a.next.Handle(taskID, c)
		}
	}
	if err := c.SetHeader("Allow", a.allow); err != nil {
		return err
	}
	return c.Reply(405, "text/plain", []byte("method not allowed\n"))
}

func TestH20_Handlers(t *testing.T) {
	var taskIDs []int
	inner := conn.HandlerFunc(func(taskID int, c *conn.Connection) error {
		taskIDs = append(taskIDs, taskID)
		return c.Reply(200, "text/plain", []byte("inner"))
	})
	var h conn.Handler = allowOnly{next: inner, methods: []conn.Method{conn.MethodGet, conn.MethodHead}, allow: "GET, HEAD"}

	c := conn.New(conn.Config{})
	s := newMemStream(get("/") + post("/", "x") + "BREW / HTTP/1.1\r\nHost: x\r\n\r\n")
	c.Reset(s)
	for i := range 3 {
		if ka, err := c.Serve(7, h); !ka || err != nil {
			t.Fatalf("Serve %d: %v, %v", i, ka, err)
		}
	}
	rs, _, err := parseResponses(s.out, "GET")
	if err != nil || len(rs) != 3 {
		t.Fatalf("responses: %v %q", err, s.out)
	}
	if rs[0].status != 200 || string(rs[0].body) != "inner" || rs[0].header.Get("X-Wrapped") != "1" {
		t.Errorf("wrapped GET: %q", rs[0].raw)
	}
	if rs[1].status != 405 || rs[1].header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %q", rs[1].raw)
	}
	if rs[2].status != 501 {
		t.Errorf("BREW: %q", rs[2].raw)
	}
	if fmt.Sprint(taskIDs) != "[7]" {
		t.Errorf("task IDs seen by the inner handler %v, want [7]", taskIDs)
	}

	// A wrapper that recovers its inner handler's error and answers itself.
	failing := conn.HandlerFunc(func(int, *conn.Connection) error { return errors.New("inner failed") })
	recovering := conn.HandlerFunc(func(id int, c *conn.Connection) error {
		if err := failing.Handle(id, c); err != nil && !c.ResponseStarted() {
			return c.Reply(502, "text/plain", []byte("upstream failed\n"))
		}
		return nil
	})
	r := serveOnce(t, conn.Config{}, get("/")+get("/2"), func(c *conn.Connection, info reqInfo, s *memStream) error {
		return recovering.Handle(0, c)
	})
	if len(r.finals) != 2 || r.finals[0].status != 502 || r.finals[0].closes() {
		t.Errorf("recovering wrapper: %q", r.s.out)
	}
}

func TestUnbind(t *testing.T) {
	// A masked WebSocket text frame "Hello" (RFC 6455 5.7) right behind the upgrade request.
	const frame = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
	upgrade := "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	in := upgrade + frame
	for _, f := range feedsFor(len(in)) {
		c := conn.New(conn.Config{})
		s := newMemStream(in)
		s.maxRead, s.split = f.maxRead, f.split
		c.Reset(s)
		var got, headAtUnbind string
		var us conn.Stream
		var again error
		ka, err := c.Serve(0, conn.HandlerFunc(func(_ int, c *conn.Connection) error {
			c.SetHeader("Upgrade", "websocket")
			c.SetHeader("Connection", "Upgrade")
			c.SetHeader("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
			if err := c.WriteHeader(101); err != nil {
				return err
			}
			var buffered []byte
			var err error
			us, buffered, err = c.Unbind()
			if err != nil {
				return err
			}
			headAtUnbind = string(s.out)
			got = string(buffered) + string(s.remaining())
			_, _, again = c.Unbind()
			_, err = us.Write([]byte("\x81\x05Hello"))
			return err
		}))
		if ka || err != nil || c.State() != conn.StateUnbound {
			t.Fatalf("%s: Serve %v, %v, state %v; want false, nil, Unbound", f.name, ka, err, c.State())
		}
		if got != frame {
			t.Fatalf("%s: bytes after the head %q, want the frame %q", f.name, got, frame)
		}
		if us != conn.Stream(s) {
			t.Errorf("%s: Unbind returned another stream", f.name)
		}
		if !errors.Is(again, conn.ErrInvalidState) {
			t.Errorf("%s: second Unbind: %v", f.name, again)
		}
		if !strings.HasPrefix(headAtUnbind, "HTTP/1.1 101 Switching Protocols\r\n") || !strings.HasSuffix(headAtUnbind, "\r\n\r\n") {
			t.Fatalf("%s: the 101 was not flushed by Unbind: %q", f.name, headAtUnbind)
		}
		if string(s.out) != headAtUnbind+"\x81\x05Hello" {
			t.Errorf("%s: the connection wrote after Unbind: %q", f.name, s.out[len(headAtUnbind):])
		}
		resp := parsedResp{raw: []byte(headAtUnbind)}
		if rawCount(resp, "Content-Length") != 0 || rawCount(resp, "Transfer-Encoding") != 0 {
			t.Errorf("%s: 101 with body framing: %q", f.name, headAtUnbind)
		}
		if cs := resp.rawHeader("Connection"); len(cs) != 1 || !strings.EqualFold(cs[0], "Upgrade") {
			t.Errorf("%s: Connection lines %q, want exactly Upgrade", f.name, cs)
		}
		checkOutsideCalls(t, f.name+" after Unbind", c)
		if ka, err := c.Serve(0, conn.HandlerFunc(func(int, *conn.Connection) error { return nil })); ka || !errors.Is(err, conn.ErrInvalidState) {
			t.Errorf("%s: Serve after Unbind: %v, %v", f.name, ka, err)
		}
	}

	t.Run("calls after Unbind inside the handler", func(t *testing.T) {
		var errs map[string]error
		serveOnce(t, conn.Config{}, upgrade, func(c *conn.Connection, info reqInfo, s *memStream) error {
			if _, _, err := c.Unbind(); err != nil {
				return err
			}
			_, rerr := c.Read(make([]byte, 4))
			_, werr := c.Write([]byte("x"))
			errs = map[string]error{"Read": rerr, "Write": werr, "WriteHeader": c.WriteHeader(200), "Flush": c.Flush(), "SetHeader": c.SetHeader("A", "b")}
			return nil
		})
		for name, err := range errs {
			if !errors.Is(err, conn.ErrInvalidState) {
				t.Errorf("%s after Unbind: %v, want ErrInvalidState", name, err)
			}
		}
	})

	t.Run("CONNECT tunnel", func(t *testing.T) {
		const tunnel = "\x16\x03\x01 tunnelled bytes"
		in := "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n" + tunnel
		var got string
		r := serveOnce(t, conn.Config{}, in, func(c *conn.Connection, info reqInfo, s *memStream) error {
			if err := c.WriteHeader(200); err != nil {
				return err
			}
			_, buffered, err := c.Unbind()
			got = string(buffered) + string(s.remaining())
			return err
		})
		if got != tunnel || !strings.HasPrefix(string(r.s.out), "HTTP/1.1 200 OK\r\n") {
			t.Errorf("tunnel bytes %q; output %q", got, r.s.out)
		}
	})
}

// deadlineWithin reports whether d lies in [from+want-slack, to+want+slack].
func deadlineWithin(d, from, to time.Time, want, slack time.Duration) bool {
	return !d.Before(from.Add(want-slack)) && !d.After(to.Add(want+slack))
}

func TestS6_Timeouts(t *testing.T) {
	t.Run("no first byte: ErrIdle, no output", func(t *testing.T) {
		c := conn.New(conn.Config{})
		s := newMemStream("")
		s.holdOpen = true
		c.Reset(s)
		t0 := time.Now()
		ka, err := c.Serve(0, conn.HandlerFunc(func(int, *conn.Connection) error { return nil }))
		if ka || !errors.Is(err, conn.ErrIdle) || len(s.out) != 0 {
			t.Errorf("Serve: %v, %v, output %q; want false, ErrIdle, nothing", ka, err, s.out)
		}
		if !deadlineWithin(s.blockedDeadline, t0, time.Now(), conn.DefaultKeepAliveTimeout, time.Second) {
			t.Errorf("waited for the first byte until %v, want now + %v", s.blockedDeadline.Sub(t0), conn.DefaultKeepAliveTimeout)
		}
	})

	t.Run("keep-alive wait after a request", func(t *testing.T) {
		c := conn.New(conn.Config{KeepAliveTimeout: 3 * time.Second})
		s := newMemStream(get("/"))
		s.holdOpen = true
		c.Reset(s)
		h := conn.HandlerFunc(func(int, *conn.Connection) error { return nil })
		if ka, err := c.Serve(0, h); !ka || err != nil {
			t.Fatalf("Serve: %v, %v", ka, err)
		}
		n := len(s.out)
		t0 := time.Now()
		if ka, err := c.Serve(0, h); ka || !errors.Is(err, conn.ErrIdle) || len(s.out) != n {
			t.Errorf("idle Serve: %v, %v; wrote %q", ka, err, s.out[n:])
		}
		if !deadlineWithin(s.blockedDeadline, t0, time.Now(), 3*time.Second, time.Second) {
			t.Errorf("keep-alive deadline %v after the wait started, want 3s", s.blockedDeadline.Sub(t0))
		}
	})

	t.Run("head not finished: 408", func(t *testing.T) {
		for _, partial := range []string{"G", "GET / HTTP/1.1\r\n", "GET / HTTP/1.1\r\nHost: x\r\n"} {
			c := conn.New(conn.Config{})
			s := newMemStream(partial)
			s.holdOpen = true
			c.Reset(s)
			t0 := time.Now()
			ka, err := c.Serve(0, conn.HandlerFunc(func(int, *conn.Connection) error { return nil }))
			rs, _, perr := parseResponses(s.out, "GET")
			if ka || !errors.Is(err, conn.ErrHeadTimeout) || perr != nil || len(rs) != 1 || rs[0].status != 408 || !rs[0].closes() {
				t.Errorf("%q: Serve %v, %v; output %q; want 408 with Connection: close", partial, ka, err, s.out)
			}
			if !deadlineWithin(s.blockedDeadline, t0, time.Now(), conn.DefaultHeaderTimeout, time.Second) {
				t.Errorf("%q: head deadline %v after the start, want %v", partial, s.blockedDeadline.Sub(t0), conn.DefaultHeaderTimeout)
			}
		}
	})

	t.Run("head deadline is total, not per read", func(t *testing.T) {
		c := conn.New(conn.Config{HeaderTimeout: 2 * time.Second})
		s := newMemStream(padHead(1000))
		s.maxRead = 1
		s.logDeadlines = true
		c.Reset(s)
		t0 := time.Now()
		if ka, err := c.Serve(0, conn.HandlerFunc(func(int, *conn.Connection) error { return nil })); !ka || err != nil {
			t.Fatalf("Serve: %v, %v", ka, err)
		}
		for i, d := range s.deadlineLog {
			// While the head is incomplete, every deadline is the one fixed by its first byte.
			if p := s.posLog[i]; p > 0 && p < len(s.in) && (d.IsZero() || d.After(t0.Add(2*time.Second+500*time.Millisecond))) {
				t.Fatalf("read deadline set after %d head bytes is %v from the start; the head deadline must not move", p, d.Sub(t0))
			}
		}
		if len(s.deadlineLog) == 0 {
			t.Fatalf("no read deadline set")
		}
	})

	t.Run("writes carry a deadline", func(t *testing.T) {
		c := conn.New(conn.Config{IOTimeout: 7 * time.Second})
		s := newMemStream(get("/"))
		c.Reset(s)
		t0 := time.Now()
		if ka, err := c.Serve(0, conn.HandlerFunc(func(_ int, c *conn.Connection) error { return c.Reply(200, "", okBody) })); !ka || err != nil {
			t.Fatalf("Serve: %v, %v", ka, err)
		}
		if d := s.writeDeadline; d.IsZero() || d.After(time.Now().Add(7*time.Second+time.Second)) || d.Before(t0) {
			t.Errorf("write deadline %v after the start, want at most the 7s io timeout", d.Sub(t0))
		}
	})

	t.Run("real time: first byte", func(t *testing.T) {
		c := conn.New(conn.Config{KeepAliveTimeout: 30 * time.Millisecond})
		s := newMemStream("")
		s.holdOpen, s.realTime = true, true
		c.Reset(s)
		t0 := time.Now()
		_, err := c.Serve(0, conn.HandlerFunc(func(int, *conn.Connection) error { return nil }))
		if el := time.Since(t0); !errors.Is(err, conn.ErrIdle) || el < 30*time.Millisecond || el > 5*time.Second {
			t.Errorf("Serve %v after %v, want ErrIdle after 30ms", err, el)
		}
	})

	t.Run("real time: head", func(t *testing.T) {
		c := conn.New(conn.Config{HeaderTimeout: 40 * time.Millisecond})
		s := newMemStream("GET / HTTP/1.1\r\n")
		s.holdOpen, s.realTime = true, true
		c.Reset(s)
		t0 := time.Now()
		_, err := c.Serve(0, conn.HandlerFunc(func(int, *conn.Connection) error { return nil }))
		if el := time.Since(t0); !errors.Is(err, conn.ErrHeadTimeout) || el < 40*time.Millisecond || el > 5*time.Second || !strings.HasPrefix(string(s.out), "HTTP/1.1 408 ") {
			t.Errorf("Serve %v after %v, output %q; want 408 after 40ms", err, el, s.out)
		}
	})

	t.Run("real time: head capped by the handler timeout", func(t *testing.T) {
		// Both count from the head's first byte: a head still arriving when the whole exchange is
		// due gets 408 then, not a 503 once it is complete.
		c := conn.New(conn.Config{HeaderTimeout: time.Hour, HandlerTimeout: 40 * time.Millisecond})
		if got := c.Config().HeaderTimeout; got != 40*time.Millisecond {
			t.Errorf("effective HeaderTimeout %v, want the handler timeout 40ms", got)
		}
		s := newMemStream("GET / HTTP/1.1\r\n")
		s.holdOpen, s.realTime = true, true
		c.Reset(s)
		t0 := time.Now()
		_, err := c.Serve(0, conn.HandlerFunc(func(int, *conn.Connection) error { return nil }))
		if el := time.Since(t0); !errors.Is(err, conn.ErrHeadTimeout) || el < 40*time.Millisecond || el > 5*time.Second || !strings.HasPrefix(string(s.out), "HTTP/1.1 408 ") {
			t.Errorf("Serve %v after %v, output %q; want 408 after 40ms", err, el, s.out)
		}
	})

	t.Run("handler past its deadline: 503", func(t *testing.T) {
		const limit = 40 * time.Millisecond
		c := conn.New(conn.Config{HandlerTimeout: limit})
		s := newMemStream(get("/") + get("/never"))
		c.Reset(s)
		var replyErr error
		var deadline time.Time
		t0 := time.Now()
		ka, err := c.Serve(0, conn.HandlerFunc(func(_ int, c *conn.Connection) error {
			deadline = c.Deadline()
			time.Sleep(time.Until(deadline) + 5*time.Millisecond) // the slow handler under test
			replyErr = c.Reply(200, "text/plain", []byte("too late"))
			return nil
		}))
		if !deadlineWithin(deadline, t0, t0, limit, 20*time.Millisecond) {
			t.Errorf("Deadline() is %v after the start, want %v", deadline.Sub(t0), limit)
		}
		rs, _, perr := parseResponses(s.out, "GET")
		if ka || perr != nil || len(rs) != 1 || rs[0].status != 503 || !rs[0].closes() {
			t.Errorf("Serve %v, %v; output %q; want one 503 with Connection: close", ka, err, s.out)
		}
		// The deadline is checked when the response is flushed (after the handler returned here), so
		// Reply itself may succeed; the exchange must still end in 503.
		if replyErr != nil && !errors.Is(replyErr, conn.ErrHandlerTimeout) {
			t.Errorf("Reply past the deadline: %v, want nil or ErrHandlerTimeout", replyErr)
		}
		if !errors.Is(err, conn.ErrHandlerTimeout) {
			t.Errorf("Serve error %v, want ErrHandlerTimeout", err)
		}
	})

	t.Run("handler past its deadline after the head went out", func(t *testing.T) {
		c := conn.New(conn.Config{HandlerTimeout: 30 * time.Millisecond})
		s := newMemStream(get("/") + get("/never"))
		c.Reset(s)
		var werr error
		ka, _ := c.Serve(0, conn.HandlerFunc(func(_ int, c *conn.Connection) error {
			c.WriteHeader(200)
			c.WriteString("first part")
			if err := c.Flush(); err != nil {
				return err
			}
			time.Sleep(time.Until(c.Deadline()) + 5*time.Millisecond)
			_, werr = c.WriteString("second part")
			if werr == nil {
				werr = c.Flush()
			}
			return nil
		}))
		rs, _, _ := parseResponses(s.out, "GET")
		if ka || !errors.Is(werr, conn.ErrHandlerTimeout) || len(rs) != 1 || rs[0].status != 200 || rs[0].bodyErr == nil {
			t.Errorf("Serve keepAlive %v, late write %v; output %q; want a cut 200 and the connection closed", ka, werr, s.out)
		}
	})

	t.Run("body read stalls", func(t *testing.T) {
		c := conn.New(conn.Config{IOTimeout: 5 * time.Second})
		s := newMemStream(post("/", "0123456789")[:len(post("/", "0123456789"))-7])
		s.holdOpen = true
		c.Reset(s)
		var rerr error
		var t0 time.Time
		ka, _ := c.Serve(0, conn.HandlerFunc(func(_ int, c *conn.Connection) error {
			t0 = time.Now()
			_, rerr = io.ReadAll(c)
			return rerr
		}))
		if rerr == nil || ka {
			t.Errorf("Read of a stalled body: %v; Serve keepAlive %v", rerr, ka)
		}
		if !errors.Is(rerr, os.ErrDeadlineExceeded) && !errors.Is(rerr, conn.ErrHandlerTimeout) {
			t.Errorf("stalled body read error %v does not say it timed out", rerr)
		}
		if !deadlineWithin(s.blockedDeadline, t0, time.Now(), 5*time.Second, time.Second) {
			t.Errorf("body read deadline %v after the read started, want the 5s io timeout", s.blockedDeadline.Sub(t0))
		}
		if s.blockedForever {
			t.Errorf("a body read without deadline")
		}
		// S6: a stalled body is answered 408, not 500, when the handler passes the error on.
		if rs, _, _ := parseResponses(s.out, "POST"); len(rs) != 1 || rs[0].status != 408 || !rs[0].closes() {
			t.Errorf("stalled body answered %q, want one 408 with Connection: close", s.out)
		}
	})
}

// TestUnbind_RequestBody: the new protocol starts after the request body. Unbind drains a body the
// handler did not read when it can (H12) and hands over only the bytes after it; a body it cannot
// drain (over MaxDrain, or held back by a client waiting for 100 Continue, H11) is refused with
// ErrBodyNotConsumed before any byte of the 101 goes out, so that the body never reaches the new
// protocol as its first bytes.
func TestUnbind_RequestBody(t *testing.T) {
	head := func(extra string) string {
		return "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + extra + "\r\n"
	}
	const after = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
	big := strings.Repeat("f", 10000)
	for _, tc := range []struct {
		name    string
		in      string
		cfg     conn.Config
		hold    bool
		wantErr error
	}{
		{name: "drained Content-Length body", in: head("Content-Length: 5\r\n") + "hello" + after},
		{name: "drained chunked body", in: head("Transfer-Encoding: chunked\r\n") + "5\r\nhello\r\n0\r\n\r\n" + after},
		{name: "body over MaxDrain", in: head("Content-Length: 10000\r\n") + big + after, cfg: conn.Config{MaxDrain: 1000}, wantErr: conn.ErrBodyNotConsumed},
		{name: "chunked body over MaxDrain", in: head("Transfer-Encoding: chunked\r\n") + "2710\r\n" + big + "\r\n0\r\n\r\n" + after, cfg: conn.Config{MaxDrain: 1000}, wantErr: conn.ErrBodyNotConsumed},
		{name: "body held back for 100 Continue", in: head("Expect: 100-continue\r\nContent-Length: 11\r\n"), hold: true, wantErr: conn.ErrBodyNotConsumed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := conn.New(tc.cfg)
			s := newMemStream(tc.in)
			s.holdOpen = tc.hold
			c.Reset(s)
			var got string
			var uerr error
			ka, err := c.Serve(0, conn.HandlerFunc(func(_ int, c *conn.Connection) error {
				c.SetHeader("Upgrade", "websocket")
				c.SetHeader("Connection", "Upgrade")
				if err := c.WriteHeader(101); err != nil {
					return err
				}
				var buffered []byte
				_, buffered, uerr = c.Unbind()
				if uerr != nil {
					return uerr
				}
				got = string(buffered) + string(s.remaining())
				return nil
			}))
			if tc.wantErr == nil {
				if uerr != nil || err != nil || got != after {
					t.Fatalf("Unbind %v, Serve %v, %v; bytes handed over %q, want %q", uerr, ka, err, got, after)
				}
				return
			}
			if !errors.Is(uerr, tc.wantErr) || ka {
				t.Fatalf("Unbind %v, Serve %v, %v; want %v and no keep-alive", uerr, ka, err, tc.wantErr)
			}
			if c.State() == conn.StateUnbound || strings.Contains(string(s.out), " 101 ") || strings.Contains(string(s.out), "100 Continue") {
				t.Errorf("state %v, output %q: the stream was switched or an interim response sent", c.State(), s.out)
			}
		})
	}
}
