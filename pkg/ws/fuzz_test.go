package ws_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"unicode/utf8"

	"github.com/edged/edged/pkg/ws"
)

// fuzzMax is the message limit in the fuzz targets: small, so that 1009 is reachable.
const fuzzMax = 4096

// refOutcome is what a server following RFC 6455 and CONTRACT W3-W7 does with a client byte stream
// that ends with EOF, as computed by refConn.
type refOutcome struct {
	msgs []message
	out  []byte // pongs, then at most one close frame
	// end is how the session ended: "eof" (the stream ended without a close: no close sent),
	// "fail" (a violation: close with code sent), "close" (the peer's close: echoed).
	end        string
	code       int    // the close code sent ("fail") or received ("close", 1005 for none)
	peerReason string // "close"
}

// refConn is a plain model of the server's reading side: it has the whole input at once and walks it
// frame by frame, applying the rules in the order the contract lists them. Text is checked as UTF-8
// on every prefix, so that a frame cut by EOF after an invalid byte still fails with 1007.
func refConn(in []byte, maxMessage int) refOutcome {
	var r refOutcome
	fail := func(code int) refOutcome {
		r.end, r.code = "fail", code
		r.out = append(r.out, 0x88, 2, byte(code>>8), byte(code))
		return r
	}
	msgOp := byte(0)
	var msg []byte
	for {
		if len(in) < 2 {
			r.end = "eof"
			return r
		}
		b0, b1 := in[0], in[1]
		finBit, rsv, op, masked := b0&0x80 != 0, b0&0x70, b0&0x0F, b1&0x80 != 0
		length := uint64(b1 & 0x7F)
		hl := 2
		switch length {
		case 126:
			if len(in) < 4 {
				r.end = "eof"
				return r
			}
			length, hl = uint64(in[2])<<8|uint64(in[3]), 4
		case 127:
			if len(in) < 10 {
				r.end = "eof"
				return r
			}
			if in[2]&0x80 != 0 {
				return fail(1002)
			}
			length, hl = binary.BigEndian.Uint64(in[2:]), 10
		}
		var key [4]byte
		if masked {
			if len(in) < hl+4 {
				r.end = "eof"
				return r
			}
			copy(key[:], in[hl:])
			hl += 4
		}
		control := op >= 8
		switch {
		case rsv != 0,
			op >= 3 && op <= 7, op >= 0xB,
			!masked,
			control && (length > 125 || !finBit),
			op == 0 && msgOp == 0,
			(op == 1 || op == 2) && msgOp != 0:
			return fail(1002)
		case !control && length > uint64(maxMessage-len(msg)):
			return fail(1009)
		}
		avail := min(length, uint64(len(in)-hl))
		payload := append([]byte(nil), in[hl:hl+int(avail)]...)
		for i := range payload {
			payload[i] ^= key[i&3]
		}
		in = in[hl+int(avail):]
		if !control {
			if op != 0 {
				msgOp = op
			}
			msg = append(msg, payload...)
			if msgOp == 1 && !validUTF8Prefix(msg) {
				return fail(1007)
			}
			if avail < length {
				r.end = "eof"
				return r
			}
			if finBit {
				if msgOp == 1 && !utf8.Valid(msg) {
					return fail(1007)
				}
				r.msgs = append(r.msgs, message{ws.Opcode(msgOp), string(msg)})
				msgOp, msg = 0, nil
			}
			continue
		}
		if avail < length {
			r.end = "eof"
			return r
		}
		switch op {
		case 0x9:
			r.out = append(r.out, 0x8A, byte(len(payload)))
			r.out = append(r.out, payload...)
		case 0x8:
			code := 1005
			switch {
			case len(payload) == 1:
				return fail(1002)
			case len(payload) >= 2:
				code = int(binary.BigEndian.Uint16(payload))
				if code < 1000 || code >= 5000 || (code >= 1004 && code <= 1006) || (code >= 1015 && code < 3000) {
					return fail(1002)
				}
				if !utf8.Valid(payload[2:]) {
					return fail(1007)
				}
			}
			reply := code
			if code == 1005 {
				reply = 1000
			}
			r.out = append(r.out, 0x88, 2, byte(reply>>8), byte(reply))
			r.end, r.code, r.peerReason = "close", code, string(payload[min(2, len(payload)):])
			return r
		}
	}
}

