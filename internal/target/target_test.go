package target

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// start runs a server for one test and closes it when the test ends.
func start(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatalf("Start(%+v): %v", opts, err)
	}
	t.Cleanup(s.Close)
	return s
}

var errTooManyHops = errors.New("too many redirects")

// testClient is the server's client with a redirect cap of 20 hops that
// fails with errTooManyHops.
func testClient(s *Server) *http.Client {
	c := s.Client()
	c.CheckRedirect = func(_ *http.Request, via []*http.Request) error {
		if len(via) >= 20 {
			return errTooManyHops
		}
		return nil
	}
	return c
}

// fetch does one request and reads the whole body. err is the error of Do or
// of reading the body; resp is nil only when Do failed.
func fetch(c *http.Client, method, rawURL, body string, hdr http.Header) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, rawURL, rd)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// hops counts the redirects that led to resp.
func hops(resp *http.Response) int {
	n := 0
	for r := resp.Request.Response; r != nil; r = r.Request.Response {
		n++
	}
	return n
}

func TestPaths(t *testing.T) {
	t.Parallel()
	const bodySize = 300
	s := start(t, Options{Hosts: 2, BodySize: bodySize})
	addr1 := s.Addrs()[1]

	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		header     http.Header
		wantErr    bool // Do or the body read fails
		wantStatus int
		wantBody   []byte // compared when non-nil
		minTime    time.Duration
		check      func(t *testing.T, resp *http.Response, body []byte)
	}{
		{name: "default", path: "/", wantStatus: 200, wantBody: Body(bodySize),
			check: func(t *testing.T, resp *http.Response, _ []byte) {
				if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, "text/plain") {
					t.Errorf("Content-Type = %q, want text/plain", got)
				}
			}},
		{name: "any path is default", path: "/some/page.html", wantStatus: 200, wantBody: Body(bodySize)},
		{name: "size below prebuilt", path: "/?size=10", wantStatus: 200, wantBody: Body(10)},
		{name: "size above prebuilt", path: "/?size=100KiB", wantStatus: 200, wantBody: Body(100 << 10)},
		{name: "status override", path: "/?status=404", wantStatus: 404, wantBody: Body(bodySize)},
		{name: "status without body", path: "/?status=204", wantStatus: 204, wantBody: []byte{}},
		{name: "latency override", path: "/?latency=30ms", wantStatus: 200, minTime: 30 * time.Millisecond},
		{name: "bad latency", path: "/?latency=soon", wantStatus: 400},
		{name: "bad size", path: "/?size=-1", wantStatus: 400},
		{name: "bad status", path: "/?status=99", wantStatus: 400},
		{name: "slow", path: "/slow?ms=30&size=5", wantStatus: 200, wantBody: Body(5), minTime: 30 * time.Millisecond},
		{name: "status 418", path: "/status/418", wantStatus: 418},
		{name: "status 204", path: "/status/204", wantStatus: 204, wantBody: []byte{}},
		{name: "status not a number", path: "/status/abc", wantStatus: 400},
		{name: "status out of range", path: "/status/700", wantStatus: 400},
		{name: "reset", path: "/reset", wantErr: true},
		{name: "reset mid headers", path: "/reset-mid", wantErr: true},
		{name: "short body", path: "/short", wantErr: true, wantStatus: 200,
			check: func(t *testing.T, resp *http.Response, body []byte) {
				if resp.ContentLength != 1000 {
					t.Errorf("ContentLength = %d, want 1000", resp.ContentLength)
				}
				if len(body) != 10 {
					t.Errorf("read %d bytes, want 10", len(body))
				}
			}},
		{name: "stall ends", path: "/stall?for=30ms", wantStatus: 200, wantBody: Body(bodySize), minTime: 30 * time.Millisecond},
		{name: "drip", path: "/drip?bytes=3&every=1ms", wantStatus: 200, wantBody: []byte(pattern[:3])},
		{name: "big", path: "/big?size=3MiB", wantStatus: 200, wantBody: Body(3 << 20),
			check: func(t *testing.T, resp *http.Response, _ []byte) {
				if resp.ContentLength != 3<<20 {
					t.Errorf("ContentLength = %d, want %d", resp.ContentLength, 3<<20)
				}
			}},
		{name: "redirect chain", path: "/redirect?n=3", wantStatus: 200, wantBody: Body(bodySize),
			check: func(t *testing.T, resp *http.Response, _ []byte) {
				if got := hops(resp); got != 3 {
					t.Errorf("redirects = %d, want 3", got)
				}
				if got := resp.Request.URL.Path; got != "/" {
					t.Errorf("final path = %q, want /", got)
				}
			}},
		{name: "redirect n=0", path: "/redirect?n=0", wantStatus: 200,
			check: func(t *testing.T, resp *http.Response, _ []byte) {
				if got := hops(resp); got != 0 {
					t.Errorf("redirects = %d, want 0", got)
				}
			}},
		{name: "loop", path: "/loop?x=1", wantErr: true},
		{name: "redirect host", path: "/redirect-host?to=" + addr1 + "&path=/echo", wantStatus: 200,
			check: func(t *testing.T, resp *http.Response, body []byte) {
				if got := resp.Request.URL.Host; got != addr1 {
					t.Errorf("final host = %q, want %q", got, addr1)
				}
				var e Echo
				if err := json.Unmarshal(body, &e); err != nil || e.URI != "/echo" {
					t.Errorf("final body = %q (%v), want the echo of /echo", body, err)
				}
			}},
		{name: "redirect host not ours", path: "/redirect-host?to=192.0.2.1:80", wantStatus: 400},
		{name: "echo", method: "POST", path: "/echo?q=1", body: "a=1&b=2",
			header: http.Header{"X-Test": {"one", "two"}, "User-Agent": {"fetchctl/test"}}, wantStatus: 200,
			check: func(t *testing.T, resp *http.Response, body []byte) {
				var e Echo
				if err := json.Unmarshal(body, &e); err != nil {
					t.Fatalf("decode %q: %v", body, err)
				}
				if e.Method != "POST" || e.URI != "/echo?q=1" || e.Body != "a=1&b=2" || e.ContentLength != 7 {
					t.Errorf("echo = %+v, want POST /echo?q=1 with body a=1&b=2", e)
				}
				if got := e.Header["X-Test"]; len(got) != 2 || got[0] != "one" || got[1] != "two" {
					t.Errorf("echo X-Test = %q, want [one two]", got)
				}
				if got := e.Header["User-Agent"]; len(got) != 1 || got[0] != "fetchctl/test" {
					t.Errorf("echo User-Agent = %q, want [fetchctl/test]", got)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			begin := time.Now()
			resp, body, err := fetch(testClient(s), method, s.URL(0, tt.path), tt.body, tt.header)
			elapsed := time.Since(begin)
			if tt.wantErr != (err != nil) {
				t.Fatalf("%s %s: err = %v, want error %v", method, tt.path, err, tt.wantErr)
			}
			if tt.name == "loop" {
				if !errors.Is(err, errTooManyHops) {
					t.Errorf("loop: err = %v, want %v", err, errTooManyHops)
				}
				return
			}
			if resp == nil {
				if tt.wantStatus != 0 {
					t.Fatalf("no response, want status %d", tt.wantStatus)
				}
				return
			}
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %.80q)", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantBody != nil && !bytes.Equal(body, tt.wantBody) {
				t.Errorf("body = %d bytes %.40q, want %d bytes %.40q", len(body), body, len(tt.wantBody), tt.wantBody)
			}
			if elapsed < tt.minTime {
				t.Errorf("answered after %v, want at least %v", elapsed, tt.minTime)
			}
			if tt.check != nil {
				tt.check(t, resp, body)
			}
		})
	}
}

