package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http/httptrace"
	"net/netip"
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
	proxyTLS       *tls.Config // for HTTPS proxies; made per dial by connTLS
	ca             *caRoots    // see connTLS
	connectTimeout time.Duration
	// track wraps every connection in a *trackedConn, for the connect
	// deadline and for counting requests per connection.
	track bool
	// dialAddr dials one resolved address; nil is net.DialContext.
	dialAddr func(ctx context.Context, network, addr string) (net.Conn, error)
	// meter counts the bytes of connections through a proxy.
	meter *WireMeter
	// untaken holds the connections through a proxy that no request has
	// taken yet (see Shared.CloseUntaken).
	untaken *untaken
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
		conn, err = d.dialSOCKS(ctx, st.proxy, st.proxyName, network, addr)
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
		// A SOCKS connection comes tracked, from before its handshake.
		if tc, _ = conn.(*trackedConn); tc == nil {
			tc = d.newTracked(ctx, conn)
			conn = tc
		}
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

// newTracked wraps a connection dialled for the request whose state ctx
// carries; the request pays for its bytes if no request takes it.
func (d *dialer) newTracked(ctx context.Context, conn net.Conn) *trackedConn {
	tc := &trackedConn{Conn: conn, timeout: d.connectTimeout}
	tc.wireTo, _ = observerFrom(ctx).(WireObserver)
	if st := stateFrom(ctx); st != nil && st.proxy != nil {
		tc.meter = d.meter
		if d.untaken != nil {
			d.untaken.add(tc)
		}
	}
	return tc
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
	conf := connTLS(d.proxyTLS, d.ca, proxyAddr(st.proxy))
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
