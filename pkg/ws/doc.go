// Package ws is edged's WebSocket layer (RFC 6455): the opening handshake over a pkg/conn Connection,
// a frame header codec, and Conn, a message-level session that enforces every framing rule
// (CONTRACT W1-W8).
//
// # Pieces
//
//   - Upgrade checks an upgrade request (GET, HTTP/1.1, token lists in Connection and Upgrade, version
//     13, a 16-byte base64 key, the Origin policy), answers 101 with Sec-WebSocket-Accept and takes the
//     stream over; a refused request is answered with 400, 403, 405 or 426.
//   - ParseHeader, PutHeader and MaskBytes are the frame codec: no allocation, masking a 64-bit word at
//     a time.
//   - Conn reassembles fragmented messages into a buffer of MaxMessage bytes allocated once, checks
//     text as UTF-8 incrementally (also across fragments and in close reasons), refuses a message as
//     soon as a frame header announces more than MaxMessage (1009), answers pings between fragments,
//     and answers a close with the same code.
//
// # Concurrency and lifetimes
//
// A Conn has one reader and any number of writers: ReadMessage runs on one goroutine; WriteMessage,
// WritePing and WriteClose may be called from any goroutine and are serialised, so that pongs sent by
// the reader never interleave with a message being written. The payload ReadMessage returns is valid
// until the next ReadMessage. Conns are meant to be pooled: NewConn allocates, Reset rebinds.
package ws
