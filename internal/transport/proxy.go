package transport

import (
	"bufio"
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
