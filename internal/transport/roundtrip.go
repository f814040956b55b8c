package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/fetchctl/fetchctl/internal/secret"
	"golang.org/x/net/http/httpguts"
)

// roundTripper sits in front of the *http.Transport. Per request it picks the
// proxy, tells the dialer about it through the context, watches which
// connection the request gets (to count requests per connection and to end
// the connect deadline), turns failures at the proxy into *ProxyError and a
// response head that net/http refused for its size, or over HTTP/2, into
// *HeadError.
type roundTripper struct {
	base            *http.Transport
	h1              *h1Transport                     // direct GET and HEAD requests (https only with HTTP/2 off), or nil
	fwd             *http.Transport                  // plain-http requests forwarded by an HTTP(S) proxy; may be base
	h2              *http.Transport                  // runs the HTTP/2 connections, or nil
	pool            *h2Pool                          // direct https requests when HTTP/2 may be spoken, or nil
	maxHeaderBytes  int64                            // Options.MaxHeaderBytes, for HeadError
	maxHeaderText   string                           // Options.MaxHeaderText, for HeadError
	proxyFor        func(*url.URL) (*url.URL, error) // nil: never a proxy
	proxyName       string                           // Options.ProxyName
	maxConnRequests int
	followRedirects bool // the client follows redirects (see checkLocation)
	// tunnels, when HTTP/2 may be spoken and connections are kept but not
	// rotated, lets one proxied request at a time set up a connection to
	// an https host whose protocol is unknown.
	tunnels *tunnelGate
}

// reqState is one request's routing and progress, shared with the dialer
// and net/http's proxy hooks through the request context. Those hooks run on
// the dial goroutine, hence the atomics.
type reqState struct {
	target    string   // the request's scheme, "http" or "https"
	proxy     *url.URL // nil: direct
	proxyName string   // proxy, redacted
	// netProxy is the proxy as net/http sees it: an HTTPS proxy shows as
	// http:// because the dialer makes the TLS connection to it.
	netProxy *url.URL
	gotConn  atomic.Bool
	// firstUse is true while the request's connection is one that carried
	// no request before it; answered once a byte of the response came.
	firstUse, answered atomic.Bool
	// connecting is true between net/http writing a CONNECT request and
	// reading its answer.
	connecting atomic.Bool
	// proxyTLS is true during the dialer's handshake with an HTTPS proxy.
	proxyTLS atomic.Bool
	// conn is the connection last dialed for this request.
	conn atomic.Pointer[trackedConn]
	// proxyAuth is a Proxy-Authorization header the caller set, for the
	// CONNECT request.
	proxyAuth []string
	// gateKey is the target's host:port when rt.tunnels holds the request;
	// probe is set when the request sets up the host's connection.
	gateKey string
	probe   *probe
}

type stateKey struct{}

func stateFrom(ctx context.Context) *reqState {
	st, _ := ctx.Value(stateKey{}).(*reqState)
	return st
}

// RoundTrip implements [http.RoundTripper].
func (rt *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "https" && needsHTTP1(req.Header) {
		resp, err := rt.roundTrip(req.WithContext(context.WithValue(req.Context(), h1OnlyKey{}, true)))
		if resp != nil {
			resp.Request = req
		}
		return resp, err
	}
	return rt.roundTrip(req)
}

// h1OnlyKey marks the context of a request that HTTP/2 cannot carry: a
// connection dialled for it offers HTTP/1.1 alone.
type h1OnlyKey struct{}

// needsHTTP1 is net/http's test of a request that HTTP/2 cannot carry (a
// WebSocket upgrade; transportRequest.requiresHTTP1 in transport.go).
func needsHTTP1(h http.Header) bool {
	return httpguts.HeaderValuesContainsToken([]string{h.Get("Connection")}, "upgrade") &&
		strings.EqualFold(h.Get("Upgrade"), "websocket")
}

