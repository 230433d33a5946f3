package conn_test

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edged/edged/pkg/conn"
)

func TestConfigDefaults(t *testing.T) {
	got := conn.New(conn.Config{}).Config()
	want := conn.Config{
		BufferSize: 2048, WriteBufferSize: 2048, MaxHeaders: 64, MaxBody: 1 << 20, MaxDrain: 64 << 10,
		KeepAliveTimeout: 50 * time.Second, HeaderTimeout: 10 * time.Second, IOTimeout: 30 * time.Second,
		HandlerTimeout: 60 * time.Second,
	}
	if got != want {
		t.Errorf("defaults %+v, want %+v (CONTRACT D2, S6)", got, want)
	}
	if err := (conn.Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
	for _, bad := range []conn.Config{{BufferSize: 255}, {MaxHeaders: -1}, {MaxBody: -1}, {HeaderTimeout: -time.Second}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted it", bad)
		}
	}
}

// TestS9_SetClosing checks graceful shutdown: a response after SetClosing carries Connection: close.
func TestS9_SetClosing(t *testing.T) {
	t.Run("during the handler", func(t *testing.T) {
		c := conn.New(conn.Config{})
		s := newMemStream(get("/") + get("/never"))
		c.Reset(s)
		ka, err := c.Serve(0, conn.HandlerFunc(func(_ int, c *conn.Connection) error {
			c.SetClosing()
			if c.KeepAlive() {
				t.Errorf("KeepAlive() true after SetClosing")
			}
			return c.Reply(200, "", []byte("bye"))
		}))
		rs, _, _ := parseResponses(s.out, "GET")
		if ka || err != nil || len(rs) != 1 || !rs[0].closes() {
			t.Errorf("Serve %v, %v; output %q", ka, err, s.out)
		}
	})
	t.Run("between exchanges", func(t *testing.T) {
		c := conn.New(conn.Config{})
		s := newMemStream(get("/1") + get("/2") + get("/never"))
		c.Reset(s)
		h := conn.HandlerFunc(func(_ int, c *conn.Connection) error { return c.Reply(200, "", c.Path()) })
		if ka, err := c.Serve(0, h); !ka || err != nil {
			t.Fatalf("Serve: %v, %v", ka, err)
		}
		c.SetClosing()
		ka, err := c.Serve(0, h)
		rs, _, _ := parseResponses(s.out, "GET")
		if ka || err != nil || len(rs) != 2 || rs[0].closes() || !rs[1].closes() {
			t.Errorf("Serve %v, %v; output %q", ka, err, s.out)
		}
	})
	t.Run("Reset clears it", func(t *testing.T) {
		c := conn.New(conn.Config{})
		c.Reset(newMemStream(""))
		c.SetClosing()
		s := newMemStream(get("/") + get("/2"))
		c.Reset(s)
		if ka, err := c.Serve(0, conn.HandlerFunc(func(int, *conn.Connection) error { return nil })); !ka || err != nil {
			t.Errorf("after Reset: %v, %v; a new stream must not inherit closing", ka, err)
		}
	})
}

// flushThenSetClosing writes "hello", flushes the head and it out, calls SetClosing, then writes
// "world"; length is the Content-Length to declare first, or -1 for a chunked body.
func flushThenSetClosing(length int64) handlerFunc {
	return func(c *conn.Connection, info reqInfo, s *memStream) error {
		if length >= 0 {
			c.SetContentLength(length)
		}
		if _, err := c.WriteString("hello"); err != nil {
			return err
		}
		if err := c.Flush(); err != nil {
			return err
		}
		c.SetClosing()
		_, err := c.WriteString("world")
		return err
	}
}

