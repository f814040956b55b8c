// Package transport turns [Options] into a reusable *http.Client: proxies
// (HTTP, HTTPS, SOCKS5, the environment), TLS, timeouts, connection limits,
// connection rotation and the DNS cache.
//
// It knows nothing of URL lists, retries or records, and never imports the
// runner. Failures that happen at a proxy come back as [*ProxyError], which
// callers recognise without importing this package through its
// ErrorKind() method; every other failure keeps the net, TLS and context
// error types that net/http produces.
package transport

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Options describes one HTTP client. The zero value is usable and gives
// net/http's defaults with keep-alive off, no proxy and no DNS cache. Negative
// numbers and durations are rejected by [New].
type Options struct {
	// PerHost caps connections (idle plus active) to one host; 0 is no cap.
	// Up to PerHost idle connections are kept per host, so a host that is
	// busy at the cap does not churn connections. Through a proxy it caps
	// the tunnels (CONNECT or SOCKS5) to one target host.
	PerHost int
	// PerProxy caps the connections to an HTTP or HTTPS proxy that carry
	// forwarded plain-http requests: net/http counts those as one host,
	// whatever their targets. 0 means PerHost.
	PerProxy int
	// MaxIdle caps the idle connections kept for hosts that no request in
	// flight is using; 0 means PerHost × 64. The pool is never below PerHost.
	MaxIdle int
	// InFlight is the most requests the caller has in flight at once through
	// this client (its total limit). A busy host keeps up to PerHost idle
	// connections between its requests; the pool has room for that on every
	// host that can be busy at once (InFlight of them) on top of MaxIdle, so
	// a busy host's connections are reused, never closed and dialled again.
	InFlight int
	// IdleBudget, when positive, caps the whole idle pool: the caller's
	// open-file budget for idle connections.
	IdleBudget int
	// KeepAlive is how long an idle connection is kept; 0 turns keep-alive off.
	KeepAlive time.Duration
	// HTTP2 tries HTTP/2 on TLS connections, through proxies too; false
	// forces HTTP/1.1. Through a proxy, with KeepAlive on and
	// MaxConnRequests off, a burst of requests to an https host that has
	// no HTTP/2 connection yet sets up one connection (one tunnel), which
	// they share when the host speaks HTTP/2; an HTTP/1.1 host's requests
	// wait for that first connection once, then open their own.
	HTTP2 bool
	// ConnectTimeout bounds dial plus TLS handshake together (and, through a
	// proxy, the dial to the proxy, the CONNECT exchange or SOCKS handshake
	// and the TLS handshake with the target); 0 is no bound.
	ConnectTimeout time.Duration
	// Insecure skips TLS certificate checks.
	Insecure bool
	// CACertFile names a PEM file whose certificates are trusted as well as
	// the system's. With CACertPEM set, it only names the file in errors.
	CACertFile string
	// CACertPEM, when set, is what the file named by CACertFile holds, as
	// [ReadCAFile] read it: clients use it and never read the file, which
	// may be a pipe that gives its bytes once.
	CACertPEM []byte
	// MaxHeaderBytes bounds a response head (the status line and headers,
	// or an HTTP/2 header list); a longer one fails the request. 0 is
	// net/http's default of 10 MiB.
	MaxHeaderBytes int64
	// MaxHeaderText is how messages about a head over MaxHeaderBytes name
	// the limit, as the user knows it ("--max-header-size 4KiB"); "" names
	// it in bytes ("the limit of 4096 bytes").
	MaxHeaderText string
	// MaxRedirects is how many redirects are followed; 0 follows none and
	// returns the 3xx response itself (with a Location that does not parse
	// removed, so that it comes back all the same). A response that would
	// need more fails with a *url.Error wrapping [ErrTooManyRedirects], and
	// the client returns that response, its body closed, with the error. A
	// redirect whose Location does not parse, is not http or https, or has
	// no host fails with a [*RedirectError]. No Referer is added to
	// redirected requests.
	MaxRedirects int
	// LocationTrusted sends the request's Authorization, Cookie and
	// Proxy-Authorization headers on every redirect, as curl's
	// --location-trusted does. Otherwise they go only to the origin
	// (scheme, host and port) of the request's URL, and a redirect
	// elsewhere drops them, except a Proxy-Authorization header that goes
	// to a proxy.
	LocationTrusted bool
	// Proxy carries every request when set, loopback targets included: an
	// http:// or https:// proxy (HTTPS targets through CONNECT), or a
	// socks5:// (target names resolved here) or socks5h:// (names resolved
	// by the proxy) proxy. User info in the URL is sent as proxy
	// credentials. See [ParseProxy].
	Proxy *url.URL
	// ProxyName, when set, is how errors name Proxy instead of its URL
	// with the password masked. It must hold no secret.
	ProxyName string
	// ProxyFromEnv, when Proxy is nil, routes requests as HTTPS_PROXY,
	// HTTP_PROXY and NO_PROXY (and their lower-case forms) say at the time
	// New is called. As with every NO_PROXY implementation that follows Go's,
	// localhost and loopback addresses are never sent to such a proxy.
	ProxyFromEnv bool
	// DNSTTL is how long a DNS answer is cached; 0 turns the cache off.
	// Concurrent lookups of one name are made once.
	DNSTTL time.Duration
	// MaxConnRequests closes a connection after it has carried this many
	// requests (so a rotating gateway hands out a new exit IP); 0 is no
	// limit. On HTTP/2 connections, streams that were already starting when
	// the limit was reached may still be carried.
	MaxConnRequests int
	// Resolver, when set, replaces net.DefaultResolver for the names this
	// client resolves itself (targets, proxies, socks5:// targets). Names
	// sent to an HTTP proxy or a socks5h:// proxy are resolved there.
	Resolver Resolver
	// DialContext, when set, replaces name resolution and the network
	// dialer (tests map fake host names to loopback servers with it).
	// Proxies still apply on top of it.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// Meter, when set, counts the bytes on the wire of every connection
	// through a proxy, and stops them at its limit (see [WireMeter]). The
	// clients of one run share it.
	Meter *WireMeter

	// Shared, when set, is the DNS cache and TLS session cache this client
	// shares with the others built with the same one (see [NewShared]);
	// nil gives the client its own.
	Shared *Shared

	// now is the DNS cache's clock; nil means time.Now.
	now func() time.Time
	// noH1 sends every request through net/http's Transport (see
	// h1Transport), for tests that compare the two.
	noH1 bool
}

