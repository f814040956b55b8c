package runner

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/transport"
)

// answer is a Doer that answers status and body for every request, and
// counts the requests per host.
type answer struct {
	status func(host string) (int, string)
	mu     sync.Mutex
	byHost map[string]int
	// rotated lists the hosts Rotate was called for; rotate says whether
	// it gives a fresh session (nil: no Rotate at all).
	rotated []string
}

func (a *answer) Do(req *http.Request) (*http.Response, error) {
	a.mu.Lock()
	if a.byHost == nil {
		a.byHost = map[string]int{}
	}
	a.byHost[req.URL.Host]++
	a.mu.Unlock()
	code, body := a.status(req.URL.Host)
	return &http.Response{StatusCode: code, Status: http.StatusText(code), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body)), Request: req}, nil
}

func (a *answer) count(host string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.byHost[host]
}

type rotating struct{ *answer }

func (r rotating) Rotate(host, _ string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rotated = append(r.rotated, host)
	return true
}

func blockOpts(routes ...Route) Options {
	rotateOn, _ := ParseStatusSet("403,429")
	return Options{Limit: 1, PerHost: 1, Routes: routes, RotateOn: rotateOn, Retries: 2, ProxyCooldown: time.Hour}
}

// TestBlockedRotatesToAnotherProxy: a 403 through one proxy is a block:
// the URL goes on through another proxy at once, spending a retry, the
// record's history names each attempt's proxy and marks the block, and the
// blocked proxy carries no more of that host's URLs while another can.
func TestBlockedRotatesToAnotherProxy(t *testing.T) {
	t.Parallel()
	banned := &answer{status: func(host string) (int, string) {
		if host == "a.example" {
			return 403, "go away"
		}
		return 200, "ok"
	}}
	fine := &answer{status: func(string) (int, string) { return 200, "ok" }}
	opts := blockOpts(Route{Proxy: "http://p1:1", Client: banned}, Route{Proxy: "http://p2:1", Client: fine})
	lines := []string{"http://a.example/1", "http://a.example/2", "http://a.example/3", "http://b.example/1", "http://b.example/2"}
	recs, err := runJobs(t, context.Background(), opts, lines)
	if err != nil {
		t.Fatal(err)
	}
	if banned.count("a.example") != 1 {
		t.Errorf("the blocked proxy carried %d requests for a.example, want 1: it is cooling down for it", banned.count("a.example"))
	}
	if banned.count("b.example") == 0 {
		t.Error("the blocked proxy carried nothing for b.example: a block holds for its host only")
	}
	for _, r := range recs {
		if !r.OK {
			t.Errorf("%s: not ok: %+v", r.URL, r.Error)
		}
		if r.Attempts == 2 {
			h := r.History
			if len(h) != 2 || !h[0].Blocked || h[0].Proxy != "http://p1:1" || h[0].Status != 403 || h[0].Error != report.KindBlocked || h[1].Blocked || h[1].Proxy != "http://p2:1" {
				t.Errorf("%s: history %+v", r.URL, h)
			}
			if h[0].WaitMS == nil || *h[0].WaitMS != 0 {
				t.Errorf("%s: first attempt %+v, want a wait of 0 before moving on", r.URL, h[0])
			}
		}
	}
}

// TestBlockedRenewsTheSession: a route that can rotate (a proxy with
// sessions) gets Rotate for the host and carries the retry itself; when
// retries run out the record says blocked.
func TestBlockedRenewsTheSession(t *testing.T) {
	t.Parallel()
	var n int
	var mu sync.Mutex
	a := &answer{status: func(string) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		n++
		if n == 1 {
			return 429, ""
		}
		return 200, "<html>captcha please</html>"
	}}
	opts := blockOpts(Route{Proxy: "http://gw:1", Client: rotating{a}})
	opts.BlockPattern = regexp.MustCompile(`captcha`)
	recs, err := runJobs(t, context.Background(), opts, []string{"http://a.example/"})
	if err != nil {
		t.Fatal(err)
	}
	r := recs[0]
	if r.OK || !r.Blocked || r.Error == nil || r.Error.Kind != report.KindBlocked || r.Attempts != 3 {
		t.Fatalf("record %+v, want blocked after 3 attempts", r)
	}
	if !strings.Contains(r.Error.Message, "--block-pattern") || !r.History[0].Blocked || !r.History[2].Blocked {
		t.Errorf("record %+v: error %q", r, r.Error.Message)
	}
	if strings.Join(a.rotated, ",") != "a.example,a.example,a.example" {
		t.Errorf("rotated %q, want a.example for each of the 3 blocks", a.rotated)
	}
}

// TestDirectIsNeverBlocked: without a proxy, a 403 is a status as before.
func TestDirectIsNeverBlocked(t *testing.T) {
	t.Parallel()
	a := &answer{status: func(string) (int, string) { return 403, "captcha" }}
	opts := blockOpts(Route{Client: a})
	opts.BlockPattern = regexp.MustCompile(`captcha`)
	recs, err := runJobs(t, context.Background(), opts, []string{"http://a.example/"})
	if err != nil {
		t.Fatal(err)
	}
	if r := recs[0]; r.Blocked || r.Attempts != 1 || r.Error.Kind != report.KindStatus {
		t.Errorf("record %+v, want a plain status failure", r)
	}
}

// TestBudgetStopsTheRun: through a loopback gateway, records count the
// bytes on the wire, and the run stops once they reach --budget.
func TestBudgetStopsTheRun(t *testing.T) {
	t.Parallel()
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 1000))
	}))
	defer gw.Close()
	pu, _ := url.Parse(gw.URL)
	c, err := transport.New(transport.Options{Proxy: pu, KeepAlive: time.Minute, PerHost: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	opts := Options{Limit: 1, PerHost: 1, Routes: []Route{{Proxy: "http://gw", Client: c}}, Budget: 5000}
	lines := make([]string, 20)
	for i := range lines {
		lines[i] = "http://a.example/" + strings.Repeat("p", i)
	}
	recs, err := runJobs(t, context.Background(), opts, lines)
	var be *BudgetError
	if !errors.As(err, &be) || be.Spent < 5000 {
		t.Fatalf("err = %v, want a *BudgetError past 5000 bytes", err)
	}
	if len(recs) == 0 || len(recs) >= 10 {
		t.Errorf("%d records before the budget of 5000 bytes ran out, want a few", len(recs))
	}
	var sum int64
	for _, r := range recs {
		if r.BytesIn < 1000 || r.BytesOut < 30 {
			t.Errorf("record %s counts %d bytes out and %d in, want the request and its 1000-byte answer at least", r.URL, r.BytesOut, r.BytesIn)
		}
		sum += r.BytesOut + r.BytesIn
	}
	if sum > be.Spent {
		t.Errorf("records count %d bytes, more than the %d spent", sum, be.Spent)
	}
}

// TestBudgetStopsMidAttempt: with the routes' clients counting on a meter,
// the run stops while a body far larger than the budget is read. The URLs
// left without a record report their attempts through Unrecorded: the one
// cancelled and the earlier one of a URL waiting for its retry. What the
// error says was spent is what the records and those attempts add up to.
func TestBudgetStopsMidAttempt(t *testing.T) {
	t.Parallel()
	const body = 8 << 20
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Host {
		case "fail.example":
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "busy")
			return
		case "small.example":
			io.WriteString(w, strings.Repeat("x", 1000))
			return
		}
		chunk := []byte(strings.Repeat("y", 32<<10))
		for n := 0; n < body; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer gw.Close()
	const limit = 256 << 10
	m := transport.NewWireMeter(limit)
	pu, _ := url.Parse(gw.URL)
	c, err := transport.New(transport.Options{Proxy: pu, KeepAlive: time.Minute, PerHost: 4, Meter: m})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	var lost []report.Attempt
	var retries int
	opts := Options{
		Limit: 1, PerHost: 1, Routes: []Route{{Proxy: "http://gw", Client: c}}, Budget: limit, Meter: m,
		RetryOn: mustRetryOn(t, "5xx"), Retries: 1, Backoff: time.Hour, BackoffMax: time.Hour,
		Unrecorded: func(a report.Attempt, retry bool) {
			lost = append(lost, a)
			if retry {
				retries++
			}
		},
	}
	recs, err := runJobs(t, context.Background(), opts, []string{"http://small.example/", "http://fail.example/", "http://big.example/"})
	var be *BudgetError
	if !errors.As(err, &be) {
		t.Fatalf("err = %v, want a *BudgetError", err)
	}
	if len(recs) != 1 || recs[0].URL != "http://small.example/" {
		t.Fatalf("records %+v, want the small URL's alone", recs)
	}
	if len(lost) != 2 || retries != 0 {
		t.Fatalf("unrecorded attempts %+v (%d retries), want the failed one and the cancelled one, no retry", lost, retries)
	}
	sum := recs[0].BytesOut + recs[0].BytesIn
	for _, a := range lost {
		if a.Proxy != "http://gw" || a.BytesOut == 0 || a.BytesIn == 0 {
			t.Errorf("unrecorded attempt %+v, want its proxy and bytes both ways", a)
		}
		sum += a.BytesOut + a.BytesIn
	}
	if be.Spent != sum {
		t.Errorf("spent %d, want the %d bytes of the record and the unrecorded attempts", be.Spent, sum)
	}
	if be.Spent < limit || be.Spent > limit+64<<10 {
		t.Errorf("spent %d for a budget of %d, want at most a read past it", be.Spent, limit)
	}
}

// sessionNamed is a route client through proxy sessions: it names the
// session that carried each response.
type sessionNamed struct{ rotating }

func (sessionNamed) ExitName(*http.Response) string {
	return "http://c-{session}:***@gw:1 (session abcdefgh)"
}

// TestBlockMessageNamesTheSession: a block through a proxy with sessions
// names the session that was blocked beside the proxy, for --rotate-on as
// for --block-pattern; the record's proxy stays the proxy as written.
func TestBlockMessageNamesTheSession(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		status  int
		body    string
		pattern *regexp.Regexp
		want    string
	}{
		{"rotate-on", 403, "no", nil, "status 403 through proxy http://c-{session}:***@gw:1 (session abcdefgh) is in --rotate-on 403,429"},
		{"block-pattern", 200, "captcha", regexp.MustCompile("captcha"), "status 200 through proxy http://c-{session}:***@gw:1 (session abcdefgh): the body matches --block-pattern"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := &answer{status: func(string) (int, string) { return tt.status, tt.body }}
			opts := blockOpts(Route{Proxy: "http://c-{session}:***@gw:1", Client: sessionNamed{rotating{a}}})
			opts.Retries = 0
			opts.BlockPattern = tt.pattern
			recs, err := runJobs(t, context.Background(), opts, []string{"http://a.example/"})
			if err != nil {
				t.Fatal(err)
			}
			r := recs[0]
			if r.Error == nil || r.Error.Message != tt.want {
				t.Fatalf("error %+v, want message %q", r.Error, tt.want)
			}
			if r.Proxy != "http://c-{session}:***@gw:1" {
				t.Errorf("proxy = %q, want the proxy as written", r.Proxy)
			}
		})
	}
}