// validUTF8Prefix reports whether p can be continued into valid UTF-8: it is valid except for an
// incomplete last character whose bytes so far are allowed. The second byte of every lead has a range
// holding 0x80, 0x90 or 0xA0, so trying those completions is enough.
func validUTF8Prefix(p []byte) bool {
	if utf8.Valid(p) {
		return true
	}
	for k := 1; k <= 3 && k <= len(p); k++ {
		head, tail := p[:len(p)-k], p[len(p)-k:]
		if !utf8.Valid(head) {
			continue
		}
		for _, second := range []byte{0x80, 0x90, 0xA0} {
			c := append([]byte(nil), tail...)
			if len(c) == 1 {
				c = append(c, second)
			}
			for len(c) < 4 && !utf8.FullRune(c) {
				c = append(c, 0x80)
			}
			if utf8.FullRune(c) && len(c) > k && utf8.Valid(c) {
				return true
			}
		}
	}
	return false
}

// fuzzVariants are the buffer sizes and read sizes every input is run with; all must behave alike.
var fuzzVariants = []struct {
	cfg     ws.Config
	maxRead int
}{
	{ws.Config{MaxMessage: fuzzMax}, 0},
	{ws.Config{MaxMessage: fuzzMax, ReadBufferSize: 2 * ws.MaxHeaderSize, WriteBufferSize: 2 * ws.MaxHeaderSize}, 1},
	{ws.Config{MaxMessage: fuzzMax, ReadBufferSize: 64}, 7},
}

// checkAgainstRef runs in through the Conn in every variant and compares each run with refConn and
// with the rules any run must follow.
func checkAgainstRef(t *testing.T, in []byte) {
	ref := refConn(in, fuzzMax)
	for vi, v := range fuzzVariants {
		o := runScript(t, v.cfg, in, v.maxRead)
		for i, m := range o.msgs {
			if m.op == ws.OpText && !utf8.ValidString(m.p) {
				t.Fatalf("variant %d: text message %d is not valid UTF-8: %q", vi, i, m.p)
			}
			if m.op != ws.OpText && m.op != ws.OpBinary {
				t.Fatalf("variant %d: message %d has opcode %v", vi, i, m.op)
			}
			if len(m.p) > fuzzMax {
				t.Fatalf("variant %d: message %d of %d bytes, limit %d", vi, i, len(m.p), fuzzMax)
			}
		}
		if len(o.rest) != 0 {
			t.Fatalf("variant %d: server output ends with a partial frame % x", vi, o.rest)
		}
		for i, f := range o.frames {
			if err := checkServerFrame(f); err != nil {
				t.Fatalf("variant %d: server frame %d %v: %v", vi, i, f, err)
			}
			if f.op == opClose && i != len(o.frames)-1 {
				t.Fatalf("variant %d: server sent frames after its close: %v", vi, o.frames)
			}
		}
		if fmt.Sprint(o.msgs) != fmt.Sprint(ref.msgs) {
			t.Fatalf("variant %d: messages\n %v\nwant (reference)\n %v\ninput % x", vi, o.msgs, ref.msgs, in)
		}
		if !bytes.Equal(o.out, ref.out) {
			t.Fatalf("variant %d: server wrote\n % x\nwant (reference)\n % x\n(error %v, reference %s %d)\ninput % x",
				vi, o.out, ref.out, o.err, ref.end, ref.code, in)
		}
		var pe *ws.ProtocolError
		var ce *ws.CloseError
		switch ref.end {
		case "eof":
			if !errors.Is(o.err, io.ErrUnexpectedEOF) {
				t.Fatalf("variant %d: error %v, want io.ErrUnexpectedEOF; input % x", vi, o.err, in)
			}
		case "fail":
			if !errors.As(o.err, &pe) || pe.Code != ref.code {
				t.Fatalf("variant %d: error %v, want *ProtocolError %d; input % x", vi, o.err, ref.code, in)
			}
		case "close":
			if !errors.As(o.err, &ce) || ce.Code != ref.code || ce.Reason != ref.peerReason {
				t.Fatalf("variant %d: error %v, want *CloseError{%d %q}; input % x", vi, o.err, ref.code, ref.peerReason, in)
			}
		}
	}
}

