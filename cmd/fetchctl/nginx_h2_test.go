package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNginxStreamLimitAndRotationOverHTTP2: nginx refuses the streams
// over http2_max_concurrent_streams that a new connection opens before
// nginx's SETTINGS arrive (REFUSED_STREAM), and after keepalive_requests
// sends GOAWAY and leaves the streams above its last one unprocessed.
// net/http sends those requests again; no URL may fail for it, at any
// --per-host.
func TestNginxStreamLimitAndRotationOverHTTP2(t *testing.T) {
	t.Parallel()
	for _, site := range []struct{ name, conf string }{
		{"max concurrent streams 2", "http2_max_concurrent_streams 2; location / { return 200 \"ok\\n\"; }"},
		{"keepalive requests 10", "keepalive_requests 10; location / { return 200 \"ok\\n\"; }"},
	} {
		t.Run(site.name, func(t *testing.T) {
			t.Parallel()
			addr, _ := startNginx(t, site.conf)
			dir := t.TempDir()
			const n = 200
			var urls strings.Builder
			for i := range n {
				fmt.Fprintf(&urls, "https://%s/?i=%d\n", addr, i)
			}
			if err := os.WriteFile(filepath.Join(dir, "urls.txt"), []byte(urls.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, perHost := range []string{"20", "100"} {
				out := "out-" + perHost + ".ndjson"
				res := runFetchctl(t, dir, nil, "run", "-k", "--http2", "--per-host", perHost, "--timeout", "30s",
					"--progress", "never", "-o", out, "urls.txt")
				recs := readRecords(t, filepath.Join(dir, out))
				if len(recs) != n {
					t.Fatalf("--per-host %s: %d records, want %d; stderr %q", perHost, len(recs), n, res.stderr)
				}
				failed := map[string]int{}
				var example string
				for _, r := range recs {
					if !r.OK && r.Error != nil {
						failed[r.Error.Kind]++
						example = r.Error.Message
					}
				}
				if len(failed) > 0 {
					t.Errorf("--per-host %s: failed URLs by kind %v (one said %q), want none", perHost, failed, example)
				}
			}
		})
	}
}
