package transport

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// hopLog records the credential headers of every request that reached a
// set of servers, in order, as "name path" plus the headers.
type hopLog struct {
	mu   sync.Mutex
	hops []hop
}

type hop struct {
	at     string // server name and path
	header http.Header
}

// watched are the headers whose travel along a redirect chain is checked.
var watched = []string{"Authorization", "Cookie", "Proxy-Authorization", "Referer", "X-Other"}

func (l *hopLog) add(name string, r *http.Request) {
	h := http.Header{}
	for _, k := range watched {
		if v := r.Header.Values(k); len(v) > 0 {
			h[k] = v
		}
	}
	l.mu.Lock()
	l.hops = append(l.hops, hop{at: name + " " + r.URL.Path, header: h})
	l.mu.Unlock()
}

func (l *hopLog) all() []hop {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]hop(nil), l.hops...)
}

// hopHandler answers /to?u=URL with a 302 to URL and anything else with
// 200, and logs every request under name.
func hopHandler(name string, log *hopLog) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(name, r)
		if r.URL.Path == "/to" {
			http.Redirect(w, r, r.URL.Query().Get("u"), http.StatusFound)
			return
		}
		io.WriteString(w, "end")
	})
}

// chain is a URL that redirects through each of via in turn and ends at
// end.
func chain(end string, via ...string) string {
	u := end
	for i := len(via) - 1; i >= 0; i-- {
		u = via[i] + "/to?u=" + url.QueryEscape(u)
	}
	return u
}

