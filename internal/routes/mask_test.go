package routes

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/testnet"
	"github.com/fetchctl/fetchctl/internal/transport"
)

// TestRefusalMasksCredentialsSent: a proxy that refuses a forwarded
// plain-http request with a 407 whose reason quotes the credentials it was
// sent (the password, user:password, the Basic token) fails the request at
// the proxy with them masked: a fixed proxy's, an environment proxy's, and
// a password filled in from a session template, which only its session
// knows.
func TestRefusalMasksCredentialsSent(t *testing.T) {
	t.Parallel()
	lnAddr := testnet.ServeRequest(t, func(c net.Conn, req *http.Request) {
		pa := req.Header.Get("Proxy-Authorization")
		b, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(pa, "Basic "))
		_, pw, _ := strings.Cut(string(b), ":")
		fmt.Fprintf(c, "HTTP/1.1 407 password %s for %s token %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", pw, b, pa)
	})
	addr := lnAddr.String()
	idOf := regexp.MustCompile(`\(session ([a-z0-9]{8})\)`)
	tests := []struct {
		name    string
		proxy   string
		env     bool
		session SessionMode
	}{
		{name: "fixed", proxy: "http://u:Sec-fixed-xyz@" + addr},
		{name: "environment", proxy: "http://u:Sec-fixed-xyz@" + addr, env: true},
		{name: "session template", proxy: "http://c-{session}:Sec-{session}-xyz@" + addr, session: SessionMode{PerURL: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := Options{Limit: 1, Session: tt.session, SessionTTL: time.Minute}
			if tt.env {
				o.Getenv = envOf(map[string]string{"HTTP_PROXY": tt.proxy})
				o.Transport.ProxyFromEnv = true
			} else {
				p, err := transport.ParseProxy(tt.proxy)
				if err != nil {
					t.Fatal(err)
				}
				o.Proxies = append(o.Proxies, p)
				o.Getenv = envOf(nil)
			}
			plan, err := Build(o)
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest("GET", "http://a.example/a", nil)
			resp, err := plan.Routes[0].Client.Do(req)
			var pe *transport.ProxyError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), "answered 407 password ***") {
				t.Fatalf("Do() = %v, %v; want a masked *ProxyError", resp, err)
			}
			user, pass := "u", "Sec-fixed-xyz"
			if m := idOf.FindStringSubmatch(err.Error()); m != nil {
				user, pass = "c-"+m[1], "Sec-"+m[1]+"-xyz"
			} else if tt.session.On() {
				t.Fatalf("error %q names no session", err)
			}
			for _, s := range []string{pass, base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q shows %q", err, s)
				}
			}
		})
	}
}
