// Package routes owns proxy policy: from the proxy settings and the
// environment it builds the ready ways out a run spreads its requests over
// ([runner.Route] values), one per proxy or one direct. It decides which
// proxy carries a request, when a proxy's answer is its own refusal rather
// than the target's (the 407/401 rule), how many requests and idle
// connections each route may hold within the open-file limit, and how a
// proxy is named in records (password masked).
package routes

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/http/httpproxy"

	"github.com/fetchctl/fetchctl/internal/runner"
	"github.com/fetchctl/fetchctl/internal/secret"
	"github.com/fetchctl/fetchctl/internal/transport"
)

// Options are what [Build] needs.
type Options struct {
	// Proxies are --proxy-file's, or --proxy alone; none is direct, or
	// through the environment's proxies when Transport.ProxyFromEnv is set.
	Proxies []*url.URL
	// Transport is the transport every route starts from.
	Transport transport.Options
	// Limit is the requests in flight in total, over all routes, that the
	// settings ask for.
	Limit int
	// PerProxy is the requests in flight through one proxy that the
	// settings ask for; 0 is Limit. A direct route ignores it.
	PerProxy int
	// Getenv reads HTTP_PROXY, HTTPS_PROXY and NO_PROXY.
	Getenv func(string) string
	// OpenFiles is the open-file limit, 0 for unknown (no budget).
	OpenFiles uint64
	// Session says when the session of a proxy URL with a {session}
	// placeholder is renewed; SessionTTL bounds a session's life (0: no
	// bound).
	Session    SessionMode
	SessionTTL time.Duration
}

// Plan is the routes of a run and the limits they hold.
type Plan struct {
	Routes []runner.Route
	// Limit is the requests in flight in total: Options.Limit, lowered
	// when the open-file limit cannot hold it.
	Limit int
	// PerRoute is the requests in flight through one route: PerProxy, at
	// most Limit, for a route through a proxy; Limit for a direct one.
	PerRoute int
	// Proxies is the number of proxies the routes go through: those given,
	// 1 for the environment's, 0 for a direct run.
	Proxies int
	// KeptAlive is how many of the proxies keep idle connections between
	// requests (see [keptAlive]).
	KeptAlive int
	// Notice, when not "", says in one line why the limit was lowered and
	// how to raise the open-file limit.
	Notice string
}

// Build returns the run's routes: one client per proxy, or one direct
// client, each within its share of the open-file limit.
func Build(o Options) (*Plan, error) {
	kept := keptAlive(max(1, len(o.Proxies)), o.Limit, o.Transport.MaxIdle)
	limit, idle, notice := fitOpenFiles(o.OpenFiles, o.Limit, kept, o.Transport.MaxIdle)
	getenv := o.Getenv
	fromEnv := len(o.Proxies) == 0 && o.Transport.ProxyFromEnv && envHasProxy(getenv)
	perRoute := limit
	if (len(o.Proxies) > 0 || fromEnv) && o.PerProxy > 0 {
		perRoute = min(o.PerProxy, limit)
	}
	t := o.Transport
	t.InFlight = perRoute
	t.IdleBudget = idle
	plan := &Plan{Limit: limit, PerRoute: perRoute, Proxies: len(o.Proxies), KeptAlive: kept, Notice: notice}
	if fromEnv {
		plan.Proxies = 1
	}
	if plan.Proxies == 0 {
		plan.KeptAlive = 0
	}
	if len(o.Proxies) > 0 {
		return plan, proxyRoutes(plan, o, proxied(t, perRoute))
	}
	if o.Session.On() {
		return nil, errors.New("--session needs a proxy URL with {session} in its user name or password")
	}
	if fromEnv && (getenv("HTTP_PROXY") != "" || getenv("http_proxy") != "") {
		t = proxied(t, perRoute)
	}
	c, err := transport.New(t)
	if err != nil {
		return nil, err
	}
	r := runner.Route{Client: c}
	if fromEnv {
		proxyFor := envProxy(getenv)
		r.Client = authCheck{next: c, proxyFor: proxyFor}
		r.ProxyFor = proxyFor
	}
	plan.Routes = []runner.Route{r}
	return plan, nil
}

// keptAlive is how many of a run's proxies keep idle connections between
// requests: every one up to limit + maxIdle of them, the first that many
// beyond. Each proxy has its own pool, and an idle connection costs its
// buffers and two goroutines, so a list of thousands would otherwise hold
// thousands of connections while only limit requests are in flight: the
// run's memory would grow with the list. The other proxies open a
// connection per request.
func keptAlive(proxies, limit, maxIdle int) int {
	return min(proxies, max(1, limit+maxIdle))
}

// proxyRoutes adds one route per proxy to plan.
func proxyRoutes(plan *Plan, o Options, t transport.Options) error {
	t.Shared = transport.NewShared(t)
	templates := 0
	for i, p := range o.Proxies {
		name := proxyName(p)
		var c runner.Doer
		var keepHost time.Duration
		if HasSession(p) {
			templates++
			if !o.Session.On() {
				return fmt.Errorf("proxy %s holds {session}: say when a session is renewed with --session host, url or a number of requests", name)
			}
			if err := checkTemplate(p); err != nil {
				return fmt.Errorf("proxy %s: %w", name, err)
			}
			c = newSessions(p, o.Session, o.SessionTTL, t)
			if o.Session.PerHost {
				// A host's session lives on this proxy: the host stays
				// on it, at most for as long as an idle session lasts.
				keepHost = sessionIdle
			}
		} else {
			pt := t
			pt.Proxy = p
			pt.ProxyFromEnv = false
			if i >= plan.KeptAlive {
				pt.KeepAlive = 0
			}
			client, err := transport.New(pt)
			if err != nil {
				return err
			}
			c = client
			if pt.KeepAlive == 0 {
				c = closing{next: client}
			}
		}
		plan.Routes = append(plan.Routes, runner.Route{
			Proxy:    name,
			Client:   authCheck{next: c, proxyFor: func(*url.URL) string { return name }},
			KeepHost: keepHost,
		})
	}
	if o.Session.On() && templates == 0 {
		return errors.New("--session needs a proxy URL with {session} in its user name or password")
	}
	return nil
}