func TestFaultSequences(t *testing.T) {
	t.Parallel()
	s := start(t, Options{})

	type step struct {
		status     int
		retryAfter string // "date" checks an HTTP-date; "" checks absence
	}
	tests := []struct {
		name string
		path string // without key; each case gets its own key
		want []step
	}{
		{"flaky default", "/flaky?", []step{{503, ""}, {200, ""}, {200, ""}}},
		{"flaky fail 2 status 500", "/flaky?fail=2&status=500", []step{{500, ""}, {500, ""}, {200, ""}}},
		{"flaky fail 0", "/flaky?fail=0", []step{{200, ""}}},
		{"flaky 429 counts", "/flaky?fail=1&status=429", []step{{429, ""}, {200, ""}}},
		{"429 default", "/429?", []step{{429, "1"}, {200, ""}}},
		{"429 after 2 times 2", "/429?after=2&times=2", []step{{429, "2"}, {429, "2"}, {200, ""}}},
		{"429 date", "/429?after=60&date=1", []step{{429, "date"}, {200, ""}}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := s.Client()
			u := tt.path
			if !strings.HasSuffix(u, "?") {
				u += "&"
			}
			u += "key=" + strconv.Itoa(i)
			for n, want := range tt.want {
				resp, _, err := fetch(c, http.MethodGet, s.URL(0, u), "", nil)
				if err != nil {
					t.Fatalf("request %d: %v", n+1, err)
				}
				if resp.StatusCode != want.status {
					t.Errorf("request %d: status = %d, want %d", n+1, resp.StatusCode, want.status)
				}
				ra := resp.Header.Get("Retry-After")
				switch want.retryAfter {
				case "date":
					at, err := http.ParseTime(ra)
					if left := time.Until(at); err != nil || left < 50*time.Second || left > 61*time.Second {
						t.Errorf("request %d: Retry-After = %q, want an HTTP-date about 60s ahead", n+1, ra)
					}
				default:
					if ra != want.retryAfter {
						t.Errorf("request %d: Retry-After = %q, want %q", n+1, ra, want.retryAfter)
					}
				}
			}
		})
	}
}

