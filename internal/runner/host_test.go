package runner

import (
	"context"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestRunHostHeader: a Host in Options.Header is the requests' Host, as
// curl sends -H 'Host: name' (virtual hosting), and is not left in the
// header map they carry, whose other headers go as given; an empty one
// leaves each request the Host of its URL. The caller's map is untouched.
func TestRunHostHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		header http.Header
		want   map[string]string // URL → Host of its request
	}{
		{name: "given", header: http.Header{"Host": {"vhost.example:8080"}, "X-A": {"1"}},
			want: map[string]string{"http://a.example/x": "vhost.example:8080", "https://b.example:8443/y": "vhost.example:8080"}},
		{name: "none", header: http.Header{"X-A": {"1"}},
			want: map[string]string{"http://a.example/x": "a.example", "https://b.example:8443/y": "b.example:8443"}},
		{name: "empty", header: http.Header{"Host": {""}, "X-A": {"1"}},
			want: map[string]string{"http://a.example/x": "a.example", "https://b.example:8443/y": "b.example:8443"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			given := tt.header.Clone()
			var mu sync.Mutex
			got := map[string]*http.Request{}
			doer := doerFunc(func(r *http.Request) (*http.Response, error) {
				mu.Lock()
				got[r.URL.String()] = r
				mu.Unlock()
				return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("ok")), Request: r}, nil
			})
			var lines []string
			for u := range tt.want {
				lines = append(lines, u)
			}
			recs, err := runJobs(t, context.Background(), Options{Limit: 2, PerHost: 1, Header: tt.header, Routes: []Route{{Client: doer}}}, lines)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if !r.OK {
					t.Errorf("%s: not ok: %+v", r.URL, r.Error)
				}
			}
			for u, host := range tt.want {
				req := got[u]
				if req == nil {
					t.Fatalf("no request for %s", u)
				}
				if req.Host != host {
					t.Errorf("%s: request Host %q, want %q", u, req.Host, host)
				}
				if v, ok := req.Header["Host"]; ok {
					t.Errorf("%s: request header map holds Host %q", u, v)
				}
				if req.Header.Get("X-A") != "1" {
					t.Errorf("%s: request header map %v lost X-A", u, req.Header)
				}
			}
			if !maps.EqualFunc(tt.header, given, slices.Equal[[]string]) {
				t.Errorf("Run changed the caller's header map to %v, want %v", tt.header, given)
			}
		})
	}
}
