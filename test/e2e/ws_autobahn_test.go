//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
	"unicode/utf8"
)

// abLimit is the --ws-max-message of the daemon the Autobahn-style cases run against.
const abLimit = 1 << 20

// abConn is a raw WebSocket client with its own framing, so that a case can send any frame, whole
// or a byte at a time, and check every frame the server sends back.
type abConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

type abFrame struct {
	fin     bool
	rsv     byte
	op      byte
	payload []byte
}

func (f abFrame) String() string {
	p := f.payload
	if len(p) > 16 {
		p = p[:16]
	}
	return fmt.Sprintf("{fin=%v rsv=%d op=%d len=%d %q}", f.fin, f.rsv, f.op, len(f.payload), p)
}

func abDial(t *testing.T, d *daemon) *abConn {
	t.Helper()
	w := d.wsDialRaw(t, "/echo")
	return &abConn{t: t, c: w.c, br: w.br}
}

// abEncode encodes one masked client frame.
func abEncode(fin bool, rsv, op byte, payload []byte) []byte {
	b := []byte{op | rsv<<4, 0x80}
	if fin {
		b[0] |= 0x80
	}
	switch l := len(payload); {
	case l <= 125:
		b[1] |= byte(l)
	case l <= 0xFFFF:
		b[1] |= 126
		b = binary.BigEndian.AppendUint16(b, uint16(l))
	default:
		b[1] |= 127
		b = binary.BigEndian.AppendUint64(b, uint64(l))
	}
	mask := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	b = append(b, mask[:]...)
	n := len(b)
	b = append(b, payload...)
	for i := range payload {
		b[n+i] ^= mask[i&3]
	}
	return b
}

// send writes b in one write, or in chunks of chunk bytes (each its own TCP segment).
func (a *abConn) send(b []byte, chunk int) {
	a.t.Helper()
	if chunk <= 0 {
		chunk = len(b)
	}
	for len(b) > 0 {
		n := min(chunk, len(b))
		if _, err := a.c.Write(b[:n]); err != nil {
			a.t.Fatalf("write: %v", err)
		}
		b = b[n:]
	}
}

func (a *abConn) frame(fin bool, rsv, op byte, payload []byte) {
	a.send(abEncode(fin, rsv, op, payload), 0)
}

