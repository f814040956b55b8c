package runner

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fetchctl/fetchctl/internal/report"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// gauge records the peak number of requests in flight.
type gauge struct {
	cur, peak atomic.Int64
}

func (g *gauge) enter() {
	n := g.cur.Add(1)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

func (g *gauge) leave() { g.cur.Add(-1) }

// testServer is a loopback server that counts requests and the peak in
// flight, and answers after delay.
type testServer struct {
	*httptest.Server
	inflight gauge
	requests atomic.Int64
}

func newTestServer(t *testing.T, delay time.Duration, h http.HandlerFunc) *testServer {
	t.Helper()
	ts := &testServer{}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.requests.Add(1)
		ts.inflight.enter()
		defer ts.inflight.leave()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		if h != nil {
			h(w, r)
			return
		}
		io.WriteString(w, "hello")
	}))
	t.Cleanup(ts.Close)
	return ts
}

func client() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: tr}
}

// runEach runs lines through Run and returns their records, failing the
// test unless Run succeeds with one record a line.
func runEach(t *testing.T, opts Options, lines []string) []*report.Record {
	t.Helper()
	recs, err := runJobs(t, context.Background(), opts, lines)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(lines) {
		t.Fatalf("%d records, want %d", len(recs), len(lines))
	}
	return recs
}

// runJobs feeds lines to Run and returns the records.
func runJobs(t testing.TB, ctx context.Context, opts Options, lines []string) ([]*report.Record, error) {
	t.Helper()
	if len(opts.Routes) == 0 {
		c := client()
		t.Cleanup(c.CloseIdleConnections)
		opts.Routes = []Route{{Client: c}}
	}
	jobs := make(chan Job)
	go func() {
		defer close(jobs)
		_ = ReadJobs(ctx, []Input{{Name: "-", R: strings.NewReader(strings.Join(lines, "\n"))}}, ReadOptions{}, jobs)
	}()
	var recs []*report.Record
	err := Run(ctx, opts, jobs, func(r *report.Record) error {
		recs = append(recs, r)
		return nil
	})
	// Let the reader goroutine finish when Run stopped early.
	for range jobs {
	}
	return recs, err
}

func TestRunOneRecordPerLine(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, 0, nil)
	var lines []string
	for i := 0; i < 2000; i++ {
		switch i % 10 {
		case 3:
			lines = append(lines, "ftp://nope/"+fmt.Sprint(i))
		case 7:
			lines = append(lines, "# comment")
		default:
			lines = append(lines, fmt.Sprintf("%s/%d", srv.URL, i))
		}
	}
	recs, err := runJobs(t, context.Background(), Options{Limit: 50, PerHost: 50}, lines)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	var ok, invalid int
	for _, r := range recs {
		if seen[r.Line] {
			t.Fatalf("line %d recorded twice", r.Line)
		}
		seen[r.Line] = true
		switch {
		case r.OK:
			ok++
			if r.Status != 200 || r.Bytes != 5 || r.Attempts != 1 || r.Proto != "HTTP/1.1" {
				t.Errorf("ok record %+v", r)
			}
		case r.Error != nil && r.Error.Kind == report.KindInvalidURL:
			invalid++
			if r.Attempts != 0 {
				t.Errorf("invalid record with %d attempts", r.Attempts)
			}
		default:
			t.Errorf("unexpected record %+v %+v", r, r.Error)
		}
	}
	if ok != 1600 || invalid != 200 {
		t.Errorf("ok %d invalid %d, want 1600 and 200", ok, invalid)
	}
	if got := srv.requests.Load(); got != 1600 {
		t.Errorf("server saw %d requests, want 1600", got)
	}
}

func TestRunPerHostAndTotalCaps(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                  string
		hosts, perHost, limit int
		wantHost, wantTotal   int64 // the peaks, reached and never passed
	}{
		{name: "per-host cap binds", hosts: 4, perHost: 3, limit: 100, wantHost: 3, wantTotal: 12},
		{name: "total cap binds", hosts: 6, perHost: 10, limit: 8, wantTotal: 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var servers []*testServer
			var total gauge
			for i := 0; i < tt.hosts; i++ {
				servers = append(servers, newTestServer(t, 0, func(w http.ResponseWriter, r *http.Request) {
					total.enter()
					defer total.leave()
					select {
					case <-time.After(20 * time.Millisecond):
					case <-r.Context().Done():
					}
				}))
			}
			var lines []string
			for i := 0; i < tt.hosts; i++ {
				for j := 0; j < 30; j++ {
					lines = append(lines, fmt.Sprintf("%s/%d", servers[i].URL, j))
				}
			}
			recs, err := runJobs(t, context.Background(), Options{Limit: tt.limit, PerHost: tt.perHost}, lines)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != len(lines) {
				t.Fatalf("%d records, want %d", len(recs), len(lines))
			}
			for i, s := range servers {
				p := s.inflight.peak.Load()
				if p > int64(tt.perHost) {
					t.Errorf("host %d: peak in flight %d passes --per-host %d", i, p, tt.perHost)
				}
				if tt.wantHost > 0 && p != tt.wantHost {
					t.Errorf("host %d: peak in flight %d, want exactly %d", i, p, tt.wantHost)
				}
			}
			if p := total.peak.Load(); p != tt.wantTotal {
				t.Errorf("total peak in flight %d, want exactly %d", p, tt.wantTotal)
			}
		})
	}
}

