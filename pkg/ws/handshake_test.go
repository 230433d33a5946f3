package ws_test

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/edged/edged/pkg/conn"
	"github.com/edged/edged/pkg/ws"
)

// hsResult is what serving one upgrade request through a conn.Connection produced.
type hsResult struct {
	raw      string              // everything the server wrote
	status   int                 // status code of the first response
	line     string              // its status line
	headers  map[string][]string // its header lines, names lower-cased
	body     string              // the bytes after its head
	upErr    error               // Upgrade's error
	stream   conn.Stream         // Upgrade's stream
	buffered []byte              // Upgrade's buffered bytes, copied
	serveErr error
	keep     bool
	state    conn.State
	in       *memStream
}

// serveUpgrade serves req on a fresh conn.Connection whose handler calls ws.Upgrade (and returns
// nil, as Upgrade's doc asks of a refused handshake).
func serveUpgrade(t *testing.T, req string, opts *ws.UpgradeOptions, cuts ...int) hsResult {
	t.Helper()
	s := &memStream{in: []byte(req), cuts: cuts}
	c := conn.New(conn.Config{})
	c.Reset(s)
	var r hsResult
	called := false
	r.keep, r.serveErr = c.Serve(0, conn.HandlerFunc(func(_ int, c *conn.Connection) error {
		called = true
		var b []byte
		r.stream, b, r.upErr = ws.Upgrade(c, opts)
		r.buffered = append([]byte(nil), b...)
		return nil
	}))
	if !called {
		t.Fatalf("the handler did not run: Serve error %v, output %q", r.serveErr, s.out)
	}
	r.state, r.in, r.raw = c.State(), s, string(s.out)
	head, body, ok := strings.Cut(r.raw, "\r\n\r\n")
	if !ok {
		t.Fatalf("no complete response head in %q", r.raw)
	}
	r.body = body
	lines := strings.Split(head, "\r\n")
	r.line = lines[0]
	f := strings.SplitN(r.line, " ", 3)
	if len(f) < 2 || f[0] != "HTTP/1.1" && f[0] != "HTTP/1.0" {
		t.Fatalf("bad status line %q", r.line)
	}
	r.status, _ = strconv.Atoi(f[1])
	r.headers = map[string][]string{}
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			t.Fatalf("bad header line %q", l)
		}
		name = strings.ToLower(name)
		r.headers[name] = append(r.headers[name], strings.TrimSpace(value))
	}
	return r
}

// header returns the only value of a response header, failing the test when it repeats.
func (r hsResult) header(t *testing.T, name string) (string, bool) {
	t.Helper()
	v := r.headers[strings.ToLower(name)]
	switch len(v) {
	case 0:
		return "", false
	case 1:
		return v[0], true
	}
	t.Fatalf("header %s repeated: %q", name, v)
	return "", false
}

// want101 checks a successful upgrade (CONTRACT W2).
func want101(t *testing.T, r hsResult, key string) {
	t.Helper()
	if r.upErr != nil || r.status != 101 {
		t.Fatalf("Upgrade error %v, response %q; want 101", r.upErr, r.raw)
	}
	if r.line != "HTTP/1.1 101 Switching Protocols" {
		t.Errorf("status line %q", r.line)
	}
	if v, _ := r.header(t, "Upgrade"); !strings.EqualFold(v, "websocket") {
		t.Errorf("Upgrade: %q, want websocket", v)
	}
	if v, _ := r.header(t, "Connection"); !strings.EqualFold(v, "Upgrade") {
		t.Errorf("Connection: %q, want Upgrade", v)
	}
	if v, _ := r.header(t, "Sec-WebSocket-Accept"); v != refAccept(key) {
		t.Errorf("Sec-WebSocket-Accept: %q, want %q", v, refAccept(key))
	}
	for _, h := range []string{"Content-Length", "Transfer-Encoding"} {
		if v, ok := r.header(t, h); ok {
			t.Errorf("101 response carries %s: %s", h, v)
		}
	}
	if r.serveErr != nil || r.keep || r.state != conn.StateUnbound {
		t.Errorf("Serve = keepAlive %v, err %v, state %v; want false, nil, Unbound", r.keep, r.serveErr, r.state)
	}
	if r.stream != conn.Stream(r.in) {
		t.Errorf("Upgrade returned stream %v, want the connection's stream", r.stream)
	}
}

