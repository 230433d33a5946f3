package routes

import (
	"bytes"
	"errors"
	"io"
	"unicode/utf8"

	"github.com/edged/edged/internal/topics"
	"github.com/edged/edged/pkg/conn"
	"github.com/edged/edged/pkg/ws"
)

var (
	topicPrefix      = []byte("/topics/")
	bodyBadTopicName = []byte("invalid topic name: 1-128 characters of A-Z a-z 0-9 . _ - /\n")
	// bodyContentTypeTooLong answers a Content-Type longer than topics.MaxContentTypeLen, which
	// /topics stores and /echo sends back.
	bodyContentTypeTooLong = []byte("Content-Type longer than 128 bytes\n")
)

// serveTopic answers /topics/{name} (CONTRACT D4): PUT or POST publish the body as the retained value
// (201 on create, 204 on update), GET and HEAD return it with its Content-Type and ETag (304 on a
// matching If-None-Match), DELETE removes it, and a WebSocket upgrade subscribes.
//
// The name may be percent-encoded, as JavaScript's encodeURIComponent writes it ("sensors%2Ft1" for
// "sensors/t1"): it is decoded before it is checked, so that each name has one meaning whichever way
// a client spells it, as nginx decodes a path before matching its locations.
func (r *Router) serveTopic(taskID int, c *conn.Connection, name []byte) error {
	if bytes.IndexByte(name, '%') >= 0 {
		// The raw path starts with topicPrefix, so the decoded one does too. The decoded name lives
		// in the connection's scratch buffer, which the drain of an unread body reuses: every branch
		// below is done with name before it answers.
		path, err := c.DecodedPath()
		if err != nil {
			return c.Reply(400, textPlain, bodyBadTopicName)
		}
		name = path[len(topicPrefix):]
	}
	if !topics.ValidName(name) {
		return c.Reply(400, textPlain, bodyBadTopicName)
	}
	if ws.IsUpgrade(c) {
		sub := &subscriber{hub: r.hub, name: append([]byte(nil), name...)}
		return r.acceptSession(taskID, c, topicSessions{}, sub)
	}
	if taskID < 0 || taskID >= len(r.topicBuf) {
		return ErrTaskID
	}
	buf := r.topicBuf[taskID]
	switch c.Method() {
	case conn.MethodGet, conn.MethodHead:
		return r.getTopic(c, name, buf)
	case conn.MethodPut, conn.MethodPost:
		return r.publishTopic(c, name, buf)
	case conn.MethodDelete:
		found, err := r.hub.Delete(name)
		if err != nil {
			return err
		}
		if !found {
			return c.Reply(404, textPlain, bodyNotFound)
		}
		return c.Reply(204, "", nil)
	}
	return methodNotAllowed(c, "GET, HEAD, PUT, POST, DELETE")
}

// getTopic copies the retained value into the worker's buffer under the hub's lock and answers after
// releasing it, so that a slow client never holds publishers.
func (r *Router) getTopic(c *conn.Connection, name, buf []byte) error {
	var (
		n         int
		ctypeBuf  [128]byte
		ctype     []byte
		etagBuf   [24]byte
		etag      []byte
		truncated bool
	)
	found, err := r.hub.Get(name, func(v []byte, ct string, e []byte) {
		n = copy(buf, v)
		truncated = n < len(v)
		ctype = append(ctypeBuf[:0], ct...)
		etag = append(etagBuf[:0], e...)
	})
	if err != nil {
		return err
	}
	if !found {
		return c.Reply(404, textPlain, bodyNotFound)
	}
	if truncated {
		return errors.New("routes: topic value larger than the worker buffer")
	}
	if err := c.SetHeaderBytes("ETag", etag); err != nil {
		return err
	}
	// RFC 9110 15.4.5: a 304 carries the Cache-Control a 200 would have.
	if err := c.SetHeader("Cache-Control", "no-cache"); err != nil {
		return err
	}
	if inm := c.Header("If-None-Match"); inm != nil && conn.MatchETag(inm, etag) {
		return c.WriteHeader(304)
	}
	if len(ctype) > 0 {
		if err := c.SetHeaderBytes("Content-Type", ctype); err != nil {
			return err
		}
	}
	c.SetContentLength(int64(n))
	if err := c.WriteHeader(200); err != nil {
		return err
	}
	_, err = c.Write(buf[:n])
	return err
}