func TestRunNoHeadOfLineBlocking(t *testing.T) {
	t.Parallel()
	// A list sorted by host: 10 slow hosts, 20 URLs each, per-host 2 and
	// limit 20. With head-of-line blocking only the first host's 2 slots
	// would be busy at a time; reading ahead keeps all 20 slots busy.
	const delay = 100 * time.Millisecond
	var servers []*testServer
	var lines []string
	var total gauge
	for i := 0; i < 10; i++ {
		s := newTestServer(t, 0, func(w http.ResponseWriter, r *http.Request) {
			total.enter()
			defer total.leave()
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
			}
		})
		servers = append(servers, s)
		for j := 0; j < 20; j++ {
			lines = append(lines, fmt.Sprintf("%s/%d", s.URL, j))
		}
	}
	recs, err := runJobs(t, context.Background(), Options{Limit: 20, PerHost: 2}, lines)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 200 {
		t.Fatalf("%d records", len(recs))
	}
	for i, s := range servers {
		if p := s.inflight.peak.Load(); p != 2 {
			t.Errorf("host %d peak %d, want 2", i, p)
		}
	}
	if p := total.peak.Load(); p != 20 {
		t.Errorf("peak in flight over all hosts %d, want the limit 20: the dispatcher did not spread over hosts", p)
	}
}

// TestRunSpreadsOverHostsFurtherDown: on a list sorted by host where the
// hosts' caps add up to more than the limit, the dispatcher reads ahead far
// enough to give the last host its turn early. Taking the hosts in list
// order instead leaves the last ones to run alone at the end, on a fraction
// of the slots (S2 in make bench: 0.95 of the ideal against 0.75).
func TestRunSpreadsOverHostsFurtherDown(t *testing.T) {
	t.Parallel()
	const hosts, perHostURLs = 15, 20
	var seq atomic.Int64
	first := make([]atomic.Int64, hosts) // arrival of each host's first request
	last := make([]atomic.Int64, hosts)  // and of its last
	var lines []string
	for i := range hosts {
		s := newTestServer(t, 5*time.Millisecond, func(w http.ResponseWriter, r *http.Request) {
			n := seq.Add(1)
			first[i].CompareAndSwap(0, n)
			last[i].Store(n)
		})
		for j := range perHostURLs {
			lines = append(lines, fmt.Sprintf("%s/%d", s.URL, j))
		}
	}
	recs, err := runJobs(t, context.Background(), Options{Limit: 20, PerHost: 2}, lines)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != hosts*perHostURLs {
		t.Fatalf("%d records", len(recs))
	}
	if f, l := first[hosts-1].Load(), last[0].Load(); f > l {
		t.Errorf("the last host's first request was answered %dth, after the first host's last (%dth): the hosts ran in list order", f, l)
	}
}

