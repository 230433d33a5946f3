package ws_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/edged/edged/pkg/ws"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad fixture %q: %v", s, err)
	}
	return b
}

// headerCases are frame headers as they appear on the wire (RFC 6455 5.2), in the three length forms
// and at their boundaries.
var headerCases = []struct {
	name string
	wire string
	want ws.Header
}{
	{"text empty", "81 00", ws.Header{Fin: true, Op: ws.OpText}},
	{"text 1 masked", "81 81 37 fa 21 3d", ws.Header{Fin: true, Op: ws.OpText, Masked: true, Mask: testMask, Length: 1}},
	{"binary 125", "82 7d", ws.Header{Fin: true, Op: ws.OpBinary, Length: 125}},
	{"binary 125 masked", "82 fd 37 fa 21 3d", ws.Header{Fin: true, Op: ws.OpBinary, Masked: true, Mask: testMask, Length: 125}},
	{"binary 126", "82 7e 00 7e", ws.Header{Fin: true, Op: ws.OpBinary, Length: 126}},
	{"binary 126 masked", "82 fe 00 7e 37 fa 21 3d", ws.Header{Fin: true, Op: ws.OpBinary, Masked: true, Mask: testMask, Length: 126}},
	{"binary 65535", "82 7e ff ff", ws.Header{Fin: true, Op: ws.OpBinary, Length: 65535}},
	{"binary 65536", "82 7f 00 00 00 00 00 01 00 00", ws.Header{Fin: true, Op: ws.OpBinary, Length: 65536}},
	{"binary 65536 masked", "82 ff 00 00 00 00 00 01 00 00 37 fa 21 3d", ws.Header{Fin: true, Op: ws.OpBinary, Masked: true, Mask: testMask, Length: 65536}},
	{"binary max int64", "82 7f 7f ff ff ff ff ff ff ff", ws.Header{Fin: true, Op: ws.OpBinary, Length: math.MaxInt64}},
	{"text not fin", "01 03", ws.Header{Op: ws.OpText, Length: 3}},
	{"continuation", "00 85 37 fa 21 3d", ws.Header{Op: ws.OpContinuation, Masked: true, Mask: testMask, Length: 5}},
	{"continuation fin", "80 00", ws.Header{Fin: true, Op: ws.OpContinuation}},
	{"close", "88 02", ws.Header{Fin: true, Op: ws.OpClose, Length: 2}},
	{"ping", "89 80 37 fa 21 3d", ws.Header{Fin: true, Op: ws.OpPing, Masked: true, Mask: testMask}},
	{"pong 125", "8a 7d", ws.Header{Fin: true, Op: ws.OpPong, Length: 125}},
	{"rsv1", "c1 00", ws.Header{Fin: true, Rsv: 4, Op: ws.OpText}},
	{"rsv2", "a1 00", ws.Header{Fin: true, Rsv: 2, Op: ws.OpText}},
	{"rsv3", "91 00", ws.Header{Fin: true, Rsv: 1, Op: ws.OpText}},
	{"all bits", "ff ff 7f ff ff ff ff ff ff ff 01 02 03 04", ws.Header{Fin: true, Rsv: 7, Op: 0xF, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: math.MaxInt64}},
	{"reserved opcode 3", "83 00", ws.Header{Fin: true, Op: 3}},
	{"reserved opcode 0xB", "8b 00", ws.Header{Fin: true, Op: 0xB}},
}

