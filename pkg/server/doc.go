// Package server runs edged's HTTP/1.x connections (package conn) over raw Linux sockets and epoll:
// the listener, the P workers, the two run modes, parking of idle keep-alive sockets, timeouts,
// lingering close, eviction, the per-client limit and graceful shutdown (CONTRACT S1-S14).
//
// # Pieces
//
// Slots. Q slot structs live in one array allocated by New. A slot is an acceptor (CONTRACT S4): a free
// slot may take one accepted socket and stays taken until that socket is closed, which re-arms it. At
// most Q accepted sockets exist at any moment because a socket is only ever accepted into a free slot;
// the bound is structural, not counted. A slot costs a few dozen bytes, so Q may be in the thousands.
// Each slot moves through
//
//	free -> queued -> serving -> parked -> queued -> ... -> lingering -> free
//
// and carries a generation number that is bumped at every close.
//
// Poller. The goroutine that calls Serve is the poller: it blocks in epoll_wait on the listeners, an
// eventfd (wake-ups from other goroutines) and every accepted socket, registered once with
// EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET and tagged with its slot index and generation, so that no
// epoll_ctl is needed per request and a late event for a closed socket whose descriptor number was
// reused is dropped (CONTRACT S8). The poller accepts (accept4 until EAGAIN or no free slot), moves
// parked sockets that become readable to the socket queue, wakes workers waiting on their socket,
// expires parked and lingering sockets, evicts, and runs the shutdown.
//
// Socket queue. A channel of slot indices with capacity Q: FIFO, and a send never blocks since at most
// Q slots can be queued. The poller sends, and so does a worker that harvests (below); the workers
// receive.
//
// Harvest. With parking and more than one processor, while at least two and at most P sockets are
// open, a worker that finds the queue empty fetches the ready events itself with a non-blocking
// epoll_wait before it waits on the queue, and dispatches them as the poller would, under the slot
// lock: a socket it unparks goes to the queue, to a worker waiting there or else to itself. At that
// load the poller's wake-up of a worker costs more than the request itself (a thread woken and put
// back to sleep), and the next request of another connection is often ready when a worker finishes a
// response. Under more load the poller's epoll_wait returns many events at once, and the workers
// leave the events to it. The eventfd and the listeners are the poller's: a worker that fetches their
// edge re-arms them with epoll_ctl, which queues the edge again for the poller. A worker yields its
// processor before each harvest: one whose harvests keep finding work never blocks, and would keep
// the goroutines waiting to run (workers the poller handed a socket, the poller itself) waiting until
// the runtime preempts it or takes back the processor the poller holds in epoll_wait, up to 10 ms.
//
// Workers. P goroutines, each owning a conn.Connection with all its buffers, a stream (conn.Stream
// over the slot's descriptor), a wake channel of capacity 1 and one reusable timer. A worker serves a
// slot until the socket closes or, with parking, until a response is complete and no byte of a next
// request is buffered (CONTRACT S5); then it parks the slot and takes the next one from the queue. The
// stream calls read(2) and write(2) directly on the non-blocking socket; on EAGAIN it waits on the
// wake channel or the timer until the deadline conn set (keep-alive, head, io, handler: CONTRACT S6),
// and a passed deadline yields an error wrapping os.ErrDeadlineExceeded.
//
// # Run modes
//
// Queue mode (SocketQueue = Q >= 1) is the design above. Accept mode (SocketQueue = 0, CONTRACT S3) is
// the degenerate case Q = P with parking and eviction off, a deliberate choice over P goroutines
// blocked in accept(2): since a worker holds at most one socket and there are at most P sockets, a
// socket never waits for a worker, each worker serves the connection it got until it closes, and
// further clients wait in the kernel backlog, which is what S3 asks. One code path serves both modes,
// and no thread is parked in accept(2) per worker (CONTRACT S11).
//
// # The lost-wakeup protocol
//
// Sockets are edge-triggered: an edge that nobody looks at does not repeat. Under the slot lock the
// poller, for an event on a slot that is
//   - parked: removes it from the parked list, marks it queued and sends it to the socket queue;
//   - queued or serving: sets the slot's pendingIn flag when the event is readable and, if serving,
//     does a non-blocking send on the owning worker's wake channel;
//   - lingering: drains it.
//
// A worker that read or wrote EAGAIN waits on its wake channel: the buffered token cannot be lost
// between the failed call and the wait, and a stale token costs one extra system call. A worker about
// to park takes the lock: with pendingIn clear and the socket found empty by its last read (a short
// read or EAGAIN), no byte can be waiting without an edge to come, so the slot is parked and the next
// edge requeues it; otherwise (pendingIn set, which it clears, or bytes possibly left behind, as after
// a body read to its exact end with the next pipelined request behind it) the socket is peeked at with
// recv(MSG_PEEK) outside the lock: bytes mean serve on, EAGAIN means try to park again, end of stream
// means close. A small keep-alive request therefore costs read, write and no further system call when
// it arrived on a parked socket.
//
// A readable edge may be stale when the poller dispatches it: fetched from epoll_wait while a worker
// served the socket, it can be dispatched after that worker read the bytes and parked the socket, and
// so queue an idle socket. With parking on, a worker therefore never waits for the first byte of a
// request: finding none (and no wake-up pending), it parks the socket again by the same protocol.
//
// The slot lock is a mutex around park, unpark, the lists, the free stack and closing; it is held for
// short, non-blocking steps (close(2) and shutdown(2) included, so that the poller's force-close never
// reaches a descriptor number that a worker has just closed and the process reused). The poller takes
// it once per batch of events; a worker takes it to claim a slot and to park or close it.
//
// # Timeouts and eviction
//
// Parked sockets sit in an intrusive list ordered by idle time. The poller closes the head while it has
// been idle for the keep-alive timeout (CONTRACT S6) and sleeps in epoll_wait until the next expiry; a
// worker that parks into an empty list wakes it. A parked socket's idle time counts from the end of its
// last response, or from its accept. When the listener is readable, no slot is free, eviction is on and
// sockets are parked, the head of the list is closed with reason "evicted" and its slot accepts the new
// client (CONTRACT S13). Since an edge on the listener may be stale, poll(2) confirms that a connection
// really waits before an idle socket is closed for it and, in
// the same call, that the socket is still idle: a request that came after the poller fetched its events
// queues it instead. A socket is evicted only once it has been idle for
// Config.EvictMinIdle (the daemon's default is 1s): under more busy clients than slots every parked
// socket is idle for microseconds between requests, and without that minimum the clients would evict
// each other's connections after every response. The poller wakes when the head reaches that age.
//
// An unbound socket (taken over for WebSocket) keeps its slot; the poller wakes its TakenStream instead
// of a worker, and at the end of the grace period shuts it down so that its session ends and closes it.
//
// Sockets being served are timed by their worker: conn sets the deadlines through the stream.
//
// # Closing
//
// A descriptor is closed only by its owner: the serving worker, the poller for parked and lingering
// ones (or a harvesting worker for a lingering one, dispatching an event in the poller's stead
// under the slot lock), and the session (TakenStream.Close) for unbound ones. After Connection:
// close, a protocol error or a handler error the worker shuts the socket down for writing and hands
// the slot to the poller in the lingering state; the poller reads and discards what the peer still
// sends, up to 64 KiB and 2 s, then closes, so that the peer reads the response rather than a reset
// (CONTRACT S8). A socket taken over and then released lingers the same way, so that a WebSocket
// peer reads the close frame rather than a reset (CONTRACT W6). A peer that closed first, an idle
// timeout and an I/O error close at once. Closing bumps the generation, re-arms the slot and, if a
// client was left in the backlog for want of a slot, wakes the poller to accept it.
//
// Accept errors (CONTRACT S7): EMFILE, ENFILE, ENOBUFS, ENOMEM and unforeseen errors pause accepting,
// 5 ms doubling to 1 s, are reported to Observer.AcceptError and logged at most once a second; the
// listener is retried when the pause ends, without spinning. ECONNABORTED, EINTR and the network errors
// accept(2) passes on from the new socket are retried at once.
//
// # Shutdown
//
// When ctx is cancelled or Shutdown is called (CONTRACT S9) the poller closes the listeners, closes the
// parked sockets, closes the socket queue (nothing can be queued any more) and wakes every worker. A
// worker waiting for the first byte of a request closes its socket; a request in flight completes, and
// its response carries Connection: close when it has not gone out yet: the worker marks the connection
// closing before the handler runs and again when it returns, before conn assembles the response head.
// Sockets then close, lingering briefly. When ShutdownGrace ends, lingering and unbound sockets are
// closed and served ones shut down with shutdown(2), so that every read and write on them fails at once
// and their workers close them. Serve returns when every socket is closed and every worker has
// returned; a handler that ignores all of this for one more second is left behind and Serve returns
// ErrShutdownIncomplete.
//
// # WebSocket take-over
//
// A handler may take a connection over with conn.Connection.Unbind. Its worker then calls the
// UnboundHandler set with SetUnboundHandler, on the worker goroutine, with its stream (valid until the
// UnboundHandler returns) and a release function. The socket keeps its slot, and so counts against Q,
// until release is called; without an UnboundHandler the socket is closed at once (reason "unbound").
// The bytes read past the upgrade request are those Unbind returned to the HTTP handler: conn exposes
// them nowhere else, so the UnboundHandler does not receive them.
//
// # Departures from the engine sketch
//
//   - Accept mode is queue mode with Q = P, parking and eviction off (see Run modes); the poller
//     accepts for the workers instead of each worker accepting into its own slot.
//   - Sockets are registered with EPOLLOUT as well: a write that meets a full socket waits for the
//     EPOLLOUT edge. Only readable edges set pendingIn, so write-space edges do not defeat parking.
//   - With pendingIn set, parking peeks (recv with MSG_PEEK, one byte into the worker's scratch byte)
//     rather than reading: bytes read here would have to go into conn's buffer, which the server
//     cannot reach.
//   - Eviction first confirms with poll(2) that a client waits, so that a stale listener edge never
//     closes an idle socket for nothing.
//   - Slot transitions take one mutex instead of per-slot atomics: the critical sections are a few
//     field updates, uncontended in the common case, and a single lock makes park-versus-event and
//     close-versus-force-close easy to get right under -race.
//   - An accept back-off is retried when its timer ends, not on the next listener edge, which does
//     not repeat for connections already waiting in the backlog.
//   - The force-close at the end of the grace period shuts worker-owned sockets down (shutdown(2))
//     instead of closing them, so that the owner still closes each descriptor exactly once.
//   - Observer.Closed is reported when the server decides to close, before a lingering drain.
//   - The peer address is fetched only when the per-client limit is on, by accept4 into a reused
//     buffer: x/sys's Accept4 allocates a Sockaddr per connection.
//
// # Concurrency contract
//
// New, then Serve once, on the goroutine that becomes the poller. Shutdown, Alive, Stats, Addr and
// SetUnboundHandler are safe from any goroutine; Stats takes no lock. The Handler runs on the worker
// goroutines, with taskID the worker index (0 to P-1), one request at a time per worker. Observer
// methods are called from the poller and the workers, some under the slot lock (see Observer).
//
// # Memory and goroutines
//
// New allocates everything: slots, the queue, and per worker a conn.Connection with its read buffer,
// write buffer and header slots (CONTRACT S2). Serving a keep-alive request allocates nothing, accept
// included (the peer address goes into a reused buffer). Request slices are valid until the handler
// returns (package conn). The goroutines are the poller and the P workers, whatever Q and the number of
// connections (CONTRACT S11). Workers block on channels, never in system calls, so the threads are the
// runtime's plus the one in epoll_wait. Before it blocks, the poller yields so that the workers it has
// just woken run first: with GOMAXPROCS=1 they would otherwise wait until the runtime takes the
// processor back from the thread blocked in epoll_wait, 10 to 20 ms. On one processor it yields until
// they have taken their wake-ups (Server.yield). With more, a worker that finds sockets still queued
// when it is done with one yields too, behind the poller, so that the queue is refilled while the
// workers serve instead of once it has run dry (worker.giveWay).
//
// # Listen addresses
//
// Listen takes an IPv4 literal, a bracketed IPv6 literal, "localhost" or an empty host (a dual-stack
// socket, IPv4 where the system lacks IPv6). Other host names are refused rather than resolved, which
// would bring a resolver into start-up. Listeners adopts descriptors from systemd socket activation
// (CONTRACT S12); each must be a listening stream socket.
package server
