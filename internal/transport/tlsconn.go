package transport

import (
	"crypto/tls"
	"net"
)

// addrSessions keeps the TLS sessions of one address dialled (host and
// port) apart from those of the host's other ports. crypto/tls keys a
// session by the server name alone, so servers on two ports of one host
// would take each other's place in the cache, and a connection to one
// would offer the other's ticket, which it cannot read.
type addrSessions struct {
	cache  tls.ClientSessionCache
	prefix string // the address and a space
}

func (s *addrSessions) Get(key string) (*tls.ClientSessionState, bool) {
	return s.cache.Get(s.prefix + key)
}

func (s *addrSessions) Put(key string, cs *tls.ClientSessionState) {
	s.cache.Put(s.prefix+key, cs)
}

// connTLS returns the TLS configuration of a connection this package
// makes itself to addr (host:port): base's, with the host as the name to
// check (as net/http does) unless base names one, and the sessions kept
// for addr.
func connTLS(base *tls.Config, addr string) *tls.Config {
	conf := base.Clone()
	if conf.ServerName == "" {
		conf.ServerName, _, _ = net.SplitHostPort(addr)
	}
	if conf.ClientSessionCache != nil {
		conf.ClientSessionCache = &addrSessions{cache: conf.ClientSessionCache, prefix: addr + " "}
	}
	return conf
}
