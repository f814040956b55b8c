package transport

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"
)

// Requests to one HTTP/2 host that start at once share one connection,
// whatever the form of the host's name: net/http names a connection it
// hands to the pool by the host's ASCII (IDNA) form as the URL spells it,
// and the pool must find it under that name.
func TestH2PoolOneConnectionPerHostName(t *testing.T) {
	t.Parallel()
	for _, host := range []string{"127.0.0.1", "LocalHost.test", "bücher.test"} {
		t.Run(host, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, "h2", nil)
			target := srv.Listener.Addr().String()
			_, port, _ := net.SplitHostPort(target)
			var d net.Dialer
			c := testClient(t, Options{
				HTTP2: true, Insecure: true, PerHost: 20, KeepAlive: time.Minute,
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					return d.DialContext(ctx, network, target)
				},
			})
			u := (&url.URL{Scheme: "https", Host: net.JoinHostPort(host, port), Path: "/"}).String()
			var wg sync.WaitGroup
			for range 20 {
				wg.Go(func() {
					resp, body, err := get(t, c, u)
					if err != nil {
						t.Errorf("GET %s: %v", u, err)
						return
					}
					if resp.StatusCode != http.StatusOK || body != "HTTP/2.0" {
						t.Errorf("GET %s: %d %q, want 200 over HTTP/2.0", u, resp.StatusCode, body)
					}
				})
			}
			wg.Wait()
			if n := srv.conns.Load(); n != 1 {
				t.Errorf("%d connections to %s, want 1", n, host)
			}
		})
	}
}
