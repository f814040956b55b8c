package transport

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"
)

// TestTLSSessionsResume: a new connection to a host that the client has
// met resumes its TLS session rather than paying a full handshake, counted
// at the server, for TLS 1.3 and 1.2.
func TestTLSSessionsResume(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		version uint16
	}{{"TLS 1.3", tls.VersionTLS13}, {"TLS 1.2", tls.VersionTLS12}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, full, resumed := handshakeCounter(t, tt.version)
			// One request per connection: every request is a new handshake.
			c := testClient(t, Options{MaxConnRequests: 1, KeepAlive: time.Minute, Insecure: true, ConnectTimeout: 5 * time.Second})
			const n = 5
			for range n {
				mustGet(t, c, srv.URL)
			}
			if full.Load() != 1 || resumed.Load() != n-1 {
				t.Errorf("%d connections made %d full and %d resumed handshakes, want 1 and %d", n, full.Load(), resumed.Load(), n-1)
			}
		})
	}
}

// TestSharedResumesAcrossClients: a client built with another's Shared (a
// new proxy session, say) resumes the TLS sessions the other made.
func TestSharedResumesAcrossClients(t *testing.T) {
	t.Parallel()
	srv, full, resumed := handshakeCounter(t, 0)
	opts := Options{KeepAlive: time.Minute, Insecure: true, ConnectTimeout: 5 * time.Second}
	opts.Shared = NewShared(opts)
	for range 3 {
		mustGet(t, testClient(t, opts), srv.URL)
	}
	mustGet(t, testClient(t, Options{KeepAlive: time.Minute, Insecure: true}), srv.URL)
	if full.Load() != 2 || resumed.Load() != 2 {
		t.Errorf("%d full and %d resumed handshakes, want 2 and 2 (the client without the Shared pays in full)", full.Load(), resumed.Load())
	}
}

// handshakeCounter starts a TLS server (TLS at most version, 0 for the
// newest) that counts the full and the resumed handshakes it makes.
func handshakeCounter(t *testing.T, version uint16) (srv *httptest.Server, full, resumed *atomic.Int64) {
	full, resumed = new(atomic.Int64), new(atomic.Int64)
	srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.TLS = &tls.Config{MaxVersion: version, VerifyConnection: func(cs tls.ConnectionState) error {
		if cs.DidResume {
			resumed.Add(1)
		} else {
			full.Add(1)
		}
		return nil
	}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, full, resumed
}

// TestTLSSessionsPerPort: two servers on one host whose session tickets
// differ each resume their own sessions. A session is kept per address
// dialled (host and port), so a new connection to A after one to B offers
// A's ticket, not B's, which A could not read.
func TestTLSSessionsPerPort(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		version uint16
		http2   bool
	}{
		{"HTTP/1.1 path TLS 1.3", tls.VersionTLS13, false},
		{"HTTP/1.1 path TLS 1.2", tls.VersionTLS12, false},
		{"net/http TLS 1.3", tls.VersionTLS13, true},
		{"net/http TLS 1.2", tls.VersionTLS12, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, fullA, resumedA := handshakeCounter(t, tt.version)
			b, fullB, resumedB := handshakeCounter(t, tt.version)
			c := testClient(t, Options{KeepAlive: time.Minute, HTTP2: tt.http2, Insecure: true, ConnectTimeout: 5 * time.Second})
			if !tt.http2 {
				h1Of(t, c)
			}
			for _, u := range []string{a.URL, b.URL, a.URL, b.URL} {
				// Each request on a new connection.
				mustGetGz(t, c, u)
				c.CloseIdleConnections()
			}
			if fullA.Load() != 1 || resumedA.Load() != 1 || fullB.Load() != 1 || resumedB.Load() != 1 {
				t.Errorf("A made %d full and %d resumed handshakes, B %d and %d; want 1 and 1 each",
					fullA.Load(), resumedA.Load(), fullB.Load(), resumedB.Load())
			}
		})
	}
}

// TestTLSSessionsPerProxyPort: the TLS sessions of two HTTPS proxies on
// one host, at two ports, are kept apart as well.
func TestTLSSessionsPerProxyPort(t *testing.T) {
	t.Parallel()
	a, fullA, resumedA := handshakeCounter(t, 0)
	b, fullB, resumedB := handshakeCounter(t, 0)
	opts := Options{KeepAlive: time.Minute, Insecure: true, ConnectTimeout: 5 * time.Second}
	opts.Shared = NewShared(opts)
	clients := map[string]*http.Client{}
	for _, srv := range []*httptest.Server{a, b} {
		o := opts
		o.Proxy, _ = url.Parse(srv.URL)
		clients[srv.URL] = testClient(t, o)
	}
	for _, p := range []string{a.URL, b.URL, a.URL, b.URL} {
		// The proxy answers a forwarded request itself.
		mustGet(t, clients[p], "http://127.0.0.1:9/")
		clients[p].CloseIdleConnections()
	}
	if fullA.Load() != 1 || resumedA.Load() != 1 || fullB.Load() != 1 || resumedB.Load() != 1 {
		t.Errorf("proxy A made %d full and %d resumed handshakes, B %d and %d; want 1 and 1 each",
			fullA.Load(), resumedA.Load(), fullB.Load(), resumedB.Load())
	}
}
