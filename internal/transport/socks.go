package transport

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"strings"

	"golang.org/x/net/proxy"
)

// dialSOCKS connects to addr through a SOCKS5 proxy. For socks5:// the
// target's name is resolved here and its addresses tried in order; for
// socks5h:// the proxy resolves it. Every failure past name resolution is a
// *ProxyError, which names the proxy name.
//
// When the dialer tracks connections, the SOCKS5 exchange runs on the
// *trackedConn, which is returned: the greeting, the user/password
// sub-negotiation and the CONNECT exchange count as bytes on the wire, and
// a connection that the exchange fails on reports them as it closes.
func (d *dialer) dialSOCKS(ctx context.Context, p *url.URL, name, network, addr string) (net.Conn, error) {
	var auth *proxy.Auth
	if p.User != nil {
		pw, _ := p.User.Password()
		auth = &proxy.Auth{User: p.User.Username(), Password: pw}
	}
	// sc is the connection of the latest attempt; the SOCKS5 dialer hands
	// back a wrapper of its own around it.
	var sc *socksConn
	forward := dialFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := d.dialDirect(ctx, network, addr)
		if err != nil || !d.track {
			return conn, err
		}
		sc = &socksConn{trackedConn: d.newTracked(ctx, conn)}
		return sc, nil
	})
	sd, err := proxy.SOCKS5("tcp", proxyAddr(p), auth, forward)
	if err != nil {
		return nil, &ProxyError{Proxy: name, Err: err}
	}
	cd, ok := sd.(proxy.ContextDialer)
	if !ok {
		return nil, &ProxyError{Proxy: name, Err: errors.New("SOCKS5 dialer cannot take a context")}
	}
	targets := []string{addr}
	if p.Scheme == "socks5" {
		if targets, err = d.resolveTargets(ctx, network, addr); err != nil {
			return nil, err
		}
	}
	var first error
	for _, t := range targets {
		conn, err := cd.DialContext(ctx, network, t)
		if err == nil {
			if sc != nil {
				return sc.done(), nil
			}
			return conn, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	first = socksReply(first)
	return nil, &ProxyError{Proxy: name, Err: first, TargetUnreachable: socksTargetUnreachable(first)}
}

// socksConn is a tracked connection while the SOCKS5 exchange runs on it.
// A read takes all that has arrived: the SOCKS5 client reads a CONNECT
// reply that reports a failure only up to its code, and the rest of it
// should count too when the connection closes.
type socksConn struct {
	*trackedConn
	buf  [512]byte // more than the longest reply, 262 bytes
	r, w int
}

func (c *socksConn) Read(p []byte) (int, error) {
	if c.r == c.w {
		n, err := c.trackedConn.Read(c.buf[:])
		c.r, c.w = 0, n
		if n == 0 {
			return 0, err
		}
	}
	n := copy(p, c.buf[c.r:c.w])
	c.r += n
	return n, nil
}

// done returns the tracked connection once the exchange succeeded. Bytes
// the proxy sent past its reply (a target that speaks first) are read
// again from the tracked connection, and counted once.
func (c *socksConn) done() *trackedConn {
	tc := c.trackedConn
	if rest := c.buf[c.r:c.w]; len(rest) > 0 {
		tc.in.Add(-int64(len(rest)))
		if tc.meter != nil {
			tc.meter.n.Add(-int64(len(rest)))
		}
		tc.Conn = &prefixedConn{Conn: tc.Conn, head: append([]byte(nil), rest...)}
	}
	return tc
}

// prefixedConn reads head before the connection.
type prefixedConn struct {
	net.Conn
	head []byte
}

func (c *prefixedConn) Read(p []byte) (int, error) {
	if len(c.head) == 0 {
		return c.Conn.Read(p)
	}
	n := copy(p, c.head)
	c.head = c.head[n:]
	return n, nil
}

// socksReplyError is a SOCKS5 proxy's reply other than success to a
// CONNECT: text is the reply as RFC 1928 names it.
type socksReplyError struct{ text string }

func (e *socksReplyError) Error() string { return "SOCKS5 proxy answered: " + e.text }

// socksReply turns the failure golang.org/x/net/internal/socks reports for
// a reply, "unknown error host unreachable" inside a "socks connect"
// *net.OpError (its text for every code, known or not), into a
// *socksReplyError that reads "SOCKS5 proxy answered: host unreachable".
// Any other error is returned as it is.
func socksReply(err error) error {
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "socks connect" || oe.Err == nil {
		return err
	}
	text, ok := strings.CutPrefix(oe.Err.Error(), "unknown error ")
	if !ok {
		return err
	}
	if code, ok := strings.CutPrefix(text, "unknown code: "); ok {
		text = code + ", a code it does not define"
	}
	c := *oe
	c.Err = &socksReplyError{text: text}
	return &c
}

// socksTargetUnreachable reports whether err is a SOCKS5 reply (see
// [socksReply]) saying that the proxy could not reach the target (network
// or host unreachable, connection refused, TTL expired) or that its rules
// refuse this target (connection not allowed by ruleset).
func socksTargetUnreachable(err error) bool {
	var re *socksReplyError
	if !errors.As(err, &re) {
		return false
	}
	switch re.text {
	case "network unreachable", "host unreachable", "connection refused", "TTL expired", "connection not allowed by ruleset":
		return true
	}
	return false
}

// resolveTargets turns host:port into ip:port choices, through the DNS cache
// (or as given when the host is an IP literal or Options.DialContext is set,
// which resolves names itself).
func (d *dialer) resolveTargets(ctx context.Context, network, addr string) ([]string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || d.custom != nil {
		return []string{addr}, nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return []string{addr}, nil
	}
	ips, err := d.lookup(ctx, observerFrom(ctx), host)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	out := make([]string, 0, len(ips))
	for _, ip := range forNetwork(ips, network) {
		out = append(out, net.JoinHostPort(ip.String(), port))
	}
	if len(out) == 0 {
		return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{
			Err: "no suitable address found", Name: host, IsNotFound: true,
		}}
	}
	return out, nil
}

// dialFunc adapts a dial function to proxy.Dialer and proxy.ContextDialer.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func (f dialFunc) Dial(network, addr string) (net.Conn, error) {
	return f(context.Background(), network, addr)
}

func (f dialFunc) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return f(ctx, network, addr)
}
