package ws_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/edged/edged/pkg/conn"
	"github.com/edged/edged/pkg/ws"
)

// memStream is a scripted, in-memory conn.Stream: Read serves the input (then io.EOF), Write captures.
// It is reusable without allocating (rewind), so that it can serve AllocsPerRun loops and benchmarks.
type memStream struct {
	in  []byte
	pos int
	// maxRead > 0 caps every Read (1: one byte per Read).
	maxRead int
	// pauses are input offsets (ascending) where the next Read fails once with os.ErrDeadlineExceeded,
	// as a socket whose peer paused would; no Read crosses a pause.
	pauses []int
	next   int
	// cuts are input offsets no Read crosses (the peer sent the input in pieces).
	cuts []int

	out     []byte
	discard bool // count written bytes but keep none (benchmarks)
	outLen  int
}

var _ conn.Stream = (*memStream)(nil)

func (s *memStream) rewind() {
	s.pos, s.next = 0, 0
	s.out = s.out[:0]
	s.outLen = 0
}

func (s *memStream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	end := len(s.in)
	for s.next < len(s.pauses) && s.pauses[s.next] < s.pos {
		s.next++
	}
	if s.next < len(s.pauses) {
		at := s.pauses[s.next]
		if at == s.pos {
			s.next++
			return 0, os.ErrDeadlineExceeded
		}
		end = min(end, at)
	}
	for _, c := range s.cuts {
		if c > s.pos && c < end {
			end = c
		}
	}
	if s.pos >= end {
		return 0, io.EOF
	}
	n := end - s.pos
	if s.maxRead > 0 && n > s.maxRead {
		n = s.maxRead
	}
	n = copy(p, s.in[s.pos:s.pos+n])
	s.pos += n
	return n, nil
}

func (s *memStream) Write(p []byte) (int, error) {
	if !s.discard {
		s.out = append(s.out, p...)
	}
	s.outLen += len(p)
	return len(p), nil
}

func (s *memStream) SetReadDeadline(time.Time)  {}
func (s *memStream) SetWriteDeadline(time.Time) {}

// netStream adapts one end of a net.Pipe to conn.Stream: a real full-duplex, blocking transport.
type netStream struct{ net.Conn }

func (s netStream) SetReadDeadline(t time.Time)  { _ = s.Conn.SetReadDeadline(t) }
func (s netStream) SetWriteDeadline(t time.Time) { _ = s.Conn.SetWriteDeadline(t) }

// waitTimeout bounds every wait of a test for something the server should do; generous, so that
// -race and slow ARM boards under qemu do not flake.
const waitTimeout = 10 * time.Second