// TestRedirectCredentialsStayWithTheOrigin follows redirect chains across
// ports and schemes of one host and checks which hop got the request's
// Authorization, Cookie and (without a proxy, target-bound)
// Proxy-Authorization headers: only those at the origin of the URL as
// given, unless LocationTrusted. No hop gets a Referer.
func TestRedirectCredentialsStayWithTheOrigin(t *testing.T) {
	t.Parallel()
	var log hopLog
	a := newServer(t, "", hopHandler("a", &log))
	b := newServer(t, "", hopHandler("b", &log))
	s := newServer(t, "h1", hopHandler("s", &log))
	creds := http.Header{
		"Authorization":       {"Bearer tok"},
		"Cookie":              {"sid=c00kie"},
		"Proxy-Authorization": {"Basic cGE6c3M="},
	}
	all := func() http.Header {
		h := creds.Clone()
		h.Set("X-Other", "kept")
		return h
	}
	other := http.Header{"X-Other": {"kept"}}

	tests := []struct {
		name    string
		trusted bool
		url     string
		want    []hop
	}{
		{name: "same origin", url: chain(a.URL+"/end", a.URL),
			want: []hop{{"a /to", all()}, {"a /end", all()}}},
		{name: "another port", url: chain(b.URL+"/end", a.URL),
			want: []hop{{"a /to", all()}, {"b /end", other}}},
		{name: "another port, trusted", trusted: true, url: chain(b.URL+"/end", a.URL),
			want: []hop{{"a /to", all()}, {"b /end", all()}}},
		{name: "https to http", url: chain(b.URL+"/end", s.URL),
			want: []hop{{"s /to", all()}, {"b /end", other}}},
		{name: "back to the origin", url: chain(a.URL+"/end", a.URL, b.URL),
			want: []hop{{"a /to", all()}, {"b /to", other}, {"a /end", all()}}},
		{name: "back to the origin, trusted", trusted: true, url: chain(a.URL+"/end", a.URL, b.URL),
			want: []hop{{"a /to", all()}, {"b /to", all()}, {"a /end", all()}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: the hops of one case are told apart by order.
			c := testClient(t, Options{MaxRedirects: 5, LocationTrusted: tt.trusted, Insecure: true, KeepAlive: time.Minute})
			req, err := http.NewRequest(http.MethodGet, tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = all()
			given := req.Header.Clone()
			before := len(log.all())
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := log.all()[before:]
			if len(got) != len(tt.want) {
				t.Fatalf("hops %v, want %v", got, tt.want)
			}
			for i, w := range tt.want {
				if got[i].at != w.at || fmt.Sprint(got[i].header) != fmt.Sprint(w.header) {
					t.Errorf("hop %d: %s got %v, want %s with %v", i, got[i].at, got[i].header, w.at, w.header)
				}
			}
			if fmt.Sprint(req.Header) != fmt.Sprint(given) {
				t.Errorf("the caller's header map became %v, want %v", req.Header, given)
			}
		})
	}
}

// TestRedirectKeepsTheCallersReferer: fetchctl adds no Referer, but one the
// caller set is a header like any other.
func TestRedirectKeepsTheCallersReferer(t *testing.T) {
	t.Parallel()
	var log hopLog
	a := newServer(t, "", hopHandler("a", &log))
	b := newServer(t, "", hopHandler("b", &log))
	c := testClient(t, Options{MaxRedirects: 5})
	req, err := http.NewRequest(http.MethodGet, chain(b.URL+"/end", a.URL), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Referer", "https://example.com/mine")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, h := range log.all() {
		if got := h.header.Get("Referer"); got != "https://example.com/mine" {
			t.Errorf("%s got Referer %q, want the caller's", h.at, got)
		}
	}
}

// TestRedirectProxyAuthorizationStaysWithTheProxy: through a proxy a
// Proxy-Authorization header is the proxy's, so a redirect to another
// origin keeps sending it there, while Authorization stays behind.
func TestRedirectProxyAuthorizationStaysWithTheProxy(t *testing.T) {
	t.Parallel()
	var log hopLog
	a := newServer(t, "h1", hopHandler("a", &log))
	b := newServer(t, "h1", hopHandler("b", &log))
	p := newFakeProxy(t, false, nil)
	c := testClient(t, Options{Proxy: p.url(nil), MaxRedirects: 5, Insecure: true, ConnectTimeout: 5 * time.Second})
	given := basic("bob", "hunter2")
	req, err := http.NewRequest(http.MethodGet, chain(b.URL+"/end", a.URL), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Proxy-Authorization", given)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	auth, targets := p.seen()
	if len(auth) != 2 || auth[0] != given || auth[1] != given {
		t.Errorf("proxy saw Proxy-Authorization %q for CONNECTs to %q, want %q on both", auth, targets, given)
	}
	hops := log.all()
	if len(hops) != 2 {
		t.Fatalf("hops %v, want 2", hops)
	}
	if got := hops[0].header.Get("Authorization"); got != "Bearer tok" {
		t.Errorf("%s got Authorization %q", hops[0].at, got)
	}
	if v := hops[1].header; v.Get("Authorization") != "" || v.Get("Proxy-Authorization") != "" {
		t.Errorf("%s got %v, want neither Authorization nor Proxy-Authorization", hops[1].at, v)
	}
}

func TestSameOrigin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want bool
	}{
		{"http://h/x", "http://h/y?q", true},
		{"http://h/", "http://h:80/", true},
		{"https://h/", "https://h:443/", true},
		{"http://Example.COM/", "http://example.com/", true},
		{"http://[::1]:8080/", "http://[::1]:8080/a", true},
		{"http://h/", "https://h/", false},
		{"https://h:8443/", "http://h:8443/", false},
		{"http://h:8080/", "http://h:8081/", false},
		{"http://h/", "http://h:8080/", false},
		{"http://example.com/", "http://sub.example.com/", false},
		{"http://h:80/", "https://h:443/", false},
	}
	for _, tt := range tests {
		t.Run(tt.a+" "+tt.b, func(t *testing.T) {
			t.Parallel()
			a, _ := url.Parse(tt.a)
			b, _ := url.Parse(tt.b)
			if got := sameOrigin(a, b); got != tt.want {
				t.Errorf("sameOrigin(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

// TestRedirectNotFollowed: a Location that does not parse or names a scheme
// other than http and https fails as a *RedirectError that keeps the 3xx
// and shows no password; with MaxRedirects 0 the 3xx is the answer.
func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/end" {
			io.WriteString(w, "end")
			return
		}
		code := http.StatusFound
		if r.URL.Query().Get("code") == "307" {
			code = http.StatusTemporaryRedirect
		}
		w.Header()["Location"] = []string{r.URL.Query().Get("loc")}
		w.WriteHeader(code)
		io.WriteString(w, "moved")
	}))
	at := func(loc, extra string) string { return srv.URL + "/r?loc=" + url.QueryEscape(loc) + extra }
	tests := []struct {
		name       string
		max        int
		url        string
		wantStatus int
		wantFinal  string // the URL of the 3xx, when the error carries it
		wantMsg    string
		hidden     []string
	}{
		{name: "file scheme", max: 3, url: at("file:///etc/passwd", ""), wantStatus: 302,
			wantMsg: "redirect to file:///etc/passwd not followed: only http and https are"},
		{name: "gopher scheme with a password", max: 3, url: at("gopher://u:Gs3cret@h:70/x", "&code=307"), wantStatus: 307,
			wantMsg: "redirect to gopher://u:***@h:70/x not followed", hidden: []string{"Gs3cret"}},
		{name: "no host", max: 3, url: at("http:///etc/passwd", ""), wantStatus: 302,
			wantMsg: "redirect to http:///etc/passwd not followed: it names no host"},
		{name: "slash in the password", max: 3, url: at("http://bob:Usec/ret1@host/", ""), wantStatus: 302,
			wantMsg: `redirect not followed: Location "http://bob:***@host/" is not a valid URL`, hidden: []string{"Usec", "ret1"}},
		{name: "bad port after a password", max: 3, url: at("http://bob:pw0rd@host:nope/", ""), wantStatus: 302,
			wantMsg: `Location "http://bob:***@host:nope/" is not a valid URL`, hidden: []string{"pw0rd"}},
		{name: "bad host, no user info", max: 3, url: at("http://ho st/", ""), wantStatus: 302,
			wantMsg: `Location "http://ho st/" is not a valid URL: invalid character " " in host name`},
		{name: "bad escape in a relative Location", max: 3, url: at("/a%zz", "&code=307"), wantStatus: 307,
			wantMsg: `Location "/a%zz" is not a valid URL`},
		{name: "port out of range with a password", max: 3, url: at("http://user:hunter2secret@127.0.0.1:99999/ok", ""), wantStatus: 302,
			wantMsg: "redirect to http://user:***@127.0.0.1:99999/ok not followed: port 99999 is out of range: a port is 1 to 65535", hidden: []string{"hunter2secret"}},
		{name: "port 0", max: 3, url: at("http://127.0.0.1:0/ok", "&code=307"), wantStatus: 307,
			wantMsg: "redirect to http://127.0.0.1:0/ok not followed: port 0 is out of range"},
		{name: "port 65536", max: 3, url: at("https://127.0.0.1:65536/", ""), wantStatus: 302,
			wantMsg: "port 65536 is out of range"},
		{name: "a port and no host", max: 3, url: at("http://:80/x", ""), wantStatus: 302,
			wantMsg: "redirect to http://:80/x not followed: it names no host"},
		{name: "follows none", max: 0, url: at("http://bob:Usec/ret1@host/", ""), wantStatus: 302},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := testClient(t, Options{MaxRedirects: tt.max, KeepAlive: time.Minute})
			resp, err := c.Get(tt.url)
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("err = %v, want the 3xx itself", err)
				}
				resp.Body.Close()
				if resp.StatusCode != tt.wantStatus {
					t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
				}
				return
			}
			if resp != nil {
				resp.Body.Close()
			}
			var re *RedirectError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v (%T), want a *RedirectError", err, err)
			}
			if k := kindOf(err); k != "redirect" {
				t.Errorf("ErrorKind = %q, want redirect", k)
			}
			if re.Response == nil || re.Response.StatusCode != tt.wantStatus {
				t.Fatalf("Response = %v, want one with status %d", re.Response, tt.wantStatus)
			}
			if got := re.Response.Request.URL.String(); got != tt.url {
				t.Errorf("Response.Request.URL = %s, want %s", got, tt.url)
			}
			if msg := re.Error(); !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("message %q lacks %q", msg, tt.wantMsg)
			}
			for _, h := range tt.hidden {
				if strings.Contains(re.Error(), h) {
					t.Errorf("message %q shows %q", re.Error(), h)
				}
			}
		})
	}
}

