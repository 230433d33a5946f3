//go:build testroutes

package routes

import (
	"github.com/edged/edged/pkg/conn"
	"github.com/edged/edged/pkg/ws"
)

// This file is compiled only with -tags testroutes, into the daemon the end-to-end crash-safety tests
// build: release builds have no route that panics.

func init() { debugRoute = serveDebug }

// serveDebug answers the test-only routes:
//
//	/debug/panic             the handler panics before responding (500, CONTRACT H17)
//	/debug/panic-after-head  the handler sends a head and part of the body, then panics (cut response)
//	/debug/ws-panic          a WebSocket session that echoes, and panics on the message "panic"
func serveDebug(r *Router, taskID int, c *conn.Connection) error {
	switch string(c.Path()) {
	case "/debug/panic":
		panic("debug: handler panic on purpose")
	case "/debug/panic-after-head":
		c.SetContentLength(1 << 20)
		if err := c.WriteHeader(200); err != nil {
			return err
		}
		if _, err := c.Write([]byte("partial")); err != nil {
			return err
		}
		if err := c.Flush(); err != nil {
			return err
		}
		panic("debug: handler panic after the head")
	case "/debug/ws-panic":
		if ws.IsUpgrade(c) {
			return r.acceptSession(taskID, c, panicSessions{}, nil)
		}
	}
	return c.Reply(404, textPlain, bodyNotFound)
}

// panicSessions echoes every message, and panics on the text message "panic".
type panicSessions struct{}

func (panicSessions) OnOpen(*ws.Session) {}

func (panicSessions) OnMessage(s *ws.Session, op ws.Opcode, payload []byte) {
	if string(payload) == "panic" {
		panic("debug: session handler panic on purpose")
	}
	if err := s.SendNow(op, payload); err != nil {
		s.CloseWith(ws.CloseGoingAway)
	}
}

func (panicSessions) OnClose(*ws.Session) {}
