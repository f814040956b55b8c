package transport

import (
	"errors"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/target"
)

// Real proxies from Debian's packages: apt-get install -y tinyproxy microsocks.

const (
	proxyUser = "user"
	proxyPass = "pass"
)

// startProxy starts a real proxy for the test: without its binary the test
// is skipped locally and fails under CI.
func startProxy(t *testing.T, name string, start func() (*target.Daemon, error)) *target.Daemon {
	t.Helper()
	if _, err := target.ProxyPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v", err)
		}
		t.Skipf("%v", err)
	}
	d, err := start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return d
}

// startTinyproxy runs tinyproxy on a free loopback port, with basic auth
// when user is set, and returns its URL with those credentials.
func startTinyproxy(t *testing.T, user, pass string) *url.URL {
	t.Helper()
	dir := t.TempDir()
	d := startProxy(t, "tinyproxy", func() (*target.Daemon, error) {
		return target.StartTinyproxy(dir, target.TinyproxyOptions{User: user, Pass: pass})
	})
	u := &url.URL{Scheme: "http", Host: d.Addr}
	if user != "" {
		u.User = url.UserPassword(user, pass)
	}
	return u
}

// startMicrosocks runs microsocks on a free loopback port with
// username/password auth and returns its socks5:// URL with credentials.
func startMicrosocks(t *testing.T) *url.URL {
	t.Helper()
	d := startProxy(t, "microsocks", func() (*target.Daemon, error) {
		return target.StartMicrosocks(proxyUser, proxyPass)
	})
	return &url.URL{Scheme: "socks5", Host: d.Addr, User: url.UserPassword(proxyUser, proxyPass)}
}

func withPassword(u *url.URL, pass string) *url.URL {
	c := *u
	c.User = url.UserPassword(u.User.Username(), pass)
	return &c
}

func withScheme(u *url.URL, scheme string) *url.URL {
	c := *u
	c.Scheme = scheme
	return &c
}

func TestTinyproxy(t *testing.T) {
	t.Parallel()
	proxy := startTinyproxy(t, proxyUser, proxyPass)
	plain := newServer(t, "", nil)
	h2 := newServer(t, "h2", nil)
	ca := h2.caFile(t)

	tests := []struct {
		name      string
		proxy     *url.URL
		target    string
		http2     bool
		wantProto string // a response with this proto
		// Or a proxy answer: a plain-http target gets it as a response, an
		// https target as a *ProxyError naming the status.
		wantStatus []int
	}{
		{name: "http target with auth", proxy: proxy, target: plain.URL, wantProto: "HTTP/1.1"},
		{name: "https target through CONNECT negotiates HTTP/2", proxy: proxy, target: h2.URL, http2: true, wantProto: "HTTP/2.0"},
		{name: "https target through CONNECT, HTTP/2 off", proxy: proxy, target: h2.URL, wantProto: "HTTP/1.1"},
		// tinyproxy 1.11 answers a wrong password with 401 and missing
		// credentials with 407.
		{name: "http target, wrong password", proxy: withPassword(proxy, "wrong"), target: plain.URL,
			wantStatus: []int{http.StatusUnauthorized, http.StatusProxyAuthRequired}},
		{name: "http target, no credentials", proxy: &url.URL{Scheme: "http", Host: proxy.Host}, target: plain.URL,
			wantStatus: []int{http.StatusProxyAuthRequired}},
		{name: "https target, wrong password", proxy: withPassword(proxy, "wrong"), target: h2.URL, http2: true,
			wantStatus: []int{http.StatusUnauthorized, http.StatusProxyAuthRequired}},
		{name: "https target, no credentials", proxy: &url.URL{Scheme: "http", Host: proxy.Host}, target: h2.URL,
			wantStatus: []int{http.StatusProxyAuthRequired}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := testClient(t, Options{
				Proxy: tt.proxy, HTTP2: tt.http2, CACertFile: ca,
				KeepAlive: time.Minute, ConnectTimeout: 5 * time.Second,
			})
			resp, body, err := get(t, c, tt.target)
			isHTTPS := strings.HasPrefix(tt.target, "https")
			switch {
			case tt.wantProto != "":
				if err != nil {
					t.Fatalf("GET through tinyproxy: %v", err)
				}
				if resp.Proto != tt.wantProto || body != tt.wantProto {
					t.Errorf("proto %q (server saw %q), want %q", resp.Proto, body, tt.wantProto)
				}
			case isHTTPS:
				var pe *ProxyError
				if !errors.As(err, &pe) {
					t.Fatalf("err = %v, want a *ProxyError", err)
				}
				if !mentionsStatus(err.Error(), tt.wantStatus) {
					t.Errorf("error %q names none of the statuses %v", err, tt.wantStatus)
				}
				if strings.Contains(err.Error(), "wrong") {
					t.Errorf("error leaks the password: %q", err)
				}
			default:
				if err != nil {
					t.Fatalf("err = %v, want the proxy's answer as a response", err)
				}
				if !containsInt(tt.wantStatus, resp.StatusCode) {
					t.Errorf("status = %d, want one of %v", resp.StatusCode, tt.wantStatus)
				}
			}
		})
	}
}