// publishTopic reads the body (bounded by the hub's value limit: 413 beyond it) and publishes it.
func (r *Router) publishTopic(c *conn.Connection, name, buf []byte) error {
	limit := len(buf)
	if c.ContentLength() > int64(limit) {
		return c.Reply(413, textPlain, []byte("topic value larger than the limit\n"))
	}
	n := 0
	for {
		if n == limit {
			var probe [1]byte
			k, err := c.Read(probe[:])
			if k > 0 {
				return c.Reply(413, textPlain, []byte("topic value larger than the limit\n"))
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			continue
		}
		k, err := c.Read(buf[n:])
		n += k
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	ctype := c.Header("Content-Type")
	if len(ctype) > topics.MaxContentTypeLen {
		// CONTRACT D8: the budget counts MaxContentTypeLen bytes of content type per topic.
		return c.Reply(415, textPlain, bodyContentTypeTooLong)
	}
	created, err := r.hub.Publish(name, ctype, !isText(ctype, buf[:n]), buf[:n])
	switch {
	case errors.Is(err, topics.ErrTooManyTopics):
		return c.Reply(507, textPlain, []byte("topic limit reached\n"))
	case err != nil:
		return err
	case created:
		return c.Reply(201, "", nil)
	}
	return c.Reply(204, "", nil)
}

// isText decides how an HTTP publish reaches WebSocket subscribers: as a text message when its
// Content-Type is text/* or JSON and the body is UTF-8, otherwise as a binary message. Type and subtype
// are case-insensitive (RFC 9110 8.3.1): "Text/Plain" is text as "text/plain" is.
func isText(ctype, body []byte) bool {
	textual := hasPrefixFold(ctype, "text/") || containsFold(ctype, "json")
	return textual && utf8.Valid(body)
}

// hasPrefixFold reports whether s begins with the lower-case ASCII prefix, ignoring ASCII case.
func hasPrefixFold(s []byte, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if lowerASCII(s[i]) != prefix[i] {
			return false
		}
	}
	return true
}

// containsFold reports whether s holds the lower-case ASCII sub, ignoring ASCII case.
func containsFold(s []byte, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if hasPrefixFold(s[i:], sub) {
			return true
		}
	}
	return false
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// subscriber connects a WebSocket session to a topic: the hub delivers into the session's bounded
// queue, and a session that cannot take a message is closed with 1008 (CONTRACT D4).
type subscriber struct {
	hub  *topics.Hub
	name []byte
	sess *ws.Session
}

// Deliver queues a publish for the session without blocking.
func (s *subscriber) Deliver(binary bool, payload []byte) bool {
	op := ws.OpText
	if binary {
		op = ws.OpBinary
	}
	return s.sess.Send(op, payload)
}

// topicSessions runs subscriber sessions: the retained value, then every publish; a message from the
// client publishes it with its own type.
type topicSessions struct{}

func (topicSessions) OnOpen(s *ws.Session) {
	sub := s.Value.(*subscriber)
	sub.sess = s
	if err := sub.hub.Subscribe(sub.name, sub); err != nil {
		s.CloseWith(ws.ClosePolicyViolation)
	}
}

// Content types of values published over WebSocket, so that GET answers with one (CONTRACT D4).
var (
	ctypeWSText   = []byte("text/plain; charset=utf-8")
	ctypeWSBinary = []byte("application/octet-stream")
)

func (topicSessions) OnMessage(s *ws.Session, op ws.Opcode, payload []byte) {
	sub := s.Value.(*subscriber)
	ctype := ctypeWSText
	if op == ws.OpBinary {
		ctype = ctypeWSBinary
	}
	if _, err := sub.hub.Publish(sub.name, ctype, op == ws.OpBinary, payload); err != nil {
		code := ws.ClosePolicyViolation
		if errors.Is(err, topics.ErrValueTooLarge) {
			code = ws.CloseTooBig
		}
		s.CloseWith(code)
	}
}

func (topicSessions) OnClose(s *ws.Session) {
	sub := s.Value.(*subscriber)
	sub.hub.Unsubscribe(sub.name, sub)
}
