//go:build unix

package conn

import (
	"errors"
	"io"
	"syscall"
)

// FileSender is implemented by streams that can send a file's bytes straight from the page cache
// (sendfile(2)). SendFile sends up to n bytes of the file descriptor fd from offset and returns how many
// it sent; it blocks until then, the write deadline, or an error, like Write. A FileSender that is also
// a MoreWriter gets the response head before the file through WriteMore.
type FileSender interface {
	SendFile(fd int, offset, n int64) (int64, error)
}

// SendFile writes n bytes of the open file descriptor fd from offset as (the rest of) the response
// body. The head and anything buffered go out first; then the stream's FileSender does the copy when it
// has one (CONTRACT D5), otherwise the bytes pass through the write buffer (pread). Declare the length
// with SetContentLength first. The caller keeps ownership of fd.
func (c *Connection) SendFile(fd int, offset, n int64) error {
	if err := c.beginWrite(); err != nil {
		return err
	}
	r := &c.resp
	if c.noBody() {
		if c.method == MethodHead {
			r.written += n
			return nil
		}
		return ErrBodyNotAllowed
	}
	if r.cl >= 0 && r.written+n > r.cl {
		return ErrContentLength
	}
	fs, ok := c.s.(FileSender)
	// The head (and anything buffered) goes out marked "more to come" when the file's bytes follow it
	// directly: a declared length and a file to send.
	_, canMore := c.s.(MoreWriter)
	c.more = ok && canMore && n > 0 && r.cl >= 0
	err := c.flush(false)
	c.more = false
	if err != nil {
		return err
	}
	if r.framing == framingChunked {
		// A chunked body cannot take raw file bytes: frame them through the buffer.
		return c.copyFile(fd, offset, n)
	}
	if !ok {
		return c.copyFile(fd, offset, n)
	}
	for n > 0 {
		d, err := c.ioDeadline()
		if err != nil {
			return c.refuse(err)
		}
		c.s.SetWriteDeadline(d)
		k, err := fs.SendFile(fd, offset, n)
		c.stats.Sent += k
		r.written += k
		offset += k
		n -= k
		if k == 0 && (errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSYS)) {
			// The file cannot be spliced (a file system without sendfile support): its bytes go
			// through the write buffer instead, as for a stream that is no FileSender.
			return c.copyFile(fd, offset, n)
		}
		if err != nil {
			return c.refuse(c.timeoutError(err, d))
		}
		if k == 0 {
			return c.refuse(io.ErrUnexpectedEOF) // the file shrank
		}
	}
	return nil
}

// copyFile is SendFile's fallback: read into the write buffer, then write.
func (c *Connection) copyFile(fd int, offset, n int64) error {
	r := &c.resp
	for n > 0 {
		if r.n == r.bodyEnd {
			if err := c.flush(false); err != nil {
				return err
			}
		}
		room := int64(r.bodyEnd - r.n)
		if room > n {
			room = n
		}
		k, err := syscall.Pread(fd, r.wbuf[r.n:r.n+int(room)], offset)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return c.refuse(err)
		}
		if k <= 0 {
			return c.refuse(io.ErrUnexpectedEOF) // the file shrank
		}
		r.n += k
		r.written += int64(k)
		offset += int64(k)
		n -= int64(k)
	}
	return nil
}