// Shared is what the clients of one run share: the DNS cache (as
// Options.DNSTTL says) and the TLS sessions kept for resumption, so that a
// client built for a new proxy session neither looks names up again nor
// pays a full handshake with a host met before. Safe for concurrent use.
type Shared struct {
	dns *dnsCache
	tls tls.ClientSessionCache

	// The certificates of Options.CACertPEM (or CACertFile), parsed for
	// the first client, and the system's roots, loaded once a run when a
	// server's chain needs them.
	caMu   sync.Mutex
	caFile string
	ca     *caRoots

	untaken untaken
}

// caFor returns the roots of the CA file named file: those of data when
// set, else of the file, read. It parses them on the first call for that
// file name; later calls share them.
func (s *Shared) caFor(file string, data []byte) (*caRoots, error) {
	s.caMu.Lock()
	defer s.caMu.Unlock()
	if s.ca != nil && s.caFile == file {
		return s.ca, nil
	}
	if data == nil {
		var err error
		if data, err = readCA(file); err != nil {
			return nil, err
		}
	}
	ca, err := parseCA(data)
	if err != nil {
		return nil, err
	}
	s.caFile, s.ca = file, ca
	return ca, nil
}

// CloseUntaken closes every connection through a proxy, dialled by the
// clients that share s, that no request has taken: dials still under way
// (a CONNECT waiting for its answer, a TLS handshake with an HTTPS proxy)
// and connections that went to the idle pool unused. Each reports its
// bytes to the [WireObserver] of the request that dialled it before
// CloseUntaken returns. A connection dialled afterwards is closed at once.
// A run calls it once its requests are done, so that every byte it
// spent through proxies is counted.
func (s *Shared) CloseUntaken() {
	u := &s.untaken
	u.mu.Lock()
	u.closed = true
	list := make([]*trackedConn, 0, len(u.conns))
	for c := range u.conns {
		list = append(list, c)
	}
	u.mu.Unlock()
	for _, c := range list {
		c.Close()
	}
}

// NewShared returns caches for the clients built from opts.
func NewShared(opts Options) *Shared {
	return &Shared{dns: newDNSCache(opts), tls: tls.NewLRUClientSessionCache(sessionCacheSize)}
}

// Resolver looks up the IP addresses of a host name. *net.Resolver
// implements it. Implementations must be safe for concurrent use.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// ErrTooManyRedirects is returned (wrapped in a *url.Error) when a response
// would need more redirects than Options.MaxRedirects. Its ErrorKind method
// returns "redirect".
var ErrTooManyRedirects error = &redirectError{}

type redirectError struct{}

func (*redirectError) Error() string { return "too many redirects" }

// ErrorKind names the contract's error kind of a redirect limit.
func (*redirectError) ErrorKind() string { return "redirect" }

