package runner

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// holdServer is one loopback target that answers for many host names. It
// holds every request until the test lets one go, and records the peak in
// flight in total, per target host and per route (the X-Route header the
// route's client adds).
type holdServer struct {
	*httptest.Server
	mu      sync.Mutex
	changed *sync.Cond
	started int
	cur     peaks
	peak    peaks
	release chan struct{} // a receive lets one request answer
	open    chan struct{} // closed: every request answers at once
}

type peaks struct {
	total int
	host  map[string]int
	route map[string]int
}

func newHoldServer(t *testing.T) *holdServer {
	s := &holdServer{
		cur:     peaks{host: map[string]int{}, route: map[string]int{}},
		peak:    peaks{host: map[string]int{}, route: map[string]int{}},
		release: make(chan struct{}),
		open:    make(chan struct{}),
	}
	s.changed = sync.NewCond(&s.mu)
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *holdServer) serve(w http.ResponseWriter, r *http.Request) {
	host, route := r.Host, r.Header.Get("X-Route")
	s.mu.Lock()
	s.started++
	s.cur.total++
	s.cur.host[host]++
	s.cur.route[route]++
	s.peak.total = max(s.peak.total, s.cur.total)
	s.peak.host[host] = max(s.peak.host[host], s.cur.host[host])
	s.peak.route[route] = max(s.peak.route[route], s.cur.route[route])
	s.changed.Broadcast()
	s.mu.Unlock()
	select {
	case <-s.release:
	case <-s.open:
	case <-r.Context().Done():
	}
	s.mu.Lock()
	s.cur.total--
	s.cur.host[host]--
	s.cur.route[route]--
	s.mu.Unlock()
}

// pace lets one request go each time want are in flight, until n have
// started, then lets every request go: a run whose caps hold stays at want
// until its last requests start.
func (s *holdServer) pace(want, n int) {
	for {
		s.mu.Lock()
		for s.cur.total < want && s.started < n {
			s.changed.Wait()
		}
		done := s.started >= n
		s.mu.Unlock()
		if done {
			close(s.open)
			return
		}
		s.release <- struct{}{}
	}
}

// routeClient is one route's own client: its own connections, all to the
// hold server whatever the URL's host, marked with the route's name.
type routeClient struct {
	name string
	c    *http.Client
}

func (r routeClient) Do(req *http.Request) (*http.Response, error) {
	// The request's header map is the run's, shared: mark a copy.
	req = req.Clone(req.Context())
	req.Header.Set("X-Route", r.name)
	return r.c.Do(req)
}

func holdRoutes(t *testing.T, s *holdServer, n int) []Route {
	addr := s.Listener.Addr().String()
	var routes []Route
	for i := range n {
		var d net.Dialer
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		}}
		t.Cleanup(tr.CloseIdleConnections)
		name := fmt.Sprintf("http://p%d.test:8080", i)
		routes = append(routes, Route{Proxy: name, Client: routeClient{name: name, c: &http.Client{Transport: tr}}})
	}
	return routes
}

// TestCapsHoldAcrossRoutes checks what each cap means with several routes:
// --per-host is the target host's tolerance, over all routes together;
// --per-proxy holds on each route; --limit is the total in flight.
func TestCapsHoldAcrossRoutes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                     string
		routes, hosts, urls      int
		limit, perHost, perProxy int
		wantTotal                int // the run's peak in flight, reached and never passed
	}{
		// Five routes with --per-host 3 put 3 in flight on the one host,
		// not 5 × 3.
		{name: "per-host over all routes", routes: 5, hosts: 1, urls: 60, limit: 100, perHost: 3, wantTotal: 3},
		{name: "per-proxy on each route", routes: 5, hosts: 10, urls: 100, limit: 100, perHost: 100, perProxy: 2, wantTotal: 10},
		{name: "limit in total", routes: 5, hosts: 10, urls: 60, limit: 4, perHost: 100, wantTotal: 4},
		{name: "limit below per-proxy times routes", routes: 5, hosts: 10, urls: 60, limit: 7, perHost: 100, perProxy: 3, wantTotal: 7},
		{name: "one route: per-proxy above limit", routes: 1, hosts: 4, urls: 40, limit: 6, perHost: 100, perProxy: 10, wantTotal: 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newHoldServer(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			go s.pace(tt.wantTotal, tt.urls)
			opts := Options{Limit: tt.limit, PerHost: tt.perHost, PerProxy: tt.perProxy, Routes: holdRoutes(t, s, tt.routes)}
			recs, err := runJobs(t, ctx, opts, hostLines(tt.urls, tt.hosts))
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != tt.urls {
				t.Fatalf("%d records, want %d", len(recs), tt.urls)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.peak.total != tt.wantTotal {
				t.Errorf("peak in flight %d in total, want %d", s.peak.total, tt.wantTotal)
			}
			for h, p := range s.peak.host {
				if p > tt.perHost {
					t.Errorf("host %s: peak in flight %d over all routes, more than --per-host %d", h, p, tt.perHost)
				}
			}
			perRoute := tt.limit
			if tt.perProxy > 0 {
				perRoute = min(tt.perProxy, tt.limit)
			}
			if len(s.peak.route) != tt.routes {
				t.Errorf("%d routes carried requests, want all %d", len(s.peak.route), tt.routes)
			}
			for r, p := range s.peak.route {
				if p > perRoute {
					t.Errorf("route %s: peak in flight %d, more than %d", r, p, perRoute)
				}
			}
		})
	}
}

