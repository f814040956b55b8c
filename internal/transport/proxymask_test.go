package transport

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/testnet"
)

// TestProxyErrorMasksCredentialsSent: a proxy whose answer quotes the
// credentials the transport sent it (the password, user:password, the
// Basic token of Proxy-Authorization) reads as *** in the error (a
// ProxyError, or the failure of a forwarded request's answer),
// whether or not the run knows that password: one filled in from a session
// template is known only to the transport that sends it.
func TestProxyErrorMasksCredentialsSent(t *testing.T) {
	t.Parallel()
	const pass = "Sec-q7hnie8i-xyz"
	token := base64.StdEncoding.EncodeToString([]byte("c-q7hnie8i:" + pass))
	lnAddr := testnet.ServeRequest(t, func(c net.Conn, req *http.Request) {
		pa := req.Header.Get("Proxy-Authorization")
		b, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(pa, "Basic "))
		_, pw, _ := strings.Cut(string(b), ":")
		quote := fmt.Sprintf("password %s for %s token %s", pw, b, pa)
		if req.Method == http.MethodConnect {
			fmt.Fprintf(c, "HTTP/1.1 502 %s\r\nContent-Length: 0\r\n\r\n", quote)
			return
		}
		if req.URL.Path == "/header" {
			// A header line without a colon, which net/http quotes.
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\n%s\r\nContent-Length: 0\r\n\r\n", strings.ReplaceAll(quote, ":", " "))
			return
		}
		// No status line: net/http quotes the line it refused.
		fmt.Fprintf(c, "%s\r\n\r\n", strings.ReplaceAll(quote, " ", "|"))
	})
	proxy := &url.URL{Scheme: "http", Host: lnAddr.String(), User: url.UserPassword("c-q7hnie8i", pass)}
	for _, tt := range []struct{ name, target, want string }{
		{"CONNECT answered", "https://127.0.0.1:9/", "CONNECT answered 502"},
		{"forwarded, no status line", "http://127.0.0.1:9/", "no HTTP answer"},
		{"forwarded, malformed header line", "http://127.0.0.1:9/header", "malformed MIME header"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := testClient(t, Options{Proxy: proxy, ConnectTimeout: 5 * time.Second})
			_, _, err := get(t, c, tt.target)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "***") {
				t.Fatalf("err = %v, want a masked %q", err, tt.want)
			}
			for _, s := range []string{pass, token} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q shows %q", err, s)
				}
			}
		})
	}
}