// proxyName is how records name a proxy: its URL with the password masked
// and a session placeholder as written.
func proxyName(p *url.URL) string {
	return strings.NewReplacer("%7Bsession%3A", "{session:", "%7B", "{", "%7D", "}").Replace(secret.URLOf(p))
}

// proxied adapts transport options to a client whose requests go through a
// proxy. Plain-http requests through an HTTP proxy share the connections to
// the proxy whatever their target, and net/http counts those as one host:
// its per-host cap must be the route's whole limit (perRoute, what the
// dispatcher lets through one proxy), or a proxy would carry only
// --per-host requests at once. The dispatcher still holds --per-host for
// each target, over all proxies.
func proxied(o transport.Options, perRoute int) transport.Options {
	o.PerHost = max(o.PerHost, perRoute)
	return o
}

// closing marks every response of a client whose keep-alive is off as
// closing its connection, so that nothing waits for the connection to go
// back to a pool it never joins.
type closing struct{ next runner.Doer }

func (c closing) Do(req *http.Request) (*http.Response, error) {
	resp, err := c.next.Do(req)
	if resp != nil {
		resp.Close = true
	}
	return resp, err
}

// authCheck makes a proxy's refusal of a forwarded plain-http request a
// proxy failure, as a refused CONNECT already is: a 407, or a 401 that
// carries a Proxy-Authenticate challenge. A 401 with only WWW-Authenticate
// is the target's answer (or, indistinguishably, that of a proxy that gets
// the status wrong, as tinyproxy 1.11 does) and stays a response.
type authCheck struct {
	next runner.Doer
	// proxyFor names the proxy (masked) that carries a request for the URL,
	// "" for none.
	proxyFor func(*url.URL) string
}

func (c authCheck) Do(req *http.Request) (*http.Response, error) {
	resp, err := c.next.Do(req)
	if err != nil {
		return resp, err
	}
	refused := resp.StatusCode == http.StatusProxyAuthRequired ||
		resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("Proxy-Authenticate") != ""
	if !refused {
		return resp, nil
	}
	u := req.URL
	if resp.Request != nil && resp.Request.URL != nil {
		u = resp.Request.URL
	}
	name := c.proxyFor(u)
	if name == "" {
		return resp, nil
	}
	resp.Body.Close()
	return nil, &transport.ProxyError{Proxy: name, Err: fmt.Errorf("answered %s", resp.Status)}
}

// Rotate passes a block on to a client with sessions (see
// [runner.Rotator]); a plain proxy has no fresh exit to give.
func (c authCheck) Rotate(host string) bool {
	if r, ok := c.next.(runner.Rotator); ok {
		return r.Rotate(host)
	}
	return false
}

// envHasProxy reports whether the environment names a proxy for http or
// https targets.
func envHasProxy(getenv func(string) string) bool {
	for _, name := range [...]string{"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"} {
		if getenv(name) != "" {
			return true
		}
	}
	return false
}

// envProxy returns which proxy, by HTTPS_PROXY, HTTP_PROXY and NO_PROXY (as
// the transport reads them), carries a request for a URL, masked.
func envProxy(getenv func(string) string) func(*url.URL) string {
	// The lower-case name wins, as in httpproxy.FromEnvironment.
	either := func(lower, upper string) string {
		if v := getenv(lower); v != "" {
			return v
		}
		return getenv(upper)
	}
	pf := (&httpproxy.Config{
		HTTPProxy:  either("http_proxy", "HTTP_PROXY"),
		HTTPSProxy: either("https_proxy", "HTTPS_PROXY"),
		NoProxy:    either("no_proxy", "NO_PROXY"),
		CGI:        getenv("REQUEST_METHOD") != "",
	}).ProxyFunc()
	return func(u *url.URL) string {
		p, err := pf(u)
		if err != nil || p == nil {
			return ""
		}
		return secret.URLOf(p)
	}
}

// fdReserve is kept free for the inputs, the output, body files, DNS and
// the runtime.
const fdReserve = 64

// fitOpenFiles lowers the limit when the open-file limit cannot hold the
// connections it needs (one per request in flight, limit of them over all
// routes together, plus maxIdle idle ones), so a run never fails with
// EMFILE half-way. routes counts those that keep idle connections. It
// returns the limit to use, the open files each of them may keep in its
// idle pool (what the requests in flight leave, shared by the routes; 0
// when the open-file limit is unknown), and a one-line notice when it had
// to lower the limit.
func fitOpenFiles(fdLimit uint64, limit, routes, maxIdle int) (int, int, string) {
	if fdLimit == 0 || routes < 1 {
		return limit, 0, ""
	}
	budget := func(l int) int {
		return max((int(fdLimit)-fdReserve-l)/routes, 1)
	}
	need := uint64(limit+maxIdle) + fdReserve
	if need <= fdLimit {
		return limit, budget(limit), ""
	}
	lowered := max(int(fdLimit)-fdReserve-maxIdle, 1)
	return lowered, budget(lowered), fmt.Sprintf("open-file limit is %d, too low for --limit %d and %d idle connections; using --limit %d (raise it with 'ulimit -n')",
		fdLimit, limit, maxIdle, lowered)
}
