package routes

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/transport"
)

// gateway is a loopback forward proxy that answers every request itself and
// records the user name and the connection of each.
type gateway struct {
	*httptest.Server
	mu    sync.Mutex
	users []string
	conns map[string]map[string]bool // user -> client addresses
}

func newGateway(t *testing.T) *gateway {
	g := &gateway{conns: map[string]map[string]bool{}}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := strings.TrimPrefix(r.Header.Get("Proxy-Authorization"), "Basic ")
		creds, _ := base64.StdEncoding.DecodeString(auth)
		user, _, _ := strings.Cut(string(creds), ":")
		g.mu.Lock()
		g.users = append(g.users, user)
		if g.conns[user] == nil {
			g.conns[user] = map[string]bool{}
		}
		g.conns[user][r.RemoteAddr] = true
		g.mu.Unlock()
		io.WriteString(w, "ok")
	}))
	t.Cleanup(g.Close)
	return g
}

func (g *gateway) seen() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.users...)
}

func sessionRoute(t *testing.T, g *gateway, mode SessionMode, ttl time.Duration, userinfo string) (*sessions, *time.Time) {
	t.Helper()
	p, err := transport.ParseProxy("http://" + userinfo + "@" + g.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if !HasSession(p) {
		t.Fatalf("%s holds no session placeholder", p)
	}
	opts := transport.Options{KeepAlive: time.Minute, PerHost: 10}
	opts.Shared = transport.NewShared(opts)
	s := newSessions(p, mode, ttl, opts)
	now := time.Unix(1_000_000, 0)
	s.now = func() time.Time { return now }
	t.Cleanup(func() {
		for _, sess := range s.byHost {
			sess.client.CloseIdleConnections()
		}
	})
	return s, &now
}

func get(t *testing.T, d interface {
	Do(*http.Request) (*http.Response, error)
}, rawURL string) {
	t.Helper()
	req, _ := http.NewRequest("GET", rawURL, nil)
	resp, err := d.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

func TestSessionPerHost(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	s, now := sessionRoute(t, g, SessionMode{PerHost: true}, 90*time.Second, "cust-x-session-{session}:pw")
	get(t, s, "http://a.example/1")
	get(t, s, "http://a.example/2")
	get(t, s, "http://b.example/1")
	*now = now.Add(30 * time.Second)
	get(t, s, "http://a.example/3")
	s.Rotate("a.example", "")
	get(t, s, "http://a.example/4")
	*now = now.Add(50 * time.Second)
	get(t, s, "http://b.example/2") // b idle 80 s: renewed
	get(t, s, "http://a.example/5") // a 50 s old, idle 50 s: kept
	*now = now.Add(45 * time.Second)
	get(t, s, "http://a.example/6") // a 95 s old, past the TTL: renewed

	u := g.seen()
	for i, user := range u {
		if !strings.HasPrefix(user, "cust-x-session-") || len(user) != len("cust-x-session-")+8 {
			t.Errorf("request %d: user %q, want cust-x-session- and an 8-character id", i, user)
		}
	}
	same := func(i, j int) bool { return u[i] == u[j] }
	for _, c := range []struct {
		i, j int
		same bool
		why  string
	}{
		{0, 1, true, "one host keeps its session"},
		{0, 2, false, "another host gets another session"},
		{0, 3, true, "30 s later the session holds"},
		{3, 4, false, "a blocked session is renewed"},
		{2, 5, false, "an idle session is renewed"},
		{4, 6, true, "a session used within a minute holds"},
		{6, 7, false, "a session past its TTL is renewed"},
	} {
		if same(c.i, c.j) != c.same {
			t.Errorf("%s: requests %d and %d went as %q and %q", c.why, c.i, c.j, u[c.i], u[c.j])
		}
	}
	// A session is a connection of its own: no two sessions share one.
	owner := map[string]string{}
	g.mu.Lock()
	defer g.mu.Unlock()
	for user, addrs := range g.conns {
		for a := range addrs {
			if o, ok := owner[a]; ok {
				t.Errorf("connection %s carried sessions %q and %q", a, o, user)
			}
			owner[a] = user
		}
	}
}

func TestSessionPerURLAndEveryN(t *testing.T) {
	t.Parallel()
	t.Run("url", func(t *testing.T) {
		g := newGateway(t)
		s, _ := sessionRoute(t, g, SessionMode{PerURL: true}, 0, "user:pw_session-{session:12}")
		for range 4 {
			get(t, s, "http://a.example/")
		}
		// The session sits in the password here: the gateway sees the same
		// user name, and four connections.
		if u := g.seen(); len(u) != 4 || u[0] != "user" {
			t.Errorf("users %q", u)
		}
		g.mu.Lock()
		if n := len(g.conns["user"]); n != 4 {
			t.Errorf("4 requests with a session each used %d connections, want 4", n)
		}
		g.mu.Unlock()
	})
	t.Run("every 2", func(t *testing.T) {
		g := newGateway(t)
		s, _ := sessionRoute(t, g, SessionMode{Every: 2}, 0, "u-{session}")
		for _, h := range []string{"a", "b", "a", "c", "d"} {
			get(t, s, "http://"+h+".example/")
		}
		u := g.seen()
		if !(u[0] == u[1] && u[1] != u[2] && u[2] == u[3] && u[3] != u[4]) {
			t.Errorf("users %q, want a new session every 2 requests", u)
		}
	})
}

// TestRotateRenewsTheBlockedSessionOnce: a block renews the session it
// names; blocks that come back after from the session the host has already
// left (requests that were in flight through it) keep the fresh one.
func TestRotateRenewsTheBlockedSessionOnce(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		mode    SessionMode
		current func(s *sessions) *session
	}{
		{"host", SessionMode{PerHost: true}, func(s *sessions) *session { return s.byHost["a.example"] }},
		{"every 100", SessionMode{Every: 100}, func(s *sessions) *session { return s.current }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := newGateway(t)
			s, _ := sessionRoute(t, g, tt.mode, 0, "u-{session}:pw")
			get(t, s, "http://a.example/1")
			blocked := tt.current(s).name
			s.Rotate("a.example", blocked)
			get(t, s, "http://a.example/2")
			// Two more blocks of the old session come back.
			s.Rotate("a.example", blocked)
			s.Rotate("a.example", blocked)
			get(t, s, "http://a.example/3")
			fresh := tt.current(s).name
			// A block of the fresh session renews it in turn.
			s.Rotate("a.example", fresh)
			get(t, s, "http://a.example/4")
			u := g.seen()
			if len(u) != 4 || u[0] == u[1] || u[1] != u[2] || u[2] == u[3] || u[0] == u[3] {
				t.Errorf("users %q, want a, b, b, c: one fresh session per session blocked", u)
			}
		})
	}
}

