package conn_test

import (
	"io"
	"strings"
	"testing"

	"github.com/edged/edged/pkg/conn"
)

// steadyState serves in (one or more keep-alive requests) over and over through one Connection and one
// reusable memStream; each call of the returned function serves all of them once.
func steadyState(tb testing.TB, in string, requests int, h conn.Handler) func() {
	c := conn.New(conn.Config{})
	s := newMemStream(in)
	s.discard = true
	c.Reset(s)
	return func() {
		s.rewind()
		for range requests {
			if ka, err := c.Serve(0, h); !ka || err != nil {
				tb.Fatalf("Serve: %v, %v", ka, err)
			}
		}
		if c.Buffered() != 0 || s.pos != len(s.in) {
			tb.Fatalf("input not consumed exactly: %d buffered, %d of %d read", c.Buffered(), s.pos, len(s.in))
		}
	}
}

var (
	okBody   = []byte("ok\n")
	jsonBody = []byte(`{"status":"ok","uptime":12345}`)
)

func TestH22_ZeroAllocs(t *testing.T) {
	var bodyBuf [256]byte
	cases := []struct {
		name     string
		in       string
		requests int
		h        conn.Handler
	}{
		{"keep-alive GET, Reply", get("/healthz"), 1, conn.HandlerFunc(func(_ int, c *conn.Connection) error {
			return c.Reply(200, "text/plain", okBody)
		})},
		{"POST with a small body, SetHeader, Reply", post("/topics/a", `{"t":21.5}`), 1, conn.HandlerFunc(func(_ int, c *conn.Connection) error {
			n, err := io.ReadFull(c, bodyBuf[:c.ContentLength()])
			if err != nil || n != 10 {
				return err
			}
			if err := c.SetHeader("Cache-Control", "no-store"); err != nil {
				return err
			}
			if err := c.SetHeader("ETag", `"abc"`); err != nil {
				return err
			}
			return c.Reply(201, "application/json", jsonBody)
		})},
		{"request headers read", "GET /x?q=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n", 1, conn.HandlerFunc(func(_ int, c *conn.Connection) error {
			if c.Header("user-agent") == nil || !c.HasToken("Connection", "keep-alive") {
				return io.ErrUnexpectedEOF
			}
			if _, err := c.DecodedPath(); err != nil {
				return err
			}
			return c.Reply(200, "", c.Query())
		})},
		{"handler answers nothing", get("/"), 1, conn.HandlerFunc(func(int, *conn.Connection) error { return nil })},
		{"WriteHeader and Write", get("/"), 1, conn.HandlerFunc(func(_ int, c *conn.Connection) error {
			if err := c.WriteHeader(404); err != nil {
				return err
			}
			_, err := c.Write(okBody)
			return err
		})},
		{"chunked POST drained", chunkedPost("/", "5\r\nhello\r\n0\r\n\r\n"), 1, conn.HandlerFunc(func(_ int, c *conn.Connection) error {
			return c.Reply(204, "", nil)
		})},
		{"HEAD", "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", 1, conn.HandlerFunc(func(_ int, c *conn.Connection) error {
			return c.Reply(200, "text/plain", okBody)
		})},
		{"pipelined GETs", strings.Repeat(get("/p"), 8), 8, conn.HandlerFunc(func(_ int, c *conn.Connection) error {
			return c.Reply(200, "text/plain", okBody)
		})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run := steadyState(t, tc.in, tc.requests, tc.h)
			run() // warm up: output buffer capacity, Date cache
			if allocs := testing.AllocsPerRun(200, run); allocs != 0 {
				t.Errorf("%v allocations per exchange, want 0 (CONTRACT H22)", allocs)
			}
		})
	}
}

func BenchmarkServeKeepAlive(b *testing.B) {
	run := steadyState(b, get("/healthz"), 1, conn.HandlerFunc(func(_ int, c *conn.Connection) error {
		return c.Reply(200, "text/plain", okBody)
	}))
	b.ReportAllocs()
	b.SetBytes(int64(len(get("/healthz"))))
	for b.Loop() {
		run()
	}
}

func BenchmarkServePipelined(b *testing.B) {
	const depth = 16
	in := strings.Repeat(get("/healthz"), depth)
	run := steadyState(b, in, depth, conn.HandlerFunc(func(_ int, c *conn.Connection) error {
		return c.Reply(200, "text/plain", okBody)
	}))
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		run()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*depth), "ns/req")
}

func BenchmarkServePOST(b *testing.B) {
	var buf [64]byte
	run := steadyState(b, post("/topics/a", `{"t":21.5}`), 1, conn.HandlerFunc(func(_ int, c *conn.Connection) error {
		if _, err := io.ReadFull(c, buf[:c.ContentLength()]); err != nil {
			return err
		}
		return c.Reply(204, "", nil)
	}))
	b.ReportAllocs()
	for b.Loop() {
		run()
	}
}
