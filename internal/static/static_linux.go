package static

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/edged/edged/pkg/conn"
	"golang.org/x/sys/unix"
)

// Root serves files below one directory. It is safe for concurrent use.
//
// It holds the directory open and resolves every file beneath that descriptor, and it looks at the
// directory's path again at most once every RevalidateEvery (made by whichever request comes first): when the path names another directory, as when a release is deployed by renaming a
// new symlink over the web root's (current -> v2), that directory is opened and served from then on,
// and the old one is closed once the requests using it are done. A web root whose path is gone answers
// 404 until it is back. nginx, which opens each file by its whole path, sees a swap at once; edged
// within RevalidateEvery, without a system call per request for it.
type Root struct {
	dir     string
	path    cPath // dir as an absolute path, looked at again every RevalidateEvery
	openat2 bool  // the kernel has openat2(2); otherwise resolution is checked by hand

	cur      atomic.Pointer[rootDir] // the directory served; nil while the path names none
	checked  atomic.Int64            // when the path was last looked at, in ns since epoch (monotonic)
	checking sync.Mutex              // one look at a time; the others go on with cur
	closed   atomic.Bool
}

// RevalidateEvery is how often the web root's path is looked at again (see Root).
var RevalidateEvery = time.Second

// epoch is the origin of Root.checked: durations since it read the monotonic clock.
var epoch = time.Now()

// rootDir is one open web root directory. refs counts Root's own reference, held while it is
// current, and one per request resolving beneath it; the last to let go closes the descriptor.
type rootDir struct {
	fd       int
	dev, ino uint64
	refs     atomic.Int64
}

// acquire takes a reference, or reports false when the directory is being closed.
func (d *rootDir) acquire() bool {
	for {
		n := d.refs.Load()
		if n <= 0 {
			return false
		}
		if d.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (d *rootDir) release() {
	if d.refs.Add(-1) == 0 {
		unix.Close(d.fd)
	}
}

// probeOpenat2 opens "." of the web root with openat2(2), to learn whether the system lets edged use it.
var probeOpenat2 = func(fd int) error {
	probe, err := unix.Openat2(fd, ".", &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH})
	if err == nil {
		unix.Close(probe)
	}
	return err
}

// New opens dir as the web root. It fails when dir is missing, unreadable or not a directory.
func New(dir string) (*Root, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("static: web root %s: %w", dir, err)
	}
	r := &Root{dir: dir, openat2: true}
	if !r.path.set([]byte(abs)) {
		return nil, fmt.Errorf("static: web root %s: %w", dir, unix.ENAMETOOLONG)
	}
	d, err := r.openDir()
	if err != nil {
		if errors.Is(err, unix.ENOTDIR) {
			return nil, fmt.Errorf("%w: %s", ErrNotDirectory, dir)
		}
		return nil, fmt.Errorf("static: open web root %s: %w", dir, err)
	}
	switch err := probeOpenat2(d.fd); {
	case err == nil:
	case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM):
		// ENOSYS: a kernel before 5.6. EPERM: a seccomp filter that does not know openat2, as
		// older container runtimes' defaults return; opening "." of a directory just opened cannot
		// fail with EPERM otherwise.
		r.openat2 = false
	default:
		d.release()
		return nil, fmt.Errorf("static: read web root %s: %w", dir, err)
	}
	r.cur.Store(d)
	r.checked.Store(int64(time.Since(epoch)))
	return r, nil
}

// openDir opens the directory the root's path names now, with Root's reference taken.
func (r *Root) openDir() (*rootDir, error) {
	fd, dev, ino, err := r.openPath()
	if err != nil {
		return nil, err
	}
	return newRootDir(fd, dev, ino), nil
}

func newRootDir(fd int, dev, ino uint64) *rootDir {
	d := &rootDir{fd: fd, dev: dev, ino: ino}
	d.refs.Store(1)
	return d
}

// openPath opens the directory the root's path names now and returns its descriptor and identity. It
// does not allocate.
func (r *Root) openPath() (fd int, dev, ino uint64, err error) {
	cwd := unix.AT_FDCWD // the path is absolute; a variable, since the constant is negative
	for {
		nfd, _, errno := unix.Syscall6(unix.SYS_OPENAT, uintptr(cwd), uintptr(unsafe.Pointer(&r.path.b[0])),
			uintptr(unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC), 0, 0, 0)
		switch errno {
		case 0:
		case unix.EINTR:
			continue
		default:
			return -1, 0, 0, errno
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(nfd), &st); err != nil {
			unix.Close(int(nfd))
			return -1, 0, 0, err
		}
		return int(nfd), st.Dev, st.Ino, nil
	}
}