func TestFillAndParse(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"http://u-{session}:pw@gw:1", "http://u-abcdefgh:pw@gw:1"},
		{"http://u:pw-{session:3}@gw:1", "http://u:pw-abc@gw:1"},
		{"http://sessid-{session:20}-x@gw:1", "http://sessid-abcdefghijabcdefghij-x@gw:1"},
	} {
		p, err := transport.ParseProxy(tt.in)
		if err != nil {
			t.Fatalf("ParseProxy(%q): %v", tt.in, err)
		}
		if got := fill(p, "abcdefghij").String(); got != tt.want {
			t.Errorf("fill(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := proxyName(p); strings.Contains(tt.in, "{session}:") && !strings.Contains(got, "{session}") {
			t.Errorf("proxyName(%q) = %q, want the placeholder as written", tt.in, got)
		}
	}
	if id := newSessionID(); len(id) != 64 || strings.Trim(id, "abcdefghijklmnopqrstuvwxyz0123456789") != "" {
		t.Errorf("newSessionID() = %q, want 64 lower-case letters and digits", id)
	}
	if err := checkTemplate(mustParse(t, "http://u-{session:99}@gw:1")); err == nil {
		t.Error("a 99-character session id was accepted")
	}
	if got := TemplateSecrets(mustParse(t, "http://u:pa-{session}-ss@gw:1")); strings.Join(got, "|") != "pa-|-ss" {
		t.Errorf("TemplateSecrets = %q", got)
	}
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	p, err := transport.ParseProxy(raw)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSessionErrorsNameTheProxyAsWritten: a failure through a session names
// the proxy as records do, {session:N} whole and the password ***, and the
// session id apart, for http and socks5 proxies alike.
func TestSessionErrorsNameTheProxyAsWritten(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens here: every dial is refused
	tests := []struct{ name, proxy, want string }{
		{"user name", "http://c-{session:12}:Secretpw@" + addr, "proxy http://c-{session:12}:***@" + addr + " (session clsmsgqlfg9l): "},
		{"password", "http://c:Secretpw-{session}@" + addr, "proxy http://c:***@" + addr + " (session clsmsgql): "},
		{"socks5", "socks5://c-{session:4}:Secretpw@" + addr, "proxy socks5://c-{session:4}:***@" + addr + " (session clsm): "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := transport.ParseProxy(tt.proxy)
			if err != nil {
				t.Fatal(err)
			}
			opts := transport.Options{PerHost: 1}
			opts.Shared = transport.NewShared(opts)
			s := newSessions(p, SessionMode{PerURL: true}, time.Minute, opts)
			s.newID = func() string { return "clsmsgqlfg9labcdefgh" }
			req, _ := http.NewRequest("GET", "http://127.0.0.1:9/a", nil)
			resp, err := s.Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatal("request through a refused proxy succeeded")
			}
			msg := err.Error()
			if i := strings.Index(msg, "proxy "); i < 0 || !strings.HasPrefix(msg[i:], tt.want) {
				t.Errorf("error %q does not name the proxy as %q", msg, tt.want)
			}
			if strings.Contains(msg, "Secretpw") {
				t.Errorf("error %q shows the password", msg)
			}
		})
	}
}

