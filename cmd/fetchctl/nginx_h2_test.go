package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeURLs writes n URLs of https://addr/, each with a query of its own,
// to dir/urls.txt.
func writeURLs(t *testing.T, dir, addr string, n int) {
	t.Helper()
	var urls strings.Builder
	for i := range n {
		fmt.Fprintf(&urls, "https://%s/?i=%d\n", addr, i)
	}
	if err := os.WriteFile(filepath.Join(dir, "urls.txt"), []byte(urls.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// failedByKind counts the records that failed by error kind, with the
// message of one of them.
func failedByKind(recs []record) (failed map[string]int, example string) {
	failed = map[string]int{}
	for _, r := range recs {
		if !r.OK {
			kind := "(none)"
			if r.Error != nil {
				kind, example = r.Error.Kind, r.Error.Message
			}
			failed[kind]++
		}
	}
	return failed, example
}

// nginxStatus is a server block's lines for nginx's stub_status on a
// plain HTTP listener of its own on 127.0.0.1, and a function that asks
// it how many connections nginx accepted, not counting its own.
func nginxStatus(t *testing.T) (site string, accepted func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	site = fmt.Sprintf("listen %s; location = /status { stub_status; }", addr)
	return site, func() int {
		t.Helper()
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
		resp, err := c.Get("http://" + addr + "/status")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		// "Active connections: 1 \nserver accepts handled requests\n 7 7 9 \n..."
		_, counts, _ := strings.Cut(string(body), "server accepts handled requests\n")
		var accepts int
		if _, err := fmt.Sscan(counts, &accepts); err != nil {
			t.Fatalf("stub_status said %q: %v", body, err)
		}
		return accepts - 1
	}
}

// TestNginxStreamLimitAndRotationOverHTTP2: nginx refuses the streams
// over http2_max_concurrent_streams that a new connection opens before
// nginx's SETTINGS arrive (REFUSED_STREAM), and after keepalive_requests
// sends GOAWAY and leaves the streams above its last one unprocessed.
// Those requests are sent again; no URL may fail for it, at any
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
			writeURLs(t, dir, addr, n)
			for _, perHost := range []string{"20", "100"} {
				out := "out-" + perHost + ".ndjson"
				res := runFetchctl(t, dir, nil, "run", "-k", "--http2", "--per-host", perHost, "--timeout", "30s",
					"--progress", "never", "-o", out, "urls.txt")
				recs := readRecords(t, filepath.Join(dir, out))
				if len(recs) != n {
					t.Fatalf("--per-host %s: %d records, want %d; stderr %q", perHost, len(recs), n, res.stderr)
				}
				if failed, example := failedByKind(recs); len(failed) > 0 {
					t.Errorf("--per-host %s: failed URLs by kind %v (one said %q), want none", perHost, failed, example)
				}
			}
		})
	}
}

// TestNginxHeavyRotationOverHTTP2: 1000 URLs at --per-host 100 against
// nginx with keepalive_requests 10, a GOAWAY every 10 requests, all
// succeed, and the run ends long before --timeout would have cut a
// request waiting to be sent again.
func TestNginxHeavyRotationOverHTTP2(t *testing.T) {
	t.Parallel()
	addr, _ := startNginx(t, "keepalive_requests 10; location / { return 200 \"ok\\n\"; }")
	dir := t.TempDir()
	const n = 1000
	writeURLs(t, dir, addr, n)
	start := time.Now()
	res := runFetchctl(t, dir, nil, "run", "-k", "--http2", "--per-host", "100", "--timeout", "30s",
		"--progress", "never", "-o", "out.ndjson", "urls.txt")
	took := time.Since(start)
	recs := readRecords(t, filepath.Join(dir, "out.ndjson"))
	if len(recs) != n {
		t.Fatalf("%d records, want %d; stderr %q", len(recs), n, res.stderr)
	}
	if failed, example := failedByKind(recs); len(failed) > 0 {
		t.Errorf("failed URLs by kind %v (one said %q), want none", failed, example)
	}
	t.Logf("%d URLs in %s", n, took.Round(time.Millisecond))
	// A hang guard: requests that waited for --timeout would take 30s.
	if took > 20*time.Second {
		t.Errorf("the run took %s, want it to end well inside --timeout 30s", took)
	}
}

// TestNginxRefusingEveryStreamOverHTTP2: nginx with
// http2_max_concurrent_streams 0 refuses every stream. Each URL fails
// with kind protocol, at once, on a handful of connections (at most 8 per
// attempt): sending refused requests again must not open connection after
// connection until --timeout.
func TestNginxRefusingEveryStreamOverHTTP2(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		n    int
	}{
		{"one url", 1},
		{"50 urls", 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, accepted := nginxStatus(t)
			addr, _ := startNginx(t, "http2_max_concurrent_streams 0; location / { return 200 \"ok\\n\"; } "+status)
			dir := t.TempDir()
			writeURLs(t, dir, addr, tc.n)
			start := time.Now()
			res := runFetchctl(t, dir, nil, "run", "-k", "--http2", "--per-host", "20", "--timeout", "30s",
				"--progress", "never", "-o", "out.ndjson", "urls.txt")
			took := time.Since(start)
			recs := readRecords(t, filepath.Join(dir, "out.ndjson"))
			if len(recs) != tc.n {
				t.Fatalf("%d records, want %d; stderr %q", len(recs), tc.n, res.stderr)
			}
			attempts := 0
			for _, r := range recs {
				attempts += r.Attempts
				if r.OK || r.Error == nil || r.Error.Kind != "protocol" {
					t.Errorf("%s: ok %v, error %+v, want kind protocol", r.URL, r.OK, r.Error)
				}
				if r.Attempts != 1 {
					t.Errorf("%s: %d attempts, want 1: protocol is not retried by default", r.URL, r.Attempts)
				}
			}
			// fetchctl has exited: nginx accepted every connection it made.
			conns := accepted()
			t.Logf("%d URLs, %d attempts: nginx accepted %d connections; the run took %s",
				tc.n, attempts, conns, took.Round(time.Millisecond))
			// A handful per attempt: a request sent four times, and
			// the connections net/http dialled for it but did not use.
			if conns > 8*attempts {
				t.Errorf("nginx accepted %d connections for %d attempts, want at most 8 per attempt", conns, attempts)
			}
			// A hang guard: attempts that ran into --timeout take 30s.
			if took > 10*time.Second {
				t.Errorf("the run took %s, want it to end well inside --timeout 30s", took)
			}
		})
	}
}