func TestRunRetriesFreeTheirSlots(t *testing.T) {
	t.Parallel()
	// One slot. The flaky host answers each URL's first attempt with 503
	// and Retry-After: 1, and the dispatcher's clock stands still until the
	// fast host has served all its URLs: only then may the flaky URLs be
	// tried again. The fast URLs get the slot only if a URL waiting out its
	// backoff holds none; otherwise the run stalls, and the clock moves
	// after 10 s with the flaky URLs finishing first.
	const fastURLs = 40
	clk := newFakeClock(false)
	fastDone := make(chan struct{})
	var fastServed atomic.Int64
	fast := newTestServer(t, 0, func(w http.ResponseWriter, r *http.Request) {
		if fastServed.Add(1) == fastURLs {
			close(fastDone)
		}
		io.WriteString(w, "ok")
	})
	go func() {
		select {
		case <-fastDone:
		case <-time.After(10 * time.Second):
		}
		clk.Advance(time.Second)
	}()
	var mu sync.Mutex
	failed := map[string]bool{}
	flaky := newTestServer(t, 0, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		first := !failed[r.URL.Path]
		failed[r.URL.Path] = true
		mu.Unlock()
		if first {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(503)
			return
		}
		io.WriteString(w, "ok")
	})
	lines := []string{flaky.URL + "/a", flaky.URL + "/b"}
	for i := 0; i < fastURLs; i++ {
		lines = append(lines, fmt.Sprintf("%s/%d", fast.URL, i))
	}
	retryOn, _ := ParseRetryOn("5xx")
	var order []string
	opts := Options{Limit: 1, PerHost: 1, Retries: 2, RetryOn: retryOn, Backoff: time.Millisecond, clock: clk}
	c := client()
	t.Cleanup(c.CloseIdleConnections)
	opts.Routes = []Route{{Client: c}}
	jobs := make(chan Job, len(lines))
	_ = ReadJobs(context.Background(), []Input{{Name: "-", R: strings.NewReader(strings.Join(lines, "\n"))}}, ReadOptions{}, jobs)
	close(jobs)
	err := Run(context.Background(), opts, jobs, func(r *report.Record) error {
		order = append(order, r.URL)
		if strings.HasPrefix(r.URL, flaky.URL) {
			if !r.OK || r.Attempts != 2 || len(r.History) != 2 || r.History[0].Status != 503 || r.History[0].RetryAfter == nil || *r.History[0].RetryAfter != 1 {
				t.Errorf("flaky record: %+v history %+v", r, r.History)
			}
			if r.DurationMS < 1000 {
				t.Errorf("flaky URL finished after %gms, before its Retry-After of 1s", r.DurationMS)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(order) != fastURLs+2 {
		t.Fatalf("%d records", len(order))
	}
	for i, u := range order[:fastURLs] {
		if strings.HasPrefix(u, flaky.URL) {
			t.Fatalf("record %d is a flaky URL: a retry wait held the only slot", i)
		}
	}
}

func TestRunCancelLeavesNoRecordForUnfinished(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	threeStarted := make(chan struct{})
	var started atomic.Int64
	srv := newTestServer(t, 0, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fast" {
			return
		}
		if started.Add(1) == 3 {
			close(threeStarted)
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	lines := []string{srv.URL + "/fast"}
	for i := 0; i < 50; i++ {
		lines = append(lines, fmt.Sprintf("%s/slow%d", srv.URL, i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := client()
	t.Cleanup(c.CloseIdleConnections)
	jobs := make(chan Job, len(lines))
	_ = ReadJobs(ctx, []Input{{Name: "-", R: strings.NewReader(strings.Join(lines, "\n"))}}, ReadOptions{}, jobs)
	close(jobs)
	var recs []*report.Record
	err := Run(ctx, Options{Limit: 4, PerHost: 4, Routes: []Route{{Client: c}}}, jobs, func(r *report.Record) error {
		recs = append(recs, r)
		// Once the fast URL is recorded, wait for the slow ones to be in
		// flight, then cancel.
		go func() {
			<-threeStarted
			cancel()
		}()
		return nil
	})
	if err != context.Canceled {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if len(recs) != 1 || recs[0].Line != 1 {
		t.Fatalf("records %+v, want only the finished line 1", recs)
	}
}

func TestRunEmitErrorStopsRun(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, 0, nil)
	var lines []string
	for i := 0; i < 500; i++ {
		lines = append(lines, fmt.Sprintf("%s/%d", srv.URL, i))
	}
	c := client()
	t.Cleanup(c.CloseIdleConnections)
	jobs := make(chan Job, len(lines))
	_ = ReadJobs(context.Background(), []Input{{Name: "-", R: strings.NewReader(strings.Join(lines, "\n"))}}, ReadOptions{}, jobs)
	close(jobs)
	n := 0
	boom := fmt.Errorf("write output: disk full")
	err := Run(context.Background(), Options{Limit: 8, PerHost: 8, Routes: []Route{{Client: c}}}, jobs, func(r *report.Record) error {
		n++
		if n == 10 {
			return boom
		}
		return nil
	})
	if err != boom {
		t.Fatalf("err = %v, want the emit error", err)
	}
	if n != 10 {
		t.Errorf("emit called %d times, want it to stop at the failing 10th", n)
	}
	if got := srv.requests.Load(); got > 400 {
		t.Errorf("server saw %d requests after the output failed; want the run to stop", got)
	}
}

func TestRunRateLimitSpacesRequests(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, 0, nil)
	var lines []string
	for i := 0; i < 11; i++ {
		lines = append(lines, fmt.Sprintf("%s/%d", srv.URL, i))
	}
	// The dispatcher's clock jumps over each wait: the starts it stamps
	// are where the rate limiter put them.
	opts := Options{Limit: 10, PerHost: 10, Rate: 20, clock: newFakeClock(true)}
	recs, err := runJobs(t, context.Background(), opts, lines)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(lines) {
		t.Fatalf("%d records, want %d", len(recs), len(lines))
	}
	starts := make([]time.Time, len(recs))
	for i, r := range recs {
		starts[i] = r.Time
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i].Before(starts[j]) })
	// 11 requests at 20/s with a burst of 1: one every 50 ms.
	for i := 1; i < len(starts); i++ {
		if gap := starts[i].Sub(starts[i-1]); gap < 50*time.Millisecond-time.Microsecond || gap > 51*time.Millisecond {
			t.Errorf("requests %d and %d started %s apart, want 50ms", i-1, i, gap)
		}
	}
}

func TestRunWithoutARoute(t *testing.T) {
	t.Parallel()
	jobs := make(chan Job)
	close(jobs)
	err := Run(context.Background(), Options{Limit: 1, PerHost: 1}, jobs, func(*report.Record) error { return nil })
	if err == nil || err.Error() != "no route" {
		t.Errorf("err = %v, want \"no route\", with no package prefix", err)
	}
}

// floatText shows an optional number: its value, or "none".
func floatText(p *float64) string {
	if p == nil {
		return "none"
	}
	return strconv.FormatFloat(*p, 'f', -1, 64)
}

// TestHistoryWaits: each attempt but the last says how long the next one
// waited, a wait of none included; retry_after is there on every attempt,
// the last included, whose response carried Retry-After, 0 included, and
// never otherwise.
func TestHistoryWaits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		retryAfter string // "" sends none
		refusals   int64  // the 429s before an ok; 2 leaves the URL failed
		wantRA     *float64
		wantWait   *float64 // the first attempt's wait_ms, when it is not jitter
	}{
		{name: "Retry-After 0", retryAfter: "0", refusals: 1, wantRA: new(0.0), wantWait: new(0.0)},
		{name: "no Retry-After", retryAfter: "", refusals: 1},
		{name: "Retry-After 0 on the last", retryAfter: "0", refusals: 2, wantRA: new(0.0), wantWait: new(0.0)},
		{name: "no Retry-After on the last", retryAfter: "", refusals: 2},
		// Values too large for any wait are honoured up to --backoff-max
		// and recorded clipped.
		{name: "Retry-After of 20 digits", retryAfter: "99999999999999999999", refusals: 1, wantRA: new(1e9), wantWait: new(1.0)},
		{name: "Retry-After of 10 digits", retryAfter: "9999999999", refusals: 2, wantRA: new(1e9), wantWait: new(1.0)},
		{name: "Retry-After in year 9999", retryAfter: "Fri, 31 Dec 9999 23:59:59 GMT", refusals: 2, wantRA: new(1e9), wantWait: new(1.0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int64
			srv := newTestServer(t, 0, func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) <= tt.refusals {
					if tt.retryAfter != "" {
						w.Header().Set("Retry-After", tt.retryAfter)
					}
					w.WriteHeader(429)
					return
				}
				io.WriteString(w, "ok")
			})
			opts := Options{Limit: 1, PerHost: 1, Retries: 1, RetryOn: mustRetryOn(t, "429"), Backoff: time.Millisecond, BackoffMax: time.Millisecond}
			recs, err := runJobs(t, context.Background(), opts, []string{srv.URL + "/"})
			if err != nil {
				t.Fatal(err)
			}
			h := recs[0].History
			if wantOK := tt.refusals < 2; recs[0].OK != wantOK || len(h) != 2 {
				t.Fatalf("record %+v, history %+v; want ok %v after two attempts", recs[0], h, wantOK)
			}
			if h[0].WaitMS == nil || *h[0].WaitMS < 0 || *h[0].WaitMS > 1 {
				t.Errorf("first attempt's wait_ms %v, want 0 to 1", h[0].WaitMS)
			}
			if tt.wantRA == nil && h[0].RetryAfter != nil || tt.wantRA != nil && (h[0].RetryAfter == nil || *h[0].RetryAfter != *tt.wantRA) {
				t.Errorf("first attempt's retry_after %s, want %s", floatText(h[0].RetryAfter), floatText(tt.wantRA))
			}
			if tt.wantWait != nil && *h[0].WaitMS != *tt.wantWait {
				t.Errorf("wait_ms %v after Retry-After: %s, want %v", *h[0].WaitMS, tt.retryAfter, *tt.wantWait)
			}
			if h[1].WaitMS != nil {
				t.Errorf("last attempt %+v, want no wait_ms", h[1])
			}
			lastRA := tt.wantRA
			if tt.refusals < 2 {
				lastRA = nil // the ok answer sent no Retry-After
			}
			if lastRA == nil && h[1].RetryAfter != nil || lastRA != nil && (h[1].RetryAfter == nil || *h[1].RetryAfter != *lastRA) {
				t.Errorf("last attempt's retry_after %s, want %s", floatText(h[1].RetryAfter), floatText(lastRA))
			}
		})
	}
}
