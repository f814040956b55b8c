package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestRedirectEchoMasked: a proxy or target that redirects to a Location
// quoting the credentials it was sent (a proxy's password, one filled in
// from a {session} template, the Basic tokens fetchctl builds, their
// decoded user:password, and the values of -H Authorization,
// Proxy-Authorization and Cookie) finds them masked in the record's
// final_url and message, and in -v lines.
func TestRedirectEchoMasked(t *testing.T) {
	t.Parallel()
	// quote returns what a request sent that a Location may quote back.
	var mu sync.Mutex
	var seen []string // every credential sent, as sent and decoded
	quote := func(r *http.Request) string {
		pa, a := r.Header.Get("Proxy-Authorization"), r.Header.Get("Authorization")
		mu.Lock()
		for _, v := range []string{pa, a} {
			if scheme, token, ok := strings.Cut(v, " "); ok {
				seen = append(seen, token)
				if scheme == "Basic" {
					seen = append(seen, basicOf(v))
					// A short password is masked where it stands as one
					// (see secret.Text): "cust:p5" is, not any "p5".
					if _, pw, _ := strings.Cut(basicOf(v), ":"); len(pw) >= 6 {
						seen = append(seen, pw)
					}
				}
			}
		}
		mu.Unlock()
		decoded := func(v string) string {
			if !strings.HasPrefix(v, "Basic ") {
				return ""
			}
			return basicOf(v)
		}
		q := url.Values{}
		q.Set("pa", pa)
		q.Set("pad", decoded(pa))
		q.Set("a", a)
		q.Set("ad", decoded(a))
		q.Set("c", r.Header.Get("Cookie"))
		// As written too, the way a careless server builds a Location.
		return q.Encode() + "&raw=" + decoded(pa) + decoded(a)
	}
	// A proxy that answers every forwarded request with a redirect, so
	// that the run gives up after --max-redirects.
	proxy := startEchoServer(t, func(r *http.Request) string {
		return "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/denied?" + quote(r) + "\r\nContent-Length: 0\r\n\r\n"
	})
	// A target that redirects to itself, then drops the redirected
	// request: the attempt fails after the redirect.
	target := startEchoServer(t, func(r *http.Request) string {
		if r.URL.Path == "/next" {
			return ""
		}
		return "HTTP/1.1 302 Found\r\nLocation: /next?" + quote(r) + "\r\nContent-Length: 0\r\n\r\n"
	})
	dir := t.TempDir()
	tests := []struct {
		name, proxy, url string
		header           []string
		session          bool
		forbidden        []string
	}{
		{name: "proxy password", proxy: "http://cust:Sec-fixed-xyz@" + proxy, url: "http://127.0.0.1:9/x",
			forbidden: []string{"Sec-fixed-xyz", b64("cust:Sec-fixed-xyz")}},
		{name: "short proxy password", proxy: "http://cust:p5@" + proxy, url: "http://127.0.0.1:9/x",
			forbidden: []string{"cust:p5", b64("cust:p5")}},
		{name: "session password", proxy: "http://c-session-{session}-x:Sec-{session}-xyz@" + proxy, url: "http://127.0.0.1:9/x", session: true},
		{name: "target user info", url: "http://tu:Tgt-pass-xyz@" + target + "/x",
			forbidden: []string{"Tgt-pass-xyz", b64("tu:Tgt-pass-xyz")}},
		{name: "-H Authorization Bearer", url: "http://" + target + "/x", header: []string{"Authorization: Bearer abcdefsecrettoken"},
			forbidden: []string{"abcdefsecrettoken"}},
		{name: "-H Cookie", url: "http://" + target + "/x", header: []string{"Cookie: sid=Cookie-val-xyz"},
			forbidden: []string{"Cookie-val-xyz"}},
		{name: "-H Authorization Basic", url: "http://" + target + "/x", header: []string{"Authorization: Basic " + b64("au:authsecret7")},
			forbidden: []string{"authsecret7", b64("au:authsecret7")}},
		{name: "-H Proxy-Authorization Basic", proxy: "http://" + proxy, url: "http://127.0.0.1:9/x", header: []string{"Proxy-Authorization: Basic " + b64("hu:hdrsecret9")},
			forbidden: []string{"hdrsecret9", b64("hu:hdrsecret9")}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := fmt.Sprintf("redir%d.txt", i)
			if err := os.WriteFile(filepath.Join(dir, in), []byte(tt.url+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"run", "-v", "--retries", "0", "-o", "-", in}
			if tt.proxy != "" {
				args = append(args, "--proxy", tt.proxy)
			}
			if tt.session {
				args = append(args, "--session", "url")
			}
			for _, h := range tt.header {
				args = append(args, "-H", h)
			}
			res := runFetchctl(t, dir, nil, args...)
			if !strings.Contains(res.stdout, `"final_url":"http://`) {
				t.Fatalf("exit %d, no final_url in the record:\n%s\n%s", res.code, res.stdout, res.stderr)
			}
			mu.Lock()
			forbidden := append(slices.Clip(tt.forbidden), seen...)
			mu.Unlock()
			slices.Sort(forbidden)
			forbidden = slices.Compact(forbidden)
			if tt.session && !slices.ContainsFunc(forbidden, func(s string) bool { return strings.HasPrefix(s, "c-session-") }) {
				t.Fatalf("the proxy was sent no session credentials:\n%s\n%s", res.stdout, res.stderr)
			}
			out := res.stdout + res.stderr
			for _, s := range forbidden {
				if strings.Contains(out, s) || strings.Contains(out, url.QueryEscape(s)) {
					t.Errorf("output shows %q:\n%s\n%s", s, res.stdout, res.stderr)
				}
			}
		})
	}
}

