package ws_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/edged/edged/pkg/ws"
)

// deliveries are the ways a script reaches the Conn: whole, and one byte per Read.
var deliveries = []struct {
	name    string
	maxRead int
}{{"whole", 0}, {"bytewise", 1}}

// eachDelivery runs in through a fresh Conn once per delivery.
func eachDelivery(t *testing.T, cfg ws.Config, in []byte, check func(t *testing.T, o outcome)) {
	t.Helper()
	for _, d := range deliveries {
		t.Run(d.name, func(t *testing.T) { check(t, runScript(t, cfg, in, d.maxRead)) })
	}
}

func failCase(t *testing.T, in []byte, code int) {
	t.Helper()
	eachDelivery(t, ws.Config{}, in, func(t *testing.T, o outcome) { wantFail(t, o, code) })
}

func TestW3_UnmaskedClientFrame(t *testing.T) {
	for name, in := range map[string][]byte{
		"text":             cframe{b0: fin | opText, payload: []byte("hi"), unmasked: true}.bytes(),
		"binary":           cframe{b0: fin | opBinary, payload: []byte{1, 2}, unmasked: true}.bytes(),
		"empty text":       cframe{b0: fin | opText, unmasked: true}.bytes(),
		"ping":             cframe{b0: fin | opPing, payload: []byte("p"), unmasked: true}.bytes(),
		"close":            cframe{b0: fin | opClose, payload: []byte{3, 0xe8}, unmasked: true}.bytes(),
		"continuation":     join(frame(opText, "a"), cframe{b0: fin | opCont, payload: []byte("b"), unmasked: true}.bytes()),
		"after a good one": join(frame(fin|opText, "ok"), cframe{b0: fin | opText, payload: []byte("x"), unmasked: true}.bytes()),
	} {
		t.Run(name, func(t *testing.T) { failCase(t, in, ws.CloseProtocolError) })
	}
	// A frame masked with the all-zero key is masked: accepted.
	in := cframe{b0: fin | opText, payload: []byte("zero key"), noMask: true}.bytes()
	o := runScript(t, ws.Config{}, in, 0)
	wantClean(t, o)
	if len(o.msgs) != 1 || o.msgs[0].p != "zero key" {
		t.Fatalf("messages %v, want [zero key]", o.msgs)
	}
}

func TestW3_RSVBits(t *testing.T) {
	for _, rsv := range []byte{rsv1, rsv2, rsv3, rsv1 | rsv2 | rsv3} {
		for name, in := range map[string][]byte{
			"text":         frame(fin|rsv|opText, "hi"),
			"binary":       frame(fin|rsv|opBinary, "hi"),
			"ping":         frame(fin|rsv|opPing, "hi"),
			"close":        frame(fin|rsv|opClose, "\x03\xe8"),
			"continuation": join(frame(opText, "a"), frame(fin|rsv|opCont, "b")),
		} {
			t.Run(fmt.Sprintf("%s rsv %#x", name, rsv), func(t *testing.T) { failCase(t, in, ws.CloseProtocolError) })
		}
	}
}

func TestW3_ReservedOpcodes(t *testing.T) {
	for _, op := range []byte{3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF} {
		t.Run(fmt.Sprintf("op %#x", op), func(t *testing.T) { failCase(t, frame(fin|op, "x"), ws.CloseProtocolError) })
		t.Run(fmt.Sprintf("op %#x empty", op), func(t *testing.T) { failCase(t, frame(fin|op, ""), ws.CloseProtocolError) })
		t.Run(fmt.Sprintf("op %#x inside a message", op), func(t *testing.T) {
			failCase(t, join(frame(opText, "a"), frame(fin|op, "x"), frame(fin|opCont, "b")), ws.CloseProtocolError)
		})
	}
}

func TestW3_ControlFrameTooLong(t *testing.T) {
	p126 := strings.Repeat("p", 126)
	for name, in := range map[string][]byte{
		"ping 126":           frame(fin|opPing, p126),
		"pong 126":           frame(fin|opPong, p126),
		"close 126":          frame(fin|opClose, "\x03\xe8"+strings.Repeat("r", 124)),
		"ping 64-bit 126":    cframe{b0: fin | opPing, payload: []byte(p126), lenForm: 64}.bytes(),
		"ping 65536":         frame(fin|opPing, strings.Repeat("p", 65536)),
		"ping between frags": join(frame(opText, "a"), frame(fin|opPing, p126), frame(fin|opCont, "b")),
	} {
		t.Run(name, func(t *testing.T) { failCase(t, in, ws.CloseProtocolError) })
	}
}

// TestW3_ControlFrameTooLongHeaderOnly: the 1002 does not wait for the announced payload.
func TestW3_ControlFrameTooLongHeaderOnly(t *testing.T) {
	ps := newPipeSession(t, ws.Config{})
	ps.send(cframe{b0: fin | opPing, length: 126}.bytes())
	if f := ps.readFrame(); closeCode(f) != ws.CloseProtocolError {
		t.Fatalf("server sent %v, want close 1002", f)
	}
}

func TestW3_FragmentedControlFrame(t *testing.T) {
	for name, in := range map[string][]byte{
		"ping":                 frame(opPing, "p"),
		"ping then its rest":   join(frame(opPing, "p"), frame(fin|opCont, "q")),
		"pong":                 frame(opPong, "p"),
		"close":                frame(opClose, "\x03\xe8"),
		"ping inside fragment": join(frame(opText, "a"), frame(opPing, "p"), frame(fin|opCont, "b")),
	} {
		t.Run(name, func(t *testing.T) { failCase(t, in, ws.CloseProtocolError) })
	}
}

func TestW3_ContinuationWithoutStart(t *testing.T) {
	for name, in := range map[string][]byte{
		"final":           frame(fin|opCont, "x"),
		"not final":       frame(opCont, "x"),
		"empty":           frame(fin|opCont, ""),
		"after a message": join(frame(fin|opText, "done"), frame(fin|opCont, "x")),
		"after fragments": join(frame(opText, "a"), frame(fin|opCont, "b"), frame(opCont, "c")),
	} {
		t.Run(name, func(t *testing.T) { failCase(t, in, ws.CloseProtocolError) })
	}
}

func TestW3_NewMessageInsideFragmented(t *testing.T) {
	for name, in := range map[string][]byte{
		"text in text":      join(frame(opText, "a"), frame(fin|opText, "b")),
		"binary in text":    join(frame(opText, "a"), frame(fin|opBinary, "b")),
		"text in binary":    join(frame(opBinary, "a"), frame(opCont, "b"), frame(opText, "c")),
		"after ping":        join(frame(opBinary, "a"), frame(fin|opPing, ""), frame(fin|opBinary, "c")),
		"empty first frame": join(frame(opText, ""), frame(fin|opText, "")),
	} {
		t.Run(name, func(t *testing.T) { failCase(t, in, ws.CloseProtocolError) })
	}
}

func TestW3_LengthTopBitConn(t *testing.T) {
	for name, in := range map[string][]byte{
		"binary": cframe{b0: fin | opBinary, length: 5, lenForm: 64, topBit: true}.bytes(),
		"ping":   cframe{b0: fin | opPing, length: 5, lenForm: 64, topBit: true}.bytes(),
	} {
		t.Run(name, func(t *testing.T) { failCase(t, in, ws.CloseProtocolError) })
	}
}