func (a *abConn) read() (abFrame, error) {
	var f abFrame
	var hdr [2]byte
	if _, err := io.ReadFull(a.br, hdr[:]); err != nil {
		return f, err
	}
	f.fin, f.rsv, f.op = hdr[0]&0x80 != 0, (hdr[0]>>4)&7, hdr[0]&0x0F
	if hdr[1]&0x80 != 0 {
		return f, errors.New("server frame masked")
	}
	n := uint64(hdr[1] & 0x7F)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(a.br, e[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
		if n < 126 {
			return f, fmt.Errorf("non-minimal 16-bit length %d", n)
		}
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(a.br, e[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(e[:])
		if n <= 0xFFFF {
			return f, fmt.Errorf("non-minimal 64-bit length %d", n)
		}
	}
	if n > 64<<20 {
		return f, fmt.Errorf("frame of %d bytes", n)
	}
	f.payload = make([]byte, n)
	_, err := io.ReadFull(a.br, f.payload)
	return f, err
}

// expect reads the next frame and fails unless it is a final, RSV-free frame op with payload want.
func (a *abConn) expect(op byte, want []byte) {
	a.t.Helper()
	f, err := a.read()
	if err != nil {
		a.t.Fatalf("want op %d len %d: %v", op, len(want), err)
	}
	if !f.fin || f.rsv != 0 || f.op != op || !bytes.Equal(f.payload, want) {
		a.t.Fatalf("want op %d len %d %q, got %v", op, len(want), want[:min(16, len(want))], f)
	}
}

// expectClose reads the next frame, which must be a close with code (and a UTF-8 reason), and then
// the end of the connection, closed by the server without any further byte.
func (a *abConn) expectClose(code int) {
	a.t.Helper()
	f, err := a.read()
	if err != nil {
		a.t.Fatalf("want close %d: %v", code, err)
	}
	if f.op != opClose || !f.fin || f.rsv != 0 || len(f.payload) < 2 {
		a.t.Fatalf("want close %d, got %v", code, f)
	}
	if got := int(binary.BigEndian.Uint16(f.payload)); got != code {
		a.t.Fatalf("want close %d, got close %d %q", code, got, f.payload[2:])
	}
	if !utf8.Valid(f.payload[2:]) {
		a.t.Fatalf("close reason not UTF-8: %q", f.payload[2:])
	}
	a.expectEOF()
}

// expectCloseOrReset is expectClose for a client still sending: the close must arrive; the end may
// be a reset, since the server does not read what follows a failed frame.
func (a *abConn) expectCloseOrReset(code int) {
	a.t.Helper()
	f, err := a.read()
	if err != nil || f.op != opClose || len(f.payload) < 2 || int(binary.BigEndian.Uint16(f.payload)) != code {
		a.t.Fatalf("want close %d, got %v, %v", code, f, err)
	}
}

// expectEOF checks that the server closes the TCP connection (RFC 6455 7.1.1: the server closes
// first) and sends nothing more.
func (a *abConn) expectEOF() {
	a.t.Helper()
	_ = a.c.SetReadDeadline(time.Now().Add(waitLimit))
	var b [1]byte
	n, err := a.br.Read(b[:])
	if n != 0 || err != io.EOF {
		a.t.Fatalf("want the server to close the connection, got %d bytes %q, %v", n, b[:n], err)
	}
}

// closeCleanly runs the client-initiated close handshake and checks the server ends TCP.
func (a *abConn) closeCleanly() {
	a.t.Helper()
	a.frame(true, 0, opClose, closeFrame(1000))
	a.expectClose(1000)
}

// TestW3_AutobahnCaseFamilies replays the case families of the Autobahn|Testsuite fuzzing client
// against /echo with a client of its own, strictly: 1 framing (lengths 0 to --ws-max-message, sent
// whole, in 997-byte pieces or a byte at a time), 2 pings and pongs, 3 reserved bits and 4 reserved
// opcodes (the frame before is echoed, nothing after is answered), 5 fragmentation with control frames
// between fragments, 6 UTF-8 (judged by unicode/utf8, sent whole, a byte at a time and a fragment per
// byte; fail fast inside a frame), 7 close handling (the server closes TCP after the handshake), 9
// messages up to the limit and over it, 12/13 permessage-deflate offered but not negotiated
// (CONTRACT W3, W4, W5, W6, W7). Close codes and single malformed frames are in
// TestW3_MalformedFramesGetTheirCloseCode.
func TestW3_AutobahnCaseFamilies(t *testing.T) {
	d := startDaemon(t, nil, "--enable-echo", "--ws-max-message", fmt.Sprint(abLimit), "--ws-max-conns", "8", "--socket-queue", "16")
	run := func(name string, f func(a *abConn)) {
		t.Run(name, func(t *testing.T) { f(abDial(t, d)) })
	}

	// 1.x: framing.
	for _, op := range []byte{opText, opBinary} {
		for _, n := range []int{0, 1, 125, 126, 127, 128, 65535, 65536, 300000, abLimit} {
			for _, chunk := range []int{0, 1, 997} {
				if chunk == 1 && n > 70000 {
					continue
				}
				run(fmt.Sprintf("1/op%d/len%d/chunk%d", op, n, chunk), func(a *abConn) {
					p := bytes.Repeat([]byte("*"), n)
					a.send(abEncode(true, 0, op, p), chunk)
					a.expect(op, p)
					a.closeCleanly()
				})
			}
		}
	}

	// 2.x: pings and pongs.
	for _, n := range []int{0, 1, 125} {
		for _, chunk := range []int{0, 1} {
			run(fmt.Sprintf("2/ping%d/chunk%d", n, chunk), func(a *abConn) {
				p := bytes.Repeat([]byte{0xfe}, n)
				a.send(abEncode(true, 0, opPing, p), chunk)
				a.expect(opPong, p)
				a.closeCleanly()
			})
		}
	}
	run("2/ping126", func(a *abConn) {
		a.frame(true, 0, opPing, make([]byte, 126))
		a.expectClose(1002)
	})
	run("2/unsolicitedPong", func(a *abConn) {
		a.frame(true, 0, opPong, []byte("unsolicited"))
		a.frame(true, 0, opPong, nil)
		a.frame(true, 0, opText, []byte("after"))
		a.expect(opText, []byte("after"))
		a.closeCleanly()
	})
	run("2/tenPings", func(a *abConn) {
		var b []byte
		for i := 0; i < 10; i++ {
			b = append(b, abEncode(true, 0, opPing, []byte(fmt.Sprint("ping", i)))...)
		}
		a.send(b, 0)
		for i := 0; i < 10; i++ {
			a.expect(opPong, []byte(fmt.Sprint("ping", i)))
		}
		a.closeCleanly()
	})
	run("2/pingsInterleaved", func(a *abConn) {
		a.frame(true, 0, opText, []byte("a"))
		a.frame(true, 0, opPing, []byte("p1"))
		a.frame(true, 0, opBinary, []byte("b"))
		a.expect(opText, []byte("a"))
		a.expect(opPong, []byte("p1"))
		a.expect(opBinary, []byte("b"))
		a.closeCleanly()
	})

	// 3.x: reserved bits; 4.x: reserved opcodes. Nothing after the bad frame is answered.
	for rsv := byte(1); rsv <= 7; rsv++ {
		for _, op := range []byte{opText, opBinary, opPing, opClose} {
			run(fmt.Sprintf("3/rsv%d/op%d", rsv, op), func(a *abConn) {
				p := []byte("Hello")
				if op == opClose {
					p = closeFrame(1000)
				}
				b := abEncode(true, 0, opText, []byte("first"))
				b = append(b, abEncode(true, rsv, op, p)...)
				b = append(b, abEncode(true, 0, opPing, []byte("after"))...)
				a.send(b, 0)
				a.expect(opText, []byte("first"))
				a.expectClose(1002)
			})
		}
	}
	for _, op := range []byte{3, 4, 5, 6, 7, 11, 12, 13, 14, 15} {
		for _, n := range []int{0, 5} {
			run(fmt.Sprintf("4/op%d/len%d", op, n), func(a *abConn) {
				b := abEncode(true, 0, opText, []byte("first"))
				b = append(b, abEncode(true, 0, op, bytes.Repeat([]byte("x"), n))...)
				b = append(b, abEncode(true, 0, opPing, []byte("after"))...)
				a.send(b, 0)
				a.expect(opText, []byte("first"))
				a.expectClose(1002)
			})
		}
	}

	// 5.x: fragmentation.
	fail := func(name string, frames []abFrame, echoes ...abFrame) {
		for _, chunk := range []int{0, 1} {
			run(fmt.Sprintf("%s/chunk%d", name, chunk), func(a *abConn) {
				var b []byte
				for _, f := range frames {
					b = append(b, abEncode(f.fin, f.rsv, f.op, f.payload)...)
				}
				a.send(b, chunk)
				for _, e := range echoes {
					a.expect(e.op, e.payload)
				}
				a.expectClose(1002)
			})
		}
	}
	F := func(fin bool, op byte, p string) abFrame { return abFrame{fin: fin, op: op, payload: []byte(p)} }
	fail("5/fragPing", []abFrame{F(false, opPing, "fr"), F(true, opCont, "ag")})
	fail("5/fragPong", []abFrame{F(false, opPong, "fr"), F(true, opCont, "ag")})
	fail("5/fragClose", []abFrame{F(false, opClose, "\x03\xe8"), F(true, opCont, "")})
	fail("5/contFinNoStart", []abFrame{F(true, opCont, "c"), F(true, opText, "t")})
	fail("5/contNoStart", []abFrame{F(false, opCont, "c"), F(true, opCont, "d"), F(true, opText, "t")})
	fail("5/contAfterMessage", []abFrame{F(false, opText, "a"), F(true, opCont, "b"), F(false, opCont, "c"), F(true, opText, "t")},
		F(true, opText, "ab"))
	fail("5/newTextInside", []abFrame{F(false, opText, "a"), F(true, opText, "b")})
	fail("5/newBinaryInside", []abFrame{F(false, opBinary, "a"), F(false, opBinary, "b"), F(true, opCont, "c")})
	fail("5/contNoStartThenFrag", []abFrame{F(false, opCont, "c"), F(false, opText, "a"), F(true, opCont, "b")})
	for _, op := range []byte{opText, opBinary} {
		for _, chunk := range []int{0, 1} {
			run(fmt.Sprintf("5/frag/op%d/chunk%d", op, chunk), func(a *abConn) {
				var b []byte
				b = append(b, abEncode(false, 0, op, []byte("frag"))...)
				b = append(b, abEncode(false, 0, opCont, nil)...)
				b = append(b, abEncode(true, 0, opPing, []byte("between"))...)
				b = append(b, abEncode(false, 0, opCont, []byte("ment"))...)
				b = append(b, abEncode(true, 0, opPong, []byte("ignored"))...)
				b = append(b, abEncode(true, 0, opCont, []byte("ed"))...)
				a.send(b, chunk)
				a.expect(opPong, []byte("between"))
				a.expect(op, []byte("fragmented"))
				a.closeCleanly()
			})
		}
	}
	// Many one-byte fragments and empty fragments.
	run("5/oneByteFragments", func(a *abConn) {
		msg := "Hello-µ@ßöäüàá-UTF-8!!"
		var b []byte
		for i := 0; i < len(msg); i++ {
			op := byte(opCont)
			if i == 0 {
				op = opText
			}
			b = append(b, abEncode(i == len(msg)-1, 0, op, []byte{msg[i]})...)
		}
		a.send(b, 0)
		a.expect(opText, []byte(msg))
		a.closeCleanly()
	})
	run("5/emptyFragments", func(a *abConn) {
		a.frame(false, 0, opText, nil)
		a.frame(false, 0, opCont, nil)
		a.frame(true, 0, opCont, nil)
		a.expect(opText, nil)
		a.closeCleanly()
	})
	// A close inside a fragmented message ends the session; the partial message is not delivered.
	run("7/closeInsideFragmented", func(a *abConn) {
		a.frame(false, 0, opText, []byte("frag"))
		a.frame(true, 0, opClose, closeFrame(1000))
		a.frame(true, 0, opCont, []byte("ment"))
		a.expectClose(1000)
	})

	// 6.x: UTF-8, checked against the standard library.
	utf8Cases := []string{
		"", "Hello-µ@ßöäüàá-UTF-8!!", "κόσμε",
		"\x00", "\xc2\x80", "\xe0\xa0\x80", "\xf0\x90\x80\x80", // first of each length
		"\x7f", "\xdf\xbf", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf", // last of each length
		"\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbd", "\xef\xbf\xbe", // boundaries
		"\xf7\xbf\xbf\xbf", "\xfb\xbf\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf\xbf", "\xf8\x88\x80\x80\x80",
		"\xfc\x84\x80\x80\x80\x80", "\xf4\x90\x80\x80", "\x80", "\xbf", "\x80\xbf", "\x80\xbf\x80",
		"\xc0 ", "\xe0 ", "\xf0 ", "\xf8 ", "\xfc ", "\xc0", "\xe0\x80", "\xf0\x80\x80", "\xdf", "\xef\xbf",
		"\xf7\xbf\xbf", "\xfe", "\xff", "\xfe\xfe\xff\xff", "\xc0\xaf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf",
		"\xc1\xbf", "\xe0\x9f\xbf", "\xf0\x8f\xbf\xbf", "\xc0\x80", "\xe0\x80\x80", "\xed\xa0\x80",
		"\xed\xad\xbf", "\xed\xae\x80", "\xed\xaf\xbf", "\xed\xb0\x80", "\xed\xbe\x80", "\xed\xbf\xbf",
		"\xed\xa0\x80\xed\xb0\x80", "\xed\xaf\xbf\xed\xbf\xbf", "\xef\xbf\xbf\xef\xbf\xbe",
		"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
		"\xf5\x80\x80\x80", "\xf4\x80\x80", "κόσμε\xce",
	}
	for i, s := range utf8Cases {
		p := []byte(s)
		valid := utf8.Valid(p)
		for _, mode := range []string{"whole", "bytes", "frames"} {
			run(fmt.Sprintf("6/case%d/%s", i, mode), func(a *abConn) {
				switch mode {
				case "whole":
					a.frame(true, 0, opText, p)
				case "bytes":
					a.send(abEncode(true, 0, opText, p), 1)
				case "frames":
					var b []byte
					for j := range p {
						op := byte(opCont)
						if j == 0 {
							op = opText
						}
						b = append(b, abEncode(j == len(p)-1, 0, op, p[j:j+1])...)
					}
					if len(p) == 0 {
						b = abEncode(true, 0, opText, nil)
					}
					a.send(b, 0)
				}
				if valid {
					a.expect(opText, p)
					a.closeCleanly()
					return
				}
				a.expectClose(1007)
			})
		}
		run(fmt.Sprintf("7/closeReason/case%d", i), func(a *abConn) {
			a.frame(true, 0, opClose, append(closeFrame(1000), p...))
			if valid {
				a.expectClose(1000)
				return
			}
			a.expectClose(1007)
		})
	}
	// 6.4: fail fast, before the frame or message ends.
	run("6.4/failFastFragment", func(a *abConn) {
		a.frame(false, 0, opText, []byte("κόσμε"))
		a.frame(false, 0, opCont, []byte("\xf4\x90\x80\x80"))
		a.expectClose(1007)
	})
	run("6.4/failFastInsideFrame", func(a *abConn) {
		p := append([]byte("κόσμε\xf4\x90\x80\x80"), bytes.Repeat([]byte("a"), 100)...)
		b := abEncode(true, 0, opText, p)
		a.send(b[:len(b)-100], 0)
		a.expectClose(1007)
	})
	run("6.4/failFastBigFrame", func(a *abConn) {
		p := append([]byte("κόσμε\xed\xa0\x80"), bytes.Repeat([]byte("a"), 200000)...)
		b := abEncode(true, 0, opText, p)
		a.send(b[:30], 0)
		a.expectClose(1007)
	})

	// 7.x: close handling.
	run("7/closeThenData", func(a *abConn) {
		a.frame(true, 0, opText, []byte("before"))
		a.frame(true, 0, opClose, closeFrame(1000))
		a.frame(true, 0, opText, []byte("after"))
		a.frame(true, 0, opPing, []byte("after"))
		a.frame(true, 0, opClose, closeFrame(1000))
		a.expect(opText, []byte("before"))
		a.expectClose(1000)
	})
	run("7/emptyClose", func(a *abConn) {
		a.frame(true, 0, opClose, nil)
		f, err := a.read()
		if err != nil || f.op != opClose || !(len(f.payload) == 0 || (len(f.payload) >= 2 && binary.BigEndian.Uint16(f.payload) == 1000)) {
			t.Errorf("empty close answered with %v, %v", f, err)
		}
		a.expectEOF()
	})
	run("7/oneByteClose", func(a *abConn) {
		a.frame(true, 0, opClose, []byte{0x03})
		a.expectClose(1002)
	})
	run("7/reason123", func(a *abConn) {
		a.frame(true, 0, opClose, append(closeFrame(1000), bytes.Repeat([]byte("*"), 123)...))
		a.expectClose(1000)
	})
	run("7/reason124", func(a *abConn) {
		a.frame(true, 0, opClose, append(closeFrame(1000), bytes.Repeat([]byte("*"), 124)...))
		a.expectClose(1002)
	})
	run("7/serverClosesAfterHandshake", func(a *abConn) {
		// The client never closes its side: the server must end TCP on its own after the handshake.
		a.frame(true, 0, opClose, closeFrame(1000))
		a.expectClose(1000)
	})

	run("7/bigMessageThenCloseThenPing", func(a *abConn) {
		p := bytes.Repeat([]byte("*"), 256<<10)
		b := abEncode(true, 0, opText, p)
		b = append(b, abEncode(true, 0, opClose, closeFrame(1000))...)
		b = append(b, abEncode(true, 0, opPing, []byte("after"))...)
		a.send(b, 0)
		a.expect(opText, p)
		a.expectClose(1000)
	})
	run("3/unmasked", func(a *abConn) {
		a.send([]byte{0x81, 0x02, 'h', 'i'}, 0)
		a.expectClose(1002)
	})
	run("3/lengthTopBit", func(a *abConn) {
		a.send([]byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}, 0)
		a.expectClose(1002)
	})
	run("3/control64BitLength", func(a *abConn) {
		a.send([]byte{0x89, 0xff, 0, 0, 0, 0, 0, 0, 0, 126, 1, 2, 3, 4}, 0)
		a.expectClose(1002)
	})

	// 9.x: moderate sizes, up to the limit and just above it.
	for _, op := range []byte{opText, opBinary} {
		for _, frag := range []int{0, 64, 4096, 65536} {
			run(fmt.Sprintf("9/op%d/frag%d", op, frag), func(a *abConn) {
				p := bytes.Repeat([]byte("abcdefgh"), abLimit/8)
				if frag == 0 {
					a.frame(true, 0, op, p)
				} else {
					var b []byte
					for i := 0; i < len(p); i += frag {
						o := byte(opCont)
						if i == 0 {
							o = op
						}
						b = append(b, abEncode(i+frag >= len(p), 0, o, p[i:min(i+frag, len(p))])...)
					}
					a.send(b, 0)
				}
				a.expect(op, p)
				a.closeCleanly()
			})
		}
		run(fmt.Sprintf("9/op%d/overLimitHeaderOnly", op), func(a *abConn) {
			b := abEncode(true, 0, op, make([]byte, abLimit+1))
			a.send(b[:14], 0)
			a.expectClose(1009)
		})
		run(fmt.Sprintf("9/op%d/overLimitWhole", op), func(a *abConn) {
			b := abEncode(true, 0, op, make([]byte, abLimit+1))
			go func() { _, _ = a.c.Write(b) }()
			a.expectCloseOrReset(1009)
		})
		run(fmt.Sprintf("9/op%d/overLimitFragmented", op), func(a *abConn) {
			a.frame(false, 0, op, make([]byte, abLimit))
			a.frame(true, 0, opCont, []byte{'x'})
			a.expectClose(1009)
		})
	}

	// 12/13: permessage-deflate is not negotiated; a compressed frame is then a protocol error.
	t.Run("12/deflateOffered", func(t *testing.T) {
		w, r := d.wsHandshake(t, "/echo", "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, permessage-deflate\r\n")
		if r.StatusCode != 101 {
			t.Fatalf("status %d", r.StatusCode)
		}
		if v := r.Header.Values("Sec-WebSocket-Extensions"); len(v) != 0 {
			t.Fatalf("extension negotiated: %q", v)
		}
		a := &abConn{t: t, c: w.c, br: w.br}
		a.frame(true, 4, opText, []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})
		a.expectClose(1002)
	})
}
