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
	"slices"
	"strings"
	"time"

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
	// MaxIdle is the idle connections kept: Options.Transport.MaxIdle,
	// lowered when the open-file limit cannot hold it even with a Limit
	// of a few.
	MaxIdle int
	// PerRoute is the requests in flight through one route: PerProxy, at
	// most Limit, for a route through a proxy; Limit for a direct one.
	PerRoute int
	// Proxies is the number of proxies the routes go through: those given,
	// the distinct ones of the environment, 0 for a direct run.
	Proxies int
	// EnvProxies, when the routes go through the environment's proxies,
	// names each by the variable that set it (as set: HTTPS_PROXY or
	// https_proxy), password masked. They share one route, so PerRoute
	// holds for them together.
	EnvProxies map[string]string
	// KeptAlive is how many of the proxies keep idle connections between
	// requests (see [keptAlive]).
	KeptAlive int
	// Secrets are the fixed parts of the passwords of the environment's
	// session templates (see [TemplateSecrets]): only Build reads those
	// proxies, and a message could show the filled passwords.
	Secrets []string
	// Notice, when not "", says in one line why the limit was lowered and
	// how to raise the open-file limit.
	Notice string
	// Settle, nil for a direct run, closes the connections through the
	// proxies that no request took, once the run is done with them, so
	// that their bytes count (see transport.Shared.CloseUntaken).
	Settle func()
}

// Build returns the run's routes: one client per proxy, or one direct
// client, each within its share of the open-file limit.
func Build(o Options) (*Plan, error) {
	kept := keptAlive(max(1, len(o.Proxies)), o.Limit, o.Transport.MaxIdle)
	limit, maxIdle, idle, notice := fitOpenFiles(o.OpenFiles, o.Limit, kept, o.Transport.MaxIdle)
	if limit < o.Limit || maxIdle < o.Transport.MaxIdle {
		// The proxies kept alive follow the limits in force, and share
		// what they leave of the open files. Each one kept alive may hold
		// an idle connection: when the idle connections had to be lowered,
		// no more of them than those.
		kept = keptAlive(max(1, len(o.Proxies)), limit, maxIdle)
		if maxIdle < o.Transport.MaxIdle {
			kept = min(kept, max(maxIdle, 1))
		}
		_, _, idle, _ = fitOpenFiles(o.OpenFiles, limit, kept, maxIdle)
	}
	getenv := o.Getenv
	fromEnv := len(o.Proxies) == 0 && o.Transport.ProxyFromEnv && envHasProxy(getenv)
	perRoute := limit
	if (len(o.Proxies) > 0 || fromEnv) && o.PerProxy > 0 {
		perRoute = min(o.PerProxy, limit)
	}
	t := o.Transport
	t.MaxIdle = maxIdle
	t.InFlight = perRoute
	t.IdleBudget = idle
	plan := &Plan{Limit: limit, MaxIdle: maxIdle, PerRoute: perRoute, Proxies: len(o.Proxies), KeptAlive: kept, Notice: notice}
	if fromEnv {
		plan.Proxies = 1
	}
	if plan.Proxies == 0 {
		plan.KeptAlive = 0
	}
	if len(o.Proxies) > 0 {
		return plan, proxyRoutes(plan, o, proxied(t, perRoute))
	}
	// The environment is read through getenv alone, never by the transport.
	t.ProxyFromEnv = false
	if fromEnv {
		env, err := readEnvProxies(getenv)
		if err != nil {
			return nil, err
		}
		plan.Proxies = len(env.list())
		plan.KeptAlive = plan.Proxies
		plan.EnvProxies = env.shown()
		return plan, envRoutes(plan, o, t, env)
	}
	if o.Session.On() {
		return nil, errNoTemplate
	}
	c, err := transport.New(t)
	if err != nil {
		return nil, err
	}
	plan.Routes = []runner.Route{{Client: c}}
	return plan, nil
}

var errNoTemplate = errors.New("--session needs a proxy URL with {session} in its user name or password")

