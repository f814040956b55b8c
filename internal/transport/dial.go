package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http/httptrace"
	"net/netip"
	"os"
	"sync/atomic"
	"time"
)

// dialer is the Transport's DialContext. net/http calls it with the target's
// address for direct requests and for SOCKS proxies (which this dialer
// speaks), and with the proxy's address for HTTP and HTTPS proxies (the
// dialer makes the TLS connection to an HTTPS proxy, offering HTTP/1.1 only,
// since net/http speaks HTTP/1.1 to proxies).
type dialer struct {
	custom         func(ctx context.Context, network, addr string) (net.Conn, error)
	cache          *dnsCache
	net            net.Dialer
	proxyTLS       *tls.Config // for HTTPS proxies; ServerName set per dial
	connectTimeout time.Duration
	// track wraps every connection in a *trackedConn, for the connect
	// deadline and for counting requests per connection.
	track bool
	// dialAddr dials one resolved address; nil is net.DialContext.
	dialAddr func(ctx context.Context, network, addr string) (net.Conn, error)
	// fallbackDelay is how long the first address family gets before the
	// other is raced against it; 0 is defaultFallbackDelay.
	fallbackDelay time.Duration
}

// defaultFallbackDelay is net.Dialer's head start for the first family
// (RFC 8305's "Connection Attempt Delay").
const defaultFallbackDelay = 300 * time.Millisecond

// DialContext dials addr for the request whose state ctx carries. With a
// ConnectTimeout, a connection that still needs a CONNECT exchange or a TLS
// handshake keeps a deadline of dial start plus ConnectTimeout until the
// handshake with the target is done, so that everything before the first
// request shares the bound.
func (d *dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	start := time.Now()
	if d.connectTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.connectTimeout)
		defer cancel()
	}
	var (
		conn net.Conn
		err  error
	)
	st := stateFrom(ctx)
	httpsProxy := false
	switch {
	case st == nil || st.proxy == nil:
		conn, err = d.dialDirect(ctx, network, addr)
		err = d.timedOut(ctx, err)
	case isSOCKS(st.proxy):
		conn, err = d.dialSOCKS(ctx, st.proxy, network, addr)
		var pe *ProxyError
		if errors.As(err, &pe) {
			pe.Err = d.timedOut(ctx, pe.Err)
		} else {
			err = d.timedOut(ctx, err)
		}
	default:
		// An HTTP or HTTPS proxy: net/http asks for the proxy's address.
		httpsProxy = st.proxy.Scheme == "https"
		conn, err = d.dialDirect(ctx, network, addr)
		if err != nil {
			err = &ProxyError{Proxy: st.proxyName, Err: d.timedOut(ctx, err)}
		}
	}
	if err != nil {
		return nil, err
	}
	// A plain-http target can take its request as soon as the dial (and
	// any proxy TLS) is done; an https target still needs TLS, and CONNECT
	// first when proxied.
	targetTLS := st == nil || st.target != "http"
	var tc *trackedConn
	if d.track {
		tc = &trackedConn{Conn: conn, timeout: d.connectTimeout}
		tc.wireTo, _ = observerFrom(ctx).(WireObserver)
		conn = tc
		if d.connectTimeout > 0 && st == nil {
			// A direct request that carries no state: the connection
			// tells by its first write whether TLS follows.
			tc.sniff, tc.start = true, start
		} else if d.connectTimeout > 0 && (targetTLS || httpsProxy) {
			if err := tc.Conn.SetDeadline(start.Add(d.connectTimeout)); err != nil {
				tc.Close()
				return nil, err
			}
			tc.armed.Store(true)
		}
		if st != nil {
			st.conn.Store(tc)
		}
	}
	if httpsProxy {
		if conn, err = d.handshakeProxy(ctx, st, conn); err != nil {
			return nil, &ProxyError{Proxy: st.proxyName, Err: d.timedOut(ctx, err)}
		}
	}
	if tc != nil && !targetTLS && st != nil {
		tc.disarm()
	}
	return conn, nil
}

