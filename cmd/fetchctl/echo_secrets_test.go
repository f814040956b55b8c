package main

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fetchctl/fetchctl/internal/testnet"
)

// startEchoServer serves raw connections on loopback that read one request
// head and answer with the head answer makes of it: a proxy or a target
// that quotes the credentials it was sent.
func startEchoServer(t *testing.T, answer func(req *http.Request) string) string {
	t.Helper()
	lnAddr := testnet.ServeRequest(t, func(c net.Conn, req *http.Request) {
		fmt.Fprint(c, answer(req))
	})
	return lnAddr.String()
}

// basicOf returns the user:password a Basic header value carries.
func basicOf(v string) string {
	b, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(v, "Basic "))
	return string(b)
}

// TestEchoedCredentialsMasked: a proxy or target that quotes back the
// password fetchctl sent it, the user:password or the Basic token made of
// them, finds them masked in records and -v lines: a fixed proxy password,
// one filled in from a {session} template, and a target URL's user info.
func TestEchoedCredentialsMasked(t *testing.T) {
	t.Parallel()
	// A proxy that answers CONNECT, or a forwarded request, with a status
	// whose reason quotes what it was sent.
	quoting := func(code string) func(*http.Request) string {
		return func(r *http.Request) string {
			pa := r.Header.Get("Proxy-Authorization")
			up := basicOf(pa)
			_, pw, _ := strings.Cut(up, ":")
			return fmt.Sprintf("HTTP/1.1 %s Denied password %s for %s token %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", code, pw, up, pa)
		}
	}
	proxy502 := startEchoServer(t, quoting("502"))
	proxy407 := startEchoServer(t, quoting("407"))
	// A target that answers with a malformed status code, which net/http
	// quotes: the password of the URL's user info, or the Basic token it
	// made of it.
	target := startEchoServer(t, func(r *http.Request) string {
		a := r.Header.Get("Authorization")
		code := strings.TrimPrefix(a, "Basic ")
		if r.URL.Path == "/pw" {
			_, code, _ = strings.Cut(basicOf(a), ":")
		}
		return "HTTP/1.1 " + code + " OK\r\n\r\n"
	})
	dir := t.TempDir()
	idOf := regexp.MustCompile(`\(session ([a-z0-9]{8})\)`)
	tests := []struct {
		name, proxy, url string
		session          bool
		// forbidden holds the secrets; a filled session password is found
		// from the session id the message shows.
		forbidden []string
		want      string
	}{
		{name: "CONNECT, fixed password", proxy: "http://u:Sec-fixed-xyz@" + proxy502, url: "https://127.0.0.1:9/a",
			forbidden: []string{"Sec-fixed-xyz", b64("u:Sec-fixed-xyz")}, want: "CONNECT answered 502"},
		{name: "CONNECT, session password", proxy: "http://u:Sec-{session}-xyz@" + proxy502, url: "https://127.0.0.1:9/a", session: true,
			want: "CONNECT answered 502"},
		{name: "CONNECT 407, session password and user", proxy: "http://c-{session}:Sec-{session}-xyz@" + proxy407, url: "https://127.0.0.1:9/a", session: true,
			want: "CONNECT answered 407"},
		{name: "forwarded, fixed password", proxy: "http://u:Sec-fixed-xyz@" + proxy407, url: "http://127.0.0.1:9/a",
			forbidden: []string{"Sec-fixed-xyz", b64("u:Sec-fixed-xyz")}, want: "answered 407"},
		{name: "forwarded, session password", proxy: "http://c-{session}:Sec-{session}-xyz@" + proxy407, url: "http://127.0.0.1:9/a", session: true,
			want: "answered 407"},
		{name: "target URL user info", url: "http://tu:Tgt-pass-xyz@" + target + "/pw\nhttp://tu:Tgt-pass-xyz@" + target + "/token",
			forbidden: []string{"Tgt-pass-xyz", b64("tu:Tgt-pass-xyz")}, want: "malformed HTTP status code"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := fmt.Sprintf("in%d.txt", i)
			if err := os.WriteFile(filepath.Join(dir, in), []byte(tt.url+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"run", "-v", "--retries", "0", in}
			if tt.proxy != "" {
				args = append(args, "--proxy", tt.proxy)
			}
			if tt.session {
				args = append(args, "--session", "url")
			}
			res := runFetchctl(t, dir, nil, args...)
			out := res.stdout + res.stderr
			if !strings.Contains(res.stdout, tt.want) || !strings.Contains(res.stdout, "***") {
				t.Fatalf("exit %d, the record does not show the quoted answer masked:\n%s\n%s", res.code, res.stdout, res.stderr)
			}
			forbidden := tt.forbidden
			if tt.session {
				m := idOf.FindStringSubmatch(res.stdout)
				if m == nil {
					t.Fatalf("no session id in the record:\n%s", res.stdout)
				}
				pw := "Sec-" + m[1] + "-xyz"
				forbidden = append(forbidden, pw, b64("u:"+pw), b64("c-"+m[1]+":"+pw))
			}
			for _, s := range forbidden {
				if strings.Contains(out, s) {
					t.Errorf("output shows %q:\n%s\n%s", s, res.stdout, res.stderr)
				}
			}
		})
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