// New builds a client from opts. The client is safe for concurrent use and
// should be reused for the whole run. It has no overall timeout: callers bound
// each request with its context; cancelling it abandons the request, while a
// dial in progress finishes in the background (bounded by ConnectTimeout) so
// that a later request can use the connection.
//
// Through an HTTP proxy, a plain-http target's request is forwarded by the
// proxy, so a proxy that refuses it answers with an ordinary response:
// callers must treat status 407 (and the 401 that some proxies send for bad
// credentials) of a proxied request as a proxy failure. Every other failure
// at the proxy is a [*ProxyError].
func New(opts Options) (*http.Client, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.Shared == nil {
		opts.Shared = NewShared(opts)
	}
	return newClient(opts)
}

func (o *Options) validate() error {
	for _, f := range []struct {
		name string
		neg  bool
	}{
		{"PerHost", o.PerHost < 0},
		{"PerProxy", o.PerProxy < 0},
		{"MaxIdle", o.MaxIdle < 0},
		{"InFlight", o.InFlight < 0},
		{"IdleBudget", o.IdleBudget < 0},
		{"KeepAlive", o.KeepAlive < 0},
		{"ConnectTimeout", o.ConnectTimeout < 0},
		{"MaxRedirects", o.MaxRedirects < 0},
		{"MaxHeaderBytes", o.MaxHeaderBytes < 0},
		{"DNSTTL", o.DNSTTL < 0},
		{"MaxConnRequests", o.MaxConnRequests < 0},
	} {
		if f.neg {
			return fmt.Errorf("%s must not be negative", f.name)
		}
	}
	if o.Proxy != nil {
		if err := checkProxyURL(o.Proxy); err != nil {
			return err
		}
	}
	return nil
}

