package routes

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/transport"
)

// loopbackOnly dials loopback addresses only: a proxy URL misread so that
// its host is a name would fail here instead of being looked up.
func loopbackOnly(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("test dials loopback only, not %s", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

// An environment proxy goes through the parsing, {session} handling and
// masking of --proxy.
func TestBuildEnvironmentProxyWithSession(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	addr := g.Listener.Addr().String()
	for _, name := range []string{"HTTP_PROXY", "http_proxy"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			getenv := envOf(map[string]string{name: "http://h-{session}:envPw@" + addr})
			base := Options{Limit: 4, Getenv: getenv, Transport: transport.Options{ProxyFromEnv: true, KeepAlive: time.Minute, DialContext: loopbackOnly}}

			_, err := Build(base)
			if err == nil || !strings.Contains(err.Error(), "holds {session}") || strings.Contains(err.Error(), "envPw") {
				t.Fatalf("Build without --session: %v, want a {session} error without the password", err)
			}

			o := base
			o.Session = SessionMode{PerURL: true}
			plan, err := Build(o)
			if err != nil {
				t.Fatal(err)
			}
			if len(plan.Routes) != 1 || plan.Proxies != 1 {
				t.Fatalf("%d routes through %d proxies, want 1 and 1", len(plan.Routes), plan.Proxies)
			}
			r := plan.Routes[0]
			if len(plan.Secrets) != 0 {
				t.Errorf("secrets %q of a template without one in its password", plan.Secrets)
			}
			want := "http://h-{session}:***@" + addr
			for _, raw := range []string{"http://target.test/a", "http://target.test/b"} {
				u, _ := url.Parse(raw)
				if got := r.ProxyFor(u); got != want {
					t.Errorf("proxy for %s = %q, want %q", raw, got, want)
				}
				get(t, r.Client, raw)
			}
			users := g.seen()
			if len(users) < 2 {
				t.Fatalf("the proxy saw %q, want two requests", users)
			}
			last := users[len(users)-2:]
			for _, u := range last {
				if !strings.HasPrefix(u, "h-") || len(u) != len("h-")+defaultIDLength {
					t.Errorf("user %q, want h- and a session id", u)
				}
			}
			if last[0] == last[1] {
				t.Errorf("--session url sent both requests as %q", last[0])
			}
		})
	}
}

// Without {session}, an environment proxy is named as --proxy names it and
// a malformed one is refused before the run, password masked.
func TestBuildEnvironmentProxyChecked(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	addr := g.Listener.Addr().String()
	o := Options{Limit: 4, Getenv: envOf(map[string]string{"HTTP_PROXY": "http://bob:envPw@" + addr}), Transport: transport.Options{ProxyFromEnv: true, DialContext: loopbackOnly}}
	plan, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("http://target.test/a")
	if got, want := plan.Routes[0].ProxyFor(u), "http://bob:***@"+addr; got != want {
		t.Errorf("proxy = %q, want %q", got, want)
	}
	get(t, plan.Routes[0].Client, u.String())
	if users := g.seen(); len(users) != 1 || users[0] != "bob" {
		t.Errorf("the proxy saw %q, want bob", users)
	}
	// https targets are not HTTP_PROXY's: they go direct.
	if got := plan.Routes[0].ProxyFor(&url.URL{Scheme: "https", Host: "target.test"}); got != "" {
		t.Errorf("https target through %q, want direct", got)
	}

	for _, bad := range []string{"ftp://bob:envPw@127.0.0.1:21", "http://bob:envPw@127.0.0.1:99999", "http://h-{session:0}:envPw@127.0.0.1:1"} {
		o := Options{Limit: 4, Getenv: envOf(map[string]string{"HTTPS_PROXY": bad}), Session: SessionMode{PerHost: true}, Transport: transport.Options{ProxyFromEnv: true, DialContext: loopbackOnly}}
		_, err := Build(o)
		if err == nil || strings.Contains(err.Error(), "envPw") {
			t.Errorf("Build with HTTPS_PROXY=%s: %v, want an error without the password", bad, err)
		}
	}
	_, err = Build(Options{Limit: 4, Getenv: envOf(map[string]string{"HTTP_PROXY": "http://bob:envPw@" + addr}), Session: SessionMode{PerHost: true}, Transport: transport.Options{ProxyFromEnv: true}})
	if err == nil || !strings.Contains(err.Error(), "--session needs") {
		t.Errorf("--session with an environment proxy without {session}: %v", err)
	}
}

func TestBuildEnvironmentTemplateSecrets(t *testing.T) {
	t.Parallel()
	o := Options{Limit: 4, Getenv: envOf(map[string]string{"HTTPS_PROXY": "http://u:Fixed-{session}-Part@127.0.0.1:1"}),
		Session: SessionMode{PerHost: true}, Transport: transport.Options{ProxyFromEnv: true, DialContext: loopbackOnly}}
	plan, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(plan.Secrets, "|"); got != "Fixed-|-Part" {
		t.Errorf("secrets = %q, want the fixed parts of the password", got)
	}
}
