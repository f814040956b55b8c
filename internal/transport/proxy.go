package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/fetchctl/fetchctl/internal/secret"
	"golang.org/x/net/http/httpproxy"
	"golang.org/x/net/proxy"
)

// ProxyError is a failure at a proxy: the proxy could not be reached or its
// TLS handshake failed, it answered CONNECT with a status other than 200, the
// CONNECT exchange broke off, or the SOCKS5 handshake failed (bad
// credentials, or the proxy refused to connect to the target). Proxy is the
// proxy's URL with its password as ***.
//
// Callers that do not import this package find it with errors.As on an
// interface{ ErrorKind() string }. Err is the underlying failure and should
// be set; the zero value reads as an unspecified proxy failure.
type ProxyError struct {
	Proxy string
	Err   error
	// TargetUnreachable says that the proxy works and answered for itself
	// that it could not reach the target, or will not for this target:
	// CONNECT answered with a 5xx status (502 Bad Gateway, tinyproxy's 500
	// Unable to connect...) or a 4xx other than 401, 407 and 429 (the 403
	// of a rule that bans a host or port), or a SOCKS5 reply of network or
	// host unreachable, connection refused, TTL expired or connection not
	// allowed by ruleset. The failure is then the target's, not the
	// proxy's.
	TargetUnreachable bool
}

func (e *ProxyError) Error() string {
	if e.Err == nil {
		return "proxy " + e.Proxy + ": failed"
	}
	return "proxy " + e.Proxy + ": " + e.Err.Error()
}

// Unwrap returns the underlying failure.
func (e *ProxyError) Unwrap() error { return e.Err }

// ErrorKind returns "proxy", the contract's error kind.
func (e *ProxyError) ErrorKind() string { return "proxy" }

// maskSent hides in a failure through proxy the credentials the transport
// sent it (see [secret.UserInfo]): the proxy's answer may quote them (its
// status line, a malformed header line), and a password filled in from a
// session template is known to this transport alone. The error keeps its
// chain.
func maskSent(err error, proxy *url.URL) error {
	if err == nil {
		return nil
	}
	creds := secret.UserInfo(proxy)
	if len(creds) == 0 {
		return err
	}
	var pe *ProxyError
	if errors.As(err, &pe) && pe.Err != nil {
		if text, masked := pe.Err.Error(), secret.Text(pe.Err.Error(), creds...); masked != text {
			pe.Err = &maskedError{text: masked, err: pe.Err}
		}
		return err
	}
	if text, masked := err.Error(), secret.Text(err.Error(), creds...); masked != text {
		return &maskedError{text: masked, err: err}
	}
	return err
}

// maskedError is err with its text masked.
type maskedError struct {
	text string
	err  error
}

func (e *maskedError) Error() string { return e.text }
func (e *maskedError) Unwrap() error { return e.err }

// ParseProxy parses one proxy URL: http://, https://, socks5:// or socks5h://,
// with optional user:pass@ credentials. A URL without a scheme is taken as
// http://. A missing port means the scheme's default (80, 443, 1080). Errors
// name the proxy with its password as ***. A session placeholder in the user
// info, {session} or {session:N}, is kept in the user name or password.
func ParseProxy(raw string) (*url.URL, error) {
	return parseProxy(raw)
}

func parseProxy(raw string) (*url.URL, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return nil, errors.New("empty proxy URL")
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	if placeholderOutsideUserInfo(s) {
		return nil, fmt.Errorf("proxy %s: {session} goes only in the user name or password", secret.URL(s))
	}
	// A session placeholder, {session} or {session:N} in the user info, is
	// kept as written: braces are no user-info characters, and the colon
	// must not end a user name, so they are escaped.
	s = strings.NewReplacer("{session:", "%7Bsession%3A", "{", "%7B", "}", "%7D").Replace(s)
	u, err := url.Parse(s)
	if err != nil {
		// url's own message may quote the password; it is only shown when
		// there are no credentials to leak.
		var ue *url.Error
		if strings.Contains(s, "@") || !errors.As(err, &ue) {
			return nil, fmt.Errorf("proxy %s: not a valid URL", secret.URL(s))
		}
		return nil, fmt.Errorf("proxy %s: not a valid URL: %v", s, ue.Err)
	}
	if err := checkProxyURL(u); err != nil {
		return nil, err
	}
	if u.Path == "/" {
		u.Path, u.RawPath = "", ""
	}
	return u, nil
}

// placeholderOutsideUserInfo reports whether a session placeholder, or
// what starts one, stands in s (a URL with a scheme) past its user info:
// in the host, port, path or query, where it would not be filled in.
func placeholderOutsideUserInfo(s string) bool {
	_, rest, _ := strings.Cut(s, "://")
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	past := rest
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		past = rest[i+1:]
	}
	return strings.Contains(past, "{session")
}