func newClient(opts Options) (*http.Client, error) {
	proxyFor, err := proxySelector(opts)
	if err != nil {
		return nil, err
	}
	// An HTTP or HTTPS proxy (one named, or the environment's) carries
	// https requests through CONNECT tunnels, whose TLS net/http makes.
	tunnels := proxyFor != nil && (opts.Proxy == nil || !isSOCKS(opts.Proxy))
	tlsConf, ca, err := tlsConfig(opts, tunnels)
	if err != nil {
		return nil, err
	}
	cache := opts.Shared.dns
	proxyTLS := tlsConf.Clone()
	proxyTLS.NextProtos = []string{"http/1.1"}
	d := &dialer{
		custom:         opts.DialContext,
		cache:          cache,
		net:            net.Dialer{KeepAlive: 30 * time.Second},
		proxyTLS:       proxyTLS,
		ca:             ca,
		connectTimeout: opts.ConnectTimeout,
		track:          true, // for the connect deadline, requests per connection and ConnReused
		meter:          opts.Meter,
		untaken:        &opts.Shared.untaken,
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = d.DialContext
	tr.Proxy = nil
	if proxyFor != nil {
		tr.Proxy = httpProxyOf
		tr.GetProxyConnectHeader = connectStarting
		tr.OnProxyConnectResponse = connectAnswered
	}

	tr.MaxConnsPerHost = opts.PerHost
	maxIdle := opts.MaxIdle
	if maxIdle == 0 {
		maxIdle = opts.PerHost * 64
	}
	if maxIdle < opts.PerHost {
		maxIdle = opts.PerHost
	}
	if maxIdle > 0 {
		tr.MaxIdleConns = maxIdle + opts.InFlight*max(opts.PerHost, 1)
		if opts.IdleBudget > 0 && tr.MaxIdleConns > opts.IdleBudget {
			tr.MaxIdleConns = max(opts.IdleBudget, maxIdle)
		}
	}
	tr.MaxIdleConnsPerHost = opts.PerHost
	if opts.PerHost == 0 {
		// No per-host cap: a host may keep as many idle connections as the
		// total allows rather than net/http's default of two.
		tr.MaxIdleConnsPerHost = tr.MaxIdleConns
	}
	tr.IdleConnTimeout = opts.KeepAlive
	tr.ReadBufferSize = readBufferSize
	tr.WriteBufferSize = writeBufferSize
	tr.DisableKeepAlives = opts.KeepAlive == 0

	// The dialer's connect deadline bounds dial, CONNECT and handshakes
	// together; a separate handshake timer would race it with a vaguer error.
	tr.TLSHandshakeTimeout = 0
	tr.TLSClientConfig = tlsConf
	tr.ForceAttemptHTTP2 = opts.HTTP2
	// HTTP/2 request headers are sent without HPACK's dynamic table: a URL
	// list's paths (and often hosts) differ from one request to the next,
	// so each request would add its own to the table and evict older ones,
	// which costs more CPU than the bytes saved on the rest. A limit of one
	// byte holds no entry.
	tr.HTTP2 = &http.HTTP2Config{MaxEncoderHeaderTableSize: 1}
	// net/http applies the same bound to HTTP/2 header lists; configureHTTP2
	// gives HTTP/2 connections a larger one.
	tr.MaxResponseHeaderBytes = opts.MaxHeaderBytes
	if !opts.HTTP2 {
		// A non-nil empty map keeps net/http from enabling HTTP/2.
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}

	// A direct client that keeps connections without rotating them keeps
	// its HTTP/2 connections itself (see h2Pool). Through a proxy, net/http's
	// HTTP/2 client runs them: a tunnel that the target closes after a
	// GOAWAY fails the client's next write, and net/http's client then
	// drops the answers still unread on it, which the pool cannot tell from
	// a server that answers nothing.
	pooled := opts.HTTP2 && proxyFor == nil && opts.KeepAlive > 0 && opts.MaxConnRequests == 0
	var h2tr *http.Transport
	if opts.HTTP2 {
		h2tr = configureHTTP2(tr, opts.MaxHeaderBytes, pooled)
	}
	// A direct https connection (or one through a SOCKS proxy) gets its
	// TLS configuration here, for the address dialled (see connTLS);
	// net/http makes the handshake. Through an HTTP or HTTPS proxy,
	// net/http sets up the tunnel and its TLS itself.
	targetTLS := tr.TLSClientConfig
	tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		conf := connTLS(targetTLS, ca, addr)
		if ctx.Value(h1OnlyKey{}) != nil {
			// As net/http does for a request HTTP/2 cannot carry.
			conf.NextProtos = nil
		}
		return tls.Client(conn, conf), nil
	}

	// Forwarded plain-http requests share the connections to their proxy,
	// which net/http keys as one host: a transport of their own caps those
	// at PerProxy, while the tunnels to each target stay within PerHost.
	// It speaks HTTP/1.1 only: it makes no TLS connection to a target.
	fwd := tr
	if proxyFor != nil && opts.PerProxy > 0 && opts.PerProxy != opts.PerHost {
		fwd = tr.Clone()
		fwd.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		fwd.MaxConnsPerHost = opts.PerProxy
		fwd.MaxIdleConnsPerHost = opts.PerProxy
		if fwd.MaxIdleConns > 0 {
			fwd.MaxIdleConns = max(fwd.MaxIdleConns, opts.PerProxy)
		}
	}

	var pool *h2Pool
	if pooled && h2tr != nil {
		pool = newH2Pool(tr, h2tr)
		tr.TLSNextProto["h2"] = pool.adopt
		h2tr.DialTLSContext = dialAdopted
	}

	rt := &roundTripper{
		base:            tr,
		pool:            pool,
		fwd:             fwd,
		h2:              h2tr,
		maxHeaderBytes:  opts.MaxHeaderBytes,
		maxHeaderText:   opts.MaxHeaderText,
		proxyFor:        proxyFor,
		maxConnRequests: opts.MaxConnRequests,
		proxyName:       opts.ProxyName,
		followRedirects: opts.MaxRedirects > 0,
	}
	if opts.KeepAlive > 0 && opts.MaxConnRequests == 0 && !opts.noH1 {
		maxHeader := opts.MaxHeaderBytes
		if maxHeader <= 0 {
			maxHeader = defaultMaxHeaderBytes
		}
		rt.h1 = &h1Transport{
			dial:           d.DialContext,
			perHost:        opts.PerHost,
			maxIdlePerHost: tr.MaxIdleConnsPerHost,
			maxIdle:        tr.MaxIdleConns,
			idleTimeout:    opts.KeepAlive,
			maxHeader:      maxHeader,
		}
		if !opts.HTTP2 {
			// https too, with the TLS net/http would make: HTTP/1.1
			// alone, which it offers no ALPN for.
			rt.h1.tlsConf, rt.h1.ca = tlsConf, ca
		}
	}
	if opts.HTTP2 && opts.KeepAlive > 0 && opts.MaxConnRequests == 0 && proxyFor != nil {
		// Rotation asks for new connections: those are set up in parallel.
		rt.tunnels = newTunnelGate()
	}
	return &http.Client{Transport: rt, CheckRedirect: checkRedirect(opts, proxyFor)}, nil
}

// Each HTTP/1 connection, idle ones included, holds a read and a write
// buffer. net/http's 4 KiB apiece cost about 2 MiB over the 200-odd
// connections of a run over 50 hosts; a request's head is a few hundred
// bytes, and the bytes of a body past the read buffer go straight from the
// socket to the reader's own buffer.
const (
	readBufferSize  = 2 << 10
	writeBufferSize = 1 << 10
)
