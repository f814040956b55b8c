package runner

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/testnet"
	"github.com/fetchctl/fetchctl/internal/transport"
)

// TestSlowFirstURLHoldsNoOtherBack: the other requests to a host wait for
// its first request's connection, not for its answer. The first URL never
// answers within --timeout; the others must be answered, on a server that
// speaks HTTP/1.1 only and on an HTTP/2 one whose SETTINGS allow exactly
// the 100 streams a client assumes before it has read them.
func TestSlowFirstURLHoldsNoOtherBack(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		h2   bool
	}{
		{"HTTP/1.1 over TLS", false},
		{"HTTP/2, 100 streams", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/slow" {
					select {
					case <-release:
					case <-r.Context().Done():
					}
				}
				_, _ = w.Write([]byte("ok"))
			}))
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{loopbackCert(t)}}
			if tc.h2 {
				srv.EnableHTTP2 = true
				srv.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 100}
			}
			srv.StartTLS()
			t.Cleanup(srv.Close)
			t.Cleanup(func() { close(release) })
			opts := h2Opts(t, 20, time.Second)
			opts.Limit, opts.Retries = 50, 0
			lines := append([]string{srv.URL + "/slow"}, h2Lines(srv.URL+"/fast", 40)...)
			recs := runEach(t, opts, lines)
			for _, r := range recs {
				if strings.HasSuffix(r.URL, "/slow") {
					if r.Error == nil || r.Error.Kind != "timeout" {
						t.Errorf("%s: error %+v, want timeout", r.URL, r.Error)
					}
					continue
				}
				if !r.OK {
					t.Errorf("%s: error %+v after %.0fms, want ok", r.URL, r.Error, r.DurationMS)
				}
			}
		})
	}
}

// TestHungHandshakeFailsTheWaitersToo: the requests that wait for a
// host's first connection get its failure when it cannot be made (here a
// server that accepts and never answers the TLS handshake), rather than
// each trying in turn after it and running past --timeout.
func TestHungHandshakeFailsTheWaitersToo(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Reads until the test closes the connection, and never answers.
	testnet.Serve(t, ln, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	c, err := transport.New(transport.Options{HTTP2: true, Insecure: true, KeepAlive: 30 * time.Second,
		PerHost: 5, ConnectTimeout: 600 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	opts := Options{Limit: 5, PerHost: 5, Routes: []Route{{Client: c}}, Timeout: time.Second, Retries: 0,
		RetryOn: mustRetryOn(t, "429,5xx,timeout,reset,connect"), KeepAlive: true}
	lines := h2Lines("https://"+ln.Addr().String()+"/", 5)
	recs := runEach(t, opts, lines)
	for _, r := range recs {
		if r.Error == nil || !strings.Contains(r.Error.Message, "connect timeout") {
			t.Errorf("%s: error %+v, want the connect timeout's", r.URL, r.Error)
		}
	}
}

// TestFirstConnectionsClosedAreTriedAgain: a host that closes its first
// two connections at once and then answers costs one failed attempt a
// closed connection, and loses no URL: the requests that waited for the
// first connection try for themselves when it fails quickly, rather than
// each failing with it. (Which request meets the second closed connection
// is a race: one may meet both, so two retries.)
func TestFirstConnectionsClosedAreTriedAgain(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{loopbackCert(t)}}
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	accepted := 0
	testnet.Serve(t, ln, func(c net.Conn) {
		mu.Lock()
		accepted++
		n := accepted
		mu.Unlock()
		if n <= 2 {
			return // closed before the handshake
		}
		up, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			return
		}
		defer up.Close()
		go func() { _, _ = io.Copy(up, c); up.Close() }()
		_, _ = io.Copy(c, up)
	})
	opts := h2Opts(t, 10, 5*time.Second)
	opts.Limit, opts.Retries = 10, 2
	lines := h2Lines("https://"+ln.Addr().String()+"/", 10)
	recs := runEach(t, opts, lines)
	failed := 0
	for _, r := range recs {
		failed += r.Attempts - 1
		if !r.OK {
			t.Errorf("%s: error %+v after %d attempts, want ok", r.URL, r.Error, r.Attempts)
		}
	}
	if failed > 2 {
		t.Errorf("%d attempts failed, want at most 2: one a closed connection", failed)
	}
}
