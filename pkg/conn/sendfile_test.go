//go:build unix

package conn_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/edged/edged/pkg/conn"
)

// fileStream is a memStream that also sends files itself, as pkg/server's sockets do with sendfile(2).
type fileStream struct {
	*memStream
	calls int
	more  int   // WriteMore calls
	fail  error // SendFile fails with this, sending nothing
}

// sendOnly is a FileSender that is no MoreWriter.
type sendOnly struct{ fs *fileStream }

func (s sendOnly) Read(p []byte) (int, error)                   { return s.fs.Read(p) }
func (s sendOnly) Write(p []byte) (int, error)                  { return s.fs.Write(p) }
func (s sendOnly) SetReadDeadline(t time.Time)                  { s.fs.SetReadDeadline(t) }
func (s sendOnly) SetWriteDeadline(t time.Time)                 { s.fs.SetWriteDeadline(t) }
func (s sendOnly) SendFile(fd int, off, n int64) (int64, error) { return s.fs.SendFile(fd, off, n) }

func (s *fileStream) SendFile(fd int, offset, n int64) (int64, error) {
	s.calls++
	if s.fail != nil {
		return 0, s.fail
	}
	buf := make([]byte, n)
	k, err := syscall.Pread(fd, buf, offset)
	if err != nil {
		return 0, err
	}
	s.out = append(s.out, buf[:k]...)
	return int64(k), nil
}

func (s *fileStream) WriteMore(p []byte) (int, error) {
	s.more++
	return s.Write(p)
}