// testMask is the masking key of client frames unless a test chooses another.
var testMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// Header byte 0 building blocks.
const (
	fin  = 0x80
	rsv1 = 0x40
	rsv2 = 0x20
	rsv3 = 0x10

	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

// cframe is a client frame as a test wants it on the wire, including broken ones.
type cframe struct {
	b0       byte // FIN, RSV and opcode
	payload  []byte
	unmasked bool
	lenForm  int   // 0: minimal; 16 or 64: that extended length form
	length   int64 // > 0: the announced length, for a header sent without its payload
	mask     [4]byte
	noMask   bool // mask with the all-zero key instead of testMask
	topBit   bool // set the top bit of a 64-bit length
}

// bytes encodes f: header, then the payload masked with f's key (RFC 6455 5.2, 5.3).
func (f cframe) bytes() []byte {
	n := int64(len(f.payload))
	if f.length > 0 {
		n = f.length
	}
	b := []byte{f.b0, 0}
	if !f.unmasked {
		b[1] = 0x80
	}
	form := f.lenForm
	if form == 0 {
		switch {
		case n <= 125:
			form = 7
		case n <= 0xFFFF:
			form = 16
		default:
			form = 64
		}
	}
	switch form {
	case 7:
		b[1] |= byte(n)
	case 16:
		b[1] |= 126
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	case 64:
		b[1] |= 127
		v := uint64(n)
		if f.topBit {
			v |= 1 << 63
		}
		b = binary.BigEndian.AppendUint64(b, v)
	}
	if f.unmasked {
		return append(b, f.payload...)
	}
	key := testMask
	if f.mask != ([4]byte{}) || f.noMask {
		key = f.mask
	}
	b = append(b, key[:]...)
	for i, c := range f.payload {
		b = append(b, c^key[i&3])
	}
	return b
}

// frame is a masked client frame with minimal length encoding.
func frame(b0 byte, payload string) []byte { return cframe{b0: b0, payload: []byte(payload)}.bytes() }

// closeFrame is a masked client close frame with a code and a reason.
func closeFrame(code int, reason string) []byte {
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	return cframe{b0: fin | opClose, payload: append(p, reason...)}.bytes()
}

func join(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// sframe is a frame the server sent.
type sframe struct {
	fin     bool
	rsv     byte
	op      byte
	masked  bool
	payload []byte
}

func (f sframe) String() string {
	s := fmt.Sprintf("{fin=%v rsv=%d op=%#x masked=%v len=%d", f.fin, f.rsv, f.op, f.masked, len(f.payload))
	if f.op == opClose && len(f.payload) >= 2 {
		s += fmt.Sprintf(" code=%d", binary.BigEndian.Uint16(f.payload))
	}
	return s + "}"
}

// parseFrames decodes the frames in b with a decoder independent of the package's; rest is an
// incomplete last frame.
func parseFrames(b []byte) (frames []sframe, rest []byte) {
	for {
		f, n := parseFrame(b)
		if n == 0 {
			return frames, b
		}
		frames = append(frames, f)
		b = b[n:]
	}
}

// parseFrame decodes one frame at the start of b, or returns n == 0 if b holds only part of one.
func parseFrame(b []byte) (f sframe, n int) {
	if len(b) < 2 {
		return f, 0
	}
	f.fin = b[0]&0x80 != 0
	f.rsv = b[0] >> 4 & 7
	f.op = b[0] & 0xF
	f.masked = b[1]&0x80 != 0
	length := uint64(b[1] & 0x7F)
	n = 2
	switch length {
	case 126:
		if len(b) < 4 {
			return f, 0
		}
		length, n = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return f, 0
		}
		length, n = binary.BigEndian.Uint64(b[2:]), 10
	}
	var key []byte
	if f.masked {
		if len(b) < n+4 {
			return f, 0
		}
		key = b[n : n+4]
		n += 4
	}
	if uint64(len(b)-n) < length {
		return f, 0
	}
	f.payload = append([]byte(nil), b[n:n+int(length)]...)
	for i := range f.payload {
		if key != nil {
			f.payload[i] ^= key[i&3]
		}
	}
	return f, n + int(length)
}

// checkServerFrame reports what is wrong with a frame a server may send: servers send unmasked
// frames (RFC 6455 5.1); edged never fragments, sets no RSV bit and sends only valid close payloads.
func checkServerFrame(f sframe) error {
	switch {
	case f.masked:
		return errors.New("server frame is masked")
	case !f.fin:
		return errors.New("server frame is not final")
	case f.rsv != 0:
		return errors.New("server frame has RSV bits")
	case f.op != opText && f.op != opBinary && f.op != opClose && f.op != opPing && f.op != opPong:
		return fmt.Errorf("server frame has opcode %#x", f.op)
	case f.op >= 8 && len(f.payload) > 125:
		return errors.New("server control frame longer than 125 bytes")
	case f.op == opClose && len(f.payload) == 1:
		return errors.New("server close frame with a one-byte payload")
	}
	if f.op == opClose && len(f.payload) >= 2 {
		code := int(binary.BigEndian.Uint16(f.payload))
		if code < 1000 || code >= 5000 || code == 1004 || code == 1005 || code == 1006 || (code >= 1015 && code < 3000) {
			return fmt.Errorf("server close frame with code %d", code)
		}
		if !utf8.Valid(f.payload[2:]) {
			r := f.payload[2:]
			return fmt.Errorf("server close reason (%d bytes, ending in % x) is not UTF-8", len(r), r[max(0, len(r)-4):])
		}
	}
	return nil
}

// message is one ReadMessage result that succeeded, payload copied.
type message struct {
	op ws.Opcode
	p  string
}

func (m message) String() string { return fmt.Sprintf("%v %.40q", m.op, m.p) }

// outcome is what a Conn did with a scripted input: the messages it returned, the error that ended
// the loop, and the frames it sent.
type outcome struct {
	msgs   []message
	err    error
	frames []sframe
	rest   []byte // server output after the last whole frame (should be empty)
	out    []byte
}

// runScript feeds in to a fresh Conn through a memStream (maxRead bytes per Read, 0: unlimited) and
// reads messages until an error.
func runScript(t testing.TB, cfg ws.Config, in []byte, maxRead int) outcome {
	t.Helper()
	return runOn(t, ws.NewConn(cfg), &memStream{in: in, maxRead: maxRead})
}

func runOn(t testing.TB, c *ws.Conn, s *memStream) outcome {
	t.Helper()
	if err := c.Reset(s, nil); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	var o outcome
	for i := 0; ; i++ {
		if i > len(s.in)+16 {
			t.Fatalf("ReadMessage keeps returning messages past the input (%d calls)", i)
		}
		op, p, err := c.ReadMessage()
		if err != nil {
			o.err = err
			break
		}
		o.msgs = append(o.msgs, message{op, string(p)})
	}
	o.out = s.out
	o.frames, o.rest = parseFrames(s.out)
	return o
}

// closeCode returns the code of the close frame f; 0 for an empty close, -1 when f is not a close.
func closeCode(f sframe) int {
	switch {
	case f.op != opClose:
		return -1
	case len(f.payload) < 2:
		return 0
	}
	return int(binary.BigEndian.Uint16(f.payload))
}

// wantFail checks that the server failed the session with code: its last frame is the only close
// frame and carries code, every frame it sent is well formed, and ReadMessage returned a
// *ws.ProtocolError with that code.
func wantFail(t *testing.T, o outcome, code int) {
	t.Helper()
	wantCloseSent(t, o, code)
	var pe *ws.ProtocolError
	if !errors.As(o.err, &pe) {
		t.Fatalf("ReadMessage error = %v (%T), want *ws.ProtocolError with code %d", o.err, o.err, code)
	}
	if pe.Code != code {
		t.Errorf("ProtocolError.Code = %d, want %d", pe.Code, code)
	}
}

// wantCloseSent checks that the last frame the server sent is its only close frame and carries code.
func wantCloseSent(t *testing.T, o outcome, code int) {
	t.Helper()
	if len(o.rest) != 0 {
		t.Fatalf("server output ends with a partial frame: % x", o.rest)
	}
	for i, f := range o.frames {
		if err := checkServerFrame(f); err != nil {
			t.Errorf("server frame %d %v: %v", i, f, err)
		}
		if f.op == opClose && i != len(o.frames)-1 {
			t.Errorf("server sent close frame %d %v before other frames: %v", i, f, o.frames)
		}
	}
	if len(o.frames) == 0 || o.frames[len(o.frames)-1].op != opClose {
		t.Fatalf("server sent no close frame; frames %v, ReadMessage error %v", o.frames, o.err)
	}
	if got := closeCode(o.frames[len(o.frames)-1]); got != code {
		t.Fatalf("server close code = %d, want %d (ReadMessage error %v)", got, code, o.err)
	}
}

// wantClean checks that the server sent no close frame and the input ran out (the session is fine).
func wantClean(t *testing.T, o outcome) {
	t.Helper()
	for _, f := range o.frames {
		if f.op == opClose {
			t.Fatalf("server sent %v; ReadMessage error %v", f, o.err)
		}
	}
	if !errors.Is(o.err, io.ErrUnexpectedEOF) && !errors.Is(o.err, io.EOF) {
		t.Fatalf("ReadMessage error = %v, want the end of the input", o.err)
	}
}

// pipeSession is a Conn served over a net.Pipe: the test is the client on the other end, and a
// goroutine calls ReadMessage until it fails, delivering every result on results.
type pipeSession struct {
	t       *testing.T
	c       *ws.Conn
	client  net.Conn
	results chan result
}

type result struct {
	op  ws.Opcode
	p   string
	err error
}

func newPipeSession(t *testing.T, cfg ws.Config) *pipeSession {
	t.Helper()
	srv, cli := net.Pipe()
	ps := &pipeSession{t: t, c: ws.NewConn(cfg), client: cli, results: make(chan result, 64)}
	if err := ps.c.Reset(netStream{srv}, nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			op, p, err := ps.c.ReadMessage()
			ps.results <- result{op, string(p), err}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		cli.Close()
		srv.Close()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Error("ReadMessage goroutine did not end after the pipe closed")
		}
	})
	return ps
}

