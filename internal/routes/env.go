package routes

import (
	"fmt"
	"net/http"
	"net/url"

	"golang.org/x/net/http/httpproxy"

	"github.com/fetchctl/fetchctl/internal/runner"
	"github.com/fetchctl/fetchctl/internal/transport"
)

// envProxies is what the environment's proxy variables say, each proxy
// parsed as --proxy is.
type envProxies struct {
	http, https *url.URL
	// httpVar and httpsVar name the variables they came from, as set
	// (HTTP_PROXY or http_proxy), for messages.
	httpVar, httpsVar string
	// pick returns the proxy of http or https that carries a request for
	// a URL, by the variables and NO_PROXY, or nil for none.
	pick func(*url.URL) *url.URL
}

// readEnvProxies reads HTTP_PROXY, HTTPS_PROXY and NO_PROXY (the lower-case
// names win, as in httpproxy.FromEnvironment) through getenv. Each proxy is
// parsed by [transport.ParseProxy], so that {session} and a missing scheme
// read as in --proxy, and an invalid one is an error naming the variable,
// password masked.
func readEnvProxies(getenv func(string) string) (*envProxies, error) {
	either := func(lower, upper string) (string, string) {
		if v := getenv(lower); v != "" {
			return lower, v
		}
		return upper, getenv(upper)
	}
	e := &envProxies{}
	cfg := httpproxy.Config{CGI: getenv("REQUEST_METHOD") != ""}
	_, cfg.NoProxy = either("no_proxy", "NO_PROXY")
	for _, v := range []struct {
		lower, upper string
		u            **url.URL
		raw          *string
		name         *string
	}{
		{"http_proxy", "HTTP_PROXY", &e.http, &cfg.HTTPProxy, &e.httpVar},
		{"https_proxy", "HTTPS_PROXY", &e.https, &cfg.HTTPSProxy, &e.httpsVar},
	} {
		name, raw := either(v.lower, v.upper)
		if raw == "" {
			continue
		}
		u, err := transport.ParseProxy(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		*v.u = u
		*v.name = name
		// httpproxy applies NO_PROXY and the loopback rule; it is handed
		// the parsed URL, escaped, which it reads back as is.
		*v.raw = u.String()
	}
	pf := cfg.ProxyFunc()
	e.pick = func(target *url.URL) *url.URL {
		p, err := pf(target)
		if err != nil || p == nil {
			return nil
		}
		switch s := p.String(); {
		case e.http != nil && s == e.http.String():
			return e.http
		case e.https != nil && s == e.https.String():
			return e.https
		}
		return nil
	}
	return e, nil
}

// list returns the distinct proxies the environment names.
func (e *envProxies) list() []*url.URL {
	var out []*url.URL
	if e.http != nil {
		out = append(out, e.http)
	}
	if e.https != nil && (e.http == nil || e.https.String() != e.http.String()) {
		out = append(out, e.https)
	}
	return out
}

// shown names each proxy by the variable that set it, password masked.
func (e *envProxies) shown() map[string]string {
	m := map[string]string{}
	if e.http != nil {
		m[e.httpVar] = proxyName(e.http)
	}
	if e.https != nil {
		m[e.httpsVar] = proxyName(e.https)
	}
	return m
}

// variable returns the name of the variable that set p, one of list's.
func (e *envProxies) variable(p *url.URL) string {
	if p == e.http {
		return e.httpVar
	}
	return e.httpsVar
}

// envRoute sends each request through the environment's proxy for its URL,
// with that proxy's client (sessions for a {session} template), or direct.
type envRoute struct {
	env    *envProxies
	direct runner.Doer
	via    map[*url.URL]runner.Doer
}

func (r envRoute) Do(req *http.Request) (*http.Response, error) {
	resp, _, err := r.DoSent(req)
	return resp, err
}

// DoSent is Do, and returns the filled-in credentials of a proxy with
// sessions (see [runner.SentDoer]); [authCheck] adds the proxy's own.
func (r envRoute) DoSent(req *http.Request) (*http.Response, []string, error) {
	p := r.env.pick(req.URL)
	if p == nil {
		resp, err := r.direct.Do(req)
		return resp, nil, err
	}
	if sd, ok := r.via[p].(runner.SentDoer); ok {
		return sd.DoSent(req)
	}
	resp, err := r.via[p].Do(req)
	return resp, nil, err
}

// Rotate passes a block on to the sessions of the proxies that have them.
func (r envRoute) Rotate(host, exit string) bool {
	rotated := false
	for _, d := range r.via {
		if rot, ok := d.(runner.Rotator); ok && rot.Rotate(host, exit) {
			rotated = true
		}
	}
	return rotated
}

// name returns how records name the proxy that carries a request for u, ""
// for none.
func (e *envProxies) name(u *url.URL) string {
	if p := e.pick(u); p != nil {
		return proxyName(p)
	}
	return ""
}
