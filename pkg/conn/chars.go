package conn

import "bytes"

// Byte classes of RFC 9110 5.6.2 (token) and 5.5 (field values), as lookup tables.
var (
	tokenTable  [256]bool // tchar
	targetTable [256]bool // visible ASCII allowed in a request-target (RFC 3986 characters, no '#')
	valueTable  [256]bool // field-vchar, SP and HTAB (obs-text included)
	hostTable   [256]bool // unreserved and sub-delims of RFC 3986: reg-name, IP-literal contents
)

func init() {
	for c := 'a'; c <= 'z'; c++ {
		tokenTable[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		tokenTable[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		tokenTable[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		tokenTable[c] = true
	}
	for c := 0x21; c <= 0x7e; c++ {
		targetTable[c] = c != '#'
	}
	for c := 0; c < 256; c++ {
		hostTable[c] = tokenTable[c] && c != '#' && c != '^' && c != '`' && c != '|' && c != '%'
	}
	for _, c := range "()*,;=" {
		hostTable[c] = true
	}
	valueTable['\t'] = true
	for c := 0x20; c <= 0xff; c++ {
		valueTable[c] = c != 0x7f
	}
}

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenTable[c] {
			return false
		}
	}
	return true
}

func isTokenString(s string) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenTable[s[i]] {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// equalFold reports whether b equals s, ASCII case-insensitively. s must be lower case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if lower(b[i]) != s[i] {
			return false
		}
	}
	return true
}

// equalFoldString is equalFold for two strings of any case.
func equalFoldString(a []byte, s string) bool {
	if len(a) != len(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if lower(a[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// NextListElement splits a comma-separated field value (RFC 9110 5.6.1) in place: it returns the
// first element with optional whitespace trimmed, and the rest after the comma (nil after the last
// element). Empty elements are returned as empty. It allocates nothing.
func NextListElement(list []byte) (elem, rest []byte) { return nextToken(list) }

// nextToken is NextListElement.
func nextToken(list []byte) (elem, rest []byte) {
	for i, c := range list {
		if c == ',' {
			return trimOWS(list[:i]), list[i+1:]
		}
	}
	return trimOWS(list), nil
}

// validHost reports whether v is a Host field value, uri-host [ ":" port ] (RFC 9110 7.2, RFC 3986
// 3.2.2): a reg-name (unreserved, sub-delims, percent-encoded octets) or an IP-literal in brackets,
// then digits after the colon. An empty value is valid (an authority without a host).
func validHost(v []byte) bool {
	i := 0
	if len(v) > 0 && v[0] == '[' {
		// IP-literal: IPv6address or IPvFuture, whose characters are unreserved, sub-delims and ':';
		// '%' as well, for the zone of a link-local address (RFC 6874).
		for i = 1; i < len(v) && v[i] != ']'; i++ {
			if !hostTable[v[i]] && v[i] != ':' && v[i] != '%' {
				return false
			}
		}
		if i == len(v) || i == 1 {
			return false
		}
		i++
	} else {
		for ; i < len(v) && v[i] != ':'; i++ {
			if v[i] == '%' {
				if i+2 >= len(v) {
					return false
				}
				if _, ok := unhex(v[i+1]); !ok {
					return false
				}
				if _, ok := unhex(v[i+2]); !ok {
					return false
				}
				i += 2
			} else if !hostTable[v[i]] {
				return false
			}
		}
	}
	if i == len(v) {
		return true
	}
	if v[i] != ':' {
		return false
	}
	for _, c := range v[i+1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// MatchETagStrong reports whether the If-Match field value ifMatch lists etag, or is "*", by the
// strong comparison RFC 9110 13.1.1 asks of If-Match: a weak tag ("W/" prefix) never matches.
func MatchETagStrong(ifMatch, etag []byte) bool {
	for list := ifMatch; len(list) > 0; {
		var t []byte
		t, list = nextToken(list)
		if bytes.Equal(t, []byte("*")) || bytes.Equal(t, etag) {
			return true
		}
	}
	return false
}

// MatchETag reports whether the If-None-Match field value ifNoneMatch lists etag, or is "*", by the
// weak comparison RFC 9110 13.1.2 asks of If-None-Match (a "W/" prefix does not count). It walks the
// list in place and allocates nothing: browsers revalidate every cached response with it.
func MatchETag(ifNoneMatch, etag []byte) bool {
	for list := ifNoneMatch; len(list) > 0; {
		var t []byte
		t, list = nextToken(list)
		t = bytes.TrimPrefix(t, []byte("W/"))
		if bytes.Equal(t, []byte("*")) || bytes.Equal(t, etag) {
			return true
		}
	}
	return false
}
