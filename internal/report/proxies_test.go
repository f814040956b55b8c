package report

import (
	"strings"
	"testing"
)

// TestSummaryCountsEveryProxyAttempt: a proxy that carried only failed
// attempts, its URLs ending through another, is in by_proxy with what it
// cost; blocks count per proxy and per host; wire bytes and retry bytes add
// up.
func TestSummaryCountsEveryProxyAttempt(t *testing.T) {
	t.Parallel()
	const dead, good = "http://dead.example:1", "http://good.example:1"
	s := NewSummary()
	s.Add(&Record{URL: "http://a.example/1", Attempts: 3, OK: true, Status: 200, Proxy: good, BytesOut: 600, BytesIn: 3000,
		History: []Attempt{
			{Error: KindProxy, Proxy: dead, BytesOut: 100, BytesIn: 50},
			{Error: KindBlocked, Status: 403, Proxy: good, Blocked: true, BytesOut: 200, BytesIn: 950},
			{Status: 200, Proxy: good, BytesOut: 300, BytesIn: 2000},
		}})
	s.Add(&Record{URL: "http://a.example/2", Attempts: 1, Status: 403, Proxy: good, Blocked: true, BytesOut: 10, BytesIn: 20,
		Error: &Error{Kind: KindBlocked, Message: "blocked"}})
	s.Add(&Record{URL: "http://b.example/", Attempts: 1, OK: true, Status: 200, Bytes: 5})
	res := s.Result(0, false)
	if res.BytesOut != 610 || res.BytesIn != 3020 || res.RetryBytes != 200+950+300+2000 {
		t.Errorf("bytes out %d in %d retries %d, want 610, 3020, 3450", res.BytesOut, res.BytesIn, res.RetryBytes)
	}
	byProxy := map[string]Group{}
	for _, g := range res.ByProxy {
		byProxy[g.Proxy] = g
	}
	d, ok := byProxy[dead]
	if !ok {
		t.Fatalf("by_proxy %+v lacks the proxy whose attempts all failed", res.ByProxy)
	}
	if d.Total != 0 || d.Attempts != 1 || d.Failures[KindProxy] != 1 || d.BytesOut != 100 || d.BytesIn != 50 || d.Retries != 0 {
		t.Errorf("dead proxy: %+v", d)
	}
	g := byProxy[good]
	if g.Total != 2 || g.OK != 1 || g.Attempts != 3 || g.Retries != 2 || g.Blocks != 2 || g.Failures[KindBlocked] != 2 || g.BytesOut != 510 || g.BytesIn != 2970 {
		t.Errorf("good proxy: %+v", g)
	}
	for _, h := range res.ByHost {
		want := map[string]int64{"a.example:80": 2, "b.example:80": 0}[h.Host]
		if h.Blocks != want {
			t.Errorf("host %s: %d blocks, want %d", h.Host, h.Blocks, want)
		}
	}
}

// TestTextShowsProxyBytes: the text summary has a proxies line whenever
// the run had proxies, 0 bytes included, and none without proxies.
func TestTextShowsProxyBytes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		res  Result
		want string // "" for no proxies line
	}{
		{"bytes", Result{Total: 1, OK: 1, Attempts: 2, Retries: 1, BytesOut: 2048, BytesIn: 3 << 20, RetryBytes: 512},
			"  proxies   3.0 MiB on the wire (2.0 KiB out, 3.0 MiB in), 512 B of it on retries\n"},
		{"proxies carried nothing", Result{Total: 1, Attempts: 1, ByProxy: []Group{{Proxy: "http://u:***@127.0.0.1:1", Total: 1, Attempts: 1}}},
			"  proxies   0 B on the wire (0 B out, 0 B in), 0 B of it on retries\n"},
		{"no proxies", Result{Total: 1, OK: 1, Attempts: 1}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := tt.res.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if strings.Contains(b.String(), "proxies") {
					t.Errorf("text %q has a proxies line for a run without proxies", b.String())
				}
			} else if !strings.Contains(b.String(), tt.want) {
				t.Errorf("text %q lacks %q", b.String(), tt.want)
			}
		})
	}
}

// TestSummaryCountsUnrecordedAttempts: the bytes of attempts whose URLs got
// no record count in the totals (retry_bytes for a retry) and in their
// proxy's bytes, which lists a proxy that carried nothing else, but not in
// any count of records or attempts.
func TestSummaryCountsUnrecordedAttempts(t *testing.T) {
	t.Parallel()
	const gw, other = "http://gw.example:1", "http://other.example:1"
	s := NewSummary()
	s.Add(&Record{URL: "http://a.example/", Attempts: 1, OK: true, Status: 200, Proxy: gw, BytesOut: 10, BytesIn: 100})
	s.AddUnrecorded(Attempt{Proxy: gw, BytesOut: 20, BytesIn: 2000}, false)
	s.AddUnrecorded(Attempt{Proxy: other, BytesOut: 30, BytesIn: 300}, true)
	res := s.Result(0, true)
	if res.Total != 1 || res.Attempts != 1 {
		t.Errorf("total %d attempts %d, want the one record's", res.Total, res.Attempts)
	}
	if res.BytesOut != 60 || res.BytesIn != 2400 || res.RetryBytes != 330 {
		t.Errorf("bytes out %d in %d retries %d, want 60, 2400, 330", res.BytesOut, res.BytesIn, res.RetryBytes)
	}
	byProxy := map[string]Group{}
	for _, g := range res.ByProxy {
		byProxy[g.Proxy] = g
	}
	tests := []struct {
		proxy                    string
		total, attempts, out, in int64
	}{
		{gw, 1, 1, 30, 2100},
		{other, 0, 0, 30, 300},
	}
	for _, tt := range tests {
		g, ok := byProxy[tt.proxy]
		if !ok {
			t.Errorf("by_proxy %+v lacks %s", res.ByProxy, tt.proxy)
			continue
		}
		if g.Total != tt.total || g.Attempts != tt.attempts || g.BytesOut != tt.out || g.BytesIn != tt.in {
			t.Errorf("%s: %+v, want total %d, attempts %d, bytes %d out and %d in", tt.proxy, g, tt.total, tt.attempts, tt.out, tt.in)
		}
	}
}
