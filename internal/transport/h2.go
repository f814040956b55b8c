package transport

import (
	"crypto/tls"
	"net"
)

// Values of trackedConn.proto: what ALPN negotiated on the TLS connection
// net/http made over it.
const (
	protoUnknown int32 = iota
	protoOther
	protoH2
)

// IsHTTP2 reports whether c, the connection of an httptrace GotConn hook,
// speaks HTTP/2 as ALPN negotiated it. A connection this package dialled
// keeps the answer, so asking for every request does not copy the TLS
// state each time. Safe for concurrent use.
func IsHTTP2(c net.Conn) bool {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return false
	}
	under := trackedOf(c)
	if under != nil {
		switch under.proto.Load() {
		case protoH2:
			return true
		case protoOther:
			return false
		}
	}
	cs := tc.ConnectionState()
	h2 := cs.NegotiatedProtocol == "h2"
	if under != nil && cs.HandshakeComplete {
		p := protoOther
		if h2 {
			p = protoH2
		}
		under.proto.Store(p)
	}
	return h2
}
