package conn_test

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edged/edged/pkg/conn"
)

// slowStream delivers its input one byte per Read, sleeping delay before each, and honours write
// deadlines in real time, like a socket.
type slowStream struct {
	in              []byte
	pos             int
	delay           time.Duration
	out             []byte
	readDL, writeDL time.Time
}

func (s *slowStream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if s.pos >= len(s.in) {
		return 0, io.EOF
	}
	time.Sleep(s.delay)
	if !s.readDL.IsZero() && time.Now().After(s.readDL) {
		return 0, os.ErrDeadlineExceeded
	}
	p[0] = s.in[s.pos]
	s.pos++
	return 1, nil
}

func (s *slowStream) Write(p []byte) (int, error) {
	if !s.writeDL.IsZero() && !time.Now().Before(s.writeDL) {
		return 0, os.ErrDeadlineExceeded
	}
	s.out = append(s.out, p...)
	return len(p), nil
}
func (s *slowStream) SetReadDeadline(t time.Time)  { s.readDL = t }
func (s *slowStream) SetWriteDeadline(t time.Time) { s.writeDL = t }

// TestH12_DrainThenWriteDeadline: a handler answers without reading a small body that the client
// trickles (each byte well within the io timeout). The drain before the head (H12) takes longer than
// IOTimeout in total; the response must still go out.
func TestH12_DrainThenWriteDeadline(t *testing.T) {
	body := strings.Repeat("x", 12)
	head := "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n"
	s := &slowStream{in: []byte(head + body), delay: 20 * time.Millisecond}
	c := conn.New(conn.Config{IOTimeout: 100 * time.Millisecond, HandlerTimeout: 5 * time.Second, HeaderTimeout: 5 * time.Second})
	c.Reset(s)
	// The head arrives byte by byte too; give it all at once instead.
	s.delay = 0
	h := conn.HandlerFunc(func(_ int, c *conn.Connection) error {
		s.delay = 20 * time.Millisecond // body bytes trickle: 12*20ms = 240ms > IOTimeout
		return c.Reply(200, "text/plain", []byte("ok"))
	})
	_, err := c.Serve(0, h)
	if err != nil || !strings.HasPrefix(string(s.out), "HTTP/1.1 200") {
		t.Fatalf("response lost after drain: err=%v out=%q", err, s.out)
	}
}

// TestH2_PipelinedHeadLargerThanB: a head longer than B must get 431 also when it arrives
// pipelined behind a chunked body (the chunked decoder reads into the slack beyond B).
func TestH2_PipelinedHeadLargerThanB(t *testing.T) {
	cfg := conn.Config{BufferSize: 256}
	big := "GET /big HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("a", 400) + "\r\n\r\n"
	// Fresh connection: 431.
	r := serveOnce(t, cfg, big, echoHandler)
	if len(r.finals) != 1 || r.finals[0].status != 431 {
		t.Fatalf("fresh: %s", statuses(r.finals))
	}
	first := chunkedPost("/", "")
	in := first + "3\r\nabc\r\n0\r\n\r\n" + big
	c := conn.New(cfg)
	s := newMemStream(in)
	s.split = len(first) // the head arrives alone; the body and the next request in one Read
	r = serveAll(c, s, echoHandler, 8)
	if len(r.finals) != 2 || r.finals[1].status != 431 {
		t.Fatalf("pipelined after chunked: %s (a %d-byte head with B=256 was served)", statuses(r.finals), len(big))
	}
}