// textFrames returns payload as one text message cut at the given offsets into fragments.
func textFrames(op byte, payload string, cuts ...int) []byte {
	var b []byte
	prev := 0
	first := true
	for _, c := range append(cuts, len(payload)) {
		o := byte(opCont)
		if first {
			o, first = op, false
		}
		if c == len(payload) {
			o |= fin
		}
		b = append(b, frame(o, payload[prev:c])...)
		prev = c
	}
	return b
}

var invalidUTF8 = []struct{ name, s string }{
	{"lone continuation", "\x80"},
	{"continuation BF", "\xbf"},
	{"overlong C0 80", "\xc0\x80"},
	{"overlong C1 BF", "\xc1\xbf"},
	{"overlong E0 80 80", "\xe0\x80\x80"},
	{"overlong E0 9F BF", "\xe0\x9f\xbf"},
	{"overlong F0 80 80 80", "\xf0\x80\x80\x80"},
	{"overlong F0 8F BF BF", "\xf0\x8f\xbf\xbf"},
	{"surrogate ED A0 80", "\xed\xa0\x80"},
	{"surrogate ED BF BF", "\xed\xbf\xbf"},
	{"surrogate pair", "\xed\xa0\x80\xed\xb0\x80"},
	{"above U+10FFFF F4 90 80 80", "\xf4\x90\x80\x80"},
	{"F5", "\xf5\x80\x80\x80"},
	{"F8", "\xf8\x88\x80\x80\x80"},
	{"FC", "\xfc\x84\x80\x80\x80\x80"},
	{"FE", "\xfe"},
	{"FF", "\xff"},
	{"lead then ASCII", "\xc3A"},
	{"3-byte lead then ASCII", "\xe2\x82A"},
	{"lead then lead", "\xe2\xe2\x82\xac"},
	{"Autobahn 6.3.1", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"},
	{"after 8 ASCII bytes", "abcdefgh\xff"},
	{"after 16 ASCII bytes", "abcdefghijklmnop\xc0\x80rest of it"},
}

// TestW4_InvalidUTF8 sends each invalid sequence in a single text frame, and split over fragments at
// every point: the server closes with 1007.
func TestW4_InvalidUTF8(t *testing.T) {
	for _, tc := range invalidUTF8 {
		t.Run(tc.name, func(t *testing.T) {
			failCase(t, frame(fin|opText, tc.s), ws.CloseInvalidPayload)
			for cut := 1; cut < len(tc.s); cut++ {
				o := runScript(t, ws.Config{}, textFrames(opText, tc.s, cut), 0)
				wantFail(t, o, ws.CloseInvalidPayload)
			}
			cuts := make([]int, 0, len(tc.s))
			for i := 1; i < len(tc.s); i++ {
				cuts = append(cuts, i)
			}
			wantFail(t, runScript(t, ws.Config{}, textFrames(opText, tc.s, cuts...), 0), ws.CloseInvalidPayload)
		})
	}
}

// TestW4_InvalidUTF8AcrossFragments: a sequence that becomes invalid only with the next fragment.
func TestW4_InvalidUTF8AcrossFragments(t *testing.T) {
	for name, in := range map[string][]byte{
		"lead / ASCII":            join(frame(opText, "ok \xce"), frame(fin|opCont, "A")),
		"E0 / 80":                 join(frame(opText, "\xe0"), frame(fin|opCont, "\x80\x80")),
		"ED / A0 80":              join(frame(opText, "\xed"), frame(fin|opCont, "\xa0\x80")),
		"F4 / 90":                 join(frame(opText, "\xf4"), frame(opCont, "\x90"), frame(fin|opCont, "\x80\x80")),
		"with ping between":       join(frame(opText, "\xf0\x9f"), frame(fin|opPing, "p"), frame(fin|opCont, "\x98A")),
		"valid then invalid frag": join(frame(opText, "κόσμε"), frame(opCont, "\xff"), frame(fin|opCont, "x")),
	} {
		t.Run(name, func(t *testing.T) { failCase(t, in, ws.CloseInvalidPayload) })
	}
}

// TestW4_InvalidUTF8FailFast: the 1007 comes on the first invalid byte, before the rest of the frame
// (Autobahn 6.4.x); the client sends part of the frame and waits.
func TestW4_InvalidUTF8FailFast(t *testing.T) {
	ps := newPipeSession(t, ws.Config{})
	full := frame(fin|opText, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited")
	head := 6               // 2 header bytes + 4 mask bytes
	ps.send(full[:head+13]) // up to F4 90, the first byte that cannot be valid
	if f := ps.readFrame(); closeCode(f) != ws.CloseInvalidPayload {
		t.Fatalf("server sent %v, want close 1007 before the rest of the frame", f)
	}
	r := ps.next()
	var pe *ws.ProtocolError
	if !errors.As(r.err, &pe) || pe.Code != ws.CloseInvalidPayload {
		t.Fatalf("ReadMessage = %v, want *ProtocolError 1007", r.err)
	}
}

func TestW4_TruncatedAtEnd(t *testing.T) {
	for name, in := range map[string][]byte{
		"single frame 2 of 3":     frame(fin|opText, "abc\xe2\x82"),
		"single frame 1 of 2":     frame(fin|opText, "\xc3"),
		"single frame 3 of 4":     frame(fin|opText, "\xf0\x9f\x98"),
		"empty final fragment":    join(frame(opText, "\xe2"), frame(fin|opCont, "")),
		"final fragment lead":     join(frame(opText, "ab"), frame(fin|opCont, "\xf0")),
		"ping after the fragment": join(frame(opText, "\xe2\x82"), frame(fin|opPing, ""), frame(fin|opCont, "")),
	} {
		t.Run(name, func(t *testing.T) { failCase(t, in, ws.CloseInvalidPayload) })
	}
}

// TestW4_ValidSplitAcrossFragments: valid multibyte characters cut at every point, including inside
// a character, are reassembled and accepted.
func TestW4_ValidSplitAcrossFragments(t *testing.T) {
	const s = "aκ€𝄞 κόσμε"
	for cut := 0; cut <= len(s); cut++ {
		for cut2 := cut; cut2 <= len(s); cut2++ {
			in := join(frame(opText, s[:cut]), frame(opCont, s[cut:cut2]), frame(fin|opCont, s[cut2:]))
			o := runScript(t, ws.Config{}, in, 0)
			wantClean(t, o)
			if len(o.msgs) != 1 || o.msgs[0] != (message{ws.OpText, s}) {
				t.Fatalf("cuts %d,%d: messages %q, want [%q]", cut, cut2, o.msgs, s)
			}
		}
	}
}

func TestW4_CloseReason(t *testing.T) {
	for name, reason := range map[string]string{
		"invalid byte":      "\xff",
		"truncated":         "bye \xe2\x82",
		"overlong":          "\xc0\xaf",
		"surrogate":         "\xed\xa0\x80",
		"valid then broken": "κόσμε\xce",
	} {
		t.Run(name, func(t *testing.T) { failCase(t, closeFrame(1000, reason), ws.CloseInvalidPayload) })
	}
	t.Run("valid", func(t *testing.T) {
		o := runScript(t, ws.Config{}, closeFrame(1000, "κόσμε 𝄞"), 0)
		wantCloseSent(t, o, 1000)
		var ce *ws.CloseError
		if !errors.As(o.err, &ce) || ce.Code != 1000 || ce.Reason != "κόσμε 𝄞" {
			t.Fatalf("ReadMessage error %#v, want *CloseError{1000, κόσμε 𝄞}", o.err)
		}
	})
}

// TestW4_UTF8EdgeCodePoints: the boundary code points of each UTF-8 length are accepted and returned
// as sent, alone and inside text.
func TestW4_UTF8EdgeCodePoints(t *testing.T) {
	c := ws.NewConn(ws.Config{})
	s := &memStream{}
	for _, r := range []rune{0, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFD, 0xFFFF, 0x10000, 0x10FFFF} {
		enc := string(r)
		for _, text := range []string{enc, "abcdefgh" + enc + "ijklmnopq", strings.Repeat(enc, 20)} {
			s.in, s.out = frame(fin|opText, text), nil
			s.rewind()
			o := runOn(t, c, s)
			wantClean(t, o)
			if len(o.msgs) != 1 || o.msgs[0].p != text {
				t.Fatalf("U+%04X: messages %q, want [%q]", r, o.msgs, text)
			}
		}
	}
}

// utf8Verdict runs payload as one text message, optionally split into two fragments at cut, and
// reports whether it was accepted; a refusal must be 1007.
func utf8Verdict(t *testing.T, c *ws.Conn, s *memStream, payload []byte, cut int) bool {
	t.Helper()
	if cut < 0 {
		s.in = append(s.in[:0], frame(fin|opText, string(payload))...)
	} else {
		s.in = append(s.in[:0], textFrames(opText, string(payload), cut)...)
	}
	s.rewind()
	if err := c.Reset(s, nil); err != nil {
		t.Fatal(err)
	}
	op, p, err := c.ReadMessage()
	if err == nil {
		if op != ws.OpText || !bytes.Equal(p, payload) {
			t.Fatalf("% x: got %v % x", payload, op, p)
		}
		return true
	}
	var pe *ws.ProtocolError
	if !errors.As(err, &pe) || pe.Code != ws.CloseInvalidPayload {
		t.Fatalf("% x (cut %d): ReadMessage error %v, want nil or 1007", payload, cut, err)
	}
	f, n := parseFrame(s.out)
	if n == 0 || closeCode(f) != ws.CloseInvalidPayload {
		t.Fatalf("% x (cut %d): server sent % x, want close 1007", payload, cut, s.out)
	}
	return false
}

// TestW4_BadByteAtEveryPosition puts an invalid byte, or a character, at every offset of a long ASCII
// text, so that each lane of the eight-bytes-at-a-time ASCII check is exercised, in one frame and cut
// into fragments of every size.
func TestW4_BadByteAtEveryPosition(t *testing.T) {
	c := ws.NewConn(ws.Config{})
	s := &memStream{}
	const ascii = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL"
	for _, ins := range []string{"\x80", "\xbf", "\xc0", "\xc3", "\xe2\x82", "\xed\xa0\x80", "\xf5", "\xff", "é", "€", "𝄞"} {
		for at := 0; at <= len(ascii); at++ {
			payload := []byte(ascii[:at] + ins + ascii[at:])
			want := utf8.Valid(payload)
			for _, cut := range []int{-1, 1, 7, 8, 9, at} {
				if got := utf8Verdict(t, c, s, payload, cut); got != want {
					t.Fatalf("text %q (fragment cut %d): accepted %v, want %v", payload, cut, got, want)
				}
			}
		}
	}
}

// TestW4_UTF8AgainstStdlib compares the Conn's UTF-8 verdict with unicode/utf8 for every two-byte
// sequence and for three- and four-byte sequences around every boundary, whole and split between
// fragments, behind an ASCII run that takes the fast path.
func TestW4_UTF8AgainstStdlib(t *testing.T) {
	c := ws.NewConn(ws.Config{})
	s := &memStream{}
	check := func(seq []byte) {
		for _, prefix := range []string{"", "12345678"} {
			payload := append([]byte(prefix), seq...)
			want := utf8.Valid(payload)
			// Whole (cut -1), and cut before and inside the sequence.
			for cut := -1; cut < len(payload); cut++ {
				if cut >= 0 && cut < len(prefix) {
					cut = len(prefix)
				}
				if got := utf8Verdict(t, c, s, payload, cut); got != want {
					t.Fatalf("text % x (fragment cut %d): accepted %v, utf8.Valid %v", payload, cut, got, want)
				}
			}
		}
	}
	for a := 0; a < 256; a++ {
		for b := 0; b < 256; b++ {
			s.in = s.in[:0]
			seq := []byte{byte(a), byte(b)}
			want := utf8.Valid(seq)
			if got := utf8Verdict(t, c, s, seq, -1); got != want {
				t.Fatalf("text % x: accepted %v, utf8.Valid %v", seq, got, want)
			}
		}
	}
	// Two-byte leads are covered above; here the three- and four-byte leads and bytes beyond them.
	conts := []byte{0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xE0, 0xFF}
	for lead := 0xE0; lead < 0x100; lead++ {
		for _, b1 := range conts {
			for _, b2 := range conts {
				check([]byte{byte(lead), b1, b2})
				for _, b3 := range []byte{0x41, 0x80, 0xC0} {
					check([]byte{byte(lead), b1, b2, b3})
				}
			}
		}
	}
}

// TestW5_PingBetweenFragments: the pong, with the ping's payload, comes before the message completes.
func TestW5_PingBetweenFragments(t *testing.T) {
	ps := newPipeSession(t, ws.Config{})
	ps.send(frame(opText, "Hello, "))
	ps.send(frame(fin|opPing, "are you there?"))
	f := ps.readFrame()
	if f.op != opPong || string(f.payload) != "are you there?" {
		t.Fatalf("server sent %v %q, want a pong with the ping's payload", f, f.payload)
	}
	select {
	case r := <-ps.results:
		t.Fatalf("ReadMessage returned %+v before the last fragment", r)
	default:
	}
	ps.send(frame(opCont, "wor"))
	ps.send(frame(fin|opPing, ""))
	if f := ps.readFrame(); f.op != opPong || len(f.payload) != 0 {
		t.Fatalf("server sent %v, want an empty pong", f)
	}
	ps.send(frame(fin|opCont, "ld"))
	if r := ps.next(); r.err != nil || r.op != ws.OpText || r.p != "Hello, world" {
		t.Fatalf("ReadMessage = %+v, want text \"Hello, world\"", r)
	}
}

// TestW5_PingsEverywhere puts pings (payloads 0 to 125 bytes) before, between and after fragments:
// every ping is answered in order with its payload, and the message is intact.
func TestW5_PingsEverywhere(t *testing.T) {
	p125 := strings.Repeat("z", 125)
	in := join(
		frame(fin|opPing, "first"),
		frame(opBinary, "ab"),
		frame(fin|opPing, ""),
		frame(fin|opPong, "unsolicited"),
		frame(opCont, "cd"),
		frame(fin|opPing, p125),
		frame(fin|opPing, "twice"),
		frame(fin|opCont, "ef"),
		frame(fin|opPing, "last"),
	)
	eachDelivery(t, ws.Config{}, in, func(t *testing.T, o outcome) {
		wantClean(t, o)
		if len(o.msgs) != 1 || o.msgs[0] != (message{ws.OpBinary, "abcdef"}) {
			t.Fatalf("messages %q, want [abcdef]", o.msgs)
		}
		want := []string{"first", "", p125, "twice", "last"}
		if len(o.frames) != len(want) {
			t.Fatalf("server sent %v, want %d pongs", o.frames, len(want))
		}
		for i, f := range o.frames {
			if f.op != opPong || string(f.payload) != want[i] {
				t.Errorf("frame %d = %v %q, want pong %q", i, f, f.payload, want[i])
			}
		}
	})
}

func TestW5_UnsolicitedPongIgnored(t *testing.T) {
	in := join(frame(fin|opPong, "x"), frame(opText, "a"), frame(fin|opPong, ""), frame(fin|opCont, "b"),
		frame(fin|opPong, strings.Repeat("y", 125)))
	eachDelivery(t, ws.Config{}, in, func(t *testing.T, o outcome) {
		wantClean(t, o)
		if len(o.frames) != 0 {
			t.Fatalf("server answered pongs with %v", o.frames)
		}
		if len(o.msgs) != 1 || o.msgs[0] != (message{ws.OpText, "ab"}) {
			t.Fatalf("messages %q, want [ab]", o.msgs)
		}
	})
}

// stallingStream is a memStream whose writes stop, like a socket whose peer does not read: once
// room bytes went out, a write writes what still fits and fails with a write timeout.
type stallingStream struct {
	*memStream
	room int
}

func (s *stallingStream) Write(p []byte) (int, error) {
	n := min(len(p), s.room)
	s.room -= n
	_, _ = s.memStream.Write(p[:n])
	if n < len(p) {
		return n, os.ErrDeadlineExceeded
	}
	return n, nil
}

// TestW5_PongWriteFailure: a pong that fails half-way is reported by ReadMessage as a *ws.WriteError,
// not as the read deadline it would otherwise look like (after which ReadMessage goes on), and the
// Conn writes nothing after the partial frame: not the next pong, not a message, not a close
// (CONTRACT W5).
func TestW5_PongWriteFailure(t *testing.T) {
	in := join(frame(fin|opPing, "first"), frame(fin|opPing, "second"), frame(fin|opText, "after"))
	c := ws.NewConn(ws.Config{})
	const room = 4 // the pong's header and two bytes of its payload
	s := &stallingStream{memStream: &memStream{in: in}, room: room}
	if err := c.Reset(s, nil); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.ReadMessage()
	var we *ws.WriteError
	if !errors.As(err, &we) || we.Op != ws.OpPong || !errors.Is(we.Err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadMessage error %v (%T), want a *ws.WriteError for the pong with the write timeout", err, err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("ReadMessage error %v passes for a read deadline", err)
	}
	s.room = 1 << 20 // the socket drains: whatever is written now goes out
	if _, _, err := c.ReadMessage(); err == nil {
		t.Errorf("ReadMessage after the failed pong returned a message")
	}
	if err := c.WriteMessage(ws.OpText, []byte("late")); err == nil {
		t.Errorf("WriteMessage after a failed write succeeded")
	}
	_ = c.WriteClose(ws.CloseNormal, "")
	want := cframe{b0: fin | opPong, payload: []byte("first"), unmasked: true}.bytes()[:room]
	if !bytes.Equal(s.out, want) {
		t.Fatalf("server wrote % x, want only the partial pong % x", s.out, want)
	}
}

func TestW6_CloseEchoed(t *testing.T) {
	in := join(frame(fin|opText, "before"), closeFrame(1000, "bye"), frame(fin|opText, "after the close"))
	eachDelivery(t, ws.Config{}, in, func(t *testing.T, o outcome) {
		wantCloseSent(t, o, 1000)
		if len(o.msgs) != 1 || o.msgs[0].p != "before" {
			t.Errorf("messages %q, want [before]", o.msgs)
		}
		var ce *ws.CloseError
		if !errors.As(o.err, &ce) || ce.Code != 1000 || ce.Reason != "bye" {
			t.Fatalf("ReadMessage error %#v, want *CloseError{1000, bye}", o.err)
		}
	})
}

func TestW6_EmptyClose(t *testing.T) {
	in := join(frame(opText, "half"), frame(fin|opClose, ""))
	eachDelivery(t, ws.Config{}, in, func(t *testing.T, o outcome) {
		wantCloseSent(t, o, 1000)
		var ce *ws.CloseError
		if !errors.As(o.err, &ce) || ce.Code != ws.CloseNoStatus {
			t.Fatalf("ReadMessage error %#v, want *CloseError{1005}", o.err)
		}
	})
}

func TestW6_OneByteClose(t *testing.T) {
	failCase(t, frame(fin|opClose, "\x03"), ws.CloseProtocolError)
}

func TestW6_InvalidCloseCodes(t *testing.T) {
	for _, code := range []int{0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			failCase(t, closeFrame(code, ""), ws.CloseProtocolError)
			failCase(t, closeFrame(code, "reason"), ws.CloseProtocolError)
		})
	}
}

