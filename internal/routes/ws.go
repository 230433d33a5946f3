package routes

import (
	"errors"

	"github.com/edged/edged/pkg/conn"
	"github.com/edged/edged/pkg/ws"
)

// pendingSession is a WebSocket session whose 101 went out on a worker's connection; the server hands
// the socket over (Unbound) when the handler has returned.
type pendingSession struct {
	sess     *ws.Session
	handler  ws.SessionHandler
	buffered []byte // bytes after the handshake; valid until the worker's next connection
}

// acceptSession answers a WebSocket upgrade (CONTRACT W1, W2, W9): a refused handshake gets its 4xx,
// a full session pool 503 with Retry-After; otherwise 101, and the session is started by Unbound.
func (r *Router) acceptSession(taskID int, c *conn.Connection, h ws.SessionHandler, value any) error {
	if r.pool == nil {
		return c.Reply(404, textPlain, bodyNotFound)
	}
	if taskID < 0 || taskID >= len(r.pending) {
		return ErrTaskID
	}
	if err := ws.Check(c, r.upgrade); err != nil {
		var he *ws.HandshakeError
		if errors.As(err, &he) {
			if rerr := ws.Refuse(c, he); !errors.As(rerr, &he) {
				return rerr
			}
			return nil
		}
		return err
	}
	sess := r.pool.Acquire()
	if sess == nil {
		if err := c.SetHeader("Retry-After", "1"); err != nil {
			return err
		}
		return c.Reply(503, textPlain, []byte("too many WebSocket sessions\n"))
	}
	_, buffered, err := ws.Upgrade(c, r.upgrade)
	if err != nil {
		r.pool.Release(sess)
		return err
	}
	sess.Value = value
	r.pending[taskID] = pendingSession{sess: sess, handler: h, buffered: buffered}
	return nil
}

// Unbound receives a socket taken over from HTTP (pkg/server's UnboundHandler) and starts the session
// its upgrade reserved. Without one, or without a transport a session can use, the socket is released.
func (r *Router) Unbound(worker int, st conn.Stream, release func()) {
	var p pendingSession
	if worker >= 0 && worker < len(r.pending) {
		p, r.pending[worker] = r.pending[worker], pendingSession{}
	}
	t, ok := st.(ws.Transport)
	if p.sess == nil || !ok {
		if p.sess != nil {
			r.pool.Release(p.sess)
		}
		release()
		return
	}
	p.sess.Start(t, p.buffered, p.handler)
}

// echoSessions sends every message back with its type (CONTRACT D3).
type echoSessions struct{}

func (echoSessions) OnOpen(*ws.Session) {}

func (echoSessions) OnMessage(s *ws.Session, op ws.Opcode, payload []byte) {
	if err := s.SendNow(op, payload); err != nil {
		s.CloseWith(ws.CloseGoingAway)
	}
}

func (echoSessions) OnClose(*ws.Session) {}
