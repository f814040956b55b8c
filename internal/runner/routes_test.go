package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/transport"
)

// proxyFailure is a failure at proxy as the transport reports it, cause
// being the underlying failure's text.
func proxyFailure(proxy, cause string, targetUnreachable bool) error {
	return &transport.ProxyError{Proxy: proxy, Err: errors.New(cause), TargetUnreachable: targetUnreachable}
}

// fakeProxy is a Doer standing in for the client of one proxy. It answers
// 200 after delay unless fail returns an error for the call (numbered from
// 1), and counts calls, URLs and requests in flight, in total and per
// target host.
type fakeProxy struct {
	name  string
	delay time.Duration
	fail  func(call int64) error
	now   func() time.Time // stamps okAt and failAt; time.Now unless set

	calls    atomic.Int64
	inflight gauge
	all      *gauge // when set, also counts this proxy's requests in flight

	mu      sync.Mutex
	urls    map[string]int
	perHost map[string]*gauge
	okAt    []time.Time // when each successful call started, by now
	failAt  []time.Time // when each failed call returned, by now
}

func newFakeProxy(name string, delay time.Duration, fail func(int64) error) *fakeProxy {
	return &fakeProxy{name: name, delay: delay, fail: fail, urls: map[string]int{}, perHost: map[string]*gauge{}}
}

func (f *fakeProxy) route() Route { return Route{Proxy: f.name, Client: f} }

func (f *fakeProxy) clock() time.Time {
	if f.now != nil {
		return f.now()
	}
	return time.Now()
}

func (f *fakeProxy) Do(req *http.Request) (*http.Response, error) {
	start := f.clock()
	n := f.calls.Add(1)
	f.mu.Lock()
	f.urls[req.URL.String()]++
	g := f.perHost[req.URL.Host]
	if g == nil {
		g = &gauge{}
		f.perHost[req.URL.Host] = g
	}
	f.mu.Unlock()
	f.inflight.enter()
	g.enter()
	defer f.inflight.leave()
	defer g.leave()
	if f.all != nil {
		f.all.enter()
		defer f.all.leave()
	}
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
	}
	if f.fail != nil {
		if err := f.fail(n); err != nil {
			f.mu.Lock()
			f.failAt = append(f.failAt, f.clock())
			f.mu.Unlock()
			return nil, err
		}
	}
	f.mu.Lock()
	f.okAt = append(f.okAt, start)
	f.mu.Unlock()
	return &http.Response{
		Status: "200 OK", StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: io.NopCloser(strings.NewReader("ok")), Request: req,
	}, nil
}

func (f *fakeProxy) seen(url string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.urls[url]
}

func always(err error) func(int64) error {
	return func(int64) error { return err }
}

// hostLines returns n URLs spread round-robin over hosts h0.test, h1.test...
func hostLines(n, hosts int) []string {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("http://h%d.test/%d", i%hosts, i)
	}
	return lines
}

func TestRoutesMoveProxyFailuresWithoutARetry(t *testing.T) {
	t.Parallel()
	dead := newFakeProxy("http://dead:8080", 0, always(proxyFailure("http://dead:8080", "dial tcp 127.0.0.1:1: connect: connection refused", false)))
	b := newFakeProxy("http://b:8080", time.Millisecond, nil)
	c := newFakeProxy("http://c:8080", time.Millisecond, nil)
	lines := hostLines(300, 3)
	// The dead proxy is never set aside here: what is tested is that each
	// of its URLs goes elsewhere at once, without spending a retry.
	opts := Options{Limit: 4, PerHost: 4, Retries: 0, ProxyFailures: 1 << 20,
		Routes: []Route{dead.route(), b.route(), c.route()}}
	recs, err := runJobs(t, context.Background(), opts, lines)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(lines) {
		t.Fatalf("%d records, want %d", len(recs), len(lines))
	}
	moved := 0
	for _, r := range recs {
		if !r.OK {
			t.Errorf("line %d: %+v, want ok through another proxy", r.Line, r.Error)
			continue
		}
		if r.Proxy == dead.name {
			t.Errorf("line %d carried by the dead proxy", r.Line)
		}
		if n := dead.seen(r.URL); n > 1 {
			t.Errorf("%s sent to the dead proxy %d times, want at most once", r.URL, n)
		}
		switch r.Attempts {
		case 1:
		case 2:
			moved++
			if len(r.History) != 2 || r.History[0].Error != report.KindProxy || r.History[1].Status != 200 {
				t.Errorf("line %d history %+v, want a proxy failure then 200", r.Line, r.History)
			}
		default:
			t.Errorf("line %d took %d attempts, want 1, or 2 after a move", r.Line, r.Attempts)
		}
	}
	if got := dead.calls.Load(); got == 0 || int64(moved) != got {
		t.Errorf("dead proxy took %d calls and %d records show a move; want equal and non-zero", got, moved)
	}
}