// hopWatcher is a DialObserver that records the redirects it is told of.
type hopWatcher struct{ to []string }

func (*hopWatcher) ObserveDNS(time.Time, time.Time)     {}
func (*hopWatcher) ObserveConnect(time.Time, time.Time) {}
func (w *hopWatcher) ObserveRedirect(u *url.URL)        { w.to = append(w.to, u.String()) }

// TestRedirectObserved: an observer that is a RedirectObserver learns each
// hop followed, in order, and none that is not followed.
func TestRedirectObserved(t *testing.T) {
	t.Parallel()
	var log hopLog
	a := newServer(t, "", hopHandler("a", &log))
	b := newServer(t, "", hopHandler("b", &log))
	tests := []struct {
		name string
		max  int
		url  string
		want []string
	}{
		{name: "none", max: 5, url: a.URL + "/end"},
		{name: "two hops", max: 5, url: chain(b.URL+"/end", a.URL, b.URL),
			want: []string{chain(b.URL+"/end", b.URL), b.URL + "/end"}},
		{name: "not followed", max: 0, url: chain(b.URL+"/end", a.URL)},
		{name: "bad port not followed", max: 5, url: chain("http://127.0.0.1:99999/", a.URL)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := testClient(t, Options{MaxRedirects: tt.max, KeepAlive: time.Minute})
			var w hopWatcher
			req, err := http.NewRequestWithContext(WithDialObserver(t.Context(), &w), http.MethodGet, tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp, err := c.Do(req); err == nil {
				resp.Body.Close()
			}
			if fmt.Sprint(w.to) != fmt.Sprint(tt.want) {
				t.Errorf("observed %v, want %v", w.to, tt.want)
			}
		})
	}
}

