package main

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/fetchctl/fetchctl/internal/runner"
	"github.com/fetchctl/fetchctl/internal/secret"
	"github.com/fetchctl/fetchctl/internal/transport"
	"golang.org/x/net/http/httpproxy"
)

// buildRoutes makes one client per proxy, or one direct client.
func buildRoutes(cfg *Config) ([]runner.Route, error) {
	if len(cfg.Proxies) == 0 {
		c, err := transport.New(cfg.Transport)
		if err != nil {
			return nil, err
		}
		return []runner.Route{{Client: c}}, nil
	}
	clients, err := transport.NewForProxies(proxiedTransport(cfg.Transport, cfg.Runner.Limit), cfg.Proxies)
	if err != nil {
		return nil, err
	}
	routes := make([]runner.Route, len(clients))
	for i, c := range clients {
		name := secret.URLOf(cfg.Proxies[i])
		routes[i] = runner.Route{
			Proxy:  name,
			Client: proxyAuthCheck{next: c, proxyFor: func(*url.URL) string { return name }},
		}
	}
	return routes, nil
}

// proxiedTransport adapts transport options to a client whose requests go
// through a proxy. Plain-http requests through an HTTP proxy share the
// connections to the proxy whatever their target, and net/http counts those
// as one host: its per-host cap must be the route's whole limit, or a
// proxy would carry only --per-host requests at once. The dispatcher still
// holds --per-host for each target.
func proxiedTransport(o transport.Options, limit int) transport.Options {
	o.PerHost = max(o.PerHost, limit)
	return o
}

// proxyAuthCheck makes a proxy's refusal of a forwarded plain-http request a
// proxy failure, as a refused CONNECT already is: a 407, or a 401 that
// carries a Proxy-Authenticate challenge. A 401 with only WWW-Authenticate
// is the target's answer (or, indistinguishably, that of a proxy that gets
// the status wrong, as tinyproxy 1.11 does) and stays a response.
type proxyAuthCheck struct {
	next runner.Doer
	// proxyFor names the proxy (redacted) that carries a request for the
	// URL, "" for none.
	proxyFor func(*url.URL) string
}

func (c proxyAuthCheck) Do(req *http.Request) (*http.Response, error) {
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
// the transport reads them), carries a request for a URL, redacted.
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

// addSettingSecrets makes known the secrets that the raw settings hold,
// read loosely so that a malformed value is covered too: the password of
// --proxy and of the proxy variables, and the values of -H Authorization,
// Proxy-Authorization and Cookie, however the header line is punctuated.
func addSettingSecrets(set *secret.Set, r resolved, getenv func(string) string) {
	set.AddPassword(r.str("proxy"))
	for _, name := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"} {
		set.AddPassword(getenv(name))
	}
	for _, line := range r.strings("header") {
		set.Add(secret.HeaderLineValue(line))
	}
}