// TestHeaderBasicEchoMasked: a Basic credential given with -H reads as
// *** when a proxy or target quotes it back decoded (user:password, the
// password), as the same credential in a URL does: in a 407's status line
// and in the malformed header line net/http quotes.
func TestHeaderBasicEchoMasked(t *testing.T) {
	t.Parallel()
	decoded := func(v string) string {
		up := basicOf(v)
		_, pw, _ := strings.Cut(up, ":")
		return up + " / " + pw
	}
	proxy := startEchoServer(t, func(r *http.Request) string {
		return "HTTP/1.1 407 no " + decoded(r.Header.Get("Proxy-Authorization")) + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
	})
	target := startEchoServer(t, func(r *http.Request) string {
		return "HTTP/1.1 200 OK\r\nbad=hdr " + decoded(r.Header.Get("Authorization")) + "\r\n\r\n"
	})
	dir := t.TempDir()
	tests := []struct {
		name, url, header, proxy, secret string
	}{
		{name: "Proxy-Authorization to a proxy", url: "http://127.0.0.1:9/a", proxy: "http://" + proxy,
			header: "Proxy-Authorization: Basic " + b64("hu:hdrsecret9"), secret: "hdrsecret9"},
		{name: "Authorization to a target", url: "http://" + target + "/a",
			header: "Authorization: Basic " + b64("au:authsecret7"), secret: "authsecret7"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := fmt.Sprintf("basic%d.txt", i)
			if err := os.WriteFile(filepath.Join(dir, in), []byte(tt.url+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"run", "-v", "--retries", "0", "-o", "-", "-H", tt.header, in}
			if tt.proxy != "" {
				args = append(args, "--proxy", tt.proxy)
			}
			res := runFetchctl(t, dir, nil, args...)
			out := res.stdout + res.stderr
			if !strings.Contains(out, "*** / ***") {
				t.Errorf("exit %d, the quoted credential is not shown masked:\n%s\n%s", res.code, res.stdout, res.stderr)
			}
			if strings.Contains(out, tt.secret) {
				t.Errorf("output shows %q:\n%s\n%s", tt.secret, res.stdout, res.stderr)
			}
		})
	}
}

// TestSessionWholePasswordNotShown: with a {session} placeholder as the
// whole proxy password, a block's message does not show the session id,
// which is the password the proxy received.
func TestSessionWholePasswordNotShown(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var sent []string
	proxy := startEchoServer(t, func(r *http.Request) string {
		mu.Lock()
		_, pw, _ := strings.Cut(basicOf(r.Header.Get("Proxy-Authorization")), ":")
		sent = append(sent, pw)
		mu.Unlock()
		return "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
	})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "u.txt"), []byte("http://127.0.0.1:9/a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := runFetchctl(t, dir, nil, "run", "-v", "--retries", "0", "-o", "-", "--session", "url",
		"--proxy", "http://cust-acme:{session:12}@"+proxy, "u.txt")
	if !strings.Contains(res.stdout, `status 403 through proxy http://cust-acme:***@`+proxy+` (session #1) is in --rotate-on`) {
		t.Fatalf("exit %d, the record does not number the session:\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent) == 0 || len(sent[0]) != 12 {
		t.Fatalf("the proxy was sent passwords %q, want one of 12 characters", sent)
	}
	for _, pw := range sent {
		if strings.Contains(res.stdout+res.stderr, pw) {
			t.Errorf("output shows the password %q:\n%s\n%s", pw, res.stdout, res.stderr)
		}
	}
}