// TestS9_SetClosingAfterHeadSent checks SetClosing once the response head has gone out (after a Flush,
// in the middle of a streamed body): the head already promised keep-alive, but the connection closes
// once the response is complete, and the response stays complete and correctly delimited.
func TestS9_SetClosingAfterHeadSent(t *testing.T) {
	piece := strings.Repeat("0123456789", 50)
	cases := []struct {
		name    string
		in      string
		handler handlerFunc
		body    string
		framing string // "length" or "chunked"
	}{
		{
			name:    "after Flush, Content-Length body",
			in:      get("/") + get("/never"),
			handler: flushThenSetClosing(10),
			body:    "helloworld",
			framing: "length",
		},
		{
			name:    "after Flush, chunked body",
			in:      get("/") + get("/never"),
			handler: flushThenSetClosing(-1),
			body:    "helloworld",
			framing: "chunked",
		},
		{
			name: "in the middle of a streamed body, nothing buffered",
			in:   get("/") + get("/never"),
			handler: func(c *conn.Connection, info reqInfo, s *memStream) error {
				for i := range 10 {
					if i == 5 {
						if err := c.Flush(); err != nil {
							return err
						}
						c.SetClosing()
					}
					if _, err := c.WriteString(piece); err != nil {
						return err
					}
				}
				return nil
			},
			body:    strings.Repeat(piece, 10),
			framing: "chunked",
		},
		{
			name:    "HTTP/1.0 keep-alive, after Flush, Content-Length body",
			in:      "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + "GET /never HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
			handler: flushThenSetClosing(10),
			body:    "helloworld",
			framing: "length",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := conn.New(conn.Config{})
			s := newMemStream(tc.in)
			s.holdOpen = true
			var keepAlive bool
			r := serveAll(c, s, func(c *conn.Connection, info reqInfo, s *memStream) error {
				err := tc.handler(c, info, s)
				keepAlive = c.KeepAlive()
				return err
			}, 4)
			if r.perr != nil || len(r.finals) != 1 {
				t.Fatalf("responses %s (%v), want one: %q", statuses(r.finals), r.perr, s.out[:min(len(s.out), 300)])
			}
			if sr := r.serves[0]; sr.keepAlive || sr.err != nil || sr.state != conn.StateClosed || len(r.serves) != 1 {
				t.Errorf("Serve %v, %v, state %v after %d calls; want false, nil, Closed after 1", sr.keepAlive, sr.err, sr.state, len(r.serves))
			}
			if keepAlive {
				t.Errorf("KeepAlive() true after SetClosing")
			}
			resp := r.finals[0]
			if string(resp.body) != tc.body || resp.bodyErr != nil {
				t.Errorf("body %q (err %v), want %q", resp.body, resp.bodyErr, tc.body)
			}
			cl, te := resp.rawHeader("Content-Length"), resp.rawHeader("Transfer-Encoding")
			switch tc.framing {
			case "length":
				if len(cl) != 1 || cl[0] != strconv.Itoa(len(tc.body)) || len(te) != 0 {
					t.Errorf("want Content-Length %d: %q", len(tc.body), resp.raw)
				}
			case "chunked":
				if len(te) != 1 || te[0] != "chunked" || len(cl) != 0 || !strings.HasSuffix(string(s.out), "\r\n0\r\n\r\n") {
					t.Errorf("want a chunked body with its last chunk: %q", resp.raw[:min(len(resp.raw), 300)])
				}
			}
			if !bytes.Equal(resp.raw, s.out) {
				t.Errorf("output beyond the response: %q", s.out[len(resp.raw):])
			}
		})
	}
}

func TestLastExchange(t *testing.T) {
	in := post("/p", "hello")
	c := conn.New(conn.Config{})
	s := newMemStream(in)
	c.Reset(s)
	t0 := time.Now()
	if ka, err := c.Serve(0, conn.HandlerFunc(func(_ int, c *conn.Connection) error {
		_, err := readBody(c, reqInfo{})
		if err != nil {
			return err
		}
		return c.Reply(201, "", []byte("made"))
	})); !ka || err != nil {
		t.Fatalf("Serve: %v, %v", ka, err)
	}
	st := c.LastExchange()
	if st.Method != conn.MethodPost || st.Status != 201 || st.Received != int64(len(in)) || st.Sent != int64(len(s.out)) {
		t.Errorf("stats %+v; want POST, 201, %d received, %d sent", st, len(in), len(s.out))
	}
	if st.Start.Before(t0) || st.Start.After(time.Now()) || st.Duration < 0 || st.Duration > time.Since(t0) {
		t.Errorf("stats time: start %v, duration %v", st.Start.Sub(t0), st.Duration)
	}

	bad := "GET  / HTTP/1.1\r\nHost: x\r\n\r\n"
	s = newMemStream(bad)
	c.Reset(s)
	c.Serve(0, conn.HandlerFunc(func(int, *conn.Connection) error { return nil }))
	if st := c.LastExchange(); st.Status != 400 || st.Sent != int64(len(s.out)) || st.Received != int64(len(bad)) {
		t.Errorf("stats of a refused request %+v, want status 400 and the bytes counted", st)
	}

	for _, tc := range []struct {
		req    string
		method conn.Method
		status int
	}{
		{"DELETE /x HTTP/1.1\r\n\r\n", conn.MethodDelete, 400}, // no Host: the request line was read
		{"GET / HTTP/2.0\r\nHost: x\r\n\r\n", conn.MethodGet, 505},
		{"\x16\x03\x01\x00\xa5\r\n\r\n", conn.MethodOther, 400},
	} {
		c.Reset(newMemStream(tc.req))
		c.Serve(0, conn.HandlerFunc(func(int, *conn.Connection) error { return nil }))
		if st := c.LastExchange(); st.Method != tc.method || st.Status != tc.status {
			t.Errorf("%q: stats %+v, want method %v and status %d", tc.req, st, tc.method, tc.status)
		}
	}

	s = newMemStream("")
	c.Reset(s)
	c.Serve(0, conn.HandlerFunc(func(int, *conn.Connection) error { return nil }))
	if st := c.LastExchange(); st.Status != 0 || st.Sent != 0 || st.Received != 0 {
		t.Errorf("stats without a request %+v, want zeros", st)
	}
}
