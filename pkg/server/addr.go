package server

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// listenAddr is a parsed Config.Listen. An invalid ip means every address: a dual-stack IPv6 socket,
// or IPv4 where the system has no IPv6.
type listenAddr struct {
	ip   netip.Addr
	port uint16
}

// parseListenAddr parses "host:port" where host is empty, "localhost", an IPv4 literal or a bracketed
// IPv6 literal. Names other than localhost are refused: resolving them would bring a resolver onto the
// start-up path of a daemon that must bind predictably (CONTRACT S1).
func parseListenAddr(s string) (listenAddr, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return listenAddr{}, errors.New("missing port")
	}
	host, portText := s[:i], s[i+1:]
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || portText == "" || portText[0] == '+' {
		return listenAddr{}, errors.New("port must be a number from 0 to 65535")
	}
	a := listenAddr{port: uint16(port)}
	switch {
	case host == "":
		return a, nil
	case host == "localhost":
		a.ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		return a, nil
	case strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]"):
		ip, err := netip.ParseAddr(host[1 : len(host)-1])
		if err != nil || !ip.Is6() {
			return listenAddr{}, errors.New("host in brackets must be an IPv6 address")
		}
		a.ip = ip
	default:
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is4() {
			return listenAddr{}, errors.New("host must be an IPv4 address, a bracketed IPv6 address or localhost")
		}
		a.ip = ip
	}
	if a.ip.Zone() != "" {
		return listenAddr{}, errors.New("IPv6 zones are not supported")
	}
	a.ip = a.ip.Unmap()
	return a, nil
}