func TestW6_ValidCloseCodesEchoed(t *testing.T) {
	codes := []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999}
	for _, code := range codes {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			for _, reason := range []string{"", "why", strings.Repeat("r", 123)} {
				o := runScript(t, ws.Config{}, closeFrame(code, reason), 0)
				wantCloseSent(t, o, code)
				var ce *ws.CloseError
				if !errors.As(o.err, &ce) || ce.Code != code || ce.Reason != reason {
					t.Fatalf("ReadMessage error %#v, want *CloseError{%d, %q}", o.err, code, reason)
				}
			}
		})
	}
}

// TestW6_AfterClose: once the peer's close is in, reads end and writes are refused.
func TestW6_AfterClose(t *testing.T) {
	c := ws.NewConn(ws.Config{})
	s := &memStream{in: join(closeFrame(1001, "going"), frame(fin|opText, "late"))}
	if err := c.Reset(s, nil); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.ReadMessage()
	var ce *ws.CloseError
	if !errors.As(err, &ce) || ce.Code != 1001 || ce.Reason != "going" {
		t.Fatalf("ReadMessage error %#v, want *CloseError{1001, going}", err)
	}
	if !c.CloseSent() {
		t.Error("CloseSent() = false after the close was answered")
	}
	if _, _, err := c.ReadMessage(); err == nil {
		t.Error("ReadMessage after the close returned a message")
	}
	if err := c.WriteMessage(ws.OpText, []byte("x")); !errors.Is(err, ws.ErrClosed) {
		t.Errorf("WriteMessage after the close = %v, want ErrClosed", err)
	}
	out := len(s.out)
	if err := c.WriteClose(1000, ""); err != nil || len(s.out) != out {
		t.Errorf("second WriteClose = %v and wrote %d bytes, want nil and nothing", err, len(s.out)-out)
	}
	frames, rest := parseFrames(s.out)
	if len(frames) != 1 || closeCode(frames[0]) != 1001 || len(rest) != 0 {
		t.Errorf("server sent %v, want one close 1001", frames)
	}
}