func tempFile(t *testing.T, data []byte) *os.File {
	t.Helper()
	name := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestSendFile(t *testing.T) {
	data := make([]byte, 20000)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	f := tempFile(t, data)
	fd := int(f.Fd())

	serve := func(t *testing.T, s conn.Stream, ms *memStream, h conn.HandlerFunc) ([]parsedResp, []error) {
		t.Helper()
		c := conn.New(conn.Config{})
		c.Reset(s)
		var errs []error
		for range 2 {
			ka, err := c.Serve(0, h)
			errs = append(errs, err)
			if !ka {
				break
			}
		}
		rs, rest, perr := parseResponses(ms.out, "GET")
		if perr != nil {
			t.Fatalf("output: %v (unparsed %q)", perr, rest)
		}
		return rs, errs
	}
	withLength := conn.HandlerFunc(func(_ int, c *conn.Connection) error {
		if string(c.Path()) == "/next" {
			return c.Reply(200, "", []byte("next"))
		}
		c.SetContentLength(15000)
		return c.SendFile(fd, 1000, 15000)
	})
	in := get("/file") + get("/next")

	t.Run("fallback through the write buffer", func(t *testing.T) {
		ms := newMemStream(in)
		rs, errs := serve(t, ms, ms, withLength)
		if len(rs) != 2 || !bytes.Equal(rs[0].body, data[1000:16000]) || string(rs[1].body) != "next" || errs[0] != nil {
			t.Errorf("responses %s, errors %v", statuses(rs), errs)
		}
	})

	t.Run("stream that sends files", func(t *testing.T) {
		ms := newMemStream(in)
		fs := &fileStream{memStream: ms}
		rs, errs := serve(t, fs, ms, withLength)
		if fs.calls == 0 {
			t.Errorf("the stream's SendFile was not used")
		}
		// The head went out marked "more to come", the next response's did not.
		if fs.more != 1 {
			t.Errorf("WriteMore calls: %d, want 1 (the file response's head)", fs.more)
		}
		if len(rs) != 2 || !bytes.Equal(rs[0].body, data[1000:16000]) || string(rs[1].body) != "next" || errs[0] != nil {
			t.Errorf("responses %s, errors %v", statuses(rs), errs)
		}
	})

	t.Run("a FileSender without WriteMore", func(t *testing.T) {
		ms := newMemStream(in)
		fs := &fileStream{memStream: ms}
		rs, errs := serve(t, sendOnly{fs}, ms, withLength)
		if fs.calls == 0 || fs.more != 0 {
			t.Errorf("SendFile calls %d, WriteMore calls %d; want some and none", fs.calls, fs.more)
		}
		if len(rs) != 2 || !bytes.Equal(rs[0].body, data[1000:16000]) || string(rs[1].body) != "next" || errs[0] != nil {
			t.Errorf("responses %s, errors %v", statuses(rs), errs)
		}
	})

	t.Run("a file sendfile cannot take: through the buffer", func(t *testing.T) {
		ms := newMemStream(in)
		fs := &fileStream{memStream: ms, fail: syscall.EINVAL}
		rs, errs := serve(t, fs, ms, withLength)
		if fs.calls != 1 {
			t.Errorf("SendFile calls: %d, want 1", fs.calls)
		}
		if len(rs) != 2 || !bytes.Equal(rs[0].body, data[1000:16000]) || string(rs[1].body) != "next" || errs[0] != nil {
			t.Errorf("responses %s, errors %v", statuses(rs), errs)
		}
	})

	t.Run("without a length: chunked", func(t *testing.T) {
		ms := newMemStream(in)
		fs := &fileStream{memStream: ms}
		rs, _ := serve(t, fs, ms, func(_ int, c *conn.Connection) error {
			if string(c.Path()) == "/next" {
				return c.Reply(200, "", []byte("next"))
			}
			return c.SendFile(fd, 0, 20000)
		})
		if len(rs) != 2 || !bytes.Equal(rs[0].body, data) || rs[0].bodyErr != nil || string(rs[1].body) != "next" {
			t.Errorf("chunked file response: %s, body %d bytes (%v)", statuses(rs), len(rs[0].body), rs[0].bodyErr)
		}
		if fs.more != 0 {
			t.Errorf("WriteMore calls: %d, want 0: the file goes through the buffer", fs.more)
		}
	})

	t.Run("HEAD sends no file bytes", func(t *testing.T) {
		ms := newMemStream("HEAD /file HTTP/1.1\r\nHost: x\r\n\r\n")
		fs := &fileStream{memStream: ms}
		c := conn.New(conn.Config{})
		c.Reset(fs)
		if ka, err := c.Serve(0, withLength); !ka || err != nil {
			t.Fatalf("Serve: %v, %v", ka, err)
		}
		rs, _, err := parseResponses(ms.out, "HEAD")
		if err != nil || len(rs) != 1 || rs[0].header.Get("Content-Length") != "15000" || bytes.Contains(ms.out, data[1000:1100]) {
			t.Errorf("HEAD response %q", ms.out)
		}
	})

	t.Run("past the declared length", func(t *testing.T) {
		var err error
		ms := newMemStream(get("/file"))
		serve(t, ms, ms, func(_ int, c *conn.Connection) error {
			c.SetContentLength(100)
			err = c.SendFile(fd, 0, 101)
			return nil
		})
		if !errors.Is(err, conn.ErrContentLength) {
			t.Errorf("SendFile past Content-Length: %v, want ErrContentLength", err)
		}
	})

	t.Run("file shorter than announced", func(t *testing.T) {
		for _, withSender := range []bool{false, true} {
			ms := newMemStream(get("/file") + get("/never"))
			var s conn.Stream = ms
			if withSender {
				s = &fileStream{memStream: ms}
			}
			rs, errs := serve(t, s, ms, func(_ int, c *conn.Connection) error {
				c.SetContentLength(30000)
				return c.SendFile(fd, 0, 30000)
			})
			if len(errs) != 1 || errs[0] == nil || len(rs) != 1 || rs[0].bodyErr == nil {
				t.Errorf("sender %v: want the connection closed with a visibly cut body: %s, %v", withSender, statuses(rs), errs)
			}
		}
	})
}
