package report

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// rec builds a fetched record: ok when status is 2xx, else with an error of
// kind (status when kind is "").
func rec(url string, status int, kind string, attempts int, ms float64) *Record {
	r := &Record{URL: url, Status: status, Attempts: attempts, DurationMS: ms, Bytes: 100}
	if status >= 200 && status < 300 && kind == "" {
		r.OK = true
		return r
	}
	if kind == "" {
		kind = KindStatus
	}
	r.Error = &Error{Kind: kind, Message: kind}
	return r
}

func invalid(line int64) *Record {
	return &Record{URL: "https://bad host/", Line: line, Error: &Error{Kind: KindInvalidURL, Message: "bad"}}
}

func TestSummaryTotals(t *testing.T) {
	t.Parallel()
	s := NewSummary()
	old := []*Record{
		rec("https://a.example/1", 200, "", 1, 100),
		rec("https://a.example/2", 503, "", 3, 300),
	}
	for _, r := range old {
		s.AddOld(r)
	}
	now := []*Record{
		rec("https://a.example/3", 200, "", 2, 200),
		rec("http://B.example/x", 0, KindTimeout, 4, 400),
		rec("https://b.example:80/y", 404, "", 1, 500),
		invalid(9),
	}
	for _, r := range now {
		s.Add(r)
	}
	got := s.Result(2*time.Second, false)

	want := Result{
		Total: 6, OK: 2, Failed: 4, SuccessRatio: 2.0 / 6,
		Status:   map[string]int64{"200": 2, "503": 1, "404": 1},
		Errors:   map[string]int64{KindStatus: 2, KindTimeout: 1, KindInvalidURL: 1},
		Attempts: 11, Retries: 6, Bytes: 500,
		ElapsedMS: 2000, RatePerS: 2, // four records of this run in 2 s
		LatencyMS: Latency{Max: 500},
	}
	if got.Total != want.Total || got.OK != want.OK || got.Failed != want.Failed || got.SuccessRatio != want.SuccessRatio {
		t.Errorf("counts = %d/%d ok, %d failed, ratio %v; want %d/%d, %d, %v",
			got.OK, got.Total, got.Failed, got.SuccessRatio, want.OK, want.Total, want.Failed, want.SuccessRatio)
	}
	if !reflect.DeepEqual(got.Status, want.Status) {
		t.Errorf("status = %v, want %v", got.Status, want.Status)
	}
	if !reflect.DeepEqual(got.Errors, want.Errors) {
		t.Errorf("errors = %v, want %v", got.Errors, want.Errors)
	}
	if got.Attempts != want.Attempts || got.Retries != want.Retries || got.Bytes != want.Bytes {
		t.Errorf("attempts, retries, bytes = %d, %d, %d; want %d, %d, %d",
			got.Attempts, got.Retries, got.Bytes, want.Attempts, want.Retries, want.Bytes)
	}
	if got.ElapsedMS != want.ElapsedMS || got.RatePerS != want.RatePerS {
		t.Errorf("elapsed, rate = %v ms, %v/s; want %v, %v", got.ElapsedMS, got.RatePerS, want.ElapsedMS, want.RatePerS)
	}
	if got.LatencyMS.Max != want.LatencyMS.Max {
		t.Errorf("latency max = %v, want %v (the invalid line has none)", got.LatencyMS.Max, want.LatencyMS.Max)
	}

	hosts := map[string]Group{}
	for _, g := range got.ByHost {
		hosts[g.Host] = g
	}
	if len(hosts) != 2 {
		t.Fatalf("by_host = %+v, want a.example:443 and b.example:80 (no invalid line)", got.ByHost)
	}
	a := hosts["a.example:443"]
	if a.Total != 3 || a.OK != 2 || !reflect.DeepEqual(a.Status, map[string]int64{"200": 2, "503": 1}) ||
		!reflect.DeepEqual(a.Errors, map[string]int64{KindStatus: 1}) || a.LatencyMS.Max != 300 {
		t.Errorf("a.example:443 = %+v", a)
	}
	b := hosts["b.example:80"]
	if b.Total != 2 || b.OK != 0 || !reflect.DeepEqual(b.Errors, map[string]int64{KindTimeout: 1, KindStatus: 1}) {
		t.Errorf("b.example:80 = %+v", b)
	}
	if got.ByHost[0].Host != "b.example:80" {
		t.Errorf("first host = %q, want the one with the most failures", got.ByHost[0].Host)
	}
	if got.ByProxy != nil {
		t.Errorf("by_proxy = %+v, want none without proxies", got.ByProxy)
	}
}

