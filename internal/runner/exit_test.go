package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/report"
)

// exitLog records every request the routes of a test carried: which route,
// which URL, and when by the dispatcher's clock.
type exitLog struct {
	now func() time.Time
	// status answers a URL; nil is 200 for all.
	status func(route, url string) int

	mu   sync.Mutex
	sent []sent
}

type sent struct {
	route, host, url string
	at               time.Time
	status           int
}

// exit is one route's client: it answers through the log, and with rotate
// set it is a proxy with sessions, which gives a host a fresh one on a block.
type exit struct {
	log     *exitLog
	name    string
	rotate  bool
	rotated int
}

func (e *exit) Do(req *http.Request) (*http.Response, error) {
	code := 200
	if e.log.status != nil {
		code = e.log.status(e.name, req.URL.String())
	}
	e.log.mu.Lock()
	e.log.sent = append(e.log.sent, sent{route: e.name, host: req.URL.Host, url: req.URL.String(), at: e.log.now(), status: code})
	e.log.mu.Unlock()
	return &http.Response{StatusCode: code, Status: fmt.Sprintf("%d %s", code, http.StatusText(code)), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: io.NopCloser(strings.NewReader("x")), Request: req}, nil
}

func (e *exit) Rotate(string, string) bool {
	e.log.mu.Lock()
	defer e.log.mu.Unlock()
	e.rotated++
	return e.rotate
}

func (l *exitLog) routesByHost() map[string]map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := map[string]map[string]int{}
	for _, s := range l.sent {
		if m[s.host] == nil {
			m[s.host] = map[string]int{}
		}
		m[s.host][s.route]++
	}
	return m
}

// TestSessionPerHostKeepsAHostOnOneRoute: with --session host over several
// proxies, each host goes out through one of them only (its session there),
// so that it sees one exit; the hosts spread over the proxies. A block
// gives the host a fresh session on the same proxy, and it stays there.
func TestSessionPerHostKeepsAHostOnOneRoute(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		limit  int
		status func(route, url string) int
	}{
		{name: "one at a time", limit: 1},
		{name: "four at a time", limit: 4},
		{name: "a block renews the session in place", limit: 2, status: func(_, url string) int {
			if strings.HasSuffix(url, "/0") {
				return 403
			}
			return 200
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			log := &exitLog{now: time.Now, status: tt.status}
			var routes []Route
			var exits []*exit
			for i := range 3 {
				e := &exit{log: log, name: fmt.Sprintf("http://cu-{session}:***@p%d:8080", i), rotate: true}
				exits = append(exits, e)
				routes = append(routes, Route{Proxy: e.name, Client: e, KeepHost: time.Minute})
			}
			rotateOn, _ := ParseStatusSet("403")
			opts := Options{Limit: tt.limit, PerHost: 2, Routes: routes, RotateOn: rotateOn, Retries: 1}
			lines := hostLines(60, 5)
			recs, err := runJobs(t, context.Background(), opts, lines)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != len(lines) {
				t.Fatalf("%d records, want %d", len(recs), len(lines))
			}
			used := map[string]bool{}
			for host, byRoute := range log.routesByHost() {
				if len(byRoute) != 1 {
					t.Errorf("%s went out through %d proxies (%v), want one", host, len(byRoute), byRoute)
				}
				for r := range byRoute {
					used[r] = true
				}
			}
			if len(used) < 2 {
				t.Errorf("the 5 hosts used %d of the 3 proxies, want them spread", len(used))
			}
			if tt.status != nil {
				rotated := 0
				for _, e := range exits {
					rotated += e.rotated
				}
				if rotated == 0 {
					t.Error("no block asked for a fresh session")
				}
			}
		})
	}
}