func TestParseHeaderFixtures(t *testing.T) {
	for _, tc := range headerCases {
		t.Run(tc.name, func(t *testing.T) {
			wire := unhex(t, tc.wire)
			// Whole, and followed by payload bytes that must not be consumed.
			for _, in := range [][]byte{wire, append(append([]byte(nil), wire...), 0xAA, 0xBB, 0xCC)} {
				h, n, err := ws.ParseHeader(in)
				if err != nil || n != len(wire) || h != tc.want {
					t.Fatalf("ParseHeader(% x) = %+v, %d, %v; want %+v, %d, nil", in, h, n, err, tc.want, len(wire))
				}
			}
			// Every proper prefix is incomplete: n == 0 and no error.
			for i := 0; i < len(wire); i++ {
				if _, n, err := ws.ParseHeader(wire[:i]); n != 0 || err != nil {
					t.Fatalf("ParseHeader(% x) (prefix %d of %d) = n %d, err %v; want 0, nil", wire[:i], i, len(wire), n, err)
				}
			}
			// PutHeader writes the same bytes (the fixtures use minimal length encodings).
			dst := make([]byte, ws.MaxHeaderSize)
			if n := ws.PutHeader(dst, tc.want); !bytes.Equal(dst[:n], wire) {
				t.Fatalf("PutHeader(%+v) = % x, want % x", tc.want, dst[:n], wire)
			}
		})
	}
}

// TestW3_LengthTopBit: a 64-bit length with the most significant bit set is an error (RFC 6455 5.2),
// reported only once the whole length is there.
func TestW3_LengthTopBit(t *testing.T) {
	for _, wire := range []string{
		"82 7f 80 00 00 00 00 00 00 00",
		"82 ff 80 00 00 00 00 00 00 05 37 fa 21 3d",
		"01 7f ff ff ff ff ff ff ff ff",
		"89 ff 80 00 00 00 00 00 00 00",
	} {
		b := unhex(t, wire)
		for i := 0; i < 10; i++ {
			if _, n, err := ws.ParseHeader(b[:i]); n != 0 || err != nil {
				t.Errorf("ParseHeader(% x) = n %d, err %v; want 0, nil (incomplete)", b[:i], n, err)
			}
		}
		for i := 10; i <= len(b); i++ {
			if _, n, err := ws.ParseHeader(b[:i]); err == nil || n != 0 {
				t.Errorf("ParseHeader(% x) = n %d, err %v; want an error", b[:i], n, err)
			}
		}
	}
}

// TestHeaderRoundTrip encodes every opcode, flag combination and boundary length with PutHeader,
// compares the bytes with the test's own encoder and decodes them back, whole and split.
func TestHeaderRoundTrip(t *testing.T) {
	lengths := []int64{0, 1, 125, 126, 127, 65535, 65536, 1 << 32, math.MaxInt64}
	dst := make([]byte, ws.MaxHeaderSize+4)
	for op := 0; op < 16; op++ {
		for _, length := range lengths {
			for _, masked := range []bool{false, true} {
				for _, finBit := range []bool{false, true} {
					for rsv := uint8(0); rsv < 8; rsv++ {
						h := ws.Header{Fin: finBit, Rsv: rsv, Op: ws.Opcode(op), Masked: masked, Length: length}
						if masked {
							h.Mask = [4]byte{byte(op), 0xff, byte(rsv), 0x80}
						}
						n := ws.PutHeader(dst, h)
						want := refHeader(h)
						if !bytes.Equal(dst[:n], want) {
							t.Fatalf("PutHeader(%+v) = % x, want % x", h, dst[:n], want)
						}
						got, m, err := ws.ParseHeader(dst[:n])
						if err != nil || m != n || got != h {
							t.Fatalf("ParseHeader(PutHeader(%+v)) = %+v, %d, %v", h, got, m, err)
						}
						if _, m, _ := ws.ParseHeader(dst[:n-1]); m != 0 {
							t.Fatalf("ParseHeader of %d of %d header bytes = %d, want 0", n-1, n, m)
						}
					}
				}
			}
		}
	}
}

// refHeader encodes h the plain way, with the minimal length form.
func refHeader(h ws.Header) []byte {
	b0 := byte(h.Op) | h.Rsv<<4
	if h.Fin {
		b0 |= 0x80
	}
	var m byte
	if h.Masked {
		m = 0x80
	}
	var b []byte
	switch {
	case h.Length < 126:
		b = []byte{b0, m | byte(h.Length)}
	case h.Length < 1<<16:
		b = binary.BigEndian.AppendUint16([]byte{b0, m | 126}, uint16(h.Length))
	default:
		b = binary.BigEndian.AppendUint64([]byte{b0, m | 127}, uint64(h.Length))
	}
	if h.Masked {
		b = append(b, h.Mask[:]...)
	}
	return b
}