// lineSource yields URL lines of one host until stop reports true.
type lineSource struct {
	n       int
	pending []byte
	stop    func() bool
}

func (s *lineSource) Read(p []byte) (int, error) {
	if len(s.pending) == 0 {
		if s.stop() {
			return 0, io.EOF
		}
		s.n++
		s.pending = fmt.Appendf(nil, "http://h.test/%d\n", s.n)
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

func TestRoutesCooldown(t *testing.T) {
	t.Parallel()
	const cooldown = 150 * time.Millisecond
	// a fails its first two calls, which sets it aside, and works after.
	a := newFakeProxy("http://a:8080", 0, func(n int64) error {
		if n <= 2 {
			return proxyFailure("http://a:8080", "CONNECT answered 407 Proxy Authentication Required", false)
		}
		return nil
	})
	// The dispatcher's clock jumps over the cool-down; a's calls are
	// stamped on it.
	clk := newFakeClock(true)
	a.now = clk.Now
	b := newFakeProxy("http://b:8080", time.Millisecond, nil)
	var logMu sync.Mutex
	var logs []string
	opts := Options{
		clock: clk,
		Limit: 1, PerHost: 1, ReadAhead: 4, ProxyFailures: 2, ProxyCooldown: cooldown,
		Routes: []Route{a.route(), b.route()},
		Logf: func(format string, args ...any) {
			logMu.Lock()
			logs = append(logs, fmt.Sprintf(format, args...))
			logMu.Unlock()
		},
	}
	// URLs keep coming until a carries requests again, or for at most 10 s.
	deadline := time.Now().Add(10 * time.Second)
	src := &lineSource{stop: func() bool {
		a.mu.Lock()
		back := len(a.okAt) > 0
		a.mu.Unlock()
		return back || time.Now().After(deadline)
	}}
	jobs := make(chan Job)
	go func() {
		defer close(jobs)
		_ = ReadJobs(context.Background(), []Input{{Name: "-", R: src}}, ReadOptions{}, jobs)
	}()
	var recs []*report.Record
	err := Run(context.Background(), opts, jobs, func(r *report.Record) error {
		recs = append(recs, r)
		return nil
	})
	for range jobs {
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if !r.OK {
			t.Errorf("line %d: %+v, want every URL ok through b while a is set aside", r.Line, r.Error)
		}
	}
	a.mu.Lock()
	failAt, okAt := a.failAt, a.okAt
	a.mu.Unlock()
	if len(failAt) != 2 || len(okAt) == 0 {
		t.Fatalf("a failed %d times and answered %d times, want 2 failures and then answers", len(failAt), len(okAt))
	}
	// With a limit of 1 in total nothing else is in flight on a when its
	// second failure returns: its next request waits out the cool-down.
	if gap := okAt[0].Sub(failAt[1]); gap < cooldown {
		t.Errorf("a was used again %s after it was set aside, want at least the cool-down %s", gap, cooldown)
	}
	var carriedByA int
	for _, r := range recs {
		if r.Proxy == a.name {
			carriedByA++
		}
	}
	if carriedByA == 0 {
		t.Errorf("no record carried by a after its cool-down")
	}
	joined := strings.Join(logs, "\n")
	for _, want := range []string{"proxy http://a:8080: set aside for 150ms after 2 failures in a row", "proxy http://a:8080: back in use"} {
		if !strings.Contains(joined, want) {
			t.Errorf("log lacks %q:\n%s", want, joined)
		}
	}
}

func TestRoutesAllDownFailsFast(t *testing.T) {
	t.Parallel()
	const limit, failures, urls = 4, 3, 2000
	tests := []struct {
		name    string
		proxies int
	}{
		{name: "one proxy", proxies: 1},
		{name: "three proxies", proxies: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var fakes []*fakeProxy
			var routes []Route
			for i := range tt.proxies {
				name := fmt.Sprintf("http://user:***@p%d:8080", i)
				f := newFakeProxy(name, 0, always(proxyFailure(name, "dial tcp 127.0.0.1:1: connect: connection refused", false)))
				fakes = append(fakes, f)
				routes = append(routes, f.route())
			}
			opts := Options{Limit: limit, PerHost: limit, Retries: 3, ProxyFailures: failures, Routes: routes}
			recs, err := runJobs(t, context.Background(), opts, hostLines(urls, 5))
			if !errors.Is(err, ErrAllProxiesDown) {
				t.Fatalf("err = %v, want ErrAllProxiesDown", err)
			}
			if !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "http://user:***@p") {
				t.Errorf("err = %q, want it to name the proxy and its last failure", err)
			}
			var calls int64
			for _, f := range fakes {
				calls += f.calls.Load()
			}
			// Each proxy takes at most what was in flight when it reached
			// its failures in a row.
			if bound := int64(tt.proxies * (limit + failures)); calls > bound {
				t.Errorf("%d requests to dead proxies, want at most %d: the run spun on", calls, bound)
			}
			if len(recs) >= urls/10 {
				t.Errorf("%d records of %d URLs, want the run to stop at once", len(recs), urls)
			}
			for _, r := range recs {
				if r.Error == nil || r.Error.Kind != report.KindProxy {
					t.Errorf("record %+v, want kind proxy", r)
				}
			}
		})
	}
}