// FuzzFrame feeds arbitrary bytes as the client's side of a session: the Conn must not panic or hang,
// return only valid messages within the limit, send only valid server frames, behave the same for
// every buffer and read size, and agree with the reference model.
func FuzzFrame(f *testing.F) {
	f.Add(join(frame(fin|opText, "hello"), closeFrame(1000, "")))
	f.Fuzz(func(t *testing.T, in []byte) {
		checkAgainstRef(t, in)
	})
}

// TestConnAgainstReference runs random, mostly well-formed streams (random flags, opcodes, lengths,
// UTF-8 cut anywhere, truncation) through checkAgainstRef, so that the model comparison runs in every
// `go test`, not only when fuzzing.
func TestConnAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	pieces := []string{"a", "κ", "€", "𝄞", "\xe2\x82", "\xac", "\xff", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "hello world"}
	iters := 3000
	if testing.Short() {
		iters = 300
	}
	for iter := 0; iter < iters; iter++ {
		var in []byte
		for n := rng.IntN(8); n >= 0; n-- {
			var payload []byte
			switch rng.IntN(4) {
			case 0:
				payload = make([]byte, rng.IntN(200))
			case 1:
				payload = make([]byte, rng.IntN(fuzzMax+200))
			default:
				for k := rng.IntN(6); k > 0; k-- {
					p := pieces[rng.IntN(len(pieces))]
					if rng.IntN(6) != 0 {
						p = pieces[rng.IntN(4)]
					}
					payload = append(payload, p...)
				}
			}
			b0 := []byte{opText, opBinary, opCont, opPing, opPong, opClose}[rng.IntN(6)]
			if rng.IntN(2) == 0 {
				b0 |= fin
			}
			if rng.IntN(30) == 0 {
				b0 |= byte(rng.IntN(8)) << 4
			}
			if rng.IntN(30) == 0 {
				b0 = byte(rng.Uint32())
			}
			if b0&0xF == opClose && rng.IntN(2) == 0 {
				code := []int{1000, 1001, 1005, 1011, 1016, 3000, 4999, 5000, 999}[rng.IntN(9)]
				payload = append(binary.BigEndian.AppendUint16(nil, uint16(code)), payload[:min(len(payload), 100)]...)
			}
			cf := cframe{b0: b0, payload: payload, unmasked: rng.IntN(40) == 0, mask: [4]byte{byte(iter), 1, 2, byte(n)}}
			if rng.IntN(10) == 0 {
				cf.lenForm = []int{16, 64}[rng.IntN(2)]
			}
			in = append(in, cf.bytes()...)
		}
		if rng.IntN(3) == 0 && len(in) > 0 {
			in = in[:rng.IntN(len(in))]
		}
		checkAgainstRef(t, in)
	}
}

// TestValidUTF8Prefix checks the reference model's helper against a brute-force definition.
func TestValidUTF8Prefix(t *testing.T) {
	for a := 0; a < 256; a++ {
		for _, p := range [][]byte{{byte(a)}, {'x', byte(a)}} {
			want := utf8.Valid(p)
			for b := 0x80; b < 0xC0 && !want; b++ {
				for c := 0x80; c < 0xC0 && !want; c++ {
					for _, tail := range [][]byte{{byte(b)}, {byte(b), byte(c)}, {byte(b), byte(c), 0x80}} {
						if utf8.Valid(append(append([]byte(nil), p...), tail...)) {
							want = true
						}
					}
				}
			}
			if got := validUTF8Prefix(p); got != want {
				t.Fatalf("validUTF8Prefix(% x) = %v, want %v", p, got, want)
			}
		}
		for b := 0; b < 256; b++ {
			p := []byte{byte(a), byte(b)}
			want := utf8.Valid(p)
			for c := 0x80; c < 0xC0 && !want; c++ {
				for _, tail := range [][]byte{{byte(c)}, {byte(c), 0x80}, {byte(c), 0x80, 0x80}} {
					if utf8.Valid(append([]byte{byte(a), byte(b)}, tail...)) {
						want = true
					}
				}
			}
			if got := validUTF8Prefix(p); got != want {
				t.Fatalf("validUTF8Prefix(% x) = %v, want %v", p, got, want)
			}
		}
	}
}
