package ws

import (
	"encoding/base64"
	"encoding/binary"
	"testing"
	"unicode/utf8"
)

// FuzzUTF8 feeds a message to the incremental UTF-8 validator in two fragments split anywhere and
// compares with unicode/utf8: the message is accepted (every fragment fed, ending on a character
// boundary) exactly when utf8.Valid accepts it (CONTRACT W4). The first fragment alone is rejected
// only when no continuation could make it valid.
func FuzzUTF8(f *testing.F) {
	for _, s := range []string{"hello", "κόσμε", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe0\x80\xaf", "a\xc3", "\xf0\x9f\x98\x80 ok"} {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, msg []byte, cut uint8) {
		k := int(cut)
		if k > len(msg) {
			k = len(msg)
		}
		var s utf8State
		got := s.feed(msg[:k]) && s.feed(msg[k:]) && s.complete()
		if want := utf8.Valid(msg); got != want {
			t.Fatalf("utf8State on %q split at %d: %v, utf8.Valid: %v", msg, k, got, want)
		}
		var p utf8State
		if !p.feed(msg[:k]) {
			// Nothing appended to the prefix may make it valid: its longest valid-looking start is
			// not a valid string followed by the start of a character.
			if utf8.Valid(msg[:k]) || utf8.Valid(append(append([]byte(nil), msg[:k]...), "\x80"...)) ||
				utf8.Valid(append(append([]byte(nil), msg[:k]...), "\x80\x80"...)) ||
				utf8.Valid(append(append([]byte(nil), msg[:k]...), "\x80\x80\x80"...)) ||
				utf8.Valid(append(append([]byte(nil), msg[:k]...), "\x90\x80\x80"...)) ||
				utf8.Valid(append(append([]byte(nil), msg[:k]...), "\xa0\x80"...)) {
				t.Fatalf("utf8State refused the prefix %q, which can still be completed", msg[:k])
			}
		}
	})
}

// FuzzValidKey compares validKey with encoding/base64: Sec-WebSocket-Key is valid exactly when it is
// the padded standard base64 of 16 bytes (CONTRACT W1). Like encoding/base64 without Strict, it does
// not insist that the unused bits of the last character are zero.
func FuzzValidKey(f *testing.F) {
	for _, s := range []string{"dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZR==", "AAAAAAAAAAAAAAAAAAAAAAAA", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, key []byte) {
		raw, err := base64.StdEncoding.DecodeString(string(key))
		want := err == nil && len(raw) == 16 && len(key) == 24
		if got := validKey(key); got != want {
			t.Fatalf("validKey(%q) = %v, base64: %d bytes, %v", key, got, len(raw), err)
		}
	})
}

// FuzzValidClosePayload checks validClosePayload against RFC 6455 5.5.1 and 7.4: empty, or a code a
// peer accepts (CONTRACT W6) followed by a valid UTF-8 reason (CONTRACT W4).
func FuzzValidClosePayload(f *testing.F) {
	for _, s := range []string{"", "\x03", "\x03\xe8", "\x03\xe8bye", "\x03\xed", "\x0b\xb8\xff", "\x13\x87"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		want := len(p) == 0
		if len(p) >= 2 {
			code := int(binary.BigEndian.Uint16(p))
			known := code >= 1000 && code <= 1003 || code >= 1007 && code <= 1014 || code >= 3000 && code <= 4999
			want = known && utf8.Valid(p[2:])
		}
		if got := validClosePayload(p); got != want {
			t.Fatalf("validClosePayload(%q) = %v, want %v", p, got, want)
		}
	})
}