func TestRoutesTargetUnreachableKeepsTheProxy(t *testing.T) {
	t.Parallel()
	// The transport marks what the proxy put down to the target (see its
	// tests); the runner goes by the mark, not by the text.
	tests := []struct {
		name        string
		proxy       string
		cause       string
		unreachable bool
		wantDown    bool
	}{
		{name: "CONNECT 502", proxy: "http://p:8080", cause: "CONNECT answered 502 Bad Gateway", unreachable: true},
		{name: "CONNECT 500 from tinyproxy", proxy: "http://p:8080", cause: "CONNECT answered 500 Unable to connect", unreachable: true},
		{name: "SOCKS host unreachable", proxy: "socks5://p:1080", cause: "socks connect tcp 127.0.0.1:1080->h.test:80: SOCKS5 proxy answered: host unreachable", unreachable: true},
		{name: "SOCKS target refused", proxy: "socks5://p:1080", cause: "socks connect tcp 127.0.0.1:1080->h.test:80: SOCKS5 proxy answered: connection refused", unreachable: true},
		{name: "CONNECT 407", proxy: "http://p:8080", cause: "CONNECT answered 407 Proxy Authentication Required", wantDown: true},
		{name: "CONNECT 403", proxy: "http://p:8080", cause: "CONNECT answered 403 Forbidden", wantDown: true},
		{name: "SOCKS auth", proxy: "socks5://p:1080", cause: "socks connect tcp 127.0.0.1:1080->h.test:80: username/password authentication failed", wantDown: true},
		{name: "SOCKS proxy refused", proxy: "socks5://p:1080", cause: "socks connect tcp 127.0.0.1:1080->h.test:80: dial tcp 127.0.0.1:1080: connect: connection refused", wantDown: true},
		{name: "a 502 not marked as the target's", proxy: "http://p:8080", cause: "CONNECT answered 502 Bad Gateway", wantDown: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			msg := "proxy " + tt.proxy + ": " + tt.cause
			f := newFakeProxy("http://p:8080", 0, always(proxyFailure(tt.proxy, tt.cause, tt.unreachable)))
			const urls = 40
			opts := Options{Limit: 2, PerHost: 2, ProxyFailures: 3, Routes: []Route{f.route()}}
			recs, err := runJobs(t, context.Background(), opts, hostLines(urls, 1))
			if tt.wantDown {
				if !errors.Is(err, ErrAllProxiesDown) {
					t.Errorf("err = %v, want ErrAllProxiesDown", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v, want the run to go on: the proxy answered, the target was unreachable", err)
			}
			if len(recs) != urls {
				t.Fatalf("%d records, want %d", len(recs), urls)
			}
			for _, r := range recs {
				if r.Error == nil || r.Error.Kind != report.KindProxy || r.Error.Message != msg {
					t.Errorf("record %+v, want kind proxy with the proxy's answer", r.Error)
				}
			}
		})
	}
}

// TestRoutesSpreadLoad checks that several proxies share the work fairly
// while --limit holds in total (TestCapsHoldAcrossRoutes pins each cap
// exactly).
func TestRoutesSpreadLoad(t *testing.T) {
	t.Parallel()
	const limit, perHost, hosts, urls = 6, 2, 4, 1200
	var fakes []*fakeProxy
	var routes []Route
	var total gauge
	for i := range 3 {
		f := newFakeProxy(fmt.Sprintf("http://p%d:8080", i), 2*time.Millisecond, nil)
		f.all = &total
		fakes = append(fakes, f)
		routes = append(routes, f.route())
	}
	recs, err := runJobs(t, context.Background(), Options{Limit: limit, PerHost: perHost, Routes: routes}, hostLines(urls, hosts))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != urls {
		t.Fatalf("%d records, want %d", len(recs), urls)
	}
	carried := map[string]int{}
	for _, r := range recs {
		carried[r.Proxy]++
	}
	for _, f := range fakes {
		if got := int(f.calls.Load()); got != carried[f.name] {
			t.Errorf("%s took %d requests, records name it %d times", f.name, got, carried[f.name])
		}
		if share := float64(carried[f.name]) / urls; share < 0.25 || share > 0.42 {
			t.Errorf("%s carried %d of %d URLs (%.0f%%), want a fair third", f.name, carried[f.name], urls, 100*share)
		}
		if p := f.inflight.peak.Load(); p > limit {
			t.Errorf("%s: peak in flight %d, more than --limit %d", f.name, p, limit)
		}
	}
	if p := total.peak.Load(); p > limit {
		t.Errorf("peak in flight over all proxies %d, more than --limit %d", p, limit)
	}
}

func TestRoutesProxyRetriesEnd(t *testing.T) {
	t.Parallel()
	// Both proxies fail every request in a way that never sets them aside;
	// with proxy in --retry-on each URL moves once per proxy and then spends
	// its retries, and the run ends.
	const retries, urls = 2, 30
	fail := proxyFailure("http://p:8080", "CONNECT answered 502 Bad Gateway", true)
	a := newFakeProxy("http://a:8080", 0, always(fail))
	b := newFakeProxy("http://b:8080", 0, always(fail))
	retryOn, err := ParseRetryOn("proxy")
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Limit: 4, PerHost: 4, Retries: retries, RetryOn: retryOn, Backoff: time.Millisecond,
		BackoffMax: time.Millisecond, Routes: []Route{a.route(), b.route()}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recs, err := runJobs(t, ctx, opts, hostLines(urls, 2))
	if err != nil {
		t.Fatalf("err = %v, want the run to end by itself", err)
	}
	if len(recs) != urls {
		t.Fatalf("%d records, want %d", len(recs), urls)
	}
	for _, r := range recs {
		if want := 2 + retries + 1; r.Attempts != want {
			t.Errorf("line %d: %d attempts, want %d (a move per proxy, then the retries)", r.Line, r.Attempts, want)
		}
	}
}

func TestRunWorkerPanicEndsRunRedacted(t *testing.T) {
	t.Parallel()
	boom := doerFunc(func(r *http.Request) (*http.Response, error) {
		panic("token s3cr3t leaked into a panic")
	})
	jobs := make(chan Job, 1)
	_ = ReadJobs(context.Background(), []Input{{Name: "-", R: strings.NewReader("http://a.example/x\n")}}, ReadOptions{}, jobs)
	close(jobs)
	err := Run(context.Background(), Options{Limit: 1, PerHost: 1, Routes: []Route{{Client: boom}}, Secrets: []string{"s3cr3t"}}, jobs, func(*report.Record) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "internal error while fetching http://a.example/x") {
		t.Fatalf("err = %v, want an internal error naming the URL", err)
	}
	if strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "token *** leaked") {
		t.Errorf("panic text not redacted: %v", err)
	}
}

type doerFunc func(*http.Request) (*http.Response, error)

func (f doerFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }
