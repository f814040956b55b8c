package transport

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/fetchctl/fetchctl/internal/secret"
)

// RedirectError is a redirect that was not followed because the Location of
// a 3xx response did not parse, named a scheme other than http and https,
// named no host, or named a port outside 1 to 65535.
// It reaches the caller wrapped in a *url.Error. Its ErrorKind method
// returns "redirect"; its message shows no password.
type RedirectError struct {
	// Response is the 3xx response that asked for the redirect, its body
	// closed. Response.Request is the request it answered.
	Response *http.Response

	msg string
}

func (e *RedirectError) Error() string { return e.msg }

// ErrorKind names the contract's error kind of a redirect not followed.
func (*RedirectError) ErrorKind() string { return "redirect" }

// credentials are the request headers that go to the origin of the URL as
// given and, unless Options.LocationTrusted, to no other.
var credentials = [...]string{"Authorization", "Cookie", "Proxy-Authorization"}

// checkRedirect is the client's CheckRedirect. Besides the limit it applies
// the credentials rule: net/http's own copies Authorization and Cookie to
// any host of the same name (another port, or https to http, included) and
// to its subdomains, and never back once it has dropped them; curl's rule,
// followed here, sends them to each hop whose origin (scheme, host, port)
// is the first request's. A Host the caller set follows the same rule.
// Redirected requests get a header map of their own from net/http, so the
// caller's stays untouched.
func checkRedirect(opts Options, proxyFor func(*url.URL) (*url.URL, error)) func(*http.Request, []*http.Request) error {
	limit, trusted := opts.MaxRedirects, opts.LocationTrusted
	return func(req *http.Request, via []*http.Request) error {
		if limit == 0 {
			// Following none means the 3xx itself is the final response.
			return http.ErrUseLastResponse
		}
		if len(via) > limit {
			return fmt.Errorf("%w (more than %d)", ErrTooManyRedirects, limit)
		}
		if s := req.URL.Scheme; s != "http" && s != "https" {
			return notFollowed(req, "only http and https are")
		}
		if req.URL.Hostname() == "" {
			// ":80" alone would dial this machine.
			return notFollowed(req, "it names no host")
		}
		if p := req.URL.Port(); p != "" {
			// The parser takes any digits; the dialler, 1 to 65535 only.
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return notFollowed(req, "port "+p+" is out of range: a port is 1 to 65535")
			}
		}
		first := via[0]
		same := sameOrigin(first.URL, req.URL)
		keep := trusted || same
		for _, name := range credentials {
			send := keep
			if name == "Proxy-Authorization" && !send && proxyFor != nil {
				// Through a proxy the header is the proxy's (see
				// takeProxyAuth), wherever the request goes.
				p, err := proxyFor(req.URL)
				send = err == nil && p != nil
			}
			restore(req.Header, first.Header, name, send)
		}
		if u := first.URL.User; keep && u != nil && req.URL.User == nil && req.Header.Get("Authorization") == "" {
			// net/http makes the first request's Authorization from its
			// URL's user info when it sends it, not in its header, and a
			// hop's only from the hop's URL's own (a Location with user
			// info, or a relative one, which inherits it): a hop back at
			// the origin through another had none.
			pw, _ := u.Password()
			req.SetBasicAuth(u.Username(), pw)
		}
		if h := first.Host; h != "" && h != first.URL.Host {
			// A Host the caller set (curl's -H 'Host: name') goes to each
			// hop at the first request's origin, whatever the Location
			// says, and to no other; net/http keeps it for a relative
			// Location alone and drops it at the same origin otherwise.
			req.Host = ""
			if same {
				req.Host = h
			}
		}
		// No Referer of net/http's making: it would hand the previous URL,
		// query and all, to the next host. One the caller set stays.
		restore(req.Header, first.Header, "Referer", true)
		if o, ok := observerFrom(req.Context()).(RedirectObserver); ok {
			o.ObserveRedirect(req.URL)
		}
		return nil
	}
}

// RedirectObserver learns the redirects the client follows for a request
// whose context carries it as its [DialObserver] (see [WithDialObserver]):
// the URL of each hop, before it is requested. A hop that then fails
// before it answers fails the request with net/http's error, which does
// not say that a redirect came first; the observer knows. Calls come from
// the goroutine of the client's Do.
type RedirectObserver interface {
	ObserveRedirect(to *url.URL)
}

func notFollowed(req *http.Request, why string) error {
	return &RedirectError{
		Response: req.Response,
		msg:      fmt.Sprintf("redirect to %s not followed: %s", secret.URLOf(req.URL), why),
	}
}

// restore sets dst's header name to src's when send, or removes it.
func restore(dst, src http.Header, name string, send bool) {
	if v := src[name]; send && len(v) > 0 {
		dst[name] = slices.Clone(v)
		return
	}
	delete(dst, name)
}

// sameOrigin reports whether a and b have the same scheme, host (in any
// case) and port, a missing port being the scheme's default.
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) && portOf(a) == portOf(b)
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "http":
		return "80"
	case "https":
		return "443"
	}
	return ""
}

// checkLocation looks at a response that net/http's client would follow
// (as its redirectBehavior decides) for a Location that does not parse. The
// client would fail such a response with an error that holds the Location,
// password and all, and drop the response. When redirects are followed it
// returns a *RedirectError that keeps the response instead; when they are
// not, it removes the Location, so that the 3xx is the final response as
// any other is then. It returns nil for every other response.
func checkLocation(req *http.Request, resp *http.Response, follow bool) error {
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther:
	case http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		if req.GetBody == nil && req.Body != nil && req.Body != http.NoBody {
			// net/http cannot send the body again, so it does not follow.
			return nil
		}
	default:
		return nil
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return nil
	}
	_, err := req.URL.Parse(loc)
	if err == nil {
		return nil
	}
	if !follow {
		resp.Header.Del("Location")
		return nil
	}
	// As net/http does with a redirect's body: read a little, so that a
	// small one leaves the connection reusable.
	const maxBodySlurp = 2 << 10
	if resp.ContentLength == -1 || resp.ContentLength <= maxBodySlurp {
		io.CopyN(io.Discard, resp.Body, maxBodySlurp)
	}
	resp.Body.Close()
	return &RedirectError{Response: resp, msg: invalidLocation(loc, err)}
}

// invalidLocation says that loc did not parse. The parser's complaint is
// added only when loc holds no password: it may quote a piece of one (a
// password with a "/" in it reads as a port, say).
func invalidLocation(loc string, err error) string {
	shown := secret.URL(loc)
	msg := fmt.Sprintf("redirect not followed: Location %q is not a valid URL", shown)
	var ue *url.Error
	if shown == loc && errors.As(err, &ue) {
		msg += ": " + ue.Err.Error()
	}
	return msg
}