func TestSummaryEmptyJSON(t *testing.T) {
	t.Parallel()
	res := NewSummary().Result(1500*time.Millisecond, false)
	got, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"total":0,"ok":0,"failed":0,"success_ratio":1,"status":{},"errors":{},"attempts":0,"retries":0,"bytes":0,"elapsed_ms":1500,"rate_per_s":0,"latency_ms":{"p50":0,"p90":0,"p99":0,"max":0},"interrupted":false,"stopped":null,"by_host":[]}`
	if string(got) != want {
		t.Errorf("empty summary JSON:\n got %s\nwant %s", got, want)
	}
	// Interrupted before any record: nothing proves the URLs went well.
	res = NewSummary().Result(1500*time.Millisecond, true)
	if got, err = json.Marshal(res); err != nil {
		t.Fatal(err)
	}
	want = `{"total":0,"ok":0,"failed":0,"success_ratio":0,"status":{},"errors":{},"attempts":0,"retries":0,"bytes":0,"elapsed_ms":1500,"rate_per_s":0,"latency_ms":{"p50":0,"p90":0,"p99":0,"max":0},"interrupted":true,"stopped":null,"by_host":[]}`
	if string(got) != want {
		t.Errorf("empty summary JSON:\n got %s\nwant %s", got, want)
	}
}

func TestSummaryJSONShape(t *testing.T) {
	t.Parallel()
	s := NewSummary()
	r := rec("https://example.com/", 200, "", 1, 84)
	r.Proxy = "http://bob:pw@proxy.example:8080"
	r.HostLimit = 7
	s.Add(r)
	got, err := json.Marshal(s.Result(time.Second, false))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"total":1,"ok":1,"failed":0,"success_ratio":1,"status":{"200":1},"errors":{},"attempts":1,"retries":0,"bytes":100,"elapsed_ms":1000,"rate_per_s":1,"latency_ms":{"p50":84,"p90":84,"p99":84,"max":84},` +
		`"bytes_out":0,"bytes_in":0,"retry_bytes":0,"interrupted":false,"stopped":null,` +
		`"by_host":[{"host":"example.com:443","total":1,"ok":1,"status":{"200":1},"errors":{},"latency_ms":{"p50":84,"p90":84,"p99":84,"max":84},"limit":7,"blocks":0}],` +
		`"by_proxy":[{"proxy":"http://bob:***@proxy.example:8080","total":1,"ok":1,"status":{"200":1},"errors":{},"latency_ms":{"p50":84,"p90":84,"p99":84,"max":84},` +
		`"attempts":1,"failures":{},"blocks":0,"retries":0,"bytes_out":0,"bytes_in":0}]}`
	if string(got) != want {
		t.Errorf("summary JSON:\n got %s\nwant %s", got, want)
	}
}