// TestW6_ServerInitiatedClose: after WriteClose the Conn reads on until the peer's close and does not
// answer it with a second close (RFC 6455 5.5.1); its close stays the last frame it sent, a ping that
// crossed it included (like every write after the close, which returns ErrClosed).
func TestW6_ServerInitiatedClose(t *testing.T) {
	c := ws.NewConn(ws.Config{})
	s := &memStream{in: join(frame(fin|opText, "in flight"), frame(fin|opPing, "late ping"), closeFrame(1001, ""))}
	if err := c.Reset(s, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteClose(ws.CloseGoingAway, "shutting down"); err != nil {
		t.Fatal(err)
	}
	var err error
	for i := 0; i < 3 && err == nil; i++ {
		_, _, err = c.ReadMessage()
	}
	var ce *ws.CloseError
	if !errors.As(err, &ce) || ce.Code != 1001 {
		t.Fatalf("ReadMessage error %#v, want *CloseError{1001}", err)
	}
	frames, rest := parseFrames(s.out)
	if len(frames) != 1 || closeCode(frames[0]) != 1001 || string(frames[0].payload[2:]) != "shutting down" || len(rest) != 0 {
		t.Fatalf("server sent %v, want exactly its own close 1001 \"shutting down\"", frames)
	}
}

// TestW6_WriteCloseReason: a close reason longer than a control frame allows is cut to 123 bytes, and
// never inside a character: the peer checks it as UTF-8 and would fail the session with 1007
// (RFC 6455 5.5.1, 8.1). Refusing the reason with an error is acceptable too.
func TestW6_WriteCloseReason(t *testing.T) {
	for name, reason := range map[string]string{
		"empty":            "",
		"123 ASCII":        strings.Repeat("a", 123),
		"200 ASCII":        strings.Repeat("a", 200),
		"2-byte chars":     strings.Repeat("é", 100),
		"3-byte chars":     strings.Repeat("€", 60),
		"4-byte chars":     strings.Repeat("𝄞", 40),
		"122 ASCII + 2":    strings.Repeat("a", 122) + "é",
		"fits exactly":     strings.Repeat("€", 41),
		"one byte too far": strings.Repeat("a", 121) + "€",
	} {
		t.Run(name, func(t *testing.T) {
			c := ws.NewConn(ws.Config{})
			s := &memStream{}
			if err := c.Reset(s, nil); err != nil {
				t.Fatal(err)
			}
			err := c.WriteClose(ws.CloseGoingAway, reason)
			frames, rest := parseFrames(s.out)
			if err != nil {
				if len(reason) <= 123 {
					t.Fatalf("WriteClose with a %d-byte reason: %v", len(reason), err)
				}
				return
			}
			if len(frames) != 1 || len(rest) != 0 || closeCode(frames[0]) != ws.CloseGoingAway {
				t.Fatalf("server sent %v + % x, want one close 1001", frames, rest)
			}
			got := frames[0].payload[2:]
			if err := checkServerFrame(frames[0]); err != nil {
				t.Fatalf("WriteClose(1001, %d-byte reason %.12q...): %v", len(reason), reason, err)
			}
			if !strings.HasPrefix(reason, string(got)) || len(reason) <= 123 && string(got) != reason {
				t.Fatalf("reason sent %q, want %q or its prefix", got, reason)
			}
		})
	}
}

// TestW6_InvalidCloseRefused: a close payload edged would send is checked as the peer checks it
// (CONTRACT W6, RFC 6455 5.5.1, 7.4): a one-byte payload, a code no endpoint may send and a reason
// that is not UTF-8 are refused with ErrInvalidClose, nothing is written, and the close does not
// count as sent, so that a valid close still goes out.
func TestW6_InvalidCloseRefused(t *testing.T) {
	payload := func(code int, reason string) []byte {
		return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
	}
	viaMessage := func(p []byte) func(*ws.Conn) error {
		return func(c *ws.Conn) error { return c.WriteMessage(ws.OpClose, p) }
	}
	viaClose := func(code int, reason string) func(*ws.Conn) error {
		return func(c *ws.Conn) error { return c.WriteClose(code, reason) }
	}
	writes := map[string]func(*ws.Conn) error{"WriteMessage one byte": viaMessage([]byte{3})}
	for _, code := range []int{0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535} {
		writes[fmt.Sprintf("WriteMessage code %d", code)] = viaMessage(payload(code, ""))
		writes[fmt.Sprintf("WriteClose code %d", code)] = viaClose(code, "")
	}
	for _, reason := range []string{"\xff", "ok\xe2\x82", "\xed\xa0\x80", "\xc0\xaf"} {
		writes[fmt.Sprintf("WriteMessage reason %q", reason)] = viaMessage(payload(1000, reason))
		writes[fmt.Sprintf("WriteClose reason %q", reason)] = viaClose(1000, reason)
	}
	for name, write := range writes {
		t.Run(name, func(t *testing.T) {
			c := ws.NewConn(ws.Config{})
			s := &memStream{}
			if err := c.Reset(s, nil); err != nil {
				t.Fatal(err)
			}
			if err := write(c); !errors.Is(err, ws.ErrInvalidClose) {
				t.Errorf("error %v, want ErrInvalidClose", err)
			}
			if len(s.out) != 0 || c.CloseSent() {
				t.Fatalf("wrote % x (close sent: %v), want nothing", s.out, c.CloseSent())
			}
			if err := c.WriteMessage(ws.OpClose, payload(ws.CloseGoingAway, "é")); err != nil {
				t.Fatalf("a valid close after the refused one: %v", err)
			}
			frames, rest := parseFrames(s.out)
			if len(frames) != 1 || len(rest) != 0 || closeCode(frames[0]) != ws.CloseGoingAway {
				t.Fatalf("server sent %v + % x, want one close 1001", frames, rest)
			}
			if err := checkServerFrame(frames[0]); err != nil {
				t.Fatal(err)
			}
		})
	}
	// What a peer may send, edged may send too: no payload, a code alone, a code and a UTF-8 reason.
	valid := [][]byte{nil, payload(1000, ""), payload(1003, "x"), payload(1007, ""), payload(1014, ""),
		payload(3000, "é"), payload(4999, "")}
	for _, p := range valid {
		c := ws.NewConn(ws.Config{})
		if err := c.Reset(&memStream{}, nil); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteMessage(ws.OpClose, p); err != nil || !c.CloseSent() {
			t.Errorf("WriteMessage(OpClose, % x) = %v, close sent %v; want it sent", p, err, c.CloseSent())
		}
	}
}

// TestFrames: Frames counts every frame header received, control frames included, and Reset clears it.
func TestFrames(t *testing.T) {
	c := ws.NewConn(ws.Config{})
	in := join(frame(opText, "a"), frame(fin|opPing, ""), frame(fin|opCont, "b"), frame(fin|opPong, "x"), frame(fin|opBinary, "c"))
	s := &memStream{in: in}
	if err := c.Reset(s, nil); err != nil {
		t.Fatal(err)
	}
	want := []uint64{3, 5}
	for i, w := range want {
		if _, _, err := c.ReadMessage(); err != nil {
			t.Fatal(err)
		}
		if got := c.Frames(); got != w {
			t.Errorf("after message %d: Frames() = %d, want %d", i, got, w)
		}
	}
	if err := c.Reset(&memStream{}, nil); err != nil {
		t.Fatal(err)
	}
	if got := c.Frames(); got != 0 {
		t.Errorf("Frames() after Reset = %d, want 0", got)
	}
}

// TestW7_HeaderAnnouncesTooMuch: the 1009 comes as soon as the header is in; the client never sends
// the payload.
func TestW7_HeaderAnnouncesTooMuch(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  int
		f    cframe
	}{
		{"default limit +1", 0, cframe{b0: fin | opBinary, length: ws.DefaultMaxMessage + 1}},
		{"text default limit +1", 0, cframe{b0: fin | opText, length: ws.DefaultMaxMessage + 1}},
		{"not final", 0, cframe{b0: opBinary, length: ws.DefaultMaxMessage + 1}},
		{"2^62", 0, cframe{b0: fin | opBinary, length: 1 << 62}},
		{"max int64", 0, cframe{b0: fin | opBinary, length: 1<<63 - 1}},
		{"16-bit form over 1000", 1000, cframe{b0: fin | opText, length: 1001}},
		{"7-bit form over 100", 100, cframe{b0: fin | opText, length: 101}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := newPipeSession(t, ws.Config{MaxMessage: tc.max})
			ps.send(tc.f.bytes())
			if f := ps.readFrame(); closeCode(f) != ws.CloseTooBig {
				t.Fatalf("server sent %v, want close 1009", f)
			}
			var pe *ws.ProtocolError
			if r := ps.next(); !errors.As(r.err, &pe) || pe.Code != ws.CloseTooBig {
				t.Fatalf("ReadMessage = %+v, want *ProtocolError 1009", r)
			}
		})
	}
}