func naiveMask(key [4]byte, pos int, b []byte) {
	for i := range b {
		b[i] ^= key[(pos+i)%4]
	}
}

// TestMaskBytes compares the word-at-a-time masking with a byte-wise XOR for every length 0..100,
// every key position and several alignments of the slice, and checks that masking twice restores
// the data.
func TestMaskBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	backing := make([]byte, 200)
	for length := 0; length <= 100; length++ {
		for pos := 0; pos < 4; pos++ {
			for off := 0; off < 8; off++ {
				orig := make([]byte, length)
				for i := range orig {
					orig[i] = byte(rng.Uint32())
				}
				want := append([]byte(nil), orig...)
				naiveMask(key, pos, want)

				b := backing[off : off+length]
				copy(b, orig)
				next := ws.MaskBytes(key, pos, b)
				if !bytes.Equal(b, want) {
					t.Fatalf("MaskBytes(len %d, pos %d, offset %d) = % x, want % x", length, pos, off, b, want)
				}
				if next != (pos+length)%4 {
					t.Fatalf("MaskBytes(len %d, pos %d) returned position %d, want %d", length, pos, next, (pos+length)%4)
				}
				ws.MaskBytes(key, pos, b)
				if !bytes.Equal(b, orig) {
					t.Fatalf("MaskBytes twice (len %d, pos %d) did not restore the data", length, pos)
				}
			}
		}
	}
}

// TestMaskBytesChunked masks a payload in arbitrary pieces, carrying the returned key position, as a
// reader that gets a frame in several reads does; the result equals masking it whole.
func TestMaskBytesChunked(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	key := [4]byte{0xde, 0xad, 0xbe, 0xef}
	for iter := 0; iter < 200; iter++ {
		data := make([]byte, rng.IntN(3000))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		want := append([]byte(nil), data...)
		naiveMask(key, 0, want)
		pos := 0
		for rest := data; len(rest) > 0; {
			k := 1 + rng.IntN(min(len(rest), 70))
			pos = ws.MaskBytes(key, pos, rest[:k])
			rest = rest[k:]
		}
		if !bytes.Equal(data, want) {
			t.Fatalf("chunked masking of %d bytes differs from whole masking", len(data))
		}
	}
	// Positions above 3 are taken modulo 4.
	a, b := []byte("abcdefghijklmnopqrstuvwxyz"), []byte("abcdefghijklmnopqrstuvwxyz")
	ws.MaskBytes(key, 6, a)
	ws.MaskBytes(key, 2, b)
	if !bytes.Equal(a, b) {
		t.Errorf("MaskBytes(pos 6) != MaskBytes(pos 2)")
	}
}

// TestW8_CodecAllocs: frame headers are encoded and decoded and payloads unmasked without allocation.
func TestW8_CodecAllocs(t *testing.T) {
	wire := unhex(t, "82 ff 00 00 00 00 00 01 00 00 37 fa 21 3d")
	dst := make([]byte, ws.MaxHeaderSize)
	payload := make([]byte, 4096)
	h := ws.Header{Fin: true, Op: ws.OpBinary, Masked: true, Mask: testMask, Length: 70000}
	var sink int
	for name, f := range map[string]func(){
		"ParseHeader": func() {
			_, n, _ := ws.ParseHeader(wire)
			sink += n
		},
		"ParseHeader top bit": func() {
			_, _, err := ws.ParseHeader(unhexTopBit)
			if err != nil {
				sink++
			}
		},
		"PutHeader": func() { sink += ws.PutHeader(dst, h) },
		"MaskBytes": func() { sink += ws.MaskBytes(testMask, 1, payload) },
	} {
		if a := testing.AllocsPerRun(100, f); a != 0 {
			t.Errorf("%s: %v allocations per run, want 0 (CONTRACT W8)", name, a)
		}
	}
	_ = sink
}

