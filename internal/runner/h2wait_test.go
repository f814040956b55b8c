package runner

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
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
			recs, err := runJobs(t, context.Background(), opts, lines)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != len(lines) {
				t.Fatalf("%d records, want %d", len(recs), len(lines))
			}
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