// refAccept is RFC 6455 4.2.2's Sec-WebSocket-Accept, computed the plain way.
func refAccept(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// wantRefused checks a refused handshake: the status, Upgrade's *HandshakeError with it, no switch.
func wantRefused(t *testing.T, r hsResult, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("response %q; want %d", r.raw, status)
	}
	var he *ws.HandshakeError
	if !errors.As(r.upErr, &he) || he.Status != status {
		t.Errorf("Upgrade error %#v, want *HandshakeError{Status: %d}", r.upErr, status)
	}
	if r.stream != nil || r.state == conn.StateUnbound {
		t.Errorf("refused upgrade took the stream over (state %v)", r.state)
	}
	if _, ok := r.header(t, "Sec-WebSocket-Accept"); ok {
		t.Errorf("refusal carries Sec-WebSocket-Accept")
	}
	cl, _ := r.header(t, "Content-Length")
	if bytes.HasPrefix(r.in.in, []byte("HEAD ")) {
		cl = "0" // RFC 9110 9.3.2: no body, whatever Content-Length says
	}
	if n, err := strconv.Atoi(cl); err != nil || n != len(r.body) {
		t.Errorf("Content-Length %q with %d body bytes: %q", cl, len(r.body), r.raw)
	}
}

const rfcKey = "dGhlIHNhbXBsZSBub25jZQ=="

// TestW2_AcceptKey: RFC 6455 1.3's example, and the plain computation for other keys; no allocation.
func TestW2_AcceptKey(t *testing.T) {
	dst := make([]byte, 28)
	if got := string(ws.AcceptKey(dst, []byte(rfcKey))); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("AcceptKey(%s) = %s, want s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", rfcKey, got)
	}
	for i := 0; i < 50; i++ {
		raw := bytes.Repeat([]byte{byte(i), byte(i * 7)}, 8)
		key := base64.StdEncoding.EncodeToString(raw)
		if got := string(ws.AcceptKey(dst, []byte(key))); got != refAccept(key) {
			t.Fatalf("AcceptKey(%s) = %s, want %s", key, got, refAccept(key))
		}
	}
	key := []byte(rfcKey)
	if a := testing.AllocsPerRun(100, func() { ws.AcceptKey(dst, key) }); a != 0 {
		t.Errorf("AcceptKey: %v allocations per run, want 0", a)
	}
}

func TestW2_Upgrade101(t *testing.T) {
	r := serveUpgrade(t, requestHead("GET", "HTTP/1.1"), nil)
	want101(t, r, rfcKey)
	if r.body != "" {
		t.Errorf("bytes after the 101 head: %q", r.body)
	}
	if _, ok := r.header(t, "Sec-WebSocket-Protocol"); ok {
		t.Errorf("Sec-WebSocket-Protocol sent without a configured subprotocol")
	}
	if len(r.buffered) != 0 {
		t.Errorf("buffered % x, want nothing", r.buffered)
	}
}

// TestW2_NoExtensionNegotiated: edged implements no extension, so an offered permessage-deflate is
// not accepted: a client that believed it was would set RSV1, which CONTRACT W3 answers with 1002.
func TestW2_NoExtensionNegotiated(t *testing.T) {
	r := serveUpgrade(t, requestHead("GET", "HTTP/1.1",
		"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"), nil)
	want101(t, r, rfcKey)
	if v, ok := r.header(t, "Sec-WebSocket-Extensions"); ok {
		t.Errorf("101 accepts extensions %q", v)
	}
}

// TestW1_TokenLists: Connection and Upgrade are token lists, compared ASCII case-insensitively, and
// header names are case-insensitive (fixes R6.1).
func TestW1_TokenLists(t *testing.T) {
	for name, extra := range map[string][]string{
		"Firefox keep-alive, Upgrade":  {"Connection: keep-alive, Upgrade"},
		"Upgrade, keep-alive":          {"Connection: Upgrade,keep-alive"},
		"upper case":                   {"Connection: UPGRADE", "Upgrade: WEBSOCKET"},
		"mixed case":                   {"Connection: uPgRaDe", "Upgrade: WebSocket"},
		"two Connection lines":         {"Connection: keep-alive", "+Connection: Upgrade"},
		"Upgrade list":                 {"Upgrade: h2c, websocket"},
		"lower-case names":             {"connection: upgrade", "upgrade: websocket", "sec-websocket-key: " + rfcKey, "sec-websocket-version: 13"},
		"upper-case names":             {"CONNECTION: Upgrade", "UPGRADE: websocket", "SEC-WEBSOCKET-KEY: " + rfcKey, "SEC-WEBSOCKET-VERSION: 13"},
		"whitespace around values":     {"Connection:   keep-alive ,  Upgrade  ", "Upgrade:\twebsocket\t", "Sec-WebSocket-Key:  " + rfcKey + " "},
		"other key":                    {"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="},
		"absolute-form target":         nil,
		"HTTP/1.1 with Origin allowed": {"Origin: http://example.com"},
	} {
		t.Run(name, func(t *testing.T) {
			req := requestHead("GET", "HTTP/1.1", extra...)
			if name == "absolute-form target" {
				req = strings.Replace(req, "GET /chat", "GET http://example.com/chat", 1)
			}
			key := rfcKey
			if name == "other key" {
				key = "AAAAAAAAAAAAAAAAAAAAAA=="
			}
			want101(t, serveUpgrade(t, req, nil), key)
		})
	}
}