// TestSessionPerHostComesBackToItsRoute: a host that went idle and was
// forgotten comes back to the proxy that holds its session, not to the
// next one in turn.
func TestSessionPerHostComesBackToItsRoute(t *testing.T) {
	t.Parallel()
	log := &exitLog{now: time.Now}
	var routes []Route
	for i := range 2 {
		e := &exit{log: log, name: fmt.Sprintf("http://cu-{session}:***@p%d:8080", i), rotate: true}
		routes = append(routes, Route{Proxy: e.name, Client: e, KeepHost: time.Minute})
	}
	opts := Options{Limit: 1, PerHost: 1, Routes: routes}
	// One URL at a time, each sent once the one before has its record, so
	// that a.test is idle and forgotten before it comes back.
	lines := []string{"http://a.test/1", "http://b.test/1", "http://c.test/1", "http://a.test/2"}
	jobs := make(chan Job)
	done := make(chan struct{}, len(lines))
	go func() {
		defer close(jobs)
		for _, l := range lines {
			j := make(chan Job, 1)
			_ = ReadJobs(context.Background(), []Input{{Name: "-", R: strings.NewReader(l)}}, ReadOptions{}, j)
			jobs <- <-j
			<-done
		}
	}()
	err := Run(context.Background(), opts, jobs, func(*report.Record) error {
		done <- struct{}{}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if byRoute := log.routesByHost()["a.test"]; len(byRoute) != 1 {
		t.Errorf("a.test went out through %v, want one proxy", byRoute)
	}
}

// TestCoolingExitIsNotUsedForTheHost: once a host blocked an exit that has
// no fresh session to give, no URL of that host goes through it until its
// cool-down ends; with every exit cooling, the host's URLs wait for the
// first to cool down, holding no slot: other hosts go on meanwhile.
func TestCoolingExitIsNotUsedForTheHost(t *testing.T) {
	t.Parallel()
	const cooldown = 30 * time.Second
	tests := []struct {
		name    string
		proxies int
		retries int
	}{
		{name: "one proxy", proxies: 1, retries: 1},
		{name: "two proxies", proxies: 2, retries: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newFakeClock(false)
			log := &exitLog{now: clk.Now, status: func(_, url string) int {
				if strings.HasSuffix(url, "/status/403") {
					return 403
				}
				return 200
			}}
			var routes []Route
			for i := range tt.proxies {
				e := &exit{log: log, name: fmt.Sprintf("http://p%d:8080", i)}
				routes = append(routes, Route{Proxy: e.name, Client: e})
			}
			rotateOn, _ := ParseStatusSet("403")
			opts := Options{Limit: 1, PerHost: 1, Routes: routes, RotateOn: rotateOn, Retries: tt.retries,
				ProxyCooldown: cooldown, clock: clk}
			lines := []string{"http://a.test/status/403", "http://a.test/?key=f1", "http://a.test/?key=f2",
				"http://a.test/?key=f3", "http://b.test/1", "http://b.test/2", "http://b.test/3"}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// The clock stands still but for this: once b.test is done, and
			// with each record after, it moves on by a cool-down.
			var mu sync.Mutex
			var bDone int
			var recs []*report.Record
			jobs := make(chan Job)
			go func() {
				defer close(jobs)
				_ = ReadJobs(ctx, []Input{{Name: "-", R: strings.NewReader(strings.Join(lines, "\n"))}}, ReadOptions{}, jobs)
			}()
			err := Run(ctx, opts, jobs, func(r *report.Record) error {
				mu.Lock()
				defer mu.Unlock()
				recs = append(recs, r)
				if strings.Contains(r.URL, "b.test") {
					bDone++
				}
				if bDone == 3 {
					clk.Advance(cooldown)
				}
				return nil
			})
			for range jobs {
			}
			if err != nil {
				t.Fatalf("err = %v, want the run to end once the cool-downs pass", err)
			}
			if len(recs) != len(lines) {
				t.Fatalf("%d records, want %d", len(recs), len(lines))
			}
			log.mu.Lock()
			defer log.mu.Unlock()
			// blockedAt is when each exit was last blocked for a.test.
			blockedAt := map[string]time.Time{}
			for _, s := range log.sent {
				switch {
				case s.host == "b.test":
					if !s.at.Equal(fakeEpoch) {
						t.Errorf("%s sent at +%s, want at once: a.test's wait holds no slot", s.url, s.at.Sub(fakeEpoch))
					}
				case s.host == "a.test":
					if at, ok := blockedAt[s.route]; ok && s.at.Before(at.Add(cooldown)) {
						t.Errorf("%s sent through %s %s after that exit was blocked for a.test, want the cool-down %s first",
							s.url, s.route, s.at.Sub(at), cooldown)
					}
					if s.status == 403 {
						blockedAt[s.route] = s.at
					}
				}
			}
			if len(blockedAt) != tt.proxies {
				t.Errorf("a.test blocked %d exits, want all %d", len(blockedAt), tt.proxies)
			}
			for _, r := range recs {
				blocked := strings.HasSuffix(r.URL, "/status/403")
				if r.OK == blocked || r.Blocked != blocked {
					t.Errorf("%s: ok %v, blocked %v", r.URL, r.OK, r.Blocked)
				}
				if blocked && (r.Attempts != tt.retries+1 || r.Error == nil || r.Error.Kind != report.KindBlocked) {
					t.Errorf("%s: %d attempts, error %+v; want %d, blocked", r.URL, r.Attempts, r.Error, tt.retries+1)
				}
			}
		})
	}
}

// armClock is a clock that stands still and says on armed each time the
// dispatcher sets its timer: the dispatcher then waits for it.
type armClock struct {
	*fakeClock
	armed chan struct{}
}

func (c armClock) NewTimer() wakeTimer { return armTimer{c.fakeClock.NewTimer(), c.armed} }

type armTimer struct {
	wakeTimer
	armed chan struct{}
}

func (t armTimer) ResetAt(at time.Time) {
	t.wakeTimer.ResetAt(at)
	select {
	case t.armed <- struct{}{}:
	default:
	}
}

// TestCoolingWaitEndsOnCancel: a run whose hosts all wait for an exit to
// cool down stops at once when cancelled.
func TestCoolingWaitEndsOnCancel(t *testing.T) {
	t.Parallel()
	clk := armClock{newFakeClock(false), make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-clk.armed
		cancel()
	}()
	log := &exitLog{now: clk.Now, status: func(string, string) int { return 403 }}
	e := &exit{log: log, name: "http://p0:8080"}
	rotateOn, _ := ParseStatusSet("403")
	opts := Options{Limit: 1, PerHost: 1, Routes: []Route{{Proxy: e.name, Client: e}}, RotateOn: rotateOn, Retries: 3, clock: clk}
	recs, err := runJobs(t, ctx, opts, []string{"http://a.test/1", "http://a.test/2"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want the run cancelled", err)
	}
	if len(recs) != 0 {
		t.Errorf("%d records, want none: nothing finished before the cancel", len(recs))
	}
	if n := len(log.sent); n != 1 {
		t.Errorf("%d requests, want 1: the host waits for the cool-down", n)
	}
}

// atClock is a clock that stands still and sends on armed the time each
// setting of the dispatcher's timer is for.
type atClock struct {
	*fakeClock
	armed chan time.Time
}

func (c atClock) NewTimer() wakeTimer { return atTimer{c.fakeClock.NewTimer(), c.armed} }

type atTimer struct {
	wakeTimer
	armed chan time.Time
}

func (t atTimer) ResetAt(at time.Time) {
	t.wakeTimer.ResetAt(at)
	select {
	case t.armed <- at:
	default:
	}
}

// failFirst is a proxy's client whose first request fails at the proxy;
// the others go through the log.
type failFirst struct {
	exit
	calls int
}

func (f *failFirst) Do(req *http.Request) (*http.Response, error) {
	f.log.mu.Lock()
	f.calls++
	first := f.calls == 1
	f.log.mu.Unlock()
	if first {
		return nil, proxyFailure(f.name, "connection refused", false)
	}
	return f.exit.Do(req)
}

// TestProxyBackEndsTheCoolingWait: without sessions, a host whose every
// exit in use cools down for it waits for the first to cool down; when a
// proxy set aside comes back meanwhile, the host's URLs go through it at
// once, both the one that was blocked (waiting to be retried) and the one
// queued behind it, and the record's wait is the time it waited.
func TestProxyBackEndsTheCoolingWait(t *testing.T) {
	t.Parallel()
	const cooldown = 30 * time.Second
	clk := atClock{newFakeClock(false), make(chan time.Time, 16)}
	log := &exitLog{now: clk.Now, status: func(_, url string) int {
		if strings.HasPrefix(url, "http://a.test/") && clk.Now().Before(fakeEpoch.Add(cooldown)) {
			return 403
		}
		return 200
	}}
	back := &failFirst{exit: exit{log: log, name: "http://back:8080"}}
	blocked := &exit{log: log, name: "http://blocked:8080"}
	rotateOn, _ := ParseStatusSet("403")
	logs := make(chan string, 64)
	opts := Options{Limit: 1, PerHost: 1, RotateOn: rotateOn, Retries: 1, ProxyFailures: 1, ProxyCooldown: cooldown, clock: clk,
		Routes: []Route{{Proxy: back.name, Client: back}, {Proxy: blocked.name, Client: blocked}},
		Logf: func(format string, args ...any) {
			select {
			case logs <- fmt.Sprintf(format, args...):
			default:
			}
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	jobs := make(chan Job)
	recs := make(chan *report.Record, 8)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, opts, jobs, func(r *report.Record) error {
			recs <- r
			return nil
		})
	}()
	send := func(line string) {
		j := make(chan Job, 1)
		_ = ReadJobs(ctx, []Input{{Name: "-", R: strings.NewReader(line)}}, ReadOptions{}, j)
		jobs <- <-j
	}
	waitLog := func(prefix string) {
		t.Helper()
		for {
			select {
			case l := <-logs:
				if strings.HasPrefix(l, prefix) {
					return
				}
			case <-ctx.Done():
				t.Fatalf("no log line %q", prefix)
			}
		}
	}

	// At 0 the first proxy fails and is set aside for the cool-down; the
	// URL goes on through the other.
	send("http://c.test/1")
	if r := <-recs; !r.OK {
		t.Fatalf("c.test/1: %+v, want ok through the other proxy", r.Error)
	}
	// At 10s a.test blocks the one proxy in use: its URLs wait, the first
	// to be retried, the second queued.
	clk.Advance(10 * time.Second)
	send("http://a.test/1")
	waitLog("retry 1/1 http://a.test/1")
	send("http://a.test/2")
	close(jobs)
	// At 30s the proxy set aside comes back: a.test's URLs go through it.
	clk.Advance(20 * time.Second)
	for waiting := true; waiting; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			waiting = false
		case at := <-clk.armed:
			if at.After(clk.Now()) {
				// a.test still waits: let the run end to see when it went.
				clk.Advance(at.Sub(clk.Now()))
			}
		case <-ctx.Done():
			t.Fatal("the run did not end")
		}
	}
	close(recs)
	log.mu.Lock()
	defer log.mu.Unlock()
	for _, s := range log.sent {
		if s.host != "a.test" || s.status == 403 {
			continue
		}
		if at := s.at.Sub(fakeEpoch); at != cooldown || s.route != back.name {
			t.Errorf("%s sent through %s at +%s, want through %s at +%s, when it came back",
				s.url, s.route, at, back.name, cooldown)
		}
	}
	n := 0
	for r := range recs {
		n++
		if !r.OK {
			t.Errorf("%s: %+v, want ok", r.URL, r.Error)
		}
		if r.URL == "http://a.test/1" {
			if len(r.History) != 2 || r.History[0].WaitMS == nil || *r.History[0].WaitMS != 20000 {
				t.Errorf("a.test/1 history %+v, want the block and a wait of 20000 ms, then the success", r.History)
			}
		}
	}
	if n != 2 {
		t.Errorf("%d records of a.test, want 2", n)
	}
}

// TestBlock429WithNowhereToRotate: a 429 through an exit that has no other
// to rotate to (a single proxy without sessions, or every other exit
// cooling down for the host) does not cool that exit down: the URL is
// retried through it after --backoff, as a 429 without a proxy is, and the
// host's other URLs go on at once. Any other block still cools the exit
// down, and a 429 with another exit to go to moves there.
func TestBlock429WithNowhereToRotate(t *testing.T) {
	t.Parallel()
	const (
		cooldown = 30 * time.Second
		backoff  = 50 * time.Millisecond
	)
	tests := []struct {
		name    string
		proxies int
		status  int // the answer to a.test's first blocked requests
		blocked int // how many of them
		// the record of a.test/1: its attempts, and the wait after its first
		attempts int
		wait     time.Duration
		// the latest a.test's last request may go
		last time.Duration
	}{
		// a.test/1 backs off, and a.test/2 takes the second 429 meanwhile.
		{name: "one proxy, 429", proxies: 1, status: 429, blocked: 2, attempts: 2, wait: backoff, last: 2 * backoff},
		{name: "two proxies, 429 on both", proxies: 2, status: 429, blocked: 2, attempts: 3, wait: 0, last: 2 * backoff},
		{name: "two proxies, 429 on one", proxies: 2, status: 429, blocked: 1, attempts: 2, wait: 0, last: 0},
		{name: "one proxy, 403", proxies: 1, status: 403, blocked: 1, attempts: 2, wait: cooldown, last: cooldown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newFakeClock(true)
			var mu sync.Mutex
			n := 0
			log := &exitLog{now: clk.Now, status: func(_, url string) int {
				mu.Lock()
				defer mu.Unlock()
				if strings.HasPrefix(url, "http://a.test/") {
					if n++; n <= tt.blocked {
						return tt.status
					}
				}
				return 200
			}}
			var routes []Route
			for i := range tt.proxies {
				e := &exit{log: log, name: fmt.Sprintf("http://p%d:8080", i)}
				routes = append(routes, Route{Proxy: e.name, Client: e})
			}
			rotateOn, _ := ParseStatusSet("403,429")
			opts := Options{Limit: 1, PerHost: 1, Routes: routes, RotateOn: rotateOn, Retries: 3, ProxyFailures: 10,
				Backoff: backoff, BackoffMax: time.Minute, ProxyCooldown: cooldown, clock: clk}
			recs, err := runJobs(t, context.Background(), opts, []string{"http://a.test/1", "http://a.test/2", "http://a.test/3"})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if !r.OK {
					t.Errorf("%s: %+v, want ok", r.URL, r.Error)
				}
				if r.URL != "http://a.test/1" {
					continue
				}
				if r.Attempts != tt.attempts || len(r.History) != tt.attempts {
					t.Fatalf("a.test/1: %d attempts, history %+v; want %d", r.Attempts, r.History, tt.attempts)
				}
				first := r.History[0]
				if !first.Blocked || first.Status != tt.status || first.WaitMS == nil {
					t.Fatalf("a.test/1: first attempt %+v, want blocked with %d and a wait", first, tt.status)
				}
				if w := time.Duration(*first.WaitMS * float64(time.Millisecond)); w > tt.wait || (tt.wait == cooldown && w != cooldown) {
					t.Errorf("a.test/1 waited %s after its first attempt, want %s (at most, below the cool-down)", w, tt.wait)
				}
			}
			log.mu.Lock()
			defer log.mu.Unlock()
			if len(log.sent) != 3+tt.blocked {
				t.Errorf("%d requests, want %d", len(log.sent), 3+tt.blocked)
			}
			if at := log.sent[len(log.sent)-1].at.Sub(fakeEpoch); at > tt.last {
				t.Errorf("a.test's last request went at +%s, want by +%s", at, tt.last)
			}
		})
	}
}

// deadExit is a proxy's client that fails every request at the proxy, as
// one that nothing listens on does; the log counts its requests too.
type deadExit struct{ exit }

func (e *deadExit) Do(req *http.Request) (*http.Response, error) {
	e.log.mu.Lock()
	e.log.sent = append(e.log.sent, sent{route: e.name, host: req.URL.Host, url: req.URL.String(), at: e.log.now()})
	e.log.mu.Unlock()
	return nil, proxyFailure(e.name, "connection refused", false)
}

// TestBlock429BesideADeadProxy: with a dead proxy and a working one, a 429
// through the working one has no other exit to rotate to: the dead one
// cannot take the URL. The working exit does not cool down; the URL is
// retried through it after the backoff, and a URL whose attempt failed at
// the dead proxy never goes straight back to it. Every URL ends ok, well
// before a cool-down would have ended. The dead proxy is not set aside
// during the run (--proxy-failures 10): it is failing, which is enough.
func TestBlock429BesideADeadProxy(t *testing.T) {
	t.Parallel()
	const (
		cooldown = 30 * time.Second
		backoff  = 50 * time.Millisecond
	)
	for _, limit := range []int{1, 4} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			t.Parallel()
			clk := newFakeClock(true)
			var mu sync.Mutex
			seen := map[string]int{}
			// The gateway answers each URL's first two requests with 429.
			log := &exitLog{now: clk.Now, status: func(_, url string) int {
				mu.Lock()
				defer mu.Unlock()
				if seen[url]++; seen[url] <= 2 {
					return 429
				}
				return 200
			}}
			dead := &deadExit{exit{log: log, name: "http://dead:8080"}}
			gw := &exit{log: log, name: "http://gw:8080"}
			rotateOn, _ := ParseStatusSet("403,429")
			logs := &lineLog{}
			opts := Options{Limit: limit, PerHost: limit, RotateOn: rotateOn, Retries: 3, ProxyFailures: 10,
				Backoff: backoff, BackoffMax: time.Minute, ProxyCooldown: cooldown, clock: clk, Logf: logs.logf,
				Routes: []Route{{Proxy: dead.name, Client: dead}, {Proxy: gw.name, Client: gw}}}
			lines := []string{"http://a.test/k1", "http://a.test/k2", "http://a.test/k3"}
			recs, err := runJobs(t, context.Background(), opts, lines)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != len(lines) {
				t.Fatalf("%d records, want %d", len(recs), len(lines))
			}
			for _, r := range recs {
				if !r.OK {
					t.Errorf("%s: %+v, history %+v; want ok", r.URL, r.Error, r.History)
				}
				for i := 1; i < len(r.History); i++ {
					if prev := r.History[i-1]; prev.Error == report.KindProxy && r.History[i].Proxy == prev.Proxy {
						t.Errorf("%s: attempt %d went straight back to %s, which had failed: history %+v", r.URL, i+1, prev.Proxy, r.History)
					}
				}
			}
			for _, l := range logs.lines() {
				if strings.Contains(l, "blocked by") {
					t.Errorf("log %q: the one exit that can take the URLs cooled down", l)
				}
			}
			log.mu.Lock()
			defer log.mu.Unlock()
			if at := log.sent[len(log.sent)-1].at.Sub(fakeEpoch); at >= cooldown {
				t.Errorf("the last request went at +%s, want before the cool-down of %s", at, cooldown)
			}
		})
	}
}

