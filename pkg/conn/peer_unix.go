//go:build unix

package conn

import (
	"errors"
	"syscall"
)

// peerGone reports whether err says that the client has gone: it reset the connection (ECONNRESET), or
// a write found it closed (EPIPE). Such a client gets no response (CONTRACT H18).
func peerGone(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