func TestKeysAreSeparate(t *testing.T) {
	t.Parallel()
	s := start(t, Options{})
	c := s.Client()
	// Interleave two keys: each must see its own first failure.
	var got []int
	for _, key := range []string{"a", "b", "a", "b"} {
		resp, _, err := fetch(c, http.MethodGet, s.URL(0, "/flaky?key="+key), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, resp.StatusCode)
	}
	want := []int{503, 503, 200, 200}
	if !equalInts(got, want) {
		t.Errorf("statuses = %v, want %v", got, want)
	}
	// A second server has its own state.
	s2 := start(t, Options{})
	resp, _, err := fetch(s2.Client(), http.MethodGet, s2.URL(0, "/flaky?key=a"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 503 {
		t.Errorf("new server, key a: status %d, want 503", resp.StatusCode)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// hold starts a drip request that the server keeps in flight until ctx is
// cancelled or the server closes. Do returns once the headers are flushed,
// so the handler is running when hold returns.
func hold(ctx context.Context, t *testing.T, c *http.Client, rawURL string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: status %d, want 200", rawURL, resp.StatusCode)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestLimit429(t *testing.T) {
	t.Parallel()
	s := start(t, Options{Hosts: 2, Limit429: 2})
	c := s.Client()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	hold(ctx, t, c, s.URL(0, "/drip?bytes=1&every=1h"))
	hold(ctx, t, c, s.URL(0, "/drip?bytes=1&every=1h"))

	// Host 0 has two in flight: a third is over the limit, host 1 is not.
	for _, tc := range []struct {
		host int
		want int
	}{{0, http.StatusTooManyRequests}, {1, http.StatusOK}} {
		resp, _, err := fetch(c, http.MethodGet, s.URL(tc.host, "/"), "", nil)
		if err != nil {
			t.Fatalf("request on host %d: %v", tc.host, err)
		}
		if resp.StatusCode != tc.want {
			t.Errorf("request on host %d: status %d, want %d", tc.host, resp.StatusCode, tc.want)
		}
	}

	st := s.Stats()
	if got := st.Hosts[0].TooMany; got != 1 {
		t.Errorf("host 0 too_many = %d, want 1", got)
	}
	if got := st.Hosts[0].PeakInFlight; got != 3 {
		t.Errorf("host 0 peak_in_flight = %d, want 3 (two held and the refused one)", got)
	}
	if got := st.Hosts[0].InFlight; got != 2 {
		t.Errorf("host 0 in_flight = %d, want 2", got)
	}
	if st.TooMany != 1 || st.Hosts[1].TooMany != 0 {
		t.Errorf("too_many total %d host 1 %d, want 1 and 0", st.TooMany, st.Hosts[1].TooMany)
	}
}

func TestCounters(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		keepAlive bool
		perHost   []int // sequential requests to each host
		wantConns []int64
	}{
		{"keep-alive reuses one connection", true, []int{3, 1}, []int64{1, 1}},
		{"no keep-alive, one connection each", false, []int{3, 1}, []int64{3, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, Options{Hosts: len(tt.perHost), BodySize: 100})
			c := s.Client()
			c.Transport.(*http.Transport).DisableKeepAlives = !tt.keepAlive
			var total int64
			for h, n := range tt.perHost {
				for range n {
					if _, _, err := fetch(c, http.MethodGet, s.URL(h, "/"), "", nil); err != nil {
						t.Fatal(err)
					}
				}
				total += int64(n)
			}
			st := s.Stats()
			if st.Requests != total {
				t.Errorf("requests = %d, want %d", st.Requests, total)
			}
			for h, n := range tt.perHost {
				hs := st.Hosts[h]
				if hs.Addr != s.Addrs()[h] {
					t.Errorf("host %d addr = %q, want %q", h, hs.Addr, s.Addrs()[h])
				}
				if hs.Requests != int64(n) {
					t.Errorf("host %d requests = %d, want %d", h, hs.Requests, n)
				}
				if hs.Conns != tt.wantConns[h] {
					t.Errorf("host %d conns = %d, want %d", h, hs.Conns, tt.wantConns[h])
				}
				if hs.PeakInFlight != 1 || hs.InFlight != 0 {
					t.Errorf("host %d peak %d in flight %d, want 1 and 0", h, hs.PeakInFlight, hs.InFlight)
				}
			}
			if _, err := json.Marshal(st); err != nil {
				t.Errorf("marshal stats: %v", err)
			}
		})
	}
}

func TestPeaksAndClose(t *testing.T) {
	t.Parallel()
	s, err := Start(Options{Hosts: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := s.Client()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	a := hold(ctx, t, c, s.URL(0, "/drip?bytes=2&every=1h"))
	hold(ctx, t, c, s.URL(0, "/drip?bytes=2&every=1h"))
	hold(ctx, t, c, s.URL(1, "/drip?bytes=2&every=1h"))

	st := s.Stats()
	if st.PeakInFlight != 3 || st.Hosts[0].PeakInFlight != 2 || st.Hosts[1].PeakInFlight != 1 {
		t.Errorf("peaks total %d host0 %d host1 %d, want 3 2 1",
			st.PeakInFlight, st.Hosts[0].PeakInFlight, st.Hosts[1].PeakInFlight)
	}
	if st.InFlight != 3 {
		t.Errorf("in_flight = %d, want 3", st.InFlight)
	}

	// Cancelling one client is noticed by its handler; Close then waits for
	// the rest, so the counts are final afterwards.
	a.Body.Close()
	s.Close()
	st = s.Stats()
	if st.InFlight != 0 || st.Hosts[0].InFlight != 0 || st.Hosts[1].InFlight != 0 {
		t.Errorf("after Close in_flight = %d (%d, %d), want 0", st.InFlight, st.Hosts[0].InFlight, st.Hosts[1].InFlight)
	}
	s.ResetPeaks()
	if got := s.Stats().PeakInFlight; got != 0 {
		t.Errorf("ResetPeaks after Close: peak = %d, want 0", got)
	}
	if _, _, err := fetch(c, http.MethodGet, s.URL(0, "/"), "", nil); err == nil {
		t.Error("request after Close succeeded, want an error")
	}
}

func TestStallHonoursCancel(t *testing.T) {
	t.Parallel()
	s := start(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL(0, "/stall?for=1h"), nil)
	begin := time.Now()
	resp, err := s.Client().Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("stall answered %d, want a timeout", resp.StatusCode)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want deadline exceeded", err)
	}
	// Close waits for the handler, which must have left its 1h wait.
	s.Close()
	if d := time.Since(begin); d > 10*time.Second {
		t.Errorf("stall plus Close took %v, want well under the stall", d)
	}
	if got := s.Stats().InFlight; got != 0 {
		t.Errorf("in_flight after Close = %d, want 0", got)
	}
}

func TestProtocols(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      Options
		wantProto string
		scheme    string
	}{
		{"plain", Options{}, "HTTP/1.1", "http"},
		{"h2c", Options{HTTP2: true}, "HTTP/2.0", "http"},
		{"tls", Options{TLS: true}, "HTTP/1.1", "https"},
		{"tls h2", Options{TLS: true, HTTP2: true}, "HTTP/2.0", "https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.opts.BodySize = 64
			s := start(t, tt.opts)
			c := s.Client()
			if u, _ := url.Parse(s.URL(0, "x")); u.Scheme != tt.scheme || u.Path != "/x" {
				t.Errorf("URL(0, x) = %s, want %s://.../x", u, tt.scheme)
			}
			if tt.opts.TLS != (s.CertPool() != nil) || tt.opts.TLS != (len(s.CertPEM()) > 0) {
				t.Errorf("CertPool/CertPEM presence does not match TLS=%v", tt.opts.TLS)
			}
			resp, body, err := fetch(c, http.MethodGet, s.URL(0, "/"), "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Proto != tt.wantProto || !bytes.Equal(body, Body(64)) {
				t.Errorf("proto %s body %d bytes, want %s and 64 bytes", resp.Proto, len(body), tt.wantProto)
			}
			for _, p := range []string{"/reset", "/reset-mid", "/short"} {
				if _, _, err := fetch(c, http.MethodGet, s.URL(0, p), "", nil); err == nil {
					t.Errorf("%s over %s: no error, want one", p, tt.wantProto)
				}
			}
			// A plain client must not trust the self-signed certificate.
			if tt.opts.TLS {
				plain := &http.Client{Transport: &http.Transport{}}
				defer plain.CloseIdleConnections()
				if _, _, err := fetch(plain, http.MethodGet, s.URL(0, "/"), "", nil); err == nil {
					t.Error("client without the cert pool connected, want a certificate error")
				}
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"0", 0, false},
		{"512", 512, false},
		{"512B", 512, false},
		{"1KiB", 1024, false},
		{"1kb", 1000, false},
		{"2k", 2048, false},
		{"20MiB", 20 << 20, false},
		{"1.5MiB", 3 << 19, false},
		{"1GB", 1e9, false},
		{" 3 MiB ", 3 << 20, false},
		{"", 0, true},
		{"MiB", 0, true},
		{"-1", 0, true},
		{"ten", 0, true},
		{"9999999999GiB", 0, true},
		{"inf", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseSize(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestStartRejectsHugeBody(t *testing.T) {
	t.Parallel()
	if s, err := Start(Options{BodySize: maxBodySize + 1}); err == nil {
		s.Close()
		t.Error("Start with an oversized body succeeded, want an error")
	}
}

func BenchmarkDefault(b *testing.B) {
	s, err := Start(Options{Hosts: 4, BodySize: 512})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := s.Client()
	urls := make([]string, 4)
	for i := range urls {
		urls[i] = s.URL(i, "/")
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			resp, err := c.Get(urls[i%len(urls)])
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			i++
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
