// Package transport turns [Options] into a reusable *http.Client: proxies, TLS,
// timeouts, connection limits and the DNS cache.
//
// It knows nothing of URL lists, retries or records, and never imports the
// runner.
package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

// Options describes one HTTP client. The zero value is usable and gives
// net/http's defaults with keep-alive off.
type Options struct {
	// PerHost caps connections (idle plus active) to one host; 0 is no cap.
	PerHost int
	// MaxIdle caps idle connections in total; 0 means PerHost × 64.
	MaxIdle int
	// KeepAlive is how long an idle connection is kept; 0 turns keep-alive off.
	KeepAlive time.Duration
	// HTTP2 tries HTTP/2 on TLS connections.
	HTTP2 bool
	// ConnectTimeout bounds dial plus TLS handshake; 0 is no bound.
	ConnectTimeout time.Duration
	// Insecure skips TLS certificate checks.
	Insecure bool
	// CACertFile names a PEM file whose certificates are trusted as well as
	// the system's.
	CACertFile string
	// MaxRedirects is how many redirects are followed; 0 follows none.
	MaxRedirects int
	// Proxy carries every request when set. When nil and ProxyFromEnv is
	// true, HTTPS_PROXY, HTTP_PROXY and NO_PROXY apply.
	Proxy        *url.URL
	ProxyFromEnv bool
	// DNSTTL is how long a DNS answer is cached; 0 turns the cache off.
	DNSTTL time.Duration
	// MaxConnRequests closes a connection after it has carried this many
	// requests; 0 is no limit.
	MaxConnRequests int
	// DialContext, when set, replaces the network dialer (tests map fake
	// host names to loopback servers with it).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// ErrTooManyRedirects is returned (wrapped in a *url.Error) when a response
// would need more redirects than Options.MaxRedirects.
var ErrTooManyRedirects = errors.New("too many redirects")

// New builds a client from opts. The client is safe for concurrent use and
// should be reused for the whole run. It has no overall timeout: callers bound
// each request with its context.
func New(opts Options) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	dialer := &net.Dialer{Timeout: opts.ConnectTimeout, KeepAlive: 30 * time.Second}
	tr.DialContext = dialer.DialContext
	if opts.DialContext != nil {
		tr.DialContext = opts.DialContext
	}
	tr.MaxConnsPerHost = opts.PerHost
	tr.MaxIdleConnsPerHost = opts.PerHost
	tr.MaxIdleConns = opts.MaxIdle
	tr.IdleConnTimeout = opts.KeepAlive
	tr.DisableKeepAlives = opts.KeepAlive <= 0
	tr.TLSHandshakeTimeout = opts.ConnectTimeout
	tr.ForceAttemptHTTP2 = opts.HTTP2
	if !opts.HTTP2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	tlsConf := &tls.Config{InsecureSkipVerify: opts.Insecure} //nolint:gosec // explicit opt-in flag
	if opts.CACertFile != "" {
		pem, err := os.ReadFile(opts.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("transport: read cacert: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("transport: cacert %s holds no PEM certificate", opts.CACertFile)
		}
		tlsConf.RootCAs = pool
	}
	tr.TLSClientConfig = tlsConf
	switch {
	case opts.Proxy != nil:
		tr.Proxy = http.ProxyURL(opts.Proxy)
	case opts.ProxyFromEnv:
		tr.Proxy = http.ProxyFromEnvironment
	default:
		tr.Proxy = nil
	}
	max := opts.MaxRedirects
	client := &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if max == 0 {
				// Following none means the 3xx itself is the final response.
				return http.ErrUseLastResponse
			}
			if len(via) > max {
				return ErrTooManyRedirects
			}
			return nil
		},
	}
	return client, nil
}