// TestRoutesTakeTurns checks that routes with room take turns: with more
// proxies than --limit, every proxy carries requests, not the first few.
func TestRoutesTakeTurns(t *testing.T) {
	t.Parallel()
	const nRoutes, urls = 20, 200
	var fakes []*fakeProxy
	var routes []Route
	for i := range nRoutes {
		f := newFakeProxy(fmt.Sprintf("http://p%d:8080", i), 0, nil)
		fakes = append(fakes, f)
		routes = append(routes, f.route())
	}
	recs, err := runJobs(t, context.Background(), Options{Limit: 2, PerHost: 2, Routes: routes}, hostLines(urls, 4))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != urls {
		t.Fatalf("%d records, want %d", len(recs), urls)
	}
	for _, f := range fakes {
		if f.calls.Load() == 0 {
			t.Errorf("%s carried nothing: routes with room do not take turns", f.name)
		}
	}
}

// TestReadAheadIgnoresRoutes checks that the jobs held at once do not grow
// with the number of proxies: a thousand routes hold what one does.
func TestReadAheadIgnoresRoutes(t *testing.T) {
	t.Parallel()
	for _, limit := range []int{1, 100, 1000} {
		one := Options{Limit: limit, PerHost: 1, Routes: make([]Route, 1)}
		many := Options{Limit: limit, PerHost: 1, Routes: make([]Route, 1000)}
		one.setDefaults()
		many.setDefaults()
		if one.ReadAhead != many.ReadAhead {
			t.Errorf("limit %d: read-ahead %d with one route, %d with 1000", limit, one.ReadAhead, many.ReadAhead)
		}
		if many.ReadAhead > max(8192, 64*limit) {
			t.Errorf("limit %d: read-ahead %d, more than max(8192, 64 × limit)", limit, many.ReadAhead)
		}
	}
}

// TestReadAheadFollowsSlots checks when the dispatcher takes more jobs: up
// to the read-ahead while a slot is free (a job further down may be for a
// host that can start), but with every slot busy only until about Limit
// jobs are queued, so that a run whose slots are full does not hold the
// whole read-ahead of parsed URLs.
func TestReadAheadFollowsSlots(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                            string
		pending, inflight, sinceNewHost int
		want                            bool
	}{
		{"nothing yet", 0, 0, 0, true},
		{"a slot free, many queued for busy hosts", 5000, 99, 5000, true},
		{"slots full, few queued", 150, 100, 500, true},
		{"slots full, a limit's worth queued", 200, 100, 500, false},
		{"slots full, more queued", 5000, 100, 500, false},
		{"slots full, more queued, new hosts still coming", 5000, 100, 150, true},
		{"read-ahead reached with a slot free", 8192, 10, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &dispatcher{opts: Options{Limit: 100, ReadAhead: 8192}, pending: tt.pending, inflight: tt.inflight, sinceNewHost: tt.sinceNewHost}
			if got := d.wantJobs(); got != tt.want {
				t.Errorf("pending %d, in flight %d: takes jobs %v, want %v", tt.pending, tt.inflight, got, tt.want)
			}
		})
	}
}