// TestW7_FragmentedTooBig: the fragment header that takes the total over the limit gets 1009; control
// frames between fragments do not count.
func TestW7_FragmentedTooBig(t *testing.T) {
	ps := newPipeSession(t, ws.Config{MaxMessage: 1000})
	ps.send(frame(opBinary, strings.Repeat("a", 600)))
	ps.send(frame(fin|opPing, strings.Repeat("p", 125)))
	if f := ps.readFrame(); f.op != opPong {
		t.Fatalf("server sent %v, want a pong", f)
	}
	ps.send(frame(opCont, strings.Repeat("b", 399)))
	ps.send(cframe{b0: fin | opCont, length: 2}.bytes())
	if f := ps.readFrame(); closeCode(f) != ws.CloseTooBig {
		t.Fatalf("server sent %v, want close 1009", f)
	}
}

func TestW7_AtTheLimit(t *testing.T) {
	full := strings.Repeat("0123456789abcdef", ws.DefaultMaxMessage/16)
	for name, in := range map[string][]byte{
		"one frame":        frame(fin|opBinary, full),
		"64-bit form":      cframe{b0: fin | opBinary, payload: []byte(full), lenForm: 64}.bytes(),
		"three fragments":  join(frame(opText, full[:1]), frame(opCont, full[1:40000]), frame(fin|opCont, full[40000:])),
		"with empty final": join(frame(opBinary, full), frame(fin|opCont, "")),
	} {
		t.Run(name, func(t *testing.T) {
			eachDelivery(t, ws.Config{}, in, func(t *testing.T, o outcome) {
				wantClean(t, o)
				if len(o.msgs) != 1 || o.msgs[0].p != full {
					t.Fatalf("got %d messages, want one of %d bytes", len(o.msgs), len(full))
				}
			})
		})
	}
	t.Run("one byte over", func(t *testing.T) {
		failCase(t, join(frame(opBinary, full), frame(fin|opCont, "x")), ws.CloseTooBig)
	})
	t.Run("limit applies per message", func(t *testing.T) {
		in := join(frame(fin|opBinary, full), frame(fin|opBinary, full), frame(opBinary, full[:100]), frame(fin|opCont, full[100:]))
		o := runScript(t, ws.Config{}, in, 0)
		wantClean(t, o)
		if len(o.msgs) != 3 {
			t.Fatalf("got %d messages, want 3", len(o.msgs))
		}
	})
}

// TestFragmentation reassembles text and binary messages cut at every combination of points,
// delivered whole and byte by byte.
func TestFragmentation(t *testing.T) {
	const payload = "aκ€𝄞" // 1+2+3+4 bytes: every cut inside a character happens
	n := len(payload)
	c := ws.NewConn(ws.Config{})
	s := &memStream{}
	for _, op := range []byte{opText, opBinary} {
		for set := 0; set < 1<<(n-1); set++ {
			var cuts []int
			for i := 1; i < n; i++ {
				if set&(1<<(i-1)) != 0 {
					cuts = append(cuts, i)
				}
			}
			for _, d := range deliveries {
				s.in, s.out, s.maxRead = textFrames(op, payload, cuts...), nil, d.maxRead
				s.rewind()
				o := runOn(t, c, s)
				wantClean(t, o)
				if len(o.msgs) != 1 || o.msgs[0] != (message{ws.Opcode(op), payload}) {
					t.Fatalf("op %d cuts %v %s: messages %v", op, cuts, d.name, o.msgs)
				}
			}
		}
	}
}

func TestEmptyMessages(t *testing.T) {
	in := join(
		frame(fin|opText, ""),
		frame(fin|opBinary, ""),
		frame(opText, ""), frame(opCont, ""), frame(fin|opCont, ""),
		frame(opBinary, ""), frame(fin|opPing, ""), frame(fin|opCont, ""),
		cframe{b0: fin | opText, lenForm: 16}.bytes(),
		cframe{b0: fin | opBinary, lenForm: 64}.bytes(),
		frame(fin|opText, "end"),
	)
	eachDelivery(t, ws.Config{}, in, func(t *testing.T, o outcome) {
		wantClean(t, o)
		want := []message{{ws.OpText, ""}, {ws.OpBinary, ""}, {ws.OpText, ""}, {ws.OpBinary, ""},
			{ws.OpText, ""}, {ws.OpBinary, ""}, {ws.OpText, "end"}}
		if fmt.Sprint(o.msgs) != fmt.Sprint(want) {
			t.Fatalf("messages %q, want %v", o.msgs, want)
		}
	})
}

