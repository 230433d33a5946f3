package server

import (
	"errors"
	"net/netip"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// listener is a listening socket, bound here or adopted (CONTRACT S1, S12). It is owned by the poller.
type listener struct {
	fd      int
	addr    string
	pending bool // a readable edge was seen and the backlog has not been emptied since (edge-triggered)
	// inherited: every socket accepted from this listener already has TCP_NODELAY, or is no TCP
	// socket, so accept needs no setsockopt(2) of its own. Responses leave in as few writes as
	// possible (CONTRACT H16), and Nagle's algorithm would only delay them. Linux copies the
	// listener's TCP_NODELAY into a connection when its handshake completes, so the option must be on
	// the listener before the first client can connect: see bindListener and adoptListener.
	inherited bool
}

// openListeners binds cfg.Listen or adopts cfg.Listeners. On error every socket opened so far is closed.
func openListeners(cfg Config) ([]listener, error) {
	if len(cfg.Listeners) == 0 {
		ln, err := bindListener(cfg.Listen, cfg.Backlog)
		if err != nil {
			return nil, err
		}
		return []listener{ln}, nil
	}
	lns := make([]listener, 0, len(cfg.Listeners))
	for _, fd := range cfg.Listeners {
		ln, err := adoptListener(fd)
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// bindListener creates a non-blocking listening TCP socket for text ("host:port"). An empty host gives
// one dual-stack IPv6 socket (IPv4 clients arrive as mapped addresses), or an IPv4 socket on a system
// without IPv6.
func bindListener(text string, backlog int) (listener, error) {
	la, err := parseListenAddr(text)
	if err != nil {
		return listener{}, &BindError{Addr: text, Err: err}
	}
	fail := func(call string, err error) (listener, error) {
		return listener{}, &BindError{Addr: text, Err: os.NewSyscallError(call, err)}
	}
	family, v6only := unix.AF_INET6, 1
	var sa unix.Sockaddr
	switch {
	case !la.ip.IsValid():
		v6only = 0
		sa = &unix.SockaddrInet6{Port: int(la.port)}
	case la.ip.Is4():
		family = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: int(la.port), Addr: la.ip.As4()}
	default:
		sa = &unix.SockaddrInet6{Port: int(la.port), Addr: la.ip.As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err == unix.EAFNOSUPPORT && !la.ip.IsValid() {
		family = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: int(la.port)}
		fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	}
	if err != nil {
		return fail("socket", err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("setsockopt", err)
	}
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only); err != nil {
			return fail("setsockopt", err)
		}
	}
	// Before listen(2): every connection, from the first, inherits the option.
	inherited := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) == nil
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		return fail("listen", err)
	}
	ok = true
	return listener{fd: fd, addr: localAddr(fd), inherited: inherited}, nil
}

// adoptListener takes over a descriptor passed by the service manager (CONTRACT S12). It must be a
// listening stream socket; it is made non-blocking and close-on-exec.
func adoptListener(fd int) (listener, error) {
	name := "fd " + strconv.Itoa(fd)
	fail := func(err error) (listener, error) { return listener{}, &BindError{Addr: name, Err: err} }
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return fail(os.NewSyscallError("getsockopt", err))
	}
	acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return fail(os.NewSyscallError("getsockopt", err))
	}
	if typ != unix.SOCK_STREAM || acc != 1 {
		return fail(errors.New("not a listening stream socket"))
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return fail(os.NewSyscallError("fcntl", err))
	}
	unix.CloseOnExec(fd)
	return listener{fd: fd, addr: localAddr(fd), inherited: adoptedNoDelay(fd)}, nil
}

// adoptedNoDelay reports whether the sockets accepted from an adopted listener need no TCP_NODELAY of
// their own: a Unix socket, or a TCP socket that already had the option when it was handed over (a
// socket unit with NoDelay=yes, as edged's own). Otherwise the option is set on the listener for
// later connections, but connections queued before that (the one that started the service, those that
// came during a restart) lack it, so every accepted socket still gets it (one setsockopt(2) each).
func adoptedNoDelay(fd int) bool {
	if domain, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN); err == nil && domain == unix.AF_UNIX {
		return true
	}
	if v, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY); err == nil && v == 1 {
		return true
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	return false
}

// localAddr formats the bound address of fd, e.g. "127.0.0.1:41234" or "[::]:8080".
func localAddr(fd int) string {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return ""
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrUnix:
		return a.Name
	}
	return ""
}