func TestSummaryHostOrder(t *testing.T) {
	t.Parallel()
	s := NewSummary()
	// Host i has i failures and 10+i records in all; hosts 60..69 never fail.
	for i := range 70 {
		url := fmt.Sprintf("https://h%02d.example/", i)
		failures := i
		if i >= 60 {
			failures = 0
		}
		for j := range 10 + i {
			if j < failures {
				s.Add(rec(url, 500, "", 1, 10))
			} else {
				s.Add(rec(url, 200, "", 1, 10))
			}
		}
	}
	// Two hosts tie on failures and records: the name decides.
	for range 30 {
		s.Add(rec("https://zz.example/", 0, KindDNS, 1, 1))
		s.Add(rec("https://yy.example/", 0, KindDNS, 1, 1))
	}

	got := s.Result(time.Second, false).ByHost
	if len(got) != TopHosts {
		t.Fatalf("by_host has %d hosts, want %d", len(got), TopHosts)
	}
	for i, want := range []string{"h59.example:443", "h58.example:443"} {
		if got[i].Host != want {
			t.Errorf("by_host[%d] = %s, want %s", i, got[i].Host, want)
		}
	}
	for i := 1; i < len(got); i++ {
		p, c := got[i-1], got[i]
		if c.Failed() > p.Failed() || c.Failed() == p.Failed() && (c.Total > p.Total || c.Total == p.Total && c.Host < p.Host) {
			t.Errorf("by_host[%d] %s (%d failed of %d) comes after %s (%d of %d)", i, c.Host, c.Failed(), c.Total, p.Host, p.Failed(), p.Total)
		}
	}
	yy, zz := -1, -1
	for i, g := range got {
		switch g.Host {
		case "yy.example:443":
			yy = i
		case "zz.example:443":
			zz = i
		}
	}
	if yy < 0 || zz != yy+1 {
		t.Errorf("tied hosts at %d and %d, want yy.example just before zz.example", yy, zz)
	}

	// A clean run still lists its busiest hosts.
	clean := NewSummary()
	clean.Add(rec("https://small.example/", 200, "", 1, 1))
	for range 3 {
		clean.Add(rec("https://big.example/", 200, "", 1, 1))
	}
	if got := clean.Result(time.Second, false).ByHost; len(got) != 2 || got[0].Host != "big.example:443" {
		t.Errorf("clean run by_host = %+v, want big.example then small.example", got)
	}
}

func TestSummaryBoundedHosts(t *testing.T) {
	t.Parallel()
	s := NewSummary()
	const bad = "https://bad.example/"
	// One failing host among a stream of hosts seen once each, coming back
	// only after more new hosts than the summary keeps.
	const n, every = 5 * maxGroups, maxGroups + maxGroups/4
	for i := range n {
		if i%every == 0 {
			s.Add(rec(bad, 503, "", 1, 5))
		}
		s.Add(rec(fmt.Sprintf("https://h%d.example/", i), 200, "", 1, 5))
	}
	if n := len(s.hosts.m); n > maxGroups || len(s.hosts.heap) != n {
		t.Fatalf("summary keeps %d hosts (heap %d), want at most %d", n, len(s.hosts.heap), maxGroups)
	}
	res := s.Result(time.Second, false)
	if res.Total != n+n/every {
		t.Errorf("total = %d, want every record counted", res.Total)
	}
	if g := res.ByHost[0]; g.Host != "bad.example:443" || g.Total != n/every || g.OK != 0 {
		t.Errorf("by_host[0] = %+v, want bad.example:443 with all %d failures", g, n/every)
	}
	// The heap's root is the least telling host, and every parent is less
	// telling than its children.
	for i := 1; i < len(s.hosts.heap); i++ {
		if less(s.hosts.heap[i], s.hosts.heap[(i-1)/2]) {
			t.Fatalf("heap order broken at %d", i)
		}
		if s.hosts.heap[i].index != i {
			t.Fatalf("heap index of %d is %d", i, s.hosts.heap[i].index)
		}
	}
}

func TestSummaryProxies(t *testing.T) {
	t.Parallel()
	s := NewSummary()
	for i, p := range []string{"http://u:secret@p1:8080", "socks5://p2:1080", "http://u:secret@p1:8080", ""} {
		r := rec(fmt.Sprintf("https://h%d.example/", i), 200, "", 1, 10)
		if i == 2 {
			r = rec("https://h.example/", 0, KindProxy, 2, 10)
		}
		r.Proxy = p
		s.Add(r)
	}
	got := s.Result(time.Second, false).ByProxy
	if len(got) != 2 {
		t.Fatalf("by_proxy = %+v, want two proxies", got)
	}
	if got[0].Proxy != "http://u:***@p1:8080" || got[0].Total != 2 || got[0].OK != 1 || got[0].Errors[KindProxy] != 1 {
		t.Errorf("by_proxy[0] = %+v, want p1 with its password hidden, 1/2 ok", got[0])
	}
	if got[1].Proxy != "socks5://p2:1080" || got[1].Host != "" || got[1].Limit != 0 {
		t.Errorf("by_proxy[1] = %+v", got[1])
	}
}

