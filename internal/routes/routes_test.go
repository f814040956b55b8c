package routes

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/fetchctl/fetchctl/internal/transport"
)

type answer struct {
	status int
	header http.Header
}

func (a answer) Do(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: a.status, Status: http.StatusText(a.status), Header: a.header, Body: io.NopCloser(strings.NewReader("")), Request: req}, nil
}

func TestAuthCheck(t *testing.T) {
	t.Parallel()
	via := func(*url.URL) string { return "http://bob:***@proxy:1" }
	direct := func(*url.URL) string { return "" }
	tests := []struct {
		name      string
		status    int
		header    http.Header
		proxyFor  func(*url.URL) string
		wantProxy bool
	}{
		{"407 is the proxy's", 407, nil, via, true},
		{"401 with a proxy challenge is the proxy's", 401, http.Header{"Proxy-Authenticate": {"Basic"}}, via, true},
		{"401 with a server challenge is the target's", 401, http.Header{"Www-Authenticate": {"Basic"}}, via, false},
		{"200 passes", 200, nil, via, false},
		{"407 without a proxy stays a response", 407, nil, direct, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := authCheck{next: answer{tt.status, tt.header}, proxyFor: tt.proxyFor}
			req, _ := http.NewRequest("GET", "http://target/", nil)
			resp, err := c.Do(req)
			var pe *transport.ProxyError
			if got := errors.As(err, &pe); got != tt.wantProxy {
				t.Fatalf("Do() = %v, %v; want a proxy error: %v", resp, err, tt.wantProxy)
			}
			if tt.wantProxy && (pe.Proxy != "http://bob:***@proxy:1" || !strings.Contains(err.Error(), "answered")) {
				t.Errorf("proxy error %q names %q", err, pe.Proxy)
			}
			if !tt.wantProxy && (resp == nil || resp.StatusCode != tt.status) {
				t.Errorf("Do() = %v, want the %d response", resp, tt.status)
			}
		})
	}
}

func TestEnvProxyUsesTheGivenEnvironment(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"HTTP_PROXY":  "http://bob:pw@upper:1",
		"http_proxy":  "http://bob:pw@lower:1",
		"HTTPS_PROXY": "http://s:pw@secure:2",
		"NO_PROXY":    "skip.example",
	}
	getenv := func(k string) string { return env[k] }
	proxies, err := readEnvProxies(getenv)
	if err != nil {
		t.Fatal(err)
	}
	proxyFor := proxies.name
	for _, tt := range []struct{ url, want string }{
		{"http://a.example/", "http://bob:***@lower:1"},
		{"https://a.example/", "http://s:***@secure:2"},
		{"http://skip.example/", ""},
	} {
		u, _ := url.Parse(tt.url)
		if got := proxyFor(u); got != tt.want {
			t.Errorf("proxy for %s = %q, want %q", tt.url, got, tt.want)
		}
	}
	if envHasProxy(func(string) string { return "" }) {
		t.Error("an empty environment names a proxy")
	}
}

func TestBuildOneRoutePerProxy(t *testing.T) {
	t.Parallel()
	var proxies []*url.URL
	for _, raw := range []string{"http://a:pw@127.0.0.1:1", "socks5://127.0.0.1:2"} {
		u, err := transport.ParseProxy(raw)
		if err != nil {
			t.Fatal(err)
		}
		proxies = append(proxies, u)
	}
	plan, err := Build(Options{Proxies: proxies, Limit: 50, OpenFiles: 1024, Transport: transport.Options{PerHost: 4, MaxIdle: 10}, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Routes) != 2 || plan.Routes[0].Proxy != "http://a:***@127.0.0.1:1" || plan.Routes[1].Proxy != "socks5://127.0.0.1:2" {
		t.Errorf("routes = %+v", plan.Routes)
	}
	if plan.Limit != 50 || plan.PerRoute != 50 || plan.Notice != "" {
		t.Errorf("limit %d per route %d notice %q, want 50, 50 and none", plan.Limit, plan.PerRoute, plan.Notice)
	}
	// The limit is shared by the proxies: two of them need the open files
	// of one.
	plan, err = Build(Options{Proxies: proxies, Limit: 1000, PerProxy: 300, OpenFiles: 1024, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	if want := 1024 - fdReserve; plan.Limit != want || plan.PerRoute != 300 || !strings.Contains(plan.Notice, "ulimit -n") {
		t.Errorf("limit %d per route %d notice %q, want %d, 300 and a notice", plan.Limit, plan.PerRoute, plan.Notice, want)
	}
}

func TestBuildPerRoute(t *testing.T) {
	t.Parallel()
	proxy, err := transport.ParseProxy("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) string { return "" }
	withEnv := func(k string) string {
		if k == "HTTPS_PROXY" {
			return "http://127.0.0.1:1"
		}
		return ""
	}
	tests := []struct {
		name            string
		proxies         []*url.URL
		getenv          func(string) string
		limit, perProxy int
		want            int
	}{
		{name: "per-proxy below limit", proxies: []*url.URL{proxy}, getenv: noEnv, limit: 100, perProxy: 20, want: 20},
		{name: "per-proxy above limit", proxies: []*url.URL{proxy}, getenv: noEnv, limit: 10, perProxy: 20, want: 10},
		{name: "per-proxy unset", proxies: []*url.URL{proxy}, getenv: noEnv, limit: 10, want: 10},
		{name: "direct ignores per-proxy", getenv: noEnv, limit: 100, perProxy: 20, want: 100},
		{name: "environment proxy", getenv: withEnv, limit: 100, perProxy: 20, want: 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			plan, err := Build(Options{Proxies: tt.proxies, Limit: tt.limit, PerProxy: tt.perProxy, Getenv: tt.getenv,
				Transport: transport.Options{ProxyFromEnv: len(tt.proxies) == 0}})
			if err != nil {
				t.Fatal(err)
			}
			if plan.PerRoute != tt.want || plan.Limit != tt.limit {
				t.Errorf("per route %d limit %d, want %d and %d", plan.PerRoute, plan.Limit, tt.want, tt.limit)
			}
		})
	}
}