// TestBadSessionLengthSaysWhere: a {session:N} out of range is refused
// before the run, naming the proxy with its password *** and saying when
// the placeholder is in the password, which the masked name does not show.
func TestBadSessionLengthSaysWhere(t *testing.T) {
	t.Parallel()
	const addr = "127.0.0.1:1"
	tests := []struct{ name, proxy, env, want string }{
		{"user name", "http://c-{session:0}:Secretpw@" + addr, "",
			"proxy http://c-{session:0}:***@" + addr + ": {session:0}: a session id is 1 to 64 characters long"},
		{"password", "http://c:Secretpw-{session:0}@" + addr, "",
			"proxy http://c:***@" + addr + ": {session:0} in its password: a session id is 1 to 64 characters long"},
		{"password too long", "http://c:Secretpw-{session:65}@" + addr, "",
			"proxy http://c:***@" + addr + ": {session:65} in its password: a session id is 1 to 64 characters long"},
		{"good user name, bad password", "http://c-{session}:Secretpw-{session:0}@" + addr, "",
			"proxy http://c-{session}:***@" + addr + ": {session:0} in its password: a session id is 1 to 64 characters long"},
		{"malformed in the user name", "http://c-{session:abc}-x@" + addr, "",
			"proxy http://c-{session:abc}-x@" + addr + ": {session:abc} is a malformed session placeholder: write {session} or {session:N}, N from 1 to 64"},
		{"unclosed in the user name", "http://c-{session@" + addr, "",
			"proxy http://c-{session@" + addr + ": {session is a malformed session placeholder: write {session} or {session:N}, N from 1 to 64"},
		{"malformed after a good one", "http://c-{session}-{sessionid}:Secretpw@" + addr, "",
			"proxy http://c-{session}-{sessionid}:***@" + addr + ": {sessionid} is a malformed session placeholder: write {session} or {session:N}, N from 1 to 64"},
		{"malformed in the password", "http://c:Secretpw-{session:}@" + addr, "",
			"proxy http://c:***@" + addr + ": a malformed session placeholder in its password: write {session} or {session:N}, N from 1 to 64"},
		{"environment password", "", "http://c:Secretpw-{session:0}@" + addr,
			"HTTPS_PROXY: proxy http://c:***@" + addr + ": {session:0} in its password: a session id is 1 to 64 characters long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{Limit: 4, Session: SessionMode{PerHost: true}, Transport: transport.Options{DialContext: loopbackOnly}}
			if tt.proxy != "" {
				o.Proxies = []*url.URL{mustParse(t, tt.proxy)}
			} else {
				o.Getenv = envOf(map[string]string{"HTTPS_PROXY": tt.env})
				o.Transport.ProxyFromEnv = true
			}
			_, err := Build(o)
			if err == nil || err.Error() != tt.want {
				t.Errorf("Build: %v, want %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "Secretpw") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

// TestSessionRefusalNamesTheSession: a proxy with sessions that refuses a
// forwarded plain-http request (407) fails it at the proxy, naming the
// session as a refused CONNECT does; and the route names the session that
// carried a response, for the runner's block messages.
func TestSessionRefusalNamesTheSession(t *testing.T) {
	t.Parallel()
	status := http.StatusProxyAuthRequired
	var mu sync.Mutex
	g := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(g.Close)
	addr := g.Listener.Addr().String()
	p, err := transport.ParseProxy("http://c-{session:12}:Secretpw@" + addr)
	if err != nil {
		t.Fatal(err)
	}
	opts := transport.Options{PerHost: 1}
	opts.Shared = transport.NewShared(opts)
	s := newSessions(p, SessionMode{PerURL: true}, time.Minute, opts)
	s.newID = func() string { return "clsmsgqlfg9labcdefgh" }
	name := proxyName(p)
	c := authCheck{next: s, proxyFor: func(*url.URL) string { return name }}
	want := "proxy http://c-{session:12}:***@" + addr + " (session clsmsgqlfg9l): answered 407 Proxy Authentication Required"

	req, _ := http.NewRequest("GET", "http://127.0.0.1:9/a", nil)
	resp, err := c.Do(req)
	var pe *transport.ProxyError
	if !errors.As(err, &pe) {
		t.Fatalf("Do() = %v, %v; want a *ProxyError", resp, err)
	}
	if err.Error() != want {
		t.Errorf("error %q\nwant  %q", err, want)
	}

	mu.Lock()
	status = http.StatusForbidden
	mu.Unlock()
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	namer, ok := any(c).(interface{ ExitName(*http.Response) string })
	if !ok {
		t.Fatal("the route cannot name the session of a response")
	}
	if got, want := namer.ExitName(resp), "http://c-{session:12}:***@"+addr+" (session clsmsgqlfg9l)"; got != want {
		t.Errorf("ExitName = %q, want %q", got, want)
	}
}

// TestSessionWholePasswordNotShown: when a session placeholder is the
// whole password, the session id is the password the proxy receives, so a
// failure's message numbers the session instead of showing the id; each
// session keeps a name of its own, by which a block retires it alone.
func TestSessionWholePasswordNotShown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens here: every dial is refused
	tests := []struct{ name, proxy, want string }{
		{"password", "http://cust-acme:{session:12}@" + addr, "proxy http://cust-acme:***@" + addr + " (session #%d): "},
		{"user name and password", "http://c-{session}:{session}@" + addr, "proxy http://c-{session}:***@" + addr + " (session #%d): "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := transport.Options{PerHost: 1}
			opts.Shared = transport.NewShared(opts)
			s := newSessions(mustParse(t, tt.proxy), SessionMode{PerURL: true}, time.Minute, opts)
			ids := []string{"clsmsgqlfg9labcdefgh", "zyxwvutsrq0123456789"}
			s.newID = func() string { id := ids[0]; ids = ids[1:]; return id }
			for n := 1; n <= 2; n++ {
				req, _ := http.NewRequest("GET", "http://127.0.0.1:9/a", nil)
				resp, err := s.Do(req)
				if err == nil {
					resp.Body.Close()
					t.Fatal("request through a refused proxy succeeded")
				}
				msg := err.Error()
				want := fmt.Sprintf(tt.want, n)
				if i := strings.Index(msg, "proxy "); i < 0 || !strings.HasPrefix(msg[i:], want) {
					t.Errorf("error %q does not name the proxy as %q", msg, want)
				}
				if strings.Contains(msg, "clsmsgql") || strings.Contains(msg, "zyxwvuts") {
					t.Errorf("error %q shows the session id, which is the password", msg)
				}
			}
		})
	}
}
