package runner

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/target"
)

// outcome is one attempt's result as the adaptive window sees it.
type outcome struct {
	status   int    // 0 for none
	kind     string // error kind, "" for an ok status
	inflight int    // the host's requests in flight when it came back, itself included
	early    bool   // sent before the last cut
}

var (
	out200     = outcome{status: 200}
	out404     = outcome{status: 404, kind: report.KindStatus}
	out429     = outcome{status: 429, kind: report.KindStatus}
	out503     = outcome{status: 503, kind: report.KindStatus}
	outTimeout = outcome{kind: report.KindTimeout}
	outRefused = outcome{kind: report.KindConnect}
)

// inFlight is o come back while n requests to its host were in flight,
// itself included.
func (o outcome) inFlight(n int) outcome { o.inflight = n; return o }

// observeAll feeds the outcomes to w one by one and returns the limit after
// each. An outcome with inflight 0 counts as arriving with a full window.
func observeAll(w *adaptive, perHost int, outs []outcome) []int {
	h := &host{}
	var limits []int
	// Each outcome comes back 1ms after it was sent, the next one sent 1ms
	// after that: after any cut made so far, unless it is early.
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if w.cutAt > 0 {
		now = time.Unix(0, w.cutAt).Add(time.Millisecond)
	}
	for _, o := range outs {
		n := o.inflight
		if n == 0 {
			n = w.limit()
		}
		// The dispatcher frees the attempt's slot before observing it.
		h.inflight = n - 1
		res := &result{task: &task{host: h}, status: o.status, kind: o.kind}
		res.start = now
		if o.early {
			res.start = now.Add(-time.Hour)
		}
		w.observe(res, perHost, now.Add(time.Millisecond))
		now = now.Add(2 * time.Millisecond)
		limits = append(limits, w.limit())
	}
	return limits
}

func repeatOutcome(o outcome, n int) []outcome {
	out := make([]outcome, n)
	for i := range out {
		out[i] = o
	}
	return out
}

func joinOutcomes(parts ...[]outcome) []outcome {
	var out []outcome
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestAdaptiveWindow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		perHost int
		outs    []outcome
		want    []int
	}{
		{
			name:    "slow start adds one per success up to per-host",
			perHost: 5,
			outs:    repeatOutcome(out200, 6),
			want:    []int{2, 3, 4, 5, 5, 5},
		},
		{
			name:    "429 halves the window",
			perHost: 8,
			outs:    joinOutcomes(repeatOutcome(out200, 7), []outcome{out429}),
			want:    []int{2, 3, 4, 5, 6, 7, 8, 4},
		},
		{
			name:    "503 and timeouts cut as 429 does",
			perHost: 8,
			outs:    joinOutcomes(repeatOutcome(out200, 7), []outcome{out503, outTimeout}),
			want:    []int{2, 3, 4, 5, 6, 7, 8, 4, 2},
		},
		{
			name:    "a cut ignores what was sent before it",
			perHost: 8,
			outs: joinOutcomes(repeatOutcome(out200, 7), []outcome{out429,
				{status: 429, kind: report.KindStatus, early: true},
				{status: 200, early: true, inflight: 4}}),
			want: []int{2, 3, 4, 5, 6, 7, 8, 4, 4, 4},
		},
		{
			name:    "never below one",
			perHost: 4,
			outs:    []outcome{out429, out429, outTimeout},
			want:    []int{1, 1, 1},
		},
		{
			name:    "after a cut it grows one per window",
			perHost: 16,
			outs:    joinOutcomes(repeatOutcome(out200, 15), []outcome{out429}, repeatOutcome(out200, 8), repeatOutcome(out200, 9)),
			want: joinLimits(
				[]int{2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 8},
				[]int{8, 8, 8, 8, 8, 8, 8, 9},
				[]int{9, 9, 9, 9, 9, 9, 9, 9, 10},
			),
		},
		{
			name:    "other statuses count as answers, transport errors as nothing",
			perHost: 4,
			outs:    []outcome{out404, outRefused, outRefused, out404},
			want:    []int{2, 2, 2, 3},
		},
		{
			name:    "no growth while the window is not in use",
			perHost: 8,
			outs:    joinOutcomes(repeatOutcome(out200, 3), repeatOutcome(out200.inFlight(2), 5), []outcome{out200.inFlight(4)}),
			want:    []int{2, 3, 4, 4, 4, 4, 4, 4, 5},
		},
		{
			name:    "the level of the last cut is probed again more slowly",
			perHost: 8,
			// 1 to 4 in slow start, cut at 4 to 2; 2 to 3 takes two
			// successes, and 3 to 4 takes 3 × 2 instead of 3.
			outs: joinOutcomes(repeatOutcome(out200, 3), []outcome{out429}, repeatOutcome(out200, 2), repeatOutcome(out200, 6)),
			want: joinLimits([]int{2, 3, 4, 2}, []int{2, 3}, []int{3, 3, 3, 3, 3, 4}),
		},
		{
			name:    "a whole window at that level forgets the cut",
			perHost: 4,
			// As above, then four successes at 4 (the cap here): the next
			// cut at 4 is a first strike again, so 3 to 4 takes 6, not 12.
			outs: joinOutcomes(repeatOutcome(out200, 3), []outcome{out429}, repeatOutcome(out200, 8), repeatOutcome(out200, 4),
				[]outcome{out429}, repeatOutcome(out200, 8)),
			want: joinLimits([]int{2, 3, 4, 2}, []int{2, 3, 3, 3, 3, 3, 3, 4}, []int{4, 4, 4, 4},
				[]int{2}, []int{2, 3, 3, 3, 3, 3, 3, 4}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if len(tt.outs) != len(tt.want) {
				t.Fatalf("bad case: %d outcomes, %d limits", len(tt.outs), len(tt.want))
			}
			var w adaptive
			w.init(tt.perHost)
			if got := w.limit(); got != 1 {
				t.Fatalf("initial limit = %d, want 1", got)
			}
			got := observeAll(&w, tt.perHost, tt.outs)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("limits = %v\nwant     %v", got, tt.want)
			}
		})
	}
}

