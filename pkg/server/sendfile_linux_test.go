package server

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edged/edged/pkg/conn"
)

// TestD5_SendFileThroughWorkerStream: a file much larger than the worker's buffers and the socket's
// send buffer goes out through the worker stream's SendFile (sendfile(2)), intact, also to a client that
// reads slowly, so that the stream waits for the socket to drain (EAGAIN) between calls. The e2e test
// TestD5_LargeFileSendfile watches the daemon with strace to see sendfile(2) itself.
func TestD5_SendFileThroughWorkerStream(t *testing.T) {
	checkLeaks(t)
	data := make([]byte, 5<<20+123)
	rand.New(rand.NewSource(1)).Read(data)
	path := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	h := conn.HandlerFunc(func(_ int, c *conn.Connection) error {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		c.SetContentLength(int64(len(data)))
		if err := c.WriteHeader(200); err != nil {
			return err
		}
		return c.SendFile(fd, 0, int64(len(data)))
	})
	ts := startServer(t, Config{Workers: 1, SocketQueue: 2, ParkIdle: true, Conn: conn.Config{BufferSize: 1024}}, h)
	if _, ok := any(&stream{}).(conn.FileSender); !ok {
		t.Fatal("the worker stream does not implement conn.FileSender: file bodies would be copied through the buffers")
	}

	want := sha256.Sum256(data)
	for _, slow := range []bool{false, true} {
		cl := dial(t, ts.Addr())
		cl.get("/big.bin")
		cl.c.SetReadDeadline(time.Now().Add(patience))
		resp, err := http.ReadResponse(cl.br, nil)
		if err != nil {
			t.Fatalf("slow=%v: %v", slow, err)
		}
		h := sha256.New()
		var r io.Reader = resp.Body
		if slow {
			r = &slowReader{r: resp.Body}
		}
		n, err := io.Copy(h, r)
		resp.Body.Close()
		if err != nil || n != int64(len(data)) || !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatalf("slow=%v: %d bytes (err %v), want %d with sha256 %x", slow, n, err, len(data), want)
		}
	}
}

// slowReader reads at most 1 KiB at a time, so that the sender keeps finding a full socket.
type slowReader struct{ r io.Reader }

func (s *slowReader) Read(p []byte) (int, error) {
	if len(p) > 1<<10 {
		p = p[:1<<10]
	}
	return s.r.Read(p)
}