// timedOut says so when err came from ConnectTimeout running out; the error
// keeps its type (a dial *net.OpError stays one) under the wrapper.
func (d *dialer) timedOut(ctx context.Context, err error) error {
	if err == nil || d.connectTimeout <= 0 || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return err
	}
	var cte *connectTimeoutError
	if errors.As(err, &cte) {
		return err
	}
	return &connectTimeoutError{timeout: d.connectTimeout, err: err}
}

// handshakeProxy makes the TLS connection to an HTTPS proxy, reporting it to
// the request's trace as net/http would.
func (d *dialer) handshakeProxy(ctx context.Context, st *reqState, conn net.Conn) (net.Conn, error) {
	conf := d.proxyTLS.Clone()
	conf.ServerName = st.proxy.Hostname()
	tlsConn := tls.Client(conn, conf)
	trace := httptrace.ContextClientTrace(ctx)
	st.proxyTLS.Store(true)
	defer st.proxyTLS.Store(false)
	if trace != nil && trace.TLSHandshakeStart != nil {
		trace.TLSHandshakeStart()
	}
	err := tlsConn.HandshakeContext(ctx)
	if trace != nil && trace.TLSHandshakeDone != nil {
		trace.TLSHandshakeDone(tlsConn.ConnectionState(), err)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return tlsConn, nil
}

// dialDirect connects to addr over the network: through Options.DialContext
// when set, else resolving the host through the DNS cache and trying its
// addresses in order.
func (d *dialer) dialDirect(ctx context.Context, network, addr string) (net.Conn, error) {
	obs := observerFrom(ctx)
	if d.custom != nil {
		return timedConnect(obs, func() (net.Conn, error) { return d.custom(ctx, network, addr) })
	}
	if d.cache.passthrough() {
		// net.Dialer resolves the name itself.
		if obs != nil {
			ctx = traceNet(ctx, obs)
		}
		return d.net.DialContext(ctx, network, addr)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || isIP(host) {
		// Nothing to look up.
		return timedConnect(obs, func() (net.Conn, error) { return d.net.DialContext(ctx, network, addr) })
	}
	ips, err := d.lookup(ctx, obs, host)
	if err != nil {
		// The shape net.Dialer gives a failed lookup.
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	ips = forNetwork(ips, network)
	if len(ips) == 0 {
		return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{
			Err: "no suitable address found", Name: host, IsNotFound: true,
		}}
	}
	return timedConnect(obs, func() (net.Conn, error) { return d.dialAddrs(ctx, network, ips, port) })
}

func isIP(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}

// dialAddrs connects to one of ips, as net.Dialer does with the addresses of
// a fresh lookup: the addresses of the first one's family are tried in turn,
// and when the list holds the other family too, those are raced against them
// after a short head start, or at once when the first family fails (RFC
// 8305). The first connection wins; the other dial is cancelled.
func (d *dialer) dialAddrs(ctx context.Context, network string, ips []net.IPAddr, port string) (net.Conn, error) {
	primaries, fallbacks := splitFamilies(ips)
	if len(fallbacks) == 0 {
		return d.dialSerial(ctx, network, primaries, port)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type dialResult struct {
		conn    net.Conn
		err     error
		primary bool
	}
	results := make(chan dialResult, 2)
	race := func(ips []net.IPAddr, primary bool) {
		conn, err := d.dialSerial(ctx, network, ips, port)
		results <- dialResult{conn, err, primary}
	}
	go race(primaries, true)
	delay := d.fallbackDelay
	if delay <= 0 {
		delay = defaultFallbackDelay
	}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	var primaryErr, fallbackErr error
	running, fallbackStarted := 1, false
	startFallback := func() {
		if !fallbackStarted {
			fallbackStarted = true
			running++
			go race(fallbacks, false)
		}
	}
	for {
		select {
		case <-timer.C:
			startFallback()
		case res := <-results:
			running--
			if res.err == nil {
				if running > 0 {
					// The loser's dial is cancelled; a connection it made
					// all the same is closed.
					cancel()
					go func() {
						if r := <-results; r.conn != nil {
							r.conn.Close()
						}
					}()
				}
				return res.conn, nil
			}
			if res.primary {
				primaryErr = res.err
			} else {
				fallbackErr = res.err
			}
			if res.primary && !fallbackStarted {
				startFallback()
				continue
			}
			if running == 0 {
				if primaryErr != nil {
					return nil, primaryErr
				}
				return nil, fallbackErr
			}
		}
	}
}

// splitFamilies parts ips into those of the first address's family and the
// others, each in its order.
func splitFamilies(ips []net.IPAddr) (primaries, fallbacks []net.IPAddr) {
	if len(ips) == 0 {
		return nil, nil
	}
	first4 := ips[0].IP.To4() != nil
	for _, ip := range ips {
		if (ip.IP.To4() != nil) == first4 {
			primaries = append(primaries, ip)
		} else {
			fallbacks = append(fallbacks, ip)
		}
	}
	return primaries, fallbacks
}

// dialSerial tries each address in turn, giving each a share of the time
// left as net.Dialer does, and returns the first error when all fail.
func (d *dialer) dialSerial(ctx context.Context, network string, ips []net.IPAddr, port string) (net.Conn, error) {
	dial := d.dialAddr
	if dial == nil {
		dial = d.net.DialContext
	}
	deadline, _ := ctx.Deadline()
	var first error
	for i, ip := range ips {
		actx := ctx
		if pd := partialDeadline(time.Now(), deadline, len(ips)-i); !pd.IsZero() && pd.Before(deadline) {
			var cancel context.CancelFunc
			actx, cancel = context.WithDeadline(ctx, pd)
			defer cancel()
		}
		conn, err := dial(actx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return conn, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

// partialDeadline gives one of remaining addresses its share of the time up
// to deadline, but at least two seconds when that much is left.
func partialDeadline(now, deadline time.Time, remaining int) time.Time {
	if deadline.IsZero() || remaining <= 1 {
		return deadline
	}
	left := deadline.Sub(now)
	if left <= 0 {
		return deadline
	}
	const minShare = 2 * time.Second
	share := left / time.Duration(remaining)
	if share < minShare {
		share = min(minShare, left)
	}
	return now.Add(share)
}

func forNetwork(ips []net.IPAddr, network string) []net.IPAddr {
	var want func(net.IP) bool
	switch network {
	case "tcp4", "udp4":
		want = func(ip net.IP) bool { return ip.To4() != nil }
	case "tcp6", "udp6":
		want = func(ip net.IP) bool { return ip.To4() == nil }
	default:
		return ips
	}
	out := make([]net.IPAddr, 0, len(ips))
	for _, ip := range ips {
		if want(ip.IP) {
			out = append(out, ip)
		}
	}
	return out
}

// errConnRetired fails a write on a connection that has carried
// MaxConnRequests requests; net/http retries a request that wrote nothing
// on a new connection when it can replay it.
var errConnRetired = errors.New("connection has carried MaxConnRequests requests")

// trackedConn is a dialed connection, under any TLS that net/http adds.
type trackedConn struct {
	net.Conn
	timeout  time.Duration
	armed    atomic.Bool  // the connect deadline is set
	retired  atomic.Bool  // writes fail
	requests atomic.Int64 // requests handed this connection
	served   atomic.Int64 // requests that took it, for ConnReused
	// out and in count the bytes written and read on the wire (TLS,
	// CONNECT and proxy handshakes included) that no request has claimed
	// yet (see ClaimWire).
	out, in atomic.Int64
	// wireTo, when set, learns the bytes of a connection that closes
	// before any request took it (a refused CONNECT, a failed handshake):
	// the request that dialled it pays for them.
	wireTo WireObserver

	// A direct connection dialed with no word of its target's scheme
	// learns it from what is written to it (writes come one after another:
	// the TLS handshake's, then the requests'). start is when the dial
	// began.
	sniff, inTLS bool
	start        time.Time
}

// TLS record types (RFC 8446, 5.1).
const (
	recordChangeCipherSpec = 20
	recordHandshake        = 22
	recordApplicationData  = 23
)

// sniffWrite sets the connect deadline of a direct connection by what is
// about to be written to it. A TLS record first means a handshake, which
// the deadline bounds from the dial's start; anything else is a plain-http
// request, and the connection is ready. The first application-data record
// after a handshake ends the deadline: with TLS 1.3 it carries the client's
// Finished, with TLS 1.2 the first request.
func (c *trackedConn) sniffWrite(p []byte) {
	if len(p) == 0 {
		return
	}
	if !c.inTLS {
		if p[0] < recordChangeCipherSpec || p[0] > recordHandshake {
			c.sniff = false
			return
		}
		c.inTLS = true
		if c.Conn.SetDeadline(c.start.Add(c.timeout)) == nil {
			c.armed.Store(true)
		}
		return
	}
	if p[0] == recordApplicationData {
		c.sniff = false
		c.disarm()
	}
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	if err != nil {
		err = c.connectErr(err)
	}
	return n, err
}

func (c *trackedConn) Write(p []byte) (int, error) {
	if c.retired.Load() {
		return 0, errConnRetired
	}
	if c.sniff {
		c.sniffWrite(p)
	}
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	if err != nil {
		err = c.connectErr(err)
	}
	return n, err
}

// Close closes the connection; one that no request took reports its bytes
// to the request that dialled it.
func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	if c.wireTo != nil && c.served.Load() == 0 {
		if out, in := c.out.Swap(0), c.in.Swap(0); out+in > 0 {
			c.wireTo.ObserveWire(out, in)
		}
	}
	return err
}

// WireObserver learns bytes on the wire that no request claimed with
// [ClaimWire]: those of a connection that closed before a request took it,
// reported to the request that dialled it. A [DialObserver] that is also a
// WireObserver gets them. Calls come from any goroutine.
type WireObserver interface {
	ObserveWire(out, in int64)
}

// ClaimWire returns the bytes written and read on the wire by the
// connection of an httptrace GotConn hook (TLS records, CONNECT and proxy
// handshakes included) since the last claim, and resets them: each byte is
// claimed once. A request claims its connection's bytes when it is done;
// on an HTTP/2 connection that others share, it may claim some of theirs,
// but the sum over requests is the connection's. ok is false for a
// connection this package did not dial. Safe for concurrent use.
func ClaimWire(c net.Conn) (out, in int64, ok bool) {
	tc := trackedOf(c)
	if tc == nil {
		return 0, 0, false
	}
	return tc.out.Swap(0), tc.in.Swap(0), true
}

// connectErr says why a read or write timed out while the connect deadline
// was still set: the CONNECT exchange or a TLS handshake overran it.
func (c *trackedConn) connectErr(err error) error {
	if !c.armed.Load() || !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	return &connectTimeoutError{timeout: c.timeout, err: err}
}

// connectTimeoutError is a connection that was not ready (dialled, proxy
// CONNECT and TLS handshakes done) within ConnectTimeout. It is a net.Error
// whose Timeout is true, and unwraps to the failure it cut short.
type connectTimeoutError struct {
	timeout time.Duration
	err     error
}

func (e *connectTimeoutError) Error() string {
	return fmt.Sprintf("connection not ready within the connect timeout of %v: %v", e.timeout, e.err)
}

func (e *connectTimeoutError) Unwrap() error   { return e.err }
func (e *connectTimeoutError) Timeout() bool   { return true }
func (e *connectTimeoutError) Temporary() bool { return false }

// disarm clears the connect deadline once; net/http sets no deadlines of its
// own on client connections.
func (c *trackedConn) disarm() {
	if c.armed.CompareAndSwap(true, false) {
		_ = c.Conn.SetDeadline(time.Time{})
	}
}

// ConnReused counts one more request handed c (the connection of an
// httptrace GotConn hook, under whatever TLS net/http added) and reports
// whether c carried an earlier one: net/http's own GotConnInfo.Reused is
// also true for a connection that was dialled for another request and
// waited in the idle pool unused. ok is false for a connection this package
// did not dial. Call it once per request. Safe for concurrent use.
func ConnReused(c net.Conn) (reused, ok bool) {
	tc := trackedOf(c)
	if tc == nil {
		return false, false
	}
	return tc.served.Add(1) > 1, true
}

// trackedOf finds the *trackedConn under the TLS layers of a connection
// net/http handed to a request.
func trackedOf(c net.Conn) *trackedConn {
	for {
		switch v := c.(type) {
		case *trackedConn:
			return v
		case *tls.Conn:
			c = v.NetConn()
		default:
			return nil
		}
	}
}
