package ws

// utf8State validates UTF-8 incrementally across fragment boundaries (CONTRACT W4). The zero value is
// the state at the start of a message.
type utf8State struct {
	need   uint8 // continuation bytes still expected
	lo, hi byte  // range of the next continuation byte
}

// feed checks b and reports false at the first byte that cannot be part of valid UTF-8 (RFC 3629).
func (s *utf8State) feed(b []byte) bool {
	i := 0
	for i < len(b) {
		if s.need == 0 {
			// ASCII fast path, eight bytes at a time.
			for i+8 <= len(b) {
				if (uint64(b[i])|uint64(b[i+1])<<8|uint64(b[i+2])<<16|uint64(b[i+3])<<24|
					uint64(b[i+4])<<32|uint64(b[i+5])<<40|uint64(b[i+6])<<48|uint64(b[i+7])<<56)&0x8080808080808080 != 0 {
					break
				}
				i += 8
			}
			if i == len(b) {
				return true
			}
			c := b[i]
			i++
			switch {
			case c < 0x80:
			case c >= 0xC2 && c <= 0xDF:
				s.need, s.lo, s.hi = 1, 0x80, 0xBF
			case c == 0xE0:
				s.need, s.lo, s.hi = 2, 0xA0, 0xBF
			case c == 0xED:
				s.need, s.lo, s.hi = 2, 0x80, 0x9F
			case c >= 0xE1 && c <= 0xEF:
				s.need, s.lo, s.hi = 2, 0x80, 0xBF
			case c == 0xF0:
				s.need, s.lo, s.hi = 3, 0x90, 0xBF
			case c >= 0xF1 && c <= 0xF3:
				s.need, s.lo, s.hi = 3, 0x80, 0xBF
			case c == 0xF4:
				s.need, s.lo, s.hi = 3, 0x80, 0x8F
			default:
				return false
			}
			continue
		}
		c := b[i]
		i++
		if c < s.lo || c > s.hi {
			return false
		}
		s.need--
		s.lo, s.hi = 0x80, 0xBF
	}
	return true
}

// complete reports whether the bytes fed so far end on a character boundary.
func (s *utf8State) complete() bool { return s.need == 0 }
