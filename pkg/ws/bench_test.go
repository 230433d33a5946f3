package ws_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/edged/edged/pkg/ws"
)

var benchSizes = []int{64, 4096}

// BenchmarkReadMessage reads one masked message per iteration from a reused in-memory stream:
// header decoding, unmasking and, for text, UTF-8 checking (CONTRACT W4, W8).
func BenchmarkReadMessage(b *testing.B) {
	for _, op := range []byte{opBinary, opText} {
		for _, size := range benchSizes {
			name := fmt.Sprintf("%s/%dB", ws.Opcode(op), size)
			b.Run(name, func(b *testing.B) {
				payload := bytes.Repeat([]byte("edged ws"), size/8)
				s := &memStream{in: frame(fin|op, string(payload))}
				c := ws.NewConn(ws.Config{})
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					s.rewind()
					if err := c.Reset(s, nil); err != nil {
						b.Fatal(err)
					}
					if _, p, err := c.ReadMessage(); err != nil || len(p) != size {
						b.Fatalf("ReadMessage: %d bytes, %v", len(p), err)
					}
				}
			})
		}
	}
}

// BenchmarkWriteMessage writes one message per iteration to a stream that discards it.
func BenchmarkWriteMessage(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			payload := bytes.Repeat([]byte("edged ws"), size/8)
			s := &memStream{discard: true}
			c := ws.NewConn(ws.Config{})
			if err := c.Reset(s, nil); err != nil {
				b.Fatal(err)
			}
			hdr := 2 // 7-bit length
			if size > 125 {
				hdr = 4 // 16-bit length
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if err := c.WriteMessage(ws.OpBinary, payload); err != nil {
					b.Fatal(err)
				}
				n++
			}
			if s.outLen != n*(size+hdr) {
				b.Fatalf("wrote %d bytes for %d messages of %d bytes", s.outLen, n, size)
			}
		})
	}
}

// BenchmarkMaskBytes unmasks 4 KiB, the word-at-a-time path (CONTRACT W8).
func BenchmarkMaskBytes(b *testing.B) {
	p := make([]byte, 4096)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	pos := 0
	for b.Loop() {
		pos = ws.MaskBytes(testMask, pos, p)
	}
}