// send writes b as the client; it fails the test if the server does not take it in time.
func (ps *pipeSession) send(b []byte) {
	ps.t.Helper()
	_ = ps.client.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := ps.client.Write(b); err != nil {
		ps.t.Fatalf("client write: %v", err)
	}
}

// readFrame reads the next frame the server sends.
func (ps *pipeSession) readFrame() sframe {
	ps.t.Helper()
	return readServerFrame(ps.t, ps.client)
}

// readServerFrame reads the next frame the server sends on the client end c, and no byte past it.
func readServerFrame(tb testing.TB, c net.Conn) sframe {
	tb.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	var buf []byte
	tmp := make([]byte, 512)
	for {
		if f, n := parseFrame(buf); n > 0 {
			if n != len(buf) {
				tb.Fatalf("readFrame over-read") // cannot happen: reads stop at the frame's end
			}
			if err := checkServerFrame(f); err != nil {
				tb.Errorf("server frame %v: %v", f, err)
			}
			return f
		}
		// Read no further than the current frame: first its header, then its payload.
		need := frameNeed(buf)
		k, err := c.Read(tmp[:min(need, len(tmp))])
		buf = append(buf, tmp[:k]...)
		if err != nil {
			tb.Fatalf("client read after % x: %v", buf, err)
		}
	}
}

