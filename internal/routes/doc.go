// Package routes is edged's request router (CONTRACT D3): a conn.Handler that answers
//
//	GET|HEAD /healthz   200 "ok" (text/plain); other methods 405 with Allow: GET, HEAD
//	/echo               only when enabled: any method, the request body comes back with the
//	                    request's Content-Type
//	anything else       404 with a short text body
//
// Concurrency: a Router is built once and shared by all workers. Handle may be called from any number
// of goroutines at once as long as each uses a distinct taskID below Config.Workers: the echo scratch
// buffers are per worker, indexed by taskID, and allocated by New, so a request allocates nothing.
package routes