// envRoutes adds the one route of the environment's proxies to plan: each
// proxy gets the client --proxy would give it, and requests that no proxy
// carries go direct.
func envRoutes(plan *Plan, o Options, t transport.Options, env *envProxies) error {
	t.Shared = transport.NewShared(t)
	plan.Settle = t.Shared.CloseUntaken
	r := envRoute{env: env, via: map[*url.URL]runner.Doer{}}
	templates := 0
	sentTo := map[*url.URL][]string{}
	for _, p := range env.list() {
		sentTo[p] = secret.UserInfo(p)
		c, template, err := proxyClient(p, o, proxied(t, plan.PerRoute), true)
		if err != nil {
			return fmt.Errorf("%s: %w", env.variable(p), err)
		}
		if template {
			templates++
		}
		r.via[p] = c
		plan.Secrets = append(plan.Secrets, TemplateSecrets(p)...)
	}
	if o.Session.On() && templates == 0 {
		return errNoTemplate
	}
	direct, err := transport.New(t)
	if err != nil {
		return err
	}
	r.direct = direct
	sent := func(u *url.URL) []string { return sentTo[env.pick(u)] }
	plan.Routes = []runner.Route{{Client: authCheck{next: r, proxyFor: env.name, sent: sent}, ProxyFor: env.name}}
	return nil
}

// proxyClient returns the client of one proxy: sessions for a {session}
// template, else a client through it that keeps idle connections when
// keepAlive says so. template reports which.
func proxyClient(p *url.URL, o Options, t transport.Options, keepAlive bool) (c runner.Doer, template bool, err error) {
	if err := CheckProxy(p, o.Session); err != nil {
		return nil, HasSession(p), err
	}
	if HasSession(p) {
		return newSessions(p, o.Session, o.SessionTTL, t), true, nil
	}
	pt := t
	pt.Proxy = p
	pt.ProxyFromEnv = false
	if !keepAlive {
		pt.KeepAlive = 0
	}
	client, err := transport.New(pt)
	if err != nil {
		return nil, false, err
	}
	if pt.KeepAlive == 0 {
		return closing{next: client}, false, nil
	}
	return client, false, nil
}

// CheckProxy returns what keeps proxy p from use with the session mode: a
// malformed session placeholder, a {session} without a mode, a session id
// length out of range. The error names the proxy as records do. [Build]
// checks every proxy so; a caller that knows where p was written (a line
// of a file) may check it first, to say where.
func CheckProxy(p *url.URL, mode SessionMode) error {
	name := proxyName(p)
	if err := checkPlaceholders(p); err != nil {
		return fmt.Errorf("proxy %s: %w", name, err)
	}
	if !HasSession(p) {
		return nil
	}
	if !mode.On() {
		return fmt.Errorf("proxy %s holds {session}%s: say when a session is renewed with --session host, url or a number of requests", name, inPassword(p))
	}
	if err := checkTemplate(p); err != nil {
		return fmt.Errorf("proxy %s: %w", name, err)
	}
	return nil
}