// acquire returns the directory to serve this request from, with a reference the caller releases,
// or nil when the root's path names no directory. Once every RevalidateEvery it first looks at the
// path again (see Root).
func (r *Root) acquire() *rootDir {
	if now := int64(time.Since(epoch)); now-r.checked.Load() >= int64(RevalidateEvery) && r.checking.TryLock() {
		if now-r.checked.Load() >= int64(RevalidateEvery) && !r.closed.Load() {
			r.revalidate()
			r.checked.Store(now)
		}
		r.checking.Unlock()
	}
	for {
		d := r.cur.Load()
		if d == nil || d.acquire() {
			return d
		}
		// d was replaced and closed between the load and the reference: load its successor.
	}
}

// revalidate makes cur the directory the root's path names now (open, fstat and, when it is the same
// one, close: three system calls a RevalidateEvery, and no allocation). Called with checking held.
// Only a path that names no directory (gone, not a directory, a symlink loop, not searchable) drops
// the current one; an error of edged's own, such as EMFILE or ENOMEM under load, keeps it, so that a
// moment without descriptors does not turn the web root into 404s until the next look.
func (r *Root) revalidate() {
	old := r.cur.Load()
	fd, dev, ino, err := r.openPath()
	var d *rootDir
	switch {
	case err == nil && old != nil && dev == old.dev && ino == old.ino:
		unix.Close(fd)
		return
	case err == nil:
		d = newRootDir(fd, dev, ino)
	case old != nil && !pathGone(err):
		return
	}
	r.cur.Store(d) // nil when the path names no directory now
	if old != nil {
		old.release()
	}
}

// pathGone reports whether err, from opening the web root's path, says that the path names no
// directory edged can serve, rather than that edged lacks a resource to open it now.
func pathGone(err error) bool {
	switch err {
	case unix.ENOENT, unix.ENOTDIR, unix.ELOOP, unix.EACCES, unix.EPERM, unix.ENAMETOOLONG:
		return true
	}
	return false
}

// Close releases the root's directory; requests still resolving beneath it finish first.
func (r *Root) Close() error {
	r.checking.Lock()
	defer r.checking.Unlock()
	r.closed.Store(true)
	if old := r.cur.Swap(nil); old != nil {
		old.release()
	}
	return nil
}

// Dir returns the root directory as configured.
func (r *Root) Dir() string { return r.dir }

// file is an open regular file and what the response needs of it.
type file struct {
	fd    int
	size  int64
	mtime time.Time
	etag  [40]byte
	etagN int
}

// Serve answers c from the web root (CONTRACT D5).
func (r *Root) Serve(c *conn.Connection) error {
	if m := c.Method(); m != conn.MethodGet && m != conn.MethodHead {
		_ = c.SetHeader("Allow", "GET, HEAD")
		return c.Reply(405, "text/plain; charset=utf-8", []byte("method not allowed\n"))
	}
	p, err := c.DecodedPath()
	if err != nil {
		return notFound(c)
	}
	rel, isDir, ok := relativePath(p)
	if !ok {
		return notFound(c)
	}
	var nameBuf [4096 + 16]byte
	if len(rel)+len("index.html.gz") > len(nameBuf) {
		return notFound(c)
	}
	name := append(nameBuf[:0], rel...)
	if isDir {
		name = append(name, "index.html"...)
	}
	d := r.acquire()
	if d == nil {
		return notFound(c) // the web root's path names no directory now
	}
	defer d.release()
	root := d.fd
	var f file
	switch err := r.open(root, name, &f); {
	case errors.Is(err, errIsDir) && !isDir:
		// A directory asked for without its slash: redirect, as nginx and net/http do.
		loc := append(append([]byte(nil), c.Path()...), '/')
		if q := c.Query(); q != nil {
			loc = append(append(loc, '?'), q...)
		}
		_ = c.SetHeaderBytes("Location", loc)
		return c.Reply(301, "text/plain; charset=utf-8", []byte("moved\n"))
	case err != nil:
		return notFound(c)
	}
	defer unix.Close(f.fd)
	ctype := contentType(name)

	// A precompressed sibling, when the client takes gzip. The sibling is looked for only when the
	// request says which encodings it takes: a request without Accept-Encoding gets the file as it is,
	// without the lookup (one path resolution per request saved) and without Vary, as from nginx's
	// gzip_static with its default gzip_vary off. Any request with Accept-Encoding (every browser
	// sends it) gets Vary: Accept-Encoding on both variants of a file that has a sibling.
	var gz file
	gzipped := false
	if c.Header("Accept-Encoding") != nil && r.open(root, append(name, ".gz"...), &gz) == nil {
		defer unix.Close(gz.fd)
		_ = c.SetHeader("Vary", "Accept-Encoding")
		if acceptsGzip(c) {
			f, gzipped = gz, true
		}
	}
	return serveFile(c, &f, ctype, gzipped)
}