func mentionsStatus(msg string, statuses []int) bool {
	for _, s := range statuses {
		if strings.Contains(msg, "CONNECT answered "+strconv.Itoa(s)) {
			return true
		}
	}
	return false
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func TestTinyproxyRotatesConnections(t *testing.T) {
	t.Parallel()
	proxy := startTinyproxy(t, "", "")
	srv := newServer(t, "h1", nil)
	const limit, requests = 2, 5
	c := testClient(t, Options{Proxy: proxy, MaxConnRequests: limit, KeepAlive: time.Minute, Insecure: true})
	for range requests {
		mustGet(t, c, srv.URL)
	}
	// Each tunnel is one connection at the target.
	if got, want := srv.conns.Load(), int64((requests+limit-1)/limit); got != want {
		t.Errorf("target saw %d tunnels, want %d", got, want)
	}
}

func TestMicrosocks(t *testing.T) {
	t.Parallel()
	proxy := startMicrosocks(t)
	plain := newServer(t, "", nil)
	h2 := newServer(t, "h2", nil)
	ca := h2.caFile(t)
	// Only named.test resolves here; localhost is left to the proxy, which
	// finds it in /etc/hosts.
	res := &fakeResolver{addrs: map[string][]string{"named.test": {"127.0.0.1"}}}

	tests := []struct {
		name      string
		proxy     *url.URL
		target    string
		wantProto string
		wantErr   string // part of a *ProxyError
		// lookups of the target's name made here
		lookup     string
		wantLookup int
	}{
		{name: "http target", proxy: proxy, target: plain.URL, wantProto: "HTTP/1.1"},
		{name: "https target keeps HTTP/2", proxy: proxy, target: h2.URL, wantProto: "HTTP/2.0"},
		{name: "socks5 resolves names here", proxy: proxy, target: "http://named.test:" + plain.port() + "/",
			wantProto: "HTTP/1.1", lookup: "named.test", wantLookup: 1},
		{name: "socks5h leaves names to the proxy", proxy: withScheme(proxy, "socks5h"), target: "http://localhost:" + plain.port() + "/",
			wantProto: "HTTP/1.1", lookup: "localhost", wantLookup: 0},
		{name: "wrong password", proxy: withPassword(proxy, "wrong"), target: plain.URL, wantErr: "authentication failed"},
		{name: "proxy cannot reach the target", proxy: proxy, target: "http://" + closedAddr(t) + "/", wantErr: "socks connect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := testClient(t, Options{
				Proxy: tt.proxy, HTTP2: true, CACertFile: ca, Resolver: res, DNSTTL: time.Minute,
				KeepAlive: time.Minute, ConnectTimeout: 5 * time.Second,
			})
			resp, body, err := get(t, c, tt.target)
			if tt.wantErr != "" {
				var pe *ProxyError
				if !errors.As(err, &pe) {
					t.Fatalf("err = %v, want a *ProxyError", err)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not mention %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "wrong") || strings.Contains(err.Error(), ":"+proxyPass+"@") {
					t.Errorf("error leaks the password: %q", err)
				}
			} else {
				if err != nil {
					t.Fatalf("GET through microsocks: %v", err)
				}
				if resp.Proto != tt.wantProto || body != tt.wantProto {
					t.Errorf("proto %q (server saw %q), want %q", resp.Proto, body, tt.wantProto)
				}
			}
			if tt.lookup != "" {
				if got := res.count(tt.lookup); got != tt.wantLookup {
					t.Errorf("%s looked up here %d times, want %d", tt.lookup, got, tt.wantLookup)
				}
			}
		})
	}
}
