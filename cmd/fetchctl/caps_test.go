package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// heldTargets are loopback target hosts (one server, one port, each) that
// share one count: each request is held until the test lets it go, and the
// peak in flight is kept in total and per host.
type heldTargets struct {
	srvs    []*httptest.Server
	mu      sync.Mutex
	changed *sync.Cond
	started int
	cur     map[string]int
	peak    map[string]int
	total   int
	peakAll int
	release chan struct{}
	open    chan struct{}
}

func startHeldTargets(t *testing.T, hosts int) *heldTargets {
	h := &heldTargets{cur: map[string]int{}, peak: map[string]int{}, release: make(chan struct{}), open: make(chan struct{})}
	h.changed = sync.NewCond(&h.mu)
	for range hosts {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		h.srvs = append(h.srvs, srv)
	}
	return h
}

func (h *heldTargets) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	h.mu.Lock()
	h.started++
	h.total++
	h.cur[host]++
	h.peakAll = max(h.peakAll, h.total)
	h.peak[host] = max(h.peak[host], h.cur[host])
	h.changed.Broadcast()
	h.mu.Unlock()
	select {
	case <-h.release:
	case <-h.open:
	case <-r.Context().Done():
	}
	h.mu.Lock()
	h.total--
	h.cur[host]--
	h.mu.Unlock()
	w.Write([]byte("ok"))
}

// pace lets one request go each time want are in flight, until n have
// started, then every request: a run that holds its caps stays at want.
func (h *heldTargets) pace(want, n int) {
	for {
		h.mu.Lock()
		for h.total < want && h.started < n {
			h.changed.Wait()
		}
		done := h.started >= n
		h.mu.Unlock()
		if done {
			close(h.open)
			return
		}
		h.release <- struct{}{}
	}
}

// TestProxyCapsHoldAcrossProxies drives the binary through five loopback
// forward proxies to targets that hold each request until the test lets
// one go, so that every cap is reached and what passes it would show:
// --per-host is what one target host sees over all proxies, --per-proxy
// what one proxy carries, --limit the total.
func TestProxyCapsHoldAcrossProxies(t *testing.T) {
	t.Parallel()
	const nProxies, urls = 5, 60
	tests := []struct {
		name                     string
		hosts                    int
		limit, perHost, perProxy int
		want                     int // peak in flight at the targets
	}{
		// Before --per-proxy, each proxy held its own --per-host: 5 × 3.
		{name: "per-host", hosts: 1, limit: 100, perHost: 3, perProxy: 0, want: 3},
		{name: "per-proxy", hosts: 4, limit: 100, perHost: 100, perProxy: 2, want: 10},
		{name: "limit", hosts: 4, limit: 4, perHost: 100, perProxy: 0, want: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			targets := startHeldTargets(t, tt.hosts)
			var proxies []*forwardProxy
			var pf, list strings.Builder
			for range nProxies {
				p := newForwardProxy(t, "", "")
				proxies = append(proxies, p)
				fmt.Fprintln(&pf, p.srv.URL)
			}
			for i := range urls {
				fmt.Fprintf(&list, "%s/x?i=%d\n", targets.srvs[i%tt.hosts].URL, i)
			}
			dir := t.TempDir()
			for name, text := range map[string]string{"urls.txt": list.String(), "proxies.txt": pf.String()} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			go targets.pace(tt.want, urls)
			// A run that passed a cap would stall the pacing at the end:
			// the timeout ends its requests so that the test fails rather
			// than hangs.
			timer := time.AfterFunc(30*time.Second, func() { close(targets.open) })
			defer timer.Stop()
			res := runFetchctl(t, dir, nil, "run", "-q", "--progress", "never", "--retries", "0", "--timeout", "40s",
				"--proxy-file", "proxies.txt", "--limit", strconv.Itoa(tt.limit), "--per-host", strconv.Itoa(tt.perHost),
				"--per-proxy", strconv.Itoa(tt.perProxy), "-o", "out.ndjson", "urls.txt")
			if res.code != 0 {
				t.Fatalf("fetchctl exited %d: %s", res.code, res.stderr)
			}
			if recs := readRecords(t, filepath.Join(dir, "out.ndjson")); len(recs) != urls {
				t.Fatalf("%d records, want %d", len(recs), urls)
			}
			targets.mu.Lock()
			defer targets.mu.Unlock()
			if targets.peakAll != tt.want {
				t.Errorf("targets saw %d requests in flight at most, want %d", targets.peakAll, tt.want)
			}
			for h, m := range targets.peak {
				if m > tt.perHost {
					t.Errorf("target %s saw %d requests in flight over all proxies, more than --per-host %d", h, m, tt.perHost)
				}
			}
			perProxy := tt.limit
			if tt.perProxy > 0 {
				perProxy = tt.perProxy
			}
			for i, p := range proxies {
				if m := p.total.max.Load(); m > int64(perProxy) {
					t.Errorf("proxy %d carried %d requests at once, more than %d", i, m, perProxy)
				}
				if p.requests.Load() == 0 {
					t.Errorf("proxy %d carried nothing", i)
				}
			}
		})
	}
}