func (rt *roundTripper) roundTrip(req *http.Request) (*http.Response, error) {
	var p *url.URL
	if rt.proxyFor != nil {
		var err error
		if p, err = rt.proxyFor(req.URL); err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, err
		}
	}
	// A direct request needs no watching unless connections count their
	// requests: its connection ends its own connect deadline (see
	// trackedConn.sniffWrite), and merging a second trace into the
	// caller's costs more than the request.
	if p == nil && rt.maxConnRequests <= 0 {
		var (
			resp *http.Response
			err  error
		)
		switch {
		case rt.h1 != nil && rt.h1.eligible(req):
			resp, err = rt.h1.RoundTrip(req)
		case rt.pool != nil && req.URL.Scheme == "https" && req.Context().Value(h1OnlyKey{}) == nil:
			resp, err = rt.pool.RoundTrip(req)
		default:
			resp, err = rt.base.RoundTrip(req)
		}
		if err != nil {
			if he := headError(err, rt.maxHeaderBytes, rt.maxHeaderText); he != nil {
				return nil, he
			}
			return nil, err
		}
		if err := rt.checkH2Head(resp); err != nil {
			return nil, err
		}
		if isRedirect(resp.StatusCode) {
			if err := checkLocation(req, resp, rt.followRedirects); err != nil {
				return nil, err
			}
		}
		return resp, nil
	}
	st := &reqState{target: req.URL.Scheme}
	var hdr http.Header
	if p != nil {
		st.proxy, st.proxyName, st.netProxy = p, rt.proxyName, p
		if st.proxyName == "" {
			st.proxyName = secret.URLOf(p)
		}
		if p.Scheme == "https" {
			np := *p
			np.Scheme = "http"
			st.netProxy = &np
		}
		if pa := req.Header.Values("Proxy-Authorization"); len(pa) > 0 {
			hdr = st.takeProxyAuth(req, pa)
		}
		if rt.tunnels != nil && req.URL.Scheme == "https" {
			st.gateKey = hostKey(req.URL)
			pr, err := rt.tunnels.enter(req.Context(), st.gateKey)
			if err != nil {
				if req.Body != nil {
					req.Body.Close()
				}
				return nil, err
			}
			if pr != nil {
				st.probe = pr
				defer pr.done()
			}
		}
	}

	ctx := context.WithValue(req.Context(), stateKey{}, st)
	wireTo, _ := observerFrom(ctx).(WireObserver)
	if rt.maxConnRequests > 0 && hdr == nil {
		// The request may get "Connection: close"; the caller's header map
		// must stay untouched.
		hdr = req.Header.Clone()
		if hdr == nil {
			hdr = make(http.Header)
		}
	}
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		// Runs on the dial goroutine once net/http's TLS handshake with the
		// target is over: the connection is ready, the connect deadline ends.
		TLSHandshakeDone: func(tls.ConnectionState, error) {
			if st.proxyTLS.Load() {
				return
			}
			if c := st.conn.Load(); c != nil {
				c.disarm()
			}
		},
		GotConn: func(info httptrace.GotConnInfo) {
			st.gotConn.Store(true)
			if tc := trackedOf(info.Conn); tc != nil && !IsHTTP2(info.Conn) {
				tc.takeWire(wireTo)
			}
			if st.gateKey != "" {
				rt.tunnels.conn(st.gateKey, info.Conn, st.probe)
			}
			n := rt.gotConn(info, hdr, req.Header["Connection"])
			st.firstUse.Store(n == 1 || n == 0 && !info.Reused)
		},
		GotFirstResponseByte: func() { st.answered.Store(true) },
	})
	r2 := req.WithContext(ctx)
	if hdr != nil {
		r2.Header = hdr
	}
	tr := rt.base
	if p != nil && !isSOCKS(p) && req.URL.Scheme == "http" {
		tr = rt.fwd
	}
	resp, err := tr.RoundTrip(r2)
	if err != nil {
		if he := headError(err, rt.maxHeaderBytes, rt.maxHeaderText); he != nil {
			return nil, he
		}
		if st.proxy != nil {
			err = maskSent(st.proxyFailure(req.Context(), err), st.proxy)
		}
		return nil, err
	}
	if err := rt.checkH2Head(resp); err != nil {
		return nil, err
	}
	resp.Request = req
	if isRedirect(resp.StatusCode) {
		if err := checkLocation(req, resp, rt.followRedirects); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

func isRedirect(code int) bool { return code >= 300 && code < 400 }

// takeProxyAuth handles a Proxy-Authorization header that the caller set
// on a request that goes through a proxy. The header is the proxy's, and
// like curl's -H it replaces the credentials of the proxy URL: on a plain-
// http request forwarded by an HTTP(S) proxy it stays, and on a CONNECT it
// is sent with the CONNECT request. It never reaches the target, inside a
// tunnel or through a SOCKS proxy, which has no use for it. It returns the
// request's headers without it when it must come off, else nil.
func (st *reqState) takeProxyAuth(req *http.Request, pa []string) http.Header {
	if !isSOCKS(st.proxy) {
		np := *st.netProxy
		np.User = nil
		st.netProxy = &np
		if req.URL.Scheme == "http" {
			return nil
		}
		st.proxyAuth = pa
	}
	hdr := req.Header.Clone()
	hdr.Del("Proxy-Authorization")
	return hdr
}

// gotConn runs on the request's goroutine after net/http picked the
// connection and before the request is written, so hdr can still change.
// orig is the caller's Connection header. It returns how many requests
// the connection has been handed, this one included; 0 for a connection
// this package did not dial.
func (rt *roundTripper) gotConn(info httptrace.GotConnInfo, hdr http.Header, orig []string) int64 {
	tc := trackedOf(info.Conn)
	if tc == nil {
		return 0
	}
	// Normally disarmed already; this covers a connection another request
	// dialed.
	tc.disarm()
	n := tc.requests.Add(1)
	if rt.maxConnRequests <= 0 {
		return n
	}
	switch {
	case n >= int64(rt.maxConnRequests):
		// The last request a connection may carry asks for it to be closed
		// afterwards; HTTP/2 takes this to mean "no new streams".
		hdr.Set("Connection", "close")
	case orig != nil:
		// net/http may retry a request on another connection.
		hdr["Connection"] = append([]string(nil), orig...)
	default:
		hdr.Del("Connection")
	}
	if n > int64(rt.maxConnRequests) && !IsHTTP2(info.Conn) {
		// The server kept the connection open although asked to close it:
		// fail the write so that net/http retries on a new connection.
		tc.retired.Store(true)
	}
	return n
}

// CloseIdleConnections closes the connections that carry no request.
func (rt *roundTripper) CloseIdleConnections() {
	rt.base.CloseIdleConnections()
	if rt.h1 != nil {
		rt.h1.CloseIdleConnections()
	}
	if rt.fwd != rt.base {
		rt.fwd.CloseIdleConnections()
	}
	if rt.h2 != nil {
		rt.h2.CloseIdleConnections()
	}
	if rt.pool != nil {
		rt.pool.closeIdle()
	}
}

// proxyFailure turns an error that arose at the proxy into a *ProxyError:
// one the dialer already made, a dial or TLS failure that net/http reports
// as a "proxyconnect" *net.OpError, a broken CONNECT exchange, or a
// forwarded request that got no HTTP answer (see forwardFailure).
func (st *reqState) proxyFailure(ctx context.Context, err error) error {
	var pe *ProxyError
	if errors.As(err, &pe) {
		return pe
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "proxyconnect" {
		return &ProxyError{Proxy: st.proxyName, Err: oe.Err}
	}
	if !st.gotConn.Load() && st.connecting.Load() && ctx.Err() == nil {
		return &ProxyError{Proxy: st.proxyName, Err: fmt.Errorf("CONNECT failed: %w", err)}
	}
	if st.target == "http" && !isSOCKS(st.proxy) && st.gotConn.Load() && ctx.Err() == nil {
		if pe := st.forwardFailure(err); pe != nil {
			return pe
		}
	}
	return err
}

// forwardFailure returns the *ProxyError of a plain-http request that an
// HTTP(S) proxy was to forward, when the proxy's connection yielded no
// HTTP response at all: its first line is no status line, or the proxy
// closed or reset a connection that had carried no response before any
// byte of an answer. No target's answer can look like that through a
// proxy, which sends a response of its own (a 502, say) when the target
// fails. A connection that carried a response before may have been closed
// as idle, which is no failure of the proxy. It returns nil otherwise.
func (st *reqState) forwardFailure(err error) *ProxyError {
	if line := statusLineError(err); line != nil {
		return &ProxyError{Proxy: st.proxyName, Err: fmt.Errorf("no HTTP answer: %w", line)}
	}
	if st.answered.Load() || !st.firstUse.Load() {
		return nil
	}
	var oe *net.OpError
	switch {
	case errors.Is(err, io.EOF) || strings.Contains(err.Error(), "server closed idle connection"):
		// net/http's errServerClosedIdle (transport.go, unexported): the
		// proxy closed the connection before the request was written.
		return &ProxyError{Proxy: st.proxyName, Err: errors.New("closed the connection without answering")}
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE):
		cause := err
		if errors.As(err, &oe) {
			cause = oe
		}
		return &ProxyError{Proxy: st.proxyName, Err: fmt.Errorf("broke the connection without answering: %w", cause)}
	}
	return nil
}

// statusLineError returns the error by which net/http refused the first
// line of a response, nil for another error. net/http makes it with an
// unexported type whose text is fixed (response.go: "malformed HTTP
// response", "malformed HTTP version", "malformed HTTP status code") and
// wraps it in "transport connection broken".
func statusLineError(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if errors.Unwrap(e) != nil {
			continue
		}
		for _, prefix := range [...]string{"malformed HTTP response ", "malformed HTTP version ", "malformed HTTP status code "} {
			if strings.HasPrefix(e.Error(), prefix) {
				return e
			}
		}
	}
	return nil
}