// TestRandomStreams sends long runs of messages of random sizes, random fragmentation and random
// pings through Conns with small and default buffers, read in random pieces, and compares every
// message and pong.
func TestRandomStreams(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	cfgs := []ws.Config{{}, {ReadBufferSize: 28, WriteBufferSize: 28, MaxMessage: 20000}, {ReadBufferSize: 100}}
	for iter := 0; iter < 60; iter++ {
		var in []byte
		var want []message
		var pongs []string
		for m := 0; m < 20; m++ {
			size := rng.IntN(5000)
			if rng.IntN(10) == 0 {
				size = 10000 + rng.IntN(10000)
			}
			op := byte(opBinary)
			data := make([]byte, size)
			if rng.IntN(2) == 0 {
				op = opText
				for i := range data {
					data[i] = 'a' + byte(rng.IntN(26))
				}
			} else {
				for i := range data {
					data[i] = byte(rng.Uint32())
				}
			}
			want = append(want, message{ws.Opcode(op), string(data)})
			rest := data
			first := true
			for {
				k := len(rest)
				if rng.IntN(3) == 0 {
					k = rng.IntN(len(rest) + 1)
				}
				o := byte(opCont)
				if first {
					o, first = op, false
				}
				if k == len(rest) {
					o |= fin
				}
				in = append(in, cframe{b0: o, payload: rest[:k], mask: [4]byte{byte(m), byte(k), 3, 4}}.bytes()...)
				rest = rest[k:]
				if o&fin != 0 {
					break
				}
				if rng.IntN(3) == 0 {
					p := strings.Repeat(string(rune('A'+m)), rng.IntN(126))
					in = append(in, frame(fin|opPing, p)...)
					pongs = append(pongs, p)
				}
			}
		}
		cfg := cfgs[iter%len(cfgs)]
		s := &memStream{in: in, maxRead: []int{0, 1, 7, 100, 3000}[iter%5]}
		o := runOn(t, ws.NewConn(cfg), s)
		wantClean(t, o)
		if len(o.msgs) != len(want) {
			t.Fatalf("iter %d: got %d messages, want %d (error %v)", iter, len(o.msgs), len(want), o.err)
		}
		for i := range want {
			if o.msgs[i] != want[i] {
				t.Fatalf("iter %d (cfg %+v, maxRead %d): message %d differs (len %d, want %d)", iter, cfg, s.maxRead, i, len(o.msgs[i].p), len(want[i].p))
			}
		}
		if len(o.frames) != len(pongs) {
			t.Fatalf("iter %d: %d pongs, want %d", iter, len(o.frames), len(pongs))
		}
		for i, f := range o.frames {
			if f.op != opPong || string(f.payload) != pongs[i] {
				t.Fatalf("iter %d: frame %d = %v, want pong %q", iter, i, f, pongs[i])
			}
		}
	}
}

// TestW8_ReadDeadlineResumes: a read that fails with a deadline, at any byte of the input, leaves the
// Conn usable: calling ReadMessage again completes the message once the rest arrives.
func TestW8_ReadDeadlineResumes(t *testing.T) {
	in := join(
		frame(fin|opText, "one"),
		frame(opText, "two "),
		frame(fin|opPing, "mid"),
		frame(opCont, strings.Repeat("x", 300)),
		frame(fin|opCont, "κόσμε"),
		frame(fin|opBinary, strings.Repeat("b", 200)),
		closeFrame(1000, "done"),
	)
	ref := runScript(t, ws.Config{}, in, 0)
	wantCloseSent(t, ref, 1000)
	if len(ref.msgs) != 3 {
		t.Fatalf("reference run: %d messages", len(ref.msgs))
	}
	c := ws.NewConn(ws.Config{ReadBufferSize: 64})
	for _, maxRead := range []int{0, 5} {
		for at := 0; at <= len(in); at++ {
			s := &memStream{in: in, maxRead: maxRead, pauses: []int{at, at + 1}}
			if err := c.Reset(s, nil); err != nil {
				t.Fatal(err)
			}
			var msgs []message
			var err error
			deadlines := 0
			for i := 0; i < 20; i++ {
				var op ws.Opcode
				var p []byte
				op, p, err = c.ReadMessage()
				if errors.Is(err, os.ErrDeadlineExceeded) {
					deadlines++
					continue
				}
				if err != nil {
					break
				}
				msgs = append(msgs, message{op, string(p)})
			}
			if deadlines == 0 && at < len(in) {
				t.Fatalf("pause at %d: no deadline error surfaced", at)
			}
			if fmt.Sprint(msgs) != fmt.Sprint(ref.msgs) || !bytes.Equal(s.out, ref.out) {
				t.Fatalf("pause at %d (maxRead %d): messages %.60q, output % x; want %.60q, % x", at, maxRead, msgs, s.out, ref.msgs, ref.out)
			}
			var ce *ws.CloseError
			if !errors.As(err, &ce) || ce.Code != 1000 {
				t.Fatalf("pause at %d: final error %v, want *CloseError 1000", at, err)
			}
		}
	}
}

// TestW8_ReadDeadlineOverPipe: the same with a real deadline on a blocking transport.
func TestW8_ReadDeadlineOverPipe(t *testing.T) {
	srv, cli := net.Pipe()
	defer srv.Close()
	defer cli.Close()
	c := ws.NewConn(ws.Config{})
	if err := c.Reset(netStream{srv}, nil); err != nil {
		t.Fatal(err)
	}
	f := frame(fin|opText, "split across a deadline")
	go func() { _, _ = cli.Write(f[:9]) }()
	c.Stream().SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, _, err := c.ReadMessage(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadMessage = %v, want a deadline error", err)
	}
	c.Stream().SetReadDeadline(time.Time{})
	go func() { _, _ = cli.Write(f[9:]) }()
	done := make(chan struct{})
	go func() {
		defer close(done)
		op, p, err := c.ReadMessage()
		if err != nil || op != ws.OpText || string(p) != "split across a deadline" {
			t.Errorf("ReadMessage after the deadline = %v %q %v", op, p, err)
		}
	}()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("ReadMessage did not complete the message")
	}
}

// TestW8_ConcurrentWriters: frames of several writers and the reader's pongs never interleave; every
// frame the client reads is intact, and each writer's messages arrive in its order.
func TestW8_ConcurrentWriters(t *testing.T) {
	ps := newPipeSession(t, ws.Config{})
	const writers, perWriter = 6, 40
	sizes := []int{0, 1, 125, 126, 1000, 4095, 4096, 5000, 70000}
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				size := max(sizes[(w+i)%len(sizes)], 2)
				p := bytes.Repeat([]byte{byte('A' + w)}, size)
				p[0], p[1] = byte(w), byte(i)
				if err := ps.c.WriteMessage(ws.OpBinary, p); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		}()
	}
	const pings = 30
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < pings; i++ {
			if _, err := ps.client.Write(frame(fin|opPing, fmt.Sprintf("ping %d", i))); err != nil {
				t.Errorf("client ping: %v", err)
				return
			}
		}
	}()
	// Frames may be read from any goroutine while the reader runs (a liveness check, CONTRACT W10).
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				_ = ps.c.Frames()
			}
		}
	}()
	next := make([]int, writers)
	pongs := 0
	for got := 0; got < writers*perWriter+pings; got++ {
		f := ps.readFrame()
		switch f.op {
		case opPong:
			if want := fmt.Sprintf("ping %d", pongs); string(f.payload) != want {
				t.Fatalf("pong %q, want %q", f.payload, want)
			}
			pongs++
		case opBinary:
			w, i := int(f.payload[0]), int(f.payload[1])
			if w >= writers || i != next[w] {
				t.Fatalf("frame from writer %d seq %d, want seq %d", w, i, next[w])
			}
			next[w]++
			for _, b := range f.payload[2:] {
				if b != byte('A'+w) {
					t.Fatalf("writer %d message %d corrupted (interleaved frames)", w, i)
				}
			}
		default:
			t.Fatalf("unexpected frame %v", f)
		}
	}
	wg.Wait()
}