// lineLog collects a run's -v lines.
type lineLog struct {
	mu sync.Mutex
	l  []string
}

func (l *lineLog) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.l = append(l.l, fmt.Sprintf(format, args...))
}

func (l *lineLog) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.l)
}

// TestFailedProxyWaitsForTheOther: a URL whose attempt failed at a proxy
// does not go straight back to it when the only other proxy cools down for
// its host (a 403 there): it waits for that one to come back, and goes
// through it.
func TestFailedProxyWaitsForTheOther(t *testing.T) {
	t.Parallel()
	const cooldown = 30 * time.Second
	clk := newFakeClock(true)
	var mu sync.Mutex
	n := 0
	log := &exitLog{now: clk.Now, status: func(_, url string) int {
		mu.Lock()
		defer mu.Unlock()
		if n++; n == 1 {
			return 403
		}
		return 200
	}}
	dead := &deadExit{exit{log: log, name: "http://dead:8080"}}
	gw := &exit{log: log, name: "http://gw:8080"}
	rotateOn, _ := ParseStatusSet("403")
	opts := Options{Limit: 1, PerHost: 1, RotateOn: rotateOn, Retries: 3, ProxyFailures: 10,
		Backoff: time.Millisecond, BackoffMax: time.Minute, ProxyCooldown: cooldown, clock: clk,
		Routes: []Route{{Proxy: dead.name, Client: dead}, {Proxy: gw.name, Client: gw}}}
	recs, err := runJobs(t, context.Background(), opts, []string{"http://a.test/1"})
	if err != nil {
		t.Fatal(err)
	}
	r := recs[0]
	if !r.OK || r.Proxy != gw.name {
		t.Fatalf("record %+v, history %+v; want ok through %s", r.Error, r.History, gw.name)
	}
	for i := 1; i < len(r.History); i++ {
		if prev := r.History[i-1]; prev.Error == report.KindProxy && r.History[i].Proxy == prev.Proxy {
			t.Errorf("attempt %d went straight back to %s, which had failed: history %+v", i+1, prev.Proxy, r.History)
		}
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if last := log.sent[len(log.sent)-1]; last.route != gw.name || last.at.Sub(fakeEpoch) != cooldown {
		t.Errorf("the last request went through %s at +%s, want through %s at +%s, once it cooled down", last.route, last.at.Sub(fakeEpoch), gw.name, cooldown)
	}
}
