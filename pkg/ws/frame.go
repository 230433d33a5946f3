package ws

import (
	"encoding/binary"
	"math"
)

// Opcode is a frame's opcode (RFC 6455 5.2).
type Opcode uint8

// Opcodes of RFC 6455 5.2; 3-7 and 0xB-0xF are reserved.
const (
	OpContinuation Opcode = 0x0
	OpText         Opcode = 0x1
	OpBinary       Opcode = 0x2
	OpClose        Opcode = 0x8
	OpPing         Opcode = 0x9
	OpPong         Opcode = 0xA
)

// IsControl reports whether op is a control opcode.
func (op Opcode) IsControl() bool { return op&0x8 != 0 }

func (op Opcode) isReserved() bool {
	return (op >= 0x3 && op <= 0x7) || op >= 0xB
}

// String returns the opcode's name.
func (op Opcode) String() string {
	switch op {
	case OpContinuation:
		return "continuation"
	case OpText:
		return "text"
	case OpBinary:
		return "binary"
	case OpClose:
		return "close"
	case OpPing:
		return "ping"
	case OpPong:
		return "pong"
	}
	return "reserved"
}

// Header is a decoded frame header (RFC 6455 5.2).
type Header struct {
	Fin    bool
	Rsv    uint8 // RSV1..RSV3 as bits 2..0
	Op     Opcode
	Masked bool
	Mask   [4]byte
	Length int64
}

// MaxHeaderSize is the largest encoded frame header: 2 + 8 length bytes + 4 mask bytes.
const MaxHeaderSize = 14

// ParseHeader decodes the frame header at the start of b. It returns the header and its encoded size,
// or n == 0 when b holds only part of a header. A 64-bit length with the top bit set is refused
// (CONTRACT W3). ParseHeader does not allocate (CONTRACT W8).
func ParseHeader(b []byte) (h Header, n int, err error) {
	if len(b) < 2 {
		return h, 0, nil
	}
	h.Fin = b[0]&0x80 != 0
	h.Rsv = (b[0] >> 4) & 0x7
	h.Op = Opcode(b[0] & 0x0f)
	h.Masked = b[1]&0x80 != 0
	n = 2
	switch l := b[1] & 0x7f; l {
	case 126:
		if len(b) < 4 {
			return h, 0, nil
		}
		h.Length = int64(binary.BigEndian.Uint16(b[2:]))
		n = 4
	case 127:
		if len(b) < 10 {
			return h, 0, nil
		}
		v := binary.BigEndian.Uint64(b[2:])
		if v > math.MaxInt64 {
			return h, 0, errLengthTopBit
		}
		h.Length = int64(v)
		n = 10
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		if len(b) < n+4 {
			return h, 0, nil
		}
		copy(h.Mask[:], b[n:n+4])
		n += 4
	}
	return h, n, nil
}

// PutHeader encodes h at the start of dst, which must hold MaxHeaderSize bytes, and returns the size.
func PutHeader(dst []byte, h Header) int {
	b0 := byte(h.Op&0x0f) | h.Rsv<<4
	if h.Fin {
		b0 |= 0x80
	}
	dst[0] = b0
	var m byte
	if h.Masked {
		m = 0x80
	}
	n := 2
	switch {
	case h.Length <= 125:
		dst[1] = m | byte(h.Length)
	case h.Length <= math.MaxUint16:
		dst[1] = m | 126
		binary.BigEndian.PutUint16(dst[2:], uint16(h.Length))
		n = 4
	default:
		dst[1] = m | 127
		binary.BigEndian.PutUint64(dst[2:], uint64(h.Length))
		n = 10
	}
	if h.Masked {
		copy(dst[n:], h.Mask[:])
		n += 4
	}
	return n
}

// MaskBytes XORs b with the masking key, starting at key position pos (RFC 6455 5.3), and returns the
// key position after b. It works a 64-bit word at a time (CONTRACT W8).
func MaskBytes(key [4]byte, pos int, b []byte) int {
	pos &= 3
	// Bytes until the next 8-byte boundary of b's start are done one by one only when b is short.
	if len(b) >= 16 {
		var k [8]byte
		for i := range k {
			k[i] = key[(pos+i)&3]
		}
		kw := binary.LittleEndian.Uint64(k[:])
		i := 0
		for ; i+32 <= len(b); i += 32 {
			binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^kw)
			binary.LittleEndian.PutUint64(b[i+8:], binary.LittleEndian.Uint64(b[i+8:])^kw)
			binary.LittleEndian.PutUint64(b[i+16:], binary.LittleEndian.Uint64(b[i+16:])^kw)
			binary.LittleEndian.PutUint64(b[i+24:], binary.LittleEndian.Uint64(b[i+24:])^kw)
		}
		for ; i+8 <= len(b); i += 8 {
			binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^kw)
		}
		b = b[i:]
		// i is a multiple of 8, so the key position is unchanged.
	}
	for i := range b {
		b[i] ^= key[(pos+i)&3]
	}
	return (pos + len(b)) & 3
}