func joinLimits(parts ...[]int) []int {
	var out []int
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// TestAdaptiveWindowAcrossRoutes checks that a window-full success is
// judged by the host's requests in flight over all routes, as the per-host
// limit holds over all of them: the target sees them together.
func TestAdaptiveWindowAcrossRoutes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		inflight int // the host's, over all routes, after the attempt's slot was freed
		want     int
	}{
		{name: "full with the others on other routes", inflight: 1, want: 3},
		{name: "not full", inflight: 0, want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var w adaptive
			w.init(8)
			w.cwnd = 2
			h := &host{inflight: tt.inflight}
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			res := &result{task: &task{host: h}, route: &route{index: 1}, status: 200, start: now}
			w.observe(res, 8, now.Add(time.Millisecond))
			if got := w.limit(); got != tt.want {
				t.Errorf("limit = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestAdaptiveHardCap models a host that refuses every request beyond 3 in
// flight, with the window always in use: the window must spend nearly all
// its time at 3 and draw few 429s, where plain halving and regrowth would
// hit the cap every few requests.
func TestAdaptiveHardCap(t *testing.T) {
	t.Parallel()
	const limitCap, n = 3, 2000
	var w adaptive
	w.init(20)
	var tooMany, atCap int
	for i := 0; i < n; i++ {
		o := out200
		if w.limit() > limitCap {
			o = out429
			tooMany++
		}
		observeAll(&w, 20, []outcome{o})
		if w.limit() == limitCap {
			atCap++
		}
	}
	t.Logf("%d requests: %d 429s, %d at the cap", n, tooMany, atCap)
	if tooMany > n/100 {
		t.Errorf("%d 429s in %d requests, want at most 1%%", tooMany, n)
	}
	if atCap < n*9/10 {
		t.Errorf("window at the cap for %d of %d requests, want at least 90%%", atCap, n)
	}
}

// adaptiveRun is the outcome of one run against a target.
type adaptiveRun struct {
	ok, total int
	tooMany   int64 // 429s the target sent, by its own counter
	requests  int64
	elapsed   time.Duration
	limits    map[string]int // the HostLimit of each host's last record
}

// runAgainst fetches n URLs spread over the target's hosts and reports what
// the target saw. The target's counters are read before and after, so runs
// may share a target as long as they do not overlap. It may be called from
// any goroutine.
func runAgainst(t testing.TB, srv *target.Server, n int, opts Options) (adaptiveRun, error) {
	hosts := len(srv.Addrs())
	lines := make([]string, n)
	for i := range lines {
		lines[i] = srv.URL(i%hosts, fmt.Sprintf("/?i=%d", i))
	}
	got := adaptiveRun{limits: map[string]int{}}
	before := srv.Stats()
	start := time.Now()
	recs, err := runJobs(t, context.Background(), opts, lines)
	got.elapsed = time.Since(start)
	if err != nil {
		return got, err
	}
	after := srv.Stats()
	got.tooMany = after.TooMany - before.TooMany
	got.requests = after.Requests - before.Requests
	got.total = len(recs)
	for _, r := range recs {
		if r.OK {
			got.ok++
		}
		if r.HostLimit != 0 {
			got.limits[r.HostKey] = r.HostLimit
		}
	}
	if got.total != n {
		return got, fmt.Errorf("%d records, want %d", got.total, n)
	}
	return got, nil
}

func mustRetryOn(t *testing.T, s string) RetryOn {
	t.Helper()
	r, err := ParseRetryOn(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestAdaptiveBacksOffA429Target runs the same list with and without
// Adaptive against a host that answers 429 to every request beyond 3 in
// flight: the adaptive run must end almost entirely ok and draw fewer 429s.
func TestAdaptiveBacksOffA429Target(t *testing.T) {
	t.Parallel()
	srv, err := target.Start(target.Options{Hosts: 1, Latency: 10 * time.Millisecond, Limit429: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	const n = 300
	base := Options{
		Limit: 100, PerHost: 20,
		Retries: 3, Backoff: 50 * time.Millisecond, BackoffMax: time.Second,
		RetryOn: mustRetryOn(t, "429,5xx,timeout,reset,connect"),
	}
	fixed, err := runAgainst(t, srv, n, base)
	if err != nil {
		t.Fatal(err)
	}
	base.Adaptive = true
	adaptive, err := runAgainst(t, srv, n, base)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		name string
		run  adaptiveRun
	}{{"fixed", fixed}, {"adaptive", adaptive}} {
		t.Logf("%-8s ok %d/%d, 429s %d, requests %d, %s, limits %v", r.name, r.run.ok, r.run.total, r.run.tooMany, r.run.requests, r.run.elapsed.Round(time.Millisecond), r.run.limits)
	}
	if min := n * 95 / 100; adaptive.ok < min {
		t.Errorf("adaptive run: %d/%d ok, want at least %d", adaptive.ok, n, min)
	}
	if adaptive.tooMany >= fixed.tooMany {
		t.Errorf("adaptive run drew %d 429s, the fixed one %d: want fewer", adaptive.tooMany, fixed.tooMany)
	}
	for host, lim := range adaptive.limits {
		if lim < 1 || lim > base.PerHost {
			t.Errorf("host %s settled at %d, want 1..%d", host, lim, base.PerHost)
		}
	}
	if len(adaptive.limits) != 1 {
		t.Errorf("settled limits reported for %d hosts, want 1: %v", len(adaptive.limits), adaptive.limits)
	}
	if len(fixed.limits) != 0 {
		t.Errorf("fixed run reported settled limits %v, want none", fixed.limits)
	}
}

// TestAdaptiveOpensOnAHostThatNeverPushesBack runs adaptive and fixed lists
// through proxies that answer at once: each record carries its host's key,
// and with --adaptive the limit of the host's window, which must have
// opened to PerHost by the host's last record.
func TestAdaptiveOpensOnAHostThatNeverPushesBack(t *testing.T) {
	t.Parallel()
	const perHost, hosts, n = 4, 2, 300
	for _, adaptive := range []bool{false, true} {
		t.Run(fmt.Sprintf("adaptive=%v", adaptive), func(t *testing.T) {
			t.Parallel()
			f := newFakeProxy("", 0, nil)
			lines := hostLines(n, hosts)
			// Every job is queued before the run starts, so each host's
			// window is in use until its last URL.
			jobs := make(chan Job, n)
			_ = ReadJobs(context.Background(), []Input{{Name: "-", R: strings.NewReader(strings.Join(lines, "\n"))}}, ReadOptions{}, jobs)
			close(jobs)
			last := map[string]int{}
			opts := Options{Limit: 100, PerHost: perHost, Adaptive: adaptive, Routes: []Route{f.route()}}
			err := Run(context.Background(), opts, jobs, func(r *report.Record) error {
				if want := report.HostKey(r.URL); r.HostKey != want {
					t.Errorf("%s: HostKey %q, want %q", r.URL, r.HostKey, want)
				}
				if !adaptive && r.HostLimit != 0 {
					t.Errorf("%s: HostLimit %d without --adaptive, want 0", r.URL, r.HostLimit)
				}
				last[r.HostKey] = r.HostLimit
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(last) != hosts {
				t.Fatalf("records of %d hosts, want %d", len(last), hosts)
			}
			if !adaptive {
				return
			}
			for host, lim := range last {
				if lim != perHost {
					t.Errorf("host %s settled at %d, want %d (PerHost) on a host that never pushes back", host, lim, perHost)
				}
			}
		})
	}
}