// inPassword is " in its password" when p's placeholder is only in its
// password, which its masked name does not show, else "".
func inPassword(p *url.URL) string {
	if placeholder.MatchString(p.User.Username()) {
		return ""
	}
	return " in its password"
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
	plan.Settle = t.Shared.CloseUntaken
	templates := 0
	for i, p := range o.Proxies {
		name := proxyName(p)
		sent := secret.UserInfo(p)
		c, template, err := proxyClient(p, o, t, i < plan.KeptAlive)
		if err != nil {
			return err
		}
		var keepHost time.Duration
		if template {
			templates++
			if o.Session.PerHost {
				// A host's session lives on this proxy: the host stays
				// on it, at most for as long as an idle session lasts.
				keepHost = sessionIdle
			}
		}
		plan.Routes = append(plan.Routes, runner.Route{
			Proxy:    name,
			Client:   authCheck{next: c, proxyFor: func(*url.URL) string { return name }, sent: func(*url.URL) []string { return sent }},
			KeepHost: keepHost,
		})
	}
	if o.Session.On() && templates == 0 {
		return errNoTemplate
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
// their cap must be the route's whole limit (perRoute, what the dispatcher
// lets through one proxy), or a proxy would carry only --per-host requests
// at once. The tunnels to an https target stay within --per-host: a higher
// cap would let net/http dial a tunnel for a request that then takes one
// coming free, and leave the new one unused. The dispatcher still holds
// --per-host for each target, over all proxies.
func proxied(o transport.Options, perRoute int) transport.Options {
	o.PerProxy = max(o.PerHost, perRoute)
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
	// sent returns the credentials sent to that proxy (see
	// [secret.UserInfo]), which its refusal may quote; nil is none.
	sent func(*url.URL) []string
}

func (c authCheck) Do(req *http.Request) (*http.Response, error) {
	resp, _, err := c.DoSent(req)
	return resp, err
}

// DoSent is Do, and returns the credentials sent to the proxy (see
// [runner.SentDoer]): a session's filled-in ones when the proxy has
// sessions, those of the proxy that carried the first request and of the
// one that carried the last, for a proxy taken from the environment.
func (c authCheck) DoSent(req *http.Request) (*http.Response, []string, error) {
	var resp *http.Response
	var sent []string
	var err error
	if sd, ok := c.next.(runner.SentDoer); ok {
		resp, sent, err = sd.DoSent(req)
	} else {
		resp, err = c.next.Do(req)
	}
	u := req.URL
	if resp != nil && resp.Request != nil && resp.Request.URL != nil {
		u = resp.Request.URL
	}
	if c.sent != nil {
		// The proxy's credentials are made once; a client of its own
		// (sessions) adds those it filled in.
		if mine := c.sent(req.URL); len(sent) == 0 {
			sent = mine
		} else {
			sent = append(slices.Clip(sent), mine...)
		}
		if u != req.URL {
			sent = append(slices.Clip(sent), c.sent(u)...)
		}
	}
	if err != nil || !proxyRefused(resp) {
		return resp, sent, err
	}
	name := c.proxyFor(u)
	if name == "" {
		return resp, sent, nil
	}
	resp.Body.Close()
	return nil, sent, &transport.ProxyError{Proxy: name, Err: fmt.Errorf("answered %s", secret.Text(resp.Status, sent...))}
}

// proxyRefused reports whether resp, the answer to a forwarded plain-http
// request, is the proxy's refusal (see [authCheck]).
func proxyRefused(resp *http.Response) bool {
	return resp.StatusCode == http.StatusProxyAuthRequired ||
		resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("Proxy-Authenticate") != ""
}

// ExitName names the session that carried resp, for a proxy with sessions
// (see [runner.ExitNamer]); "" otherwise.
func (authCheck) ExitName(resp *http.Response) string {
	if b, ok := resp.Body.(*releasingBody); ok {
		return b.name
	}
	return ""
}

// Rotate passes a block on to a client with sessions (see
// [runner.Rotator]); a plain proxy has no fresh exit to give.
func (c authCheck) Rotate(host, exit string) bool {
	if r, ok := c.next.(runner.Rotator); ok {
		return r.Rotate(host, exit)
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

// fdReserve is kept free for the inputs, the output, body files, DNS and
// the runtime.
const fdReserve = 64

// fitOpenFiles lowers the limit when the open-file limit cannot hold the
// connections it needs (one per request in flight, limit of them over all
// routes together, plus maxIdle idle ones), so a run never fails with
// EMFILE half-way; when maxIdle alone does not fit, it lowers maxIdle too,
// and the two share what there is. routes counts those that keep idle
// connections. It returns the limit and the idle connections to use, the
// open files each route may keep in its idle pool (what the requests in
// flight leave, shared by the routes; 0 when the open-file limit is
// unknown), and a one-line notice when it had to lower them.
func fitOpenFiles(fdLimit uint64, limit, routes, maxIdle int) (int, int, int, string) {
	if fdLimit == 0 || routes < 1 {
		return limit, maxIdle, 0, ""
	}
	// A small open-file limit keeps half of it for the rest.
	avail := int(fdLimit) - min(fdReserve, int(fdLimit/2))
	budget := func(l int) int {
		return max((avail-l)/routes, 1)
	}
	if limit+maxIdle <= avail {
		return limit, maxIdle, budget(limit), ""
	}
	notice := func(l, idle string) string {
		return fmt.Sprintf("open-file limit is %d, too low for --limit %d and %d idle connections; using %s%s (raise it with 'ulimit -n')",
			fdLimit, limit, maxIdle, l, idle)
	}
	if maxIdle < avail {
		lowered := avail - maxIdle
		return lowered, maxIdle, budget(lowered), notice(fmt.Sprintf("--limit %d", lowered), "")
	}
	idle := avail / 2
	lowered := max(min(limit, avail-idle), 1)
	l := fmt.Sprintf("--limit %d and ", lowered)
	if lowered == limit {
		l = ""
	}
	return lowered, idle, budget(lowered), notice(l, fmt.Sprintf("--max-idle %d", idle))
}
