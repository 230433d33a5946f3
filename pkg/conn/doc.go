// Package conn is edged's HTTP/1.x connection engine: the request head parser, the request body
// readers (Content-Length and chunked), the response writer, and the per-request state machine of
// edge-http's server Connection, with the corrections of the contract (CONTRACT H1-H22).
//
// # Model
//
// A Connection belongs to one worker. New allocates, once, everything it will ever use: a read buffer of
// B bytes (plus a little slack for body bytes), a write buffer with room reserved in front for the
// response head, N request header slots, a response header arena and a scratch buffer. Serving a
// request allocates nothing on the heap (CONTRACT H22).
//
// A Connection runs over a Stream, the small transport interface that pkg/server implements over a
// non-blocking socket and tests implement in memory. Reset binds a Stream; each Serve call handles one
// exchange:
//
//	Idle --Serve reads a head--> Request --WriteHeader/Write--> Response --handler returns--> Idle | Closed
//	Request or Response --Unbind--> Unbound (the stream now belongs to the caller, e.g. WebSocket)
//
// The head is read in chunks; bytes after it stay buffered and become the body or the next pipelined
// request, which Serve handles without waiting for the socket (CONTRACT H1, H21). Buffered reports how
// many such bytes wait, so that a server parks a connection only when none do.
//
// # Responses
//
// Handlers set headers (SetHeader), commit a status (WriteHeader) and write the body (Write); Reply does
// all three. Nothing reaches the stream until the first flush: the head is assembled in front of the
// buffered body and both leave in one write. A response whose body fits the write buffer gets a
// Content-Length; a longer one is chunked for HTTP/1.1 and close-delimited for HTTP/1.0. HEAD, 1xx, 204
// and 304 responses carry no body (CONTRACT H13-H16). A handler that returns without responding gets
// 200 with an empty body; one that fails or panics before its head went out gets 500 (503 past the
// handler deadline) with Connection: close; one that fails after that has its connection closed with
// the body visibly cut (CONTRACT H17).
//
// # Lifetimes and concurrency
//
// Request slices (MethodName, Target, Path, Query, Header values, DecodedPath) point into the
// connection's buffers and are valid until the handler returns or calls Unbind. The slice returned by
// Unbind is valid until the next Reset. A Connection is used by one goroutine at a time; nothing in this
// package starts goroutines or keeps global mutable state.
//
// # Limits
//
// Every limit is finite: the head (B bytes, N header lines), the body (MaxBody), the body drained before
// a response (MaxDrain), chunk extensions plus trailers (B bytes per request), and the four timeouts of
// CONTRACT S6, enforced through the Stream's deadlines.
package conn