var errIsDir = errors.New("static: is a directory")

// open opens the regular file rel (relative to root, the web root's descriptor, no leading slash) into f.
func (r *Root) open(root int, rel []byte, f *file) error {
	var fd int
	var err error
	for {
		if r.openat2 {
			fd, err = openBeneath(root, rel)
		} else {
			fd, err = openChecked(root, rel)
		}
		if err != unix.EINTR && err != unix.EAGAIN {
			break
		}
	}
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		unix.Close(fd)
		return errIsDir
	default:
		unix.Close(fd)
		return unix.ENOENT // devices, fifos, sockets are never served
	}
	f.fd, f.size = fd, st.Size
	f.mtime = time.Unix(st.Mtim.Unix())
	e := append(f.etag[:0], '"')
	e = strconv.AppendInt(e, st.Size, 16)
	e = append(e, '-')
	e = strconv.AppendInt(e, f.mtime.UnixNano(), 16)
	e = append(e, '"')
	f.etagN = len(e)
	return nil
}

// openHow is how every file below the root is opened: read-only, never through a symlink or ".."
// that leaves the root, nor through /proc's magic links.
var openHow = unix.OpenHow{
	Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK,
	Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
}

// openBeneath is openat2(2) with openHow on a path given as bytes: unix.Openat2 takes a string, whose
// conversion to a C string allocates on every request.
func openBeneath(dirfd int, rel []byte) (int, error) {
	var path cPath
	if !path.set(rel) {
		return -1, unix.ENAMETOOLONG
	}
	fd, _, errno := unix.Syscall6(unix.SYS_OPENAT2, uintptr(dirfd), uintptr(unsafe.Pointer(&path.b[0])),
		uintptr(unsafe.Pointer(&openHow)), unsafe.Sizeof(openHow), 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// cPath is a NUL-terminated path on the stack, for system calls made without a Go string (which would
// allocate).
type cPath struct {
	b [4096 + 32]byte
}

// set copies p and its terminating NUL; an empty p is ".". It fails when p is too long or holds a NUL.
func (c *cPath) set(p []byte) bool {
	if len(p) == 0 {
		p = []byte{'.'}
	}
	if len(p) >= len(c.b) || bytes.IndexByte(p, 0) >= 0 {
		return false
	}
	copy(c.b[:], p)
	c.b[len(p)] = 0
	return true
}

// setFdLink sets the path /proc/self/fd/FD.
func (c *cPath) setFdLink(fd int) {
	var tmp [32]byte
	p := strconv.AppendInt(append(tmp[:0], "/proc/self/fd/"...), int64(fd), 10)
	c.set(p)
}

// readlink reads the link at c into buf, without allocating.
func (c *cPath) readlink(buf []byte) (int, error) {
	cwd := unix.AT_FDCWD // the path is absolute; a variable, since the constant is negative
	n, _, errno := unix.Syscall6(unix.SYS_READLINKAT, uintptr(cwd), uintptr(unsafe.Pointer(&c.b[0])),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// openChecked is the resolution of kernels without openat2(2) (before Linux 5.6): open, then check
// with /proc that the file's real path is below the root's real path. Like openBeneath it allocates
// nothing.
func openChecked(dirfd int, rel []byte) (int, error) {
	var path cPath
	if !path.set(rel) {
		return -1, unix.ENAMETOOLONG
	}
	nfd, _, errno := unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(&path.b[0])),
		uintptr(openHow.Flags), 0, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	fd := int(nfd)
	var buf, rootBuf [4096]byte
	path.setFdLink(fd)
	n, err1 := path.readlink(buf[:])
	path.setFdLink(dirfd)
	m, err2 := path.readlink(rootBuf[:])
	if err1 != nil || err2 != nil {
		unix.Close(fd)
		return -1, unix.EACCES
	}
	real, root := buf[:n], rootBuf[:m]
	if !bytes.Equal(real, root) && !(bytes.HasPrefix(real, root) && (bytes.HasSuffix(root, []byte("/")) || real[len(root)] == '/')) {
		unix.Close(fd)
		return -1, unix.EXDEV
	}
	return fd, nil
}

// relativePath turns a decoded request path into a path relative to the root. It refuses "." and ".."
// segments and backslashes; isDir reports a trailing slash.
func relativePath(p []byte) (rel []byte, isDir bool, ok bool) {
	if len(p) == 0 || p[0] != '/' || bytes.IndexByte(p, '\\') >= 0 || bytes.IndexByte(p, 0) >= 0 {
		return nil, false, false
	}
	rel = p[1:]
	isDir = len(rel) == 0 || rel[len(rel)-1] == '/'
	for seg := rel; len(seg) > 0; {
		i := bytes.IndexByte(seg, '/')
		s := seg
		if i >= 0 {
			s, seg = seg[:i], seg[i+1:]
		} else {
			seg = nil
		}
		if len(s) == 0 && i >= 0 {
			return nil, false, false // "//": refused rather than normalised
		}
		if string(s) == "." || string(s) == ".." {
			return nil, false, false
		}
	}
	return rel, isDir, true
}

func notFound(c *conn.Connection) error {
	return c.Reply(404, "text/plain; charset=utf-8", []byte("not found\n"))
}

// acceptsGzip reports whether Accept-Encoding lists gzip without q=0, or, when it does not list gzip,
// lists * without q=0: "*" stands only for the codings not named (RFC 9110 12.5.3), so that
// "gzip;q=0, *" refuses gzip.
func acceptsGzip(c *conn.Connection) bool {
	star := false
	for i := 0; i < c.NumHeaders(); i++ {
		name, v := c.HeaderAt(i)
		if !bytes.EqualFold(name, []byte("Accept-Encoding")) {
			continue
		}
		for len(v) > 0 {
			var item []byte
			item, v = conn.NextListElement(v)
			coding, params, _ := bytes.Cut(item, []byte(";"))
			coding = bytes.TrimSpace(coding)
			switch {
			case bytes.EqualFold(coding, []byte("gzip")):
				return !qZero(params)
			case bytes.Equal(coding, []byte("*")):
				star = !qZero(params)
			}
		}
	}
	return star
}

// qZero reports whether the parameters of an Accept-Encoding item hold q=0 (RFC 9110 12.4.2), without
// allocating: every request of a browser has Accept-Encoding.
func qZero(params []byte) bool {
	for len(params) > 0 {
		var p []byte
		if i := bytes.IndexByte(params, ';'); i >= 0 {
			p, params = params[:i], params[i+1:]
		} else {
			p, params = params, nil
		}
		name, v, ok := bytes.Cut(p, []byte("="))
		if !ok || !bytes.EqualFold(bytes.TrimSpace(name), []byte("q")) {
			continue
		}
		v = bytes.TrimSpace(v)
		if len(v) == 0 || v[0] != '0' {
			return false
		}
		for _, d := range v[1:] {
			if d != '.' && d != '0' {
				return false
			}
		}
		return true
	}
	return false
}

const httpTime = "Mon, 02 Jan 2006 15:04:05 GMT"

// serveFile answers with f, the precompressed sibling when gzipped: 412, 304, 416, 206 or 200 (CONTRACT D5).
func serveFile(c *conn.Connection, f *file, ctype string, gzipped bool) error {
	etag := f.etag[:f.etagN]
	var lm [29]byte
	lastMod := f.mtime.UTC().AppendFormat(lm[:0], httpTime)
	_ = c.SetHeaderBytes("ETag", etag)
	_ = c.SetHeaderBytes("Last-Modified", lastMod)
	if preconditionFailed(c, etag, f.mtime) {
		// RFC 9110 13.2.2: If-Match and If-Unmodified-Since come before everything else; a client
		// resuming a download of a file that has changed since gets 412, not a piece of the new one.
		return c.Reply(412, "text/plain; charset=utf-8", bodyPreconditionFailed)
	}
	if notModified(c, etag, f.mtime) {
		if gzipped {
			_ = c.SetHeader("Content-Encoding", "gzip")
		}
		return c.WriteHeader(304)
	}
	_ = c.SetHeader("Accept-Ranges", "bytes")
	start, length, status := int64(0), f.size, 200
	if rng := c.Header("Range"); rng != nil && ifRangeHolds(c, etag, lastMod) {
		s, n, ok, satisfiable := parseRange(rng, f.size)
		switch {
		case ok && !satisfiable:
			var cr [40]byte
			v := strconv.AppendInt(append(cr[:0], "bytes */"...), f.size, 10)
			_ = c.SetHeaderBytes("Content-Range", v)
			// The body is this text, not the file: neither the file's Content-Type nor its gzip
			// Content-Encoding describe it.
			return c.Reply(416, "text/plain; charset=utf-8", []byte("range not satisfiable\n"))
		case ok:
			start, length, status = s, n, 206
			var cr [72]byte
			v := append(cr[:0], "bytes "...)
			v = strconv.AppendInt(v, s, 10)
			v = append(v, '-')
			v = strconv.AppendInt(v, s+n-1, 10)
			v = append(v, '/')
			v = strconv.AppendInt(v, f.size, 10)
			_ = c.SetHeaderBytes("Content-Range", v)
		}
	}
	if gzipped {
		_ = c.SetHeader("Content-Encoding", "gzip")
	}
	_ = c.SetHeader("Content-Type", ctype)
	c.SetContentLength(length)
	if err := c.WriteHeader(status); err != nil {
		return err
	}
	return c.SendFile(f.fd, start, length)
}

var bodyPreconditionFailed = []byte("precondition failed\n")

// preconditionFailed applies If-Match, else If-Unmodified-Since (RFC 9110 13.1.1, 13.1.4, 13.2.2):
// both must be evaluated by an origin server before the method is performed.
func preconditionFailed(c *conn.Connection, etag []byte, mtime time.Time) bool {
	if c.Header("If-Match") != nil {
		// The list may come in several lines (RFC 9110 5.3): a match in any of them holds.
		for i := 0; i < c.NumHeaders(); i++ {
			if name, v := c.HeaderAt(i); bytes.EqualFold(name, []byte("If-Match")) && conn.MatchETagStrong(v, etag) {
				return false
			}
		}
		return true
	}
	if ius := c.Header("If-Unmodified-Since"); ius != nil {
		t, ok := parseHTTPDate(ius)
		return ok && mtime.Truncate(time.Second).After(t)
	}
	return false
}

// notModified applies If-None-Match, else If-Modified-Since (RFC 9110 13.2.2).
func notModified(c *conn.Connection, etag []byte, mtime time.Time) bool {
	if inm := c.Header("If-None-Match"); inm != nil {
		return conn.MatchETag(inm, etag)
	}
	if ims := c.Header("If-Modified-Since"); ims != nil {
		t, ok := parseHTTPDate(ims)
		return ok && !mtime.Truncate(time.Second).After(t)
	}
	return false
}

// ifRangeHolds reports whether a Range may be applied given If-Range (RFC 9110 13.1.5).
func ifRangeHolds(c *conn.Connection, etag, lastMod []byte) bool {
	ir := c.Header("If-Range")
	return ir == nil || bytes.Equal(ir, etag) || bytes.Equal(ir, lastMod)
}

// parseRange parses a single byte range against size. ok is false when the header is not one
// well-formed byte range (it is then ignored and the whole file served); satisfiable is false when the
// range lies outside the file.
func parseRange(h []byte, size int64) (start, n int64, ok, satisfiable bool) {
	spec, found := bytes.CutPrefix(bytes.TrimSpace(h), []byte("bytes="))
	if !found || bytes.IndexByte(spec, ',') >= 0 {
		return 0, 0, false, false
	}
	first, last, found := bytes.Cut(bytes.TrimSpace(spec), []byte("-"))
	if !found {
		return 0, 0, false, false
	}
	num := func(b []byte) (int64, bool) {
		if len(b) == 0 || len(b) > 18 || b[0] < '0' || b[0] > '9' { // digits only: no sign
			return 0, false
		}
		v, err := strconv.ParseInt(string(b), 10, 64)
		return v, err == nil && v >= 0
	}
	if len(first) == 0 { // suffix: the last N bytes
		k, good := num(last)
		if !good {
			return 0, 0, false, false
		}
		if k == 0 || size == 0 {
			return 0, 0, true, false
		}
		if k > size {
			k = size
		}
		return size - k, k, true, true
	}
	s, good := num(first)
	if !good {
		return 0, 0, false, false
	}
	e := size - 1
	if len(last) > 0 {
		v, good := num(last)
		if !good || v < s {
			return 0, 0, false, false
		}
		if v < e {
			e = v
		}
	}
	if s >= size {
		return 0, 0, true, false
	}
	return s, e - s + 1, true, true
}
