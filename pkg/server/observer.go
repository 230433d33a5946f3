package server

import "github.com/edged/edged/pkg/conn"

// Observer receives the server's events (CONTRACT S10), for metrics. Implementations must be fast and
// must not block: they run on the poller and worker goroutines, sometimes while the server holds its
// slot lock, so they must not call back into the Server (Stats excepted, which takes no lock).
// RequestDone and HandlerPanic run on the goroutine of the worker they name, so per-worker state needs
// no lock there; Accepted, Closed and AcceptError may run on any of the server's goroutines, at once.
type Observer interface {
	// Accepted reports a socket accepted from a listener.
	Accepted()
	// Closed reports that the server decided to close a socket, and why. A socket whose close lingers
	// (CONTRACT S8) is reported when the lingering starts.
	Closed(reason CloseReason)
	// RequestDone reports an exchange that read a request (or answered a malformed one).
	RequestDone(worker int, st conn.ExchangeStats)
	// AcceptError reports a failed accept that made the server back off (CONTRACT S7).
	AcceptError(err error)
	// HandlerPanic reports a recovered handler panic (CONTRACT H17).
	HandlerPanic(worker int, p *conn.PanicError)
}

// CloseReason says why a socket was closed: a small, fixed set, usable as a metric label value.
type CloseReason uint8

// The close reasons.
const (
	// ReasonClientClosed: the peer closed or reset the connection, between requests or within one.
	ReasonClientClosed CloseReason = iota
	// ReasonDone: an exchange completed and the connection did not persist (Connection: close from
	// either side, HTTP/1.0, a close-delimited body, an undrainable request body).
	ReasonDone
	// ReasonKeepAliveTimeout: no request arrived within the keep-alive timeout, parked or not (S6).
	ReasonKeepAliveTimeout
	// ReasonHeaderTimeout: the request head did not arrive within the header timeout; answered 408 (S6).
	ReasonHeaderTimeout
	// ReasonIOTimeout: a body read or a response write made no progress within the io timeout (S6).
	ReasonIOTimeout
	// ReasonHandlerTimeout: the exchange outlived the handler timeout; 503 or a cut response (S6).
	ReasonHandlerTimeout
	// ReasonProtocolError: the request was malformed or over a limit; answered 4xx/5xx (H18).
	ReasonProtocolError
	// ReasonHandlerError: the handler returned an error or panicked; answered 500 or cut (H17).
	ReasonHandlerError
	// ReasonIOError: the socket failed with an error other than a close or reset by the peer.
	ReasonIOError
	// ReasonEvicted: the socket was the longest-idle parked one when a new client needed its slot (S13).
	ReasonEvicted
	// ReasonClientLimit: the client already held the maximum number of sockets (S14).
	ReasonClientLimit
	// ReasonShutdown: a graceful shutdown closed the socket, idle or after its last response (S9).
	ReasonShutdown
	// ReasonUnbound: a socket taken over from HTTP (WebSocket) was released.
	ReasonUnbound
	numReasons
)

var reasonNames = [numReasons]string{
	"client_closed", "done", "keepalive_timeout", "header_timeout", "io_timeout", "handler_timeout",
	"protocol_error", "handler_error", "io_error", "evicted", "client_limit", "shutdown", "unbound",
}

// String returns the reason's label value, e.g. "keepalive_timeout".
func (r CloseReason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// CloseReasons returns every reason, so that a metrics collector can pre-create its series.
func CloseReasons() []CloseReason {
	rs := make([]CloseReason, numReasons)
	for i := range rs {
		rs[i] = CloseReason(i)
	}
	return rs
}

// Stats is a snapshot of the server's gauges, read at scrape time (CONTRACT S4, S10).
type Stats struct {
	Workers             int    // P
	WorkersBusy         int    // workers currently serving a socket
	SocketQueueLength   int    // sockets ready and waiting for a worker
	SocketsParked       int    // idle keep-alive sockets held by epoll (S5)
	SocketsOpen         int    // accepted sockets that exist now, lingering ones included; never above Q
	ConnectionsAccepted uint64 // sockets accepted since start
}

type nopObserver struct{}

func (nopObserver) Accepted()                           {}
func (nopObserver) Closed(CloseReason)                  {}
func (nopObserver) RequestDone(int, conn.ExchangeStats) {}
func (nopObserver) AcceptError(error)                   {}
func (nopObserver) HandlerPanic(int, *conn.PanicError)  {}