// httpProxyOf is the Transport's Proxy function: net/http itself speaks to
// HTTP and HTTPS proxies (forwarding or CONNECT); SOCKS proxies are the
// dialer's.
func httpProxyOf(req *http.Request) (*url.URL, error) {
	st := stateFrom(req.Context())
	if st == nil || st.proxy == nil || isSOCKS(st.proxy) {
		return nil, nil
	}
	return st.netProxy, nil
}

// connectStarting is the Transport's GetProxyConnectHeader: net/http calls it
// just before writing CONNECT. It hands on a Proxy-Authorization header the
// caller set (see takeProxyAuth); otherwise the nil header keeps net/http's
// defaults, with Proxy-Authorization from the proxy URL's user info.
func connectStarting(ctx context.Context, _ *url.URL, _ string) (http.Header, error) {
	st := stateFrom(ctx)
	if st == nil {
		return nil, nil
	}
	st.connecting.Store(true)
	if st.proxyAuth != nil {
		return http.Header{"Proxy-Authorization": st.proxyAuth}, nil
	}
	return nil, nil
}

// connectAnswered is the Transport's OnProxyConnectResponse. A refusal
// other than 200 is a *ProxyError. It puts the failure down to the target
// (TargetUnreachable) when the proxy answered for that destination: a 5xx
// (it could not reach it) or a 4xx other than those about the proxy itself,
// 407 and 401 (its credentials) and 429 (its own limit), such as the 403 of
// a proxy whose policy bans that host or port.
func connectAnswered(ctx context.Context, proxyURL *url.URL, _ *http.Request, res *http.Response) error {
	name := secret.URLOf(proxyURL)
	if st := stateFrom(ctx); st != nil {
		st.connecting.Store(false)
		name = st.proxyName
	}
	if res.StatusCode != http.StatusOK {
		code := res.StatusCode
		ownRefusal := code == http.StatusProxyAuthRequired || code == http.StatusUnauthorized || code == http.StatusTooManyRequests
		return &ProxyError{
			Proxy: name, Err: fmt.Errorf("CONNECT answered %s", res.Status),
			TargetUnreachable: code >= 400 && code <= 599 && !ownRefusal,
		}
	}
	return nil
}
