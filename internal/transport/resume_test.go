package transport

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
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