var unhexTopBit = []byte{0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0}

func TestOpcode(t *testing.T) {
	for op := ws.Opcode(0); op < 16; op++ {
		if got, want := op.IsControl(), op >= 8; got != want {
			t.Errorf("Opcode(%d).IsControl() = %v, want %v", op, got, want)
		}
	}
	names := map[ws.Opcode]string{
		ws.OpContinuation: "continuation", ws.OpText: "text", ws.OpBinary: "binary",
		ws.OpClose: "close", ws.OpPing: "ping", ws.OpPong: "pong", 3: "reserved", 0xF: "reserved",
	}
	for op, want := range names {
		if got := op.String(); got != want {
			t.Errorf("Opcode(%d).String() = %q, want %q", op, got, want)
		}
	}
}

// refParseHeader is a deliberately plain decoder of RFC 6455 5.2 that FuzzParseHeader compares
// ParseHeader with.
func refParseHeader(b []byte) (h ws.Header, n int, ok bool, incomplete bool) {
	if len(b) < 2 {
		return h, 0, true, true
	}
	h.Fin = b[0]>>7 == 1
	h.Rsv = (b[0] >> 4) % 8
	h.Op = ws.Opcode(b[0] % 16)
	h.Masked = b[1]>>7 == 1
	l7 := b[1] % 128
	pos := 2
	if l7 == 126 {
		if len(b) < 4 {
			return h, 0, true, true
		}
		h.Length = int64(b[2])*256 + int64(b[3])
		pos = 4
	} else if l7 == 127 {
		if len(b) < 10 {
			return h, 0, true, true
		}
		if b[2] >= 0x80 {
			return h, 0, false, false
		}
		var v int64
		for i := 2; i < 10; i++ {
			v = v*256 + int64(b[i])
		}
		h.Length = v
		pos = 10
	} else {
		h.Length = int64(l7)
	}
	if h.Masked {
		if len(b) < pos+4 {
			return h, 0, true, true
		}
		h.Mask = [4]byte{b[pos], b[pos+1], b[pos+2], b[pos+3]}
		pos += 4
	}
	return h, pos, true, false
}

func FuzzParseHeader(f *testing.F) {
	for _, tc := range headerCases {
		f.Add(unhex(f, tc.wire))
	}
	f.Add(unhexTopBit)
	f.Add([]byte{})
	f.Add([]byte{0x81})
	f.Add(unhex(f, "82 fe 00 05 01 02 03")) // non-minimal 16-bit length, mask cut
	f.Add(unhex(f, "82 7f 00 00 00 00 00 00 00 05"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := ws.ParseHeader(b)
		rh, rn, ok, incomplete := refParseHeader(b)
		switch {
		case !ok:
			if err == nil || n != 0 {
				t.Fatalf("ParseHeader(% x) = %+v, %d, nil; want an error (top bit)", b, h, n)
			}
			var pe *ws.ProtocolError
			if !errors.As(err, &pe) || pe.Code != ws.CloseProtocolError {
				t.Fatalf("ParseHeader(% x) error %v, want a *ws.ProtocolError with 1002", b, err)
			}
		case incomplete:
			if err != nil || n != 0 {
				t.Fatalf("ParseHeader(% x) = n %d, err %v; want 0, nil (incomplete)", b, n, err)
			}
		default:
			if err != nil || n != rn || h != rh {
				t.Fatalf("ParseHeader(% x) = %+v, %d, %v; want %+v, %d, nil", b, h, n, err, rh, rn)
			}
			// Re-encoding gives the same header, in minimal form.
			dst := make([]byte, ws.MaxHeaderSize)
			m := ws.PutHeader(dst, h)
			if !bytes.Equal(dst[:m], refHeader(h)) {
				t.Fatalf("PutHeader(%+v) = % x, want % x", h, dst[:m], refHeader(h))
			}
			if back, k, err := ws.ParseHeader(dst[:m]); err != nil || k != m || back != h {
				t.Fatalf("round trip of %+v: %+v, %d, %v", h, back, k, err)
			}
		}
	})
}
