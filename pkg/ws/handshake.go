package ws

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"

	"github.com/edged/edged/pkg/conn"
)

// acceptGUID is the fixed GUID of RFC 6455 1.3.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// AcceptKey computes Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2) into dst, which must
// hold 28 bytes, without allocating.
func AcceptKey(dst []byte, key []byte) []byte {
	var buf [64 + len(acceptGUID)]byte
	n := copy(buf[:], key)
	n += copy(buf[n:], acceptGUID)
	sum := sha1.Sum(buf[:n])
	base64.StdEncoding.Encode(dst[:28], sum[:])
	return dst[:28]
}

// UpgradeOptions configures the handshake (CONTRACT W2).
type UpgradeOptions struct {
	// Subprotocols the server speaks, in order of preference; the first one the client offers is chosen.
	// Names match case-sensitively (RFC 7936).
	Subprotocols []string
	// AllowedOrigins lists the Origin values (scheme://host[:port], ASCII case-insensitive) accepted
	// besides same-origin requests; "*" accepts any. With none, only requests without Origin or whose
	// Origin host equals Host are accepted.
	AllowedOrigins []string
}

// IsUpgrade reports whether the request asks for a WebSocket: the Connection token list holds
// "upgrade" and the Upgrade token list "websocket", ASCII case-insensitive (CONTRACT W1; fixes R6.1).
func IsUpgrade(c *conn.Connection) bool {
	return c.HasToken("Connection", "upgrade") && c.HasToken("Upgrade", "websocket")
}

// Check validates an upgrade request without answering it (CONTRACT W1, W2).
func Check(c *conn.Connection, opts *UpgradeOptions) error {
	switch {
	case c.Method() != conn.MethodGet:
		return &HandshakeError{405, "WebSocket upgrade needs GET"}
	case c.ProtoMinor() != 1:
		return &HandshakeError{400, "WebSocket upgrade needs HTTP/1.1"}
	case !IsUpgrade(c):
		return &HandshakeError{400, "missing Connection: upgrade or Upgrade: websocket"}
	case c.ContentLength() != 0:
		// A handshake GET carries no content (RFC 6455 4.1, RFC 9110 9.3.1). A body not read to its
		// end before the switch would reach the session as frames, and one announced with
		// Expect: 100-continue would need a 100 before the 101 (RFC 9110 7.8).
		return &HandshakeError{400, "WebSocket upgrade request with content"}
	case string(c.Header("Sec-WebSocket-Version")) != "13":
		return &HandshakeError{426, "unsupported Sec-WebSocket-Version"}
	case !validKey(c.Header("Sec-WebSocket-Key")):
		return &HandshakeError{400, "Sec-WebSocket-Key is not base64 of 16 bytes"}
	case !originAllowed(c, opts):
		return &HandshakeError{403, "Origin not allowed"}
	}
	return nil
}

func validKey(key []byte) bool {
	if len(key) != 24 {
		return false
	}
	var raw [18]byte
	n, err := base64.StdEncoding.Decode(raw[:], key)
	return err == nil && n == 16
}

// originAllowed applies the Origin policy of CONTRACT W2.
func originAllowed(c *conn.Connection, opts *UpgradeOptions) bool {
	origin := c.Header("Origin")
	if origin == nil {
		return true
	}
	if opts != nil {
		for _, o := range opts.AllowedOrigins {
			if o == "*" || bytes.EqualFold(origin, []byte(o)) {
				return true
			}
		}
	}
	// Same origin: the host[:port] after the scheme equals the request's authority (Host, or the
	// authority of an absolute-form target, which RFC 9112 3.2.2 puts in place of Host).
	i := bytes.Index(origin, []byte("://"))
	if i < 0 {
		return false
	}
	host := origin[i+3:]
	if j := bytes.IndexByte(host, '/'); j >= 0 {
		host = host[:j]
	}
	return bytes.EqualFold(host, c.Host())
}

// Upgrade answers a WebSocket upgrade request (CONTRACT W1, W2). On success it has sent 101 Switching
// Protocols, taken the stream over from c (conn.Connection.Unbind) and returns it with the bytes
// already read past the request. A refused handshake has been answered (400, 403, 405 with Allow, 426
// with Sec-WebSocket-Version: 13) and its *HandshakeError is returned: the handler then returns nil.
// The stream returned is c's own, with whatever deadlines the HTTP exchange left on it; pkg/server
// instead hands the socket to its UnboundHandler as a new stream with no deadline at all. Either way
// the session sets its own deadlines before reading or writing.
func Upgrade(c *conn.Connection, opts *UpgradeOptions) (conn.Stream, []byte, error) {
	if err := Check(c, opts); err != nil {
		return nil, nil, Refuse(c, err.(*HandshakeError))
	}
	var accept [28]byte
	hdrs := [...][2]string{{"Upgrade", "websocket"}, {"Connection", "Upgrade"}}
	for _, h := range hdrs {
		if err := c.SetHeader(h[0], h[1]); err != nil {
			return nil, nil, err
		}
	}
	if err := c.SetHeaderBytes("Sec-WebSocket-Accept", AcceptKey(accept[:], c.Header("Sec-WebSocket-Key"))); err != nil {
		return nil, nil, err
	}
	if p := chooseSubprotocol(c, opts); p != "" {
		if err := c.SetHeader("Sec-WebSocket-Protocol", p); err != nil {
			return nil, nil, err
		}
	}
	if err := c.WriteHeader(101); err != nil {
		return nil, nil, err
	}
	return c.Unbind()
}

// Refuse answers a refused handshake with e.Status and returns e.
func Refuse(c *conn.Connection, e *HandshakeError) error {
	switch e.Status {
	case 405:
		_ = c.SetHeader("Allow", "GET")
	case 426:
		// RFC 6455, 4.4: the versions the server speaks; RFC 9110, 15.5.22: the protocol to upgrade to.
		_ = c.SetHeader("Sec-WebSocket-Version", "13")
		_ = c.SetHeader("Upgrade", "websocket") // conn adds the upgrade option to Connection
	}
	if err := c.Reply(e.Status, "text/plain; charset=utf-8", []byte(e.Msg+"\n")); err != nil {
		return err
	}
	return e
}

func chooseSubprotocol(c *conn.Connection, opts *UpgradeOptions) string {
	if opts == nil {
		return ""
	}
	for _, p := range opts.Subprotocols {
		if offersSubprotocol(c, p) {
			return p
		}
	}
	return ""
}

// offersSubprotocol reports whether the Sec-WebSocket-Protocol lists of the request name p. Unlike
// other tokens of the handshake, subprotocol names match case-sensitively (RFC 7936, updating RFC
// 6455): the answer must be one of the client's values, and a client fails a handshake that names
// one it did not offer (RFC 6455 4.1).
func offersSubprotocol(c *conn.Connection, p string) bool {
	for i := 0; i < c.NumHeaders(); i++ {
		name, list := c.HeaderAt(i)
		if !bytes.EqualFold(name, headerProtocol) {
			continue
		}
		for list != nil {
			var tok []byte
			tok, list = conn.NextListElement(list)
			if string(tok) == p {
				return true
			}
		}
	}
	return false
}

var headerProtocol = []byte("Sec-WebSocket-Protocol")