// TestRedirectURLCredentials: the Authorization: Basic that net/http makes
// from the user info of the URL as given follows the rule of an
// Authorization header: it goes to every hop at that URL's origin, one a
// chain returns to included, and to others only when LocationTrusted. An
// Authorization header given wins over the user info.
func TestRedirectURLCredentials(t *testing.T) {
	t.Parallel()
	var log hopLog
	a := newServer(t, "", hopHandler("a", &log))
	b := newServer(t, "", hopHandler("b", &log))
	withUser := func(u string) string { return strings.Replace(u, "http://", "http://user:pw@", 1) }
	basic := http.Header{"Authorization": {"Basic dXNlcjpwdw=="}}
	bearer := http.Header{"Authorization": {"Bearer tok"}}
	none := http.Header{}
	tests := []struct {
		name    string
		trusted bool
		header  http.Header
		url     string
		want    []hop
	}{
		{name: "same origin", url: withUser(chain(a.URL+"/end", a.URL)),
			want: []hop{{"a /to", basic}, {"a /end", basic}}},
		{name: "another port", url: withUser(chain(b.URL+"/end", a.URL)),
			want: []hop{{"a /to", basic}, {"b /end", none}}},
		{name: "back to the origin", url: withUser(chain(a.URL+"/end", a.URL, b.URL)),
			want: []hop{{"a /to", basic}, {"b /to", none}, {"a /end", basic}}},
		{name: "back to the origin, trusted", trusted: true, url: withUser(chain(a.URL+"/end", a.URL, b.URL)),
			want: []hop{{"a /to", basic}, {"b /to", basic}, {"a /end", basic}}},
		{name: "a Location's own user info", url: withUser(chain(strings.Replace(a.URL, "http://", "http://other:pw2@", 1)+"/end", a.URL, b.URL)),
			want: []hop{{"a /to", basic}, {"b /to", none}, {"a /end", http.Header{"Authorization": {"Basic b3RoZXI6cHcy"}}}}},
		{name: "a header given wins", header: bearer, url: withUser(chain(a.URL+"/end", a.URL, b.URL)),
			want: []hop{{"a /to", bearer}, {"b /to", none}, {"a /end", bearer}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: the hops of one case are told apart by order.
			c := testClient(t, Options{MaxRedirects: 5, LocationTrusted: tt.trusted, KeepAlive: time.Minute})
			req, err := http.NewRequest(http.MethodGet, tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.header != nil {
				req.Header = tt.header.Clone()
			}
			before := len(log.all())
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := log.all()[before:]
			if len(got) != len(tt.want) {
				t.Fatalf("hops %v, want %v", got, tt.want)
			}
			for i, w := range tt.want {
				if got[i].at != w.at || fmt.Sprint(got[i].header) != fmt.Sprint(w.header) {
					t.Errorf("hop %d: %s got %v, want %s with %v", i, got[i].at, got[i].header, w.at, w.header)
				}
			}
		})
	}
}

// TestRedirectHostStaysWithTheOrigin: a Host the caller set (curl's
// -H 'Host: name') goes to each hop at the origin of the URL as given, by a
// relative Location or an absolute one, and to no other: a hop elsewhere
// gets its own host's name, and so does a relative Location from there,
// which net/http would send the caller's Host to. Over plain http (the
// transport's own HTTP/1.1 path) and https alike.
func TestRedirectHostStaysWithTheOrigin(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		hops []string
	)
	handler := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			hops = append(hops, name+" "+r.URL.Path+" "+r.Host)
			mu.Unlock()
			if r.URL.Path == "/to" {
				http.Redirect(w, r, r.URL.Query().Get("u"), http.StatusFound)
				return
			}
			io.WriteString(w, "end")
		})
	}
	a := newServer(t, "", handler("a"))
	b := newServer(t, "", handler("b"))
	s := newServer(t, "h1", handler("s"))
	addr := func(u string) string { return u[strings.Index(u, "://")+3:] }
	const vhost = "vhost.example:8080"

	tests := []struct {
		name, url, host string
		want            []string
	}{
		{name: "relative", url: chain("/end", a.URL), host: vhost,
			want: []string{"a /to " + vhost, "a /end " + vhost}},
		{name: "absolute, same origin", url: chain(a.URL+"/end", a.URL), host: vhost,
			want: []string{"a /to " + vhost, "a /end " + vhost}},
		{name: "another port", url: chain(b.URL+"/end", a.URL), host: vhost,
			want: []string{"a /to " + vhost, "b /end " + addr(b.URL)}},
		{name: "relative after another origin", url: chain("/end", a.URL, b.URL), host: vhost,
			want: []string{"a /to " + vhost, "b /to " + addr(b.URL), "b /end " + addr(b.URL)}},
		{name: "back to the origin", url: chain(a.URL+"/end", a.URL, b.URL), host: vhost,
			want: []string{"a /to " + vhost, "b /to " + addr(b.URL), "a /end " + vhost}},
		{name: "https, relative", url: chain("/end", s.URL), host: vhost,
			want: []string{"s /to " + vhost, "s /end " + vhost}},
		{name: "https, absolute, same origin", url: chain(s.URL+"/end", s.URL), host: vhost,
			want: []string{"s /to " + vhost, "s /end " + vhost}},
		{name: "https to http", url: chain(a.URL+"/end", s.URL), host: vhost,
			want: []string{"s /to " + vhost, "a /end " + addr(a.URL)}},
		{name: "none given", url: chain(b.URL+"/end", a.URL),
			want: []string{"a /to " + addr(a.URL), "b /end " + addr(b.URL)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: the hops of one case are told apart by order.
			c := testClient(t, Options{MaxRedirects: 5, Insecure: true, KeepAlive: time.Minute})
			req, err := http.NewRequest(http.MethodGet, tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.host != "" {
				req.Host = tt.host
			}
			// As the runner asks, so that plain http takes the
			// transport's own path.
			req.Header.Set("Accept-Encoding", "gzip")
			mu.Lock()
			before := len(hops)
			mu.Unlock()
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			mu.Lock()
			got := append([]string(nil), hops[before:]...)
			mu.Unlock()
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("hops\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