func TestWriteMessage(t *testing.T) {
	c := ws.NewConn(ws.Config{})
	s := &memStream{}
	if err := c.Reset(s, nil); err != nil {
		t.Fatal(err)
	}
	sizes := []int{0, 1, 125, 126, 4000, 4096, 65535, 65536, 100000}
	for _, n := range sizes {
		p := bytes.Repeat([]byte{'t'}, n)
		if err := c.WriteMessage(ws.OpText, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WritePing([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if err := c.WritePing(make([]byte, 126)); !errors.Is(err, ws.ErrControlTooLarge) {
		t.Errorf("WritePing(126 bytes) = %v, want ErrControlTooLarge", err)
	}
	if err := c.WriteClose(ws.CloseNormal, "bye"); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage(ws.OpText, []byte("late")); !errors.Is(err, ws.ErrClosed) {
		t.Errorf("WriteMessage after WriteClose = %v, want ErrClosed", err)
	}
	frames, rest := parseFrames(s.out)
	if len(rest) != 0 || len(frames) != len(sizes)+2 {
		t.Fatalf("server sent %d frames (+%d bytes), want %d", len(frames), len(rest), len(sizes)+2)
	}
	for i, n := range sizes {
		f := frames[i]
		if checkServerFrame(f) != nil || f.op != opText || len(f.payload) != n || bytes.Count(f.payload, []byte{'t'}) != n {
			t.Errorf("frame %d = %v, want text of %d bytes", i, f, n)
		}
	}
	// Minimal length encodings (RFC 6455 5.2).
	off := 0
	for _, n := range sizes {
		var want []byte
		switch {
		case n < 126:
			want = []byte{0x81, byte(n)}
		case n < 1<<16:
			want = binary.BigEndian.AppendUint16([]byte{0x81, 126}, uint16(n))
		default:
			want = binary.BigEndian.AppendUint64([]byte{0x81, 127}, uint64(n))
		}
		if got := s.out[off : off+len(want)]; !bytes.Equal(got, want) {
			t.Errorf("header of %d-byte message = % x, want % x", n, got, want)
		}
		off += len(want) + n
	}
	if f := frames[len(sizes)]; f.op != opPing || string(f.payload) != "ping" {
		t.Errorf("ping frame = %v", f)
	}
	if f := frames[len(sizes)+1]; closeCode(f) != 1000 || string(f.payload[2:]) != "bye" {
		t.Errorf("close frame = %v %q", f, f.payload)
	}
}

// TestResetBuffered: bytes read past the handshake are the start of the stream; a header cut between
// them and the stream is joined.
func TestResetBuffered(t *testing.T) {
	in := join(frame(fin|opText, "first"), frame(fin|opBinary, strings.Repeat("z", 300)), frame(fin|opPing, "p"))
	for cut := 0; cut <= len(in); cut++ {
		c := ws.NewConn(ws.Config{})
		s := &memStream{in: in[cut:]}
		if err := c.Reset(s, in[:cut]); err != nil {
			t.Fatal(err)
		}
		var msgs []message
		var err error
		for err == nil {
			var op ws.Opcode
			var p []byte
			op, p, err = c.ReadMessage()
			if err == nil {
				msgs = append(msgs, message{op, string(p)})
			}
		}
		if len(msgs) != 2 || msgs[0].p != "first" || len(msgs[1].p) != 300 || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("buffered %d bytes: messages %.40q, error %v", cut, msgs, err)
		}
		if f, _ := parseFrame(s.out); f.op != opPong || string(f.payload) != "p" {
			t.Fatalf("buffered %d bytes: server sent % x, want a pong", cut, s.out)
		}
	}
	// Too much: Reset refuses the bytes but binds the stream, so that a close still reaches the peer,
	// and nothing is read from a stream whose frame boundaries are lost.
	c := ws.NewConn(ws.Config{ReadBufferSize: 64})
	if err := c.Reset(&memStream{}, nil); err != nil {
		t.Fatal(err)
	}
	_ = c.WriteClose(ws.CloseNormal, "") // the previous session ended with a close
	s := &memStream{in: frame(fin|opText, "rest of the stream")}
	if err := c.Reset(s, make([]byte, 65)); !errors.Is(err, ws.ErrBufferedTooLarge) {
		t.Errorf("Reset with 65 buffered bytes and a 64-byte buffer = %v, want ErrBufferedTooLarge", err)
	}
	if op, p, err := c.ReadMessage(); err == nil {
		t.Errorf("ReadMessage after a refused Reset returned %v %q", op, p)
	}
	if err := c.WriteClose(ws.CloseTooBig, ""); err != nil {
		t.Fatalf("WriteClose after a refused Reset: %v", err)
	}
	if frames, _ := parseFrames(s.out); len(frames) != 1 || closeCode(frames[0]) != ws.CloseTooBig {
		t.Errorf("after a refused Reset the stream got %v, want close 1009", frames)
	}
}

// TestResetClearsSession: a pooled Conn reused after a session that ended in the middle of a
// fragmented text message, inside a UTF-8 sequence, starts clean.
func TestResetClearsSession(t *testing.T) {
	c := ws.NewConn(ws.Config{})
	for name, first := range map[string][]byte{
		"mid message":  join(frame(opText, "abc\xe2\x82")),
		"mid frame":    frame(fin|opText, "abcdef")[:8],
		"mid header":   frame(fin|opText, "abcdef")[:3],
		"after close":  closeFrame(1000, ""),
		"after a fail": frame(fin|opText, "\xff"),
		"mid ping":     frame(fin|opPing, "abcdef")[:9],
	} {
		s1 := &memStream{in: first}
		if err := c.Reset(s1, nil); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			if _, _, err := c.ReadMessage(); err != nil {
				break
			}
		}
		s2 := &memStream{in: join(frame(fin|opText, "\xac fresh"), frame(fin|opText, "ok"))}
		o := runOn(t, c, s2)
		wantFail(t, o, ws.CloseInvalidPayload) // a fresh session: \xac is a lone continuation byte
		s3 := &memStream{in: join(frame(fin|opCont, "x"))}
		wantFail(t, runOn(t, c, s3), ws.CloseProtocolError)
		s4 := &memStream{in: frame(fin|opText, "hello")}
		o = runOn(t, c, s4)
		wantClean(t, o)
		if len(o.msgs) != 1 || o.msgs[0].p != "hello" {
			t.Fatalf("%s: next session read %v", name, o.msgs)
		}
	}
}

// TestW8_ReadWriteAllocs: reading and writing a small message over a reused stream allocates nothing.
func TestW8_ReadWriteAllocs(t *testing.T) {
	c := ws.NewConn(ws.Config{})
	s := &memStream{
		in:  join(frame(opText, "hello "), frame(fin|opPing, "p"), frame(fin|opCont, "world"), frame(fin|opBinary, "0123456789")),
		out: make([]byte, 0, 1024),
	}
	reply := []byte("a reply of a few bytes")
	allocs := testing.AllocsPerRun(200, func() {
		s.rewind()
		if err := c.Reset(s, nil); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			if _, _, err := c.ReadMessage(); err != nil {
				t.Fatal(err)
			}
			if err := c.WriteMessage(ws.OpText, reply); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("ReadMessage + WriteMessage: %v allocations per run, want 0 (CONTRACT W8)", allocs)
	}
}