// checkProxyURL reports what makes u unusable as a proxy.
func checkProxyURL(u *url.URL) error {
	name := secret.URLOf(u)
	switch u.Scheme {
	case "http", "https", "socks5", "socks5h":
	default:
		return fmt.Errorf("proxy %s: unsupported scheme %q (want http, https, socks5 or socks5h)", name, u.Scheme)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("proxy %s: no host", name)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("proxy %s: invalid port %q", name, p)
		}
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return fmt.Errorf("proxy %s: a proxy URL has no path, query or fragment", name)
	}
	return nil
}

// ProxyLine is a proxy of a proxy file: the line that names it first and
// the later lines that name it again (see [ReadProxyFile]).
type ProxyLine struct {
	URL     *url.URL
	Line    int
	Repeats []int
}

// ReadProxyFile reads proxies, one a line, as [ParseProxy] parses them.
// Surrounding white space is trimmed; blank lines and lines starting with #
// are skipped. A line that names a proxy an earlier line names (the same
// scheme, host, port, user name and password; a session placeholder read
// as written) adds no proxy: it is in the Repeats of the first. Errors name
// the line number. A file with no proxy is an error.
func ReadProxyFile(r io.Reader) ([]ProxyLine, error) {
	br := bufio.NewReader(r)
	var (
		proxies []ProxyLine
		seen    = map[string]int{} // proxyKey -> index in proxies
		line    int
	)
	for {
		s, err := br.ReadString('\n')
		if s != "" {
			line++
			if line == 1 {
				s = strings.TrimPrefix(s, "\uFEFF")
			}
			s = strings.TrimSpace(s)
			if s != "" && !strings.HasPrefix(s, "#") {
				u, perr := parseProxy(s)
				if perr != nil {
					return nil, fmt.Errorf("line %d: %w", line, perr)
				}
				key := proxyKey(u)
				if i, ok := seen[key]; ok {
					proxies[i].Repeats = append(proxies[i].Repeats, line)
				} else {
					seen[key] = len(proxies)
					proxies = append(proxies, ProxyLine{URL: u, Line: line})
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read: %w", err)
		}
	}
	if len(proxies) == 0 {
		return nil, errors.New("holds no proxy")
	}
	return proxies, nil
}

// proxyKey is what tells proxies apart: the scheme, the host (case aside,
// an IP address in its canonical form), the port (the scheme's default
// when none is given), and the user name and password as they are sent.
// An empty password is no password.
func proxyKey(u *url.URL) string {
	host := strings.ToLower(u.Hostname())
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.String()
	}
	_, port, _ := net.SplitHostPort(proxyAddr(u))
	var user, pw string
	if u.User != nil {
		user = u.User.Username()
		pw, _ = u.User.Password()
	}
	// Quoted, so that no user name or password can pass for another split.
	return strconv.Quote(strings.ToLower(u.Scheme)) + strconv.Quote(net.JoinHostPort(host, port)) + strconv.Quote(user) + strconv.Quote(pw)
}

func isSOCKS(u *url.URL) bool { return u.Scheme == "socks5" || u.Scheme == "socks5h" }

// proxySelector returns the function that picks a request's proxy, or nil
// when no request is proxied.
func proxySelector(opts Options) (func(*url.URL) (*url.URL, error), error) {
	if opts.Proxy != nil {
		p := opts.Proxy
		// Unlike NO_PROXY rules, an explicit proxy carries loopback targets too.
		return func(*url.URL) (*url.URL, error) { return p, nil }, nil
	}
	if !opts.ProxyFromEnv {
		return nil, nil
	}
	cfg := httpproxy.FromEnvironment()
	if cfg.HTTPProxy == "" && cfg.HTTPSProxy == "" {
		return nil, nil
	}
	// Checked here so that a bad variable is a setup error with the password
	// masked, not a per-request error quoting it.
	// httpproxy is then handed each proxy as parseProxy read it (a missing
	// scheme added, a {session} placeholder escaped), since its own parser
	// reads a user name with braces as a host name.
	for _, v := range []struct {
		name  string
		value *string
	}{
		{"HTTP_PROXY", &cfg.HTTPProxy}, {"HTTPS_PROXY", &cfg.HTTPSProxy},
	} {
		if *v.value == "" {
			continue
		}
		u, err := parseProxy(*v.value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v.name, err)
		}
		*v.value = u.String()
	}
	pf := cfg.ProxyFunc()
	return func(u *url.URL) (*url.URL, error) {
		p, err := pf(u)
		if err != nil {
			return nil, errors.New("the proxy set in the environment is not a valid URL")
		}
		return p, nil
	}, nil
}

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

// proxyAddr is the proxy's host:port, with the scheme's default port.
func proxyAddr(p *url.URL) string {
	port := p.Port()
	if port == "" {
		switch p.Scheme {
		case "https":
			port = "443"
		case "socks5", "socks5h":
			port = "1080"
		default:
			port = "80"
		}
	}
	return net.JoinHostPort(p.Hostname(), port)
}

// dialFunc adapts a dial function to proxy.Dialer and proxy.ContextDialer.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func (f dialFunc) Dial(network, addr string) (net.Conn, error) {
	return f(context.Background(), network, addr)
}

func (f dialFunc) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return f(ctx, network, addr)
}