func TestW1_Refusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		req    string
		status int
	}{
		{"POST", requestHead("POST", "HTTP/1.1"), 405},
		{"PUT", requestHead("PUT", "HTTP/1.1"), 405},
		{"HEAD", requestHead("HEAD", "HTTP/1.1"), 405},
		{"HTTP/1.0", requestHead("GET", "HTTP/1.0"), 400},
		{"no Upgrade", requestHead("GET", "HTTP/1.1", "Upgrade:"), 400},
		{"Upgrade h2c", requestHead("GET", "HTTP/1.1", "Upgrade: h2c"), 400},
		{"Upgrade websocketx", requestHead("GET", "HTTP/1.1", "Upgrade: websocketx"), 400},
		{"no Connection", requestHead("GET", "HTTP/1.1", "Connection:"), 400},
		{"Connection keep-alive only", requestHead("GET", "HTTP/1.1", "Connection: keep-alive"), 400},
		{"Connection upgraded", requestHead("GET", "HTTP/1.1", "Connection: upgraded"), 400},
		{"version 8", requestHead("GET", "HTTP/1.1", "Sec-WebSocket-Version: 8"), 426},
		{"version 12", requestHead("GET", "HTTP/1.1", "Sec-WebSocket-Version: 12"), 426},
		{"version 14", requestHead("GET", "HTTP/1.1", "Sec-WebSocket-Version: 14"), 426},
		{"key missing", requestHead("GET", "HTTP/1.1", "Sec-WebSocket-Key:"), 400},
		{"key empty", requestHead("GET", "HTTP/1.1", "Sec-WebSocket-Key: "), 400},
		{"key not base64", requestHead("GET", "HTTP/1.1", "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!!!"), 400},
		{"key bad padding", requestHead("GET", "HTTP/1.1", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=A"), 400},
		{"key 15 bytes", requestHead("GET", "HTTP/1.1", "Sec-WebSocket-Key: "+base64.StdEncoding.EncodeToString(make([]byte, 15))), 400},
		{"key 17 bytes", requestHead("GET", "HTTP/1.1", "Sec-WebSocket-Key: "+base64.StdEncoding.EncodeToString(make([]byte, 17))), 400},
		{"key 18 bytes", requestHead("GET", "HTTP/1.1", "Sec-WebSocket-Key: "+base64.StdEncoding.EncodeToString(make([]byte, 18))), 400},
		{"key 32 bytes", requestHead("GET", "HTTP/1.1", "Sec-WebSocket-Key: "+base64.StdEncoding.EncodeToString(make([]byte, 32))), 400},
		{"key unpadded", requestHead("GET", "HTTP/1.1", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ"), 400},
		{"origin other host", requestHead("GET", "HTTP/1.1", "Origin: http://evil.example"), 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := serveUpgrade(t, tc.req, nil)
			wantRefused(t, r, tc.status)
			switch tc.status {
			case 405:
				allow, _ := r.header(t, "Allow")
				if !strings.Contains(allow, "GET") {
					t.Errorf("405 with Allow %q, want GET", allow)
				}
			case 426:
				if v, _ := r.header(t, "Sec-WebSocket-Version"); v != "13" {
					t.Errorf("426 with Sec-WebSocket-Version %q, want 13", v)
				}
				// RFC 9110, 15.5.22 and 7.8: the protocol to upgrade to, and the upgrade option.
				if v, _ := r.header(t, "Upgrade"); v != "websocket" {
					t.Errorf("426 with Upgrade %q, want websocket", v)
				}
				if v, _ := r.header(t, "Connection"); !strings.Contains(strings.ToLower(v), "upgrade") {
					t.Errorf("426 with Connection %q, want the upgrade option", v)
				}
			}
		})
	}
	t.Run("version missing", func(t *testing.T) {
		r := serveUpgrade(t, requestHead("GET", "HTTP/1.1", "Sec-WebSocket-Version:"), nil)
		if r.status != 400 && r.status != 426 {
			t.Fatalf("response %q, want 400 or 426", r.raw)
		}
		wantRefused(t, r, r.status)
	})
}

// TestW1_UpgradeWithContentRefused: a handshake GET has no content. Switching with a body not read
// to its end would hand the body to the session as frames (a body over the drain bound, or one held
// back by Expect: 100-continue, which also needs a 100 before the 101: RFC 9110 7.8); such a request
// is refused with 400 and nothing of it is taken over.
func TestW1_UpgradeWithContentRefused(t *testing.T) {
	const frame = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
	for name, req := range map[string]string{
		"Content-Length":       requestHead("GET", "HTTP/1.1", "Content-Length: 11") + frame,
		"chunked":              requestHead("GET", "HTTP/1.1", "Transfer-Encoding: chunked") + "b\r\n" + frame + "\r\n0\r\n\r\n",
		"Expect: 100-continue": requestHead("GET", "HTTP/1.1", "Expect: 100-continue", "Content-Length: 11"),
	} {
		t.Run(name, func(t *testing.T) {
			r := serveUpgrade(t, req, nil)
			wantRefused(t, r, 400)
			if strings.Contains(r.raw, "101") || strings.Contains(r.raw, "100 Continue") {
				t.Errorf("refusal preceded by an interim response: %q", r.raw)
			}
		})
	}
	t.Run("empty body", func(t *testing.T) {
		want101(t, serveUpgrade(t, requestHead("GET", "HTTP/1.1", "Content-Length: 0"), nil), rfcKey)
	})
}

func TestW2_OriginPolicy(t *testing.T) {
	list := &ws.UpgradeOptions{AllowedOrigins: []string{"https://app.example.org", "http://localhost:3000"}}
	any := &ws.UpgradeOptions{AllowedOrigins: []string{"*"}}
	for _, tc := range []struct {
		name   string
		host   string
		origin string // "" : no Origin header
		opts   *ws.UpgradeOptions
		ok     bool
	}{
		{"no Origin", "example.com", "", nil, true},
		{"same host", "example.com", "http://example.com", nil, true},
		{"same host https", "example.com", "https://example.com", nil, true},
		{"same host other case", "example.com", "https://EXAMPLE.com", nil, true},
		{"same host and port", "example.com:8080", "http://example.com:8080", nil, true},
		{"same host with path", "example.com", "http://example.com/", nil, true},
		{"other port", "example.com", "http://example.com:8080", nil, false},
		{"other host", "example.com", "http://evil.com", nil, false},
		{"suffix host", "example.com", "http://example.com.evil.com", nil, false},
		{"prefix host", "example.com", "http://notexample.com", nil, false},
		{"host in path", "example.com", "http://evil.com/example.com", nil, false},
		{"null", "example.com", "null", nil, false},
		{"no scheme", "example.com", "example.com", nil, false},
		{"allow-list entry", "example.com", "https://app.example.org", list, true},
		{"allow-list entry other case", "example.com", "HTTPS://APP.example.org", list, true},
		{"allow-list second entry", "example.com", "http://localhost:3000", list, true},
		{"allow-list, same host", "example.com", "http://example.com", list, true},
		{"allow-list, other host", "example.com", "https://evil.example.org", list, false},
		{"allow-list, other scheme", "example.com", "http://app.example.org", list, false},
		{"allow-list, other port", "example.com", "http://localhost:3001", list, false},
		{"star", "example.com", "http://evil.com", any, true},
		{"star, null", "example.com", "null", any, true},
		{"star, no Origin", "example.com", "", any, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			extra := []string{"Host: " + tc.host}
			if tc.origin != "" {
				extra = append(extra, "Origin: "+tc.origin)
			}
			r := serveUpgrade(t, requestHead("GET", "HTTP/1.1", extra...), tc.opts)
			if tc.ok {
				want101(t, r, rfcKey)
			} else {
				wantRefused(t, r, 403)
			}
		})
	}
}

// TestW2_OriginAbsoluteForm: with an absolute-form target the same-origin check compares Origin with
// the target's authority, which RFC 9112 3.2.2 puts in place of Host.
func TestW2_OriginAbsoluteForm(t *testing.T) {
	absolute := func(origin string) string {
		req := requestHead("GET", "HTTP/1.1", "Host: evil.com", "Origin: "+origin)
		return strings.Replace(req, "GET /chat", "GET http://example.com/chat", 1)
	}
	want101(t, serveUpgrade(t, absolute("http://example.com"), nil), rfcKey)
	wantRefused(t, serveUpgrade(t, absolute("http://evil.com"), nil), 403)
}

// TestW2_Subprotocol: the first configured subprotocol the client offers is chosen, matched exactly.
func TestW2_Subprotocol(t *testing.T) {
	opts := &ws.UpgradeOptions{Subprotocols: []string{"mqtt", "v2.chat"}}
	for _, tc := range []struct {
		name    string
		offered []string // header lines
		opts    *ws.UpgradeOptions
		want    string // "" : no Sec-WebSocket-Protocol in the response
	}{
		{"one of two offered", []string{"Sec-WebSocket-Protocol: chat, v2.chat"}, opts, "v2.chat"},
		{"server preference", []string{"Sec-WebSocket-Protocol: v2.chat, mqtt"}, opts, "mqtt"},
		{"two header lines", []string{"Sec-WebSocket-Protocol: chat", "+Sec-WebSocket-Protocol: v2.chat"}, opts, "v2.chat"},
		{"none offered", nil, opts, ""},
		{"none in common", []string{"Sec-WebSocket-Protocol: chat, superchat"}, opts, ""},
		{"prefix is not a match", []string{"Sec-WebSocket-Protocol: v2.chatty, mq"}, opts, ""},
		// RFC 7936 and RFC 6455 4.2.2: subprotocol names match case-sensitively, and the answer is one
		// of the client's values; a client fails a handshake that names one it did not offer.
		{"case differs: no match", []string{"Sec-WebSocket-Protocol: MQTT, V2.Chat"}, opts, ""},
		{"case differs, exact one later", []string{"Sec-WebSocket-Protocol: MQTT, v2.chat"}, opts, "v2.chat"},
		{"none configured", []string{"Sec-WebSocket-Protocol: mqtt"}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := serveUpgrade(t, requestHead("GET", "HTTP/1.1", tc.offered...), tc.opts)
			want101(t, r, rfcKey)
			got, ok := r.header(t, "Sec-WebSocket-Protocol")
			if got != tc.want || ok != (tc.want != "") {
				t.Errorf("Sec-WebSocket-Protocol %q (present %v), want %q", got, ok, tc.want)
			}
		})
	}
}

