package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fetchctl/fetchctl/internal/target"
)

// TestProxyRefusingOneDestination: a proxy that refuses CONNECT to one
// target host (a 403 or another 4xx than the 407 of credentials) fails
// that host's URLs with kind proxy, and has not failed itself: it is not
// set aside and the run goes on, every URL of the other host ok through it.
// The exit code is that of a run with failed URLs.
func TestProxyRefusingOneDestination(t *testing.T) {
	t.Parallel()
	const perHost = 30
	srv, err := target.Start(target.Options{Hosts: 2, BodySize: 16, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	banned := srv.Addrs()[0]
	for _, status := range []int{http.StatusForbidden, http.StatusNotFound} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			fwd := newForwardProxy(t, "", "")
			proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodConnect && r.Host == banned {
					http.Error(w, "destination not allowed", status)
					return
				}
				fwd.ServeHTTP(w, r)
			}))
			t.Cleanup(proxy.Close)
			dir := t.TempDir()
			var list strings.Builder
			for i := range 2 * perHost {
				fmt.Fprintf(&list, "%s?i=%d\n", srv.URL(i%2, "/x"), i)
			}
			if err := os.WriteFile(filepath.Join(dir, "urls.txt"), []byte(list.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			res := runFetchctl(t, dir, nil, "run", "-v", "--progress", "never", "-k", "--proxy", proxy.URL,
				"--limit", "4", "--per-host", "2", "--min-success", "0.9", "-o", "out.ndjson", "--summary", "sum.json", "urls.txt")
			if res.code != 1 || !strings.Contains(res.stderr, "success ratio 0.5000 is below --min-success 0.9") {
				t.Errorf("exit %d, want 1 for the failed URLs below --min-success:\n%s", res.code, res.stderr)
			}
			if strings.Contains(res.stderr, "run stopped") || strings.Contains(res.stderr, "set aside") {
				t.Errorf("the proxy was taken down for refusing one destination:\n%s", res.stderr)
			}
			if sum := readSummary(t, filepath.Join(dir, "sum.json")); sum.Interrupted || sum.Total != 2*perHost {
				t.Errorf("summary: interrupted %v, %d records; want the whole list", sum.Interrupted, sum.Total)
			}
			recs := readRecords(t, filepath.Join(dir, "out.ndjson"))
			if len(recs) != 2*perHost {
				t.Fatalf("%d records, want %d", len(recs), 2*perHost)
			}
			want := fmt.Sprintf("proxy %s: CONNECT answered %d %s", proxy.URL, status, http.StatusText(status))
			for _, r := range recs {
				if strings.Contains(r.URL, banned) {
					if r.OK || r.Error == nil || r.Error.Kind != "proxy" || r.Error.Message != want {
						t.Errorf("%s: ok %v, error %+v; want kind proxy, %q", r.URL, r.OK, r.Error, want)
					}
				} else if !r.OK {
					t.Errorf("%s: not ok: %+v", r.URL, r.Error)
				}
			}
		})
	}
}