// frameNeed returns how many more bytes the frame starting with b needs at least.
func frameNeed(b []byte) int {
	if len(b) < 2 {
		return 2 - len(b)
	}
	n := 2
	length := int(b[1] & 0x7F)
	switch length {
	case 126:
		n = 4
	case 127:
		n = 10
	}
	if b[1]&0x80 != 0 {
		n += 4
	}
	if len(b) < n {
		return n - len(b)
	}
	switch length {
	case 126:
		length = int(binary.BigEndian.Uint16(b[2:]))
	case 127:
		length = int(binary.BigEndian.Uint64(b[2:]))
	}
	return n + length - len(b)
}

// next returns the next ReadMessage result.
func (ps *pipeSession) next() result {
	ps.t.Helper()
	select {
	case r := <-ps.results:
		return r
	case <-time.After(waitTimeout):
		ps.t.Fatal("ReadMessage did not return")
	}
	return result{}
}

// requestHead builds an upgrade request; extra lines replace or add header lines ("Name:" alone
// removes that header, a leading "+" adds a line even when the header is already there).
func requestHead(method, proto string, extra ...string) string {
	hdrs := []string{
		"Host: example.com",
		"Upgrade: websocket",
		"Connection: Upgrade",
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
		"Sec-WebSocket-Version: 13",
	}
	for _, e := range extra {
		if add, ok := strings.CutPrefix(e, "+"); ok {
			hdrs = append(hdrs, add)
			continue
		}
		name, _, _ := strings.Cut(e, ":")
		replaced := false
		for i, h := range hdrs {
			if hn, _, _ := strings.Cut(h, ":"); strings.EqualFold(hn, name) {
				hdrs[i], replaced = e, true
			}
		}
		if !replaced {
			hdrs = append(hdrs, e)
		}
	}
	var b strings.Builder
	b.WriteString(method + " /chat " + proto + "\r\n")
	for _, h := range hdrs {
		if strings.HasSuffix(h, ":") {
			continue
		}
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}