// TestW2_BufferedFirstFrame: frames the client sends right behind the request come back from Upgrade
// as the buffered bytes, exactly; whatever arrived in later reads is still in the stream: nothing is
// lost or duplicated, wherever the transport cut the bytes. A Conn started with them reads the
// messages.
func TestW2_BufferedFirstFrame(t *testing.T) {
	req := requestHead("GET", "HTTP/1.1")
	frames := join(frame(fin|opText, "first"), frame(opBinary, strings.Repeat("b", 300)), frame(fin|opCont, "!"),
		frame(fin|opPing, "hi"))
	in := req + string(frames)
	r := serveUpgrade(t, in, nil)
	want101(t, r, rfcKey)
	if !bytes.Equal(r.buffered, frames) {
		t.Fatalf("buffered % x\nwant     % x", r.buffered, frames)
	}
	for cut := 1; cut < len(in); cut++ {
		r := serveUpgrade(t, in, nil, cut)
		want101(t, r, rfcKey)
		rest := join(r.buffered, r.in.in[r.in.pos:])
		if !bytes.Equal(rest, frames) {
			t.Fatalf("cut at %d: buffered + unread stream = % x, want % x", cut, rest, frames)
		}
		if cut >= len(req) && !bytes.Equal(r.buffered, frames[:cut-len(req)]) {
			t.Fatalf("cut at %d: buffered % x, want the %d frame bytes read with the head", cut, r.buffered, cut-len(req))
		}
		// The session continues on the same stream.
		c := ws.NewConn(ws.Config{})
		headLen := len(r.in.out)
		if err := c.Reset(r.stream, r.buffered); err != nil {
			t.Fatal(err)
		}
		op, p, err := c.ReadMessage()
		if err != nil || op != ws.OpText || string(p) != "first" {
			t.Fatalf("cut at %d: first message %v %q %v", cut, op, p, err)
		}
		op, p, err = c.ReadMessage()
		if err != nil || op != ws.OpBinary || len(p) != 301 {
			t.Fatalf("cut at %d: second message %v %d bytes %v", cut, op, len(p), err)
		}
		if _, _, err := c.ReadMessage(); err == nil {
			t.Fatalf("cut at %d: a third message", cut)
		}
		if f, n := parseFrame(r.in.out[headLen:]); n == 0 || f.op != opPong || string(f.payload) != "hi" {
			t.Fatalf("cut at %d: after the 101 the server sent % x, want a pong", cut, r.in.out[headLen:])
		}
	}
}
