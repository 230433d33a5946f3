// Package conntest runs pkg/conn handlers over an in-memory stream, for tests of handlers: Do sends raw
// request bytes through a real conn.Connection and returns what the connection wrote.
package conntest

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"time"

	"github.com/edged/edged/pkg/conn"
)

// Stream is an in-memory conn.Stream: reads come from In, writes go to Out. A read past In returns
// io.EOF. It implements no FileSender, so SendFile takes its pread fallback.
type Stream struct {
	In  *bytes.Reader
	Out bytes.Buffer
}

// Read implements conn.Stream.
func (s *Stream) Read(p []byte) (int, error) { return s.In.Read(p) }

// Write implements conn.Stream.
func (s *Stream) Write(p []byte) (int, error) { return s.Out.Write(p) }

// SetReadDeadline implements conn.Stream; deadlines are ignored.
func (s *Stream) SetReadDeadline(time.Time) {}

// SetWriteDeadline implements conn.Stream; deadlines are ignored.
func (s *Stream) SetWriteDeadline(time.Time) {}

// Do serves the raw request bytes with h on a fresh Connection of cfg until the input is exhausted or
// the connection closes, and returns everything written.
func Do(cfg conn.Config, h conn.Handler, raw string) []byte {
	s := &Stream{In: bytes.NewReader([]byte(raw))}
	c := conn.New(cfg)
	c.Reset(s)
	for {
		keep, _ := c.Serve(0, h)
		if !keep || s.In.Len() == 0 && c.Buffered() == 0 {
			break
		}
	}
	return s.Out.Bytes()
}

// Responses parses out as a sequence of responses to requests of the given methods (for HEAD
// responses, which carry no body), reading each body whole.
func Responses(out []byte, methods ...string) ([]*http.Response, [][]byte, error) {
	br := bufio.NewReader(bytes.NewReader(out))
	var resps []*http.Response
	var bodies [][]byte
	for i := 0; br.Buffered() > 0 || i == 0; i++ {
		m := "GET"
		if i < len(methods) {
			m = methods[i]
		}
		req, _ := http.NewRequest(m, "/", nil)
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			if err == io.EOF && i > 0 {
				break
			}
			return resps, bodies, err
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return resps, bodies, err
		}
		resps = append(resps, resp)
		bodies = append(bodies, b)
		if _, err := br.Peek(1); err != nil {
			break
		}
	}
	return resps, bodies, nil
}