func TestSummaryHostLimitFromRecords(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		limits []int // HostLimit of the records of one host, in order
		want   int
	}{
		{name: "no adaptive limit", limits: []int{0, 0}, want: 0},
		{name: "the last record's limit", limits: []int{3, 8, 5}, want: 5},
		{name: "a record without one keeps it", limits: []int{4, 0}, want: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := NewSummary()
			for _, l := range tt.limits {
				r := rec("https://h.example/", 200, "", 1, 1)
				r.HostLimit = l
				s.Add(r)
			}
			res := s.Result(time.Second, false)
			if len(res.ByHost) != 1 || res.ByHost[0].Limit != tt.want {
				t.Errorf("by_host = %+v, want h.example:443 with limit %d", res.ByHost, tt.want)
			}
		})
	}
}

func TestSummaryGroupsByTheRecordsHostKey(t *testing.T) {
	t.Parallel()
	s := NewSummary()
	r := rec("https://h.example/", 200, "", 1, 1)
	r.HostKey = "computed.example:443"
	s.Add(r)
	s.Add(rec("https://h.example/", 200, "", 1, 1))
	res := s.Result(time.Second, false)
	var hosts []string
	for _, g := range res.ByHost {
		hosts = append(hosts, g.Host)
	}
	want := []string{"computed.example:443", "h.example:443"}
	if !reflect.DeepEqual(hosts, want) && !reflect.DeepEqual(hosts, []string{want[1], want[0]}) {
		t.Errorf("hosts %v, want %v: the key a record carries, else the URL's", hosts, want)
	}
}

func TestSummaryAddDoesNotAllocate(t *testing.T) {
	s := NewSummary()
	r := rec("https://Example.com:8443/path", 503, "", 2, 123.4)
	r.Proxy = "http://proxy:8080"
	s.Add(r)
	allocs := testing.AllocsPerRun(1000, func() { s.Add(r) })
	if allocs != 0 {
		t.Errorf("Add of a known host allocates %v times, want 0", allocs)
	}
}

func BenchmarkSummaryAdd(b *testing.B) {
	s := NewSummary()
	recs := make([]*Record, 1000)
	for i := range recs {
		recs[i] = rec(fmt.Sprintf("https://h%d.example/p", i%200), 200+i%3*100, "", 1+i%2, float64(i%500)+0.5)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.Add(recs[i%len(recs)])
		i++
	}
}

// TestSummaryJSONKeepsZeroCounts: a stopped run says why; the counts of a
// proxy and of the run through proxies are there when 0, so that a query
// such as `.by_proxy[] | .blocks` reads 0, not null; and the summary
// decodes back to what it was.
func TestSummaryJSONKeepsZeroCounts(t *testing.T) {
	t.Parallel()
	s := NewSummary()
	r := rec("https://example.com/", 500, KindStatus, 1, 10)
	r.Proxy = "http://proxy.example:8080"
	r.BytesOut, r.BytesIn = 100, 200
	s.Add(r)
	res := s.Result(time.Second, false)
	res.MarkStopped("--budget of 1KB through proxies reached (1200 bytes spent)")
	data, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Stopped    *string          `json:"stopped"`
		RetryBytes *int64           `json:"retry_bytes"`
		ByHost     []map[string]any `json:"by_host"`
		ByProxy    []map[string]any `json:"by_proxy"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m.Stopped == nil || *m.Stopped != res.Stopped || m.RetryBytes == nil || *m.RetryBytes != 0 {
		t.Errorf("summary %s: want stopped and retry_bytes 0", data)
	}
	if len(m.ByProxy) != 1 {
		t.Fatalf("by_proxy %s, want one proxy", data)
	}
	for key, want := range map[string]any{"attempts": 1.0, "ok": 0.0, "failures": map[string]any{"status": 1.0}, "blocks": 0.0, "retries": 0.0, "bytes_out": 100.0, "bytes_in": 200.0} {
		if got, ok := m.ByProxy[0][key]; !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("by_proxy[0].%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	for _, key := range []string{"attempts", "failures", "retries", "bytes_out", "bytes_in"} {
		if _, ok := m.ByHost[0][key]; ok {
			t.Errorf("by_host[0] has %s: %s", key, data)
		}
	}
	if got, ok := m.ByHost[0]["blocks"]; !ok || got != 0.0 {
		t.Errorf("by_host[0].blocks = %v (present %v), want 0", got, ok)
	}
	var back Result
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, res) {
		t.Errorf("decoded summary:\n got %+v\nwant %+v", back, res)
	}
}
