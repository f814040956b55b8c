package transport

import (
	"context"
	"errors"
	"net"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeResolver answers from a table and counts lookups per name.
type fakeResolver struct {
	addrs map[string][]string
	fail  map[string]error
	// gate, when set, holds every lookup until it is closed; entered gets a
	// value as each lookup starts.
	gate    chan struct{}
	entered chan struct{}

	mu    sync.Mutex
	calls map[string]int
}

func (r *fakeResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	r.mu.Lock()
	if r.calls == nil {
		r.calls = make(map[string]int)
	}
	r.calls[host]++
	r.mu.Unlock()
	if r.entered != nil {
		r.entered <- struct{}{}
	}
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err := r.fail[host]; err != nil {
		return nil, err
	}
	ips, ok := r.addrs[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	out := make([]net.IPAddr, len(ips))
	for i, s := range ips {
		out[i] = net.IPAddr{IP: net.ParseIP(s)}
	}
	return out, nil
}

func (r *fakeResolver) count(host string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[host]
}

func (r *fakeResolver) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		n += c
	}
	return n
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestDNSCacheLookupsPerTTL(t *testing.T) {
	t.Parallel()
	const ttl = time.Minute
	tests := []struct {
		name              string
		ttl               time.Duration
		before, after     int // requests before and after the clock passes ttl
		wantBefore, total int
	}{
		{name: "cached within ttl, looked up again after", ttl: ttl, before: 10, after: 3, wantBefore: 1, total: 2},
		{name: "ttl zero looks up every time", ttl: 0, before: 4, after: 2, wantBefore: 4, total: 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, "", nil)
			res := &fakeResolver{addrs: map[string][]string{"target.test": {"127.0.0.1"}}}
			clock := newFakeClock()
			// Keep-alive off: every request dials, so every request needs the
			// address.
			c := testClient(t, Options{DNSTTL: tt.ttl, Resolver: res, now: clock.Now})
			u := "http://target.test:" + srv.port() + "/"
			for range tt.before {
				mustGet(t, c, u)
			}
			if got := res.count("target.test"); got != tt.wantBefore {
				t.Errorf("lookups within ttl = %d, want %d", got, tt.wantBefore)
			}
			clock.Advance(ttl + time.Second)
			for range tt.after {
				mustGet(t, c, u)
			}
			if got := res.count("target.test"); got != tt.total {
				t.Errorf("lookups after ttl = %d, want %d", got, tt.total)
			}
		})
	}
}

func TestDNSCacheCoalescesConcurrentLookups(t *testing.T) {
	t.Parallel()
	const callers = 16
	res := &fakeResolver{
		addrs:   map[string][]string{"busy.test": {"192.0.2.1"}},
		gate:    make(chan struct{}),
		entered: make(chan struct{}, callers),
	}
	cache := newDNSCache(Options{DNSTTL: time.Minute, Resolver: res})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range callers {
		wg.Go(func() {
			addrs, err := cache.lookup(context.Background(), "busy.test")
			if err != nil || len(addrs) != 1 {
				failed.Add(1)
			}
		})
	}
	<-res.entered
	close(res.gate)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d lookups failed", n)
	}
	if got := res.count("busy.test"); got != 1 {
		t.Errorf("resolver called %d times for %d concurrent callers, want 1", got, callers)
	}
}

func TestIPLiteralSkipsResolver(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "", nil)
	res := &fakeResolver{}
	c := testClient(t, Options{DNSTTL: time.Minute, Resolver: res})
	mustGet(t, c, srv.URL)
	if got := res.total(); got != 0 {
		t.Errorf("resolver called %d times for an IP literal, want 0", got)
	}
}

func TestDNSFailureIsDNSError(t *testing.T) {
	t.Parallel()
	res := &fakeResolver{fail: map[string]error{"broken.test": errors.New("server misbehaving")}}
	tests := []struct {
		name, host   string
		ttl          time.Duration
		wantNotFound bool
	}{
		{name: "not found, cached", host: "missing.test", ttl: time.Minute, wantNotFound: true},
		{name: "not found, uncached", host: "missing.test", ttl: 0, wantNotFound: true},
		{name: "plain resolver error", host: "broken.test", ttl: time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := testClient(t, Options{DNSTTL: tt.ttl, Resolver: res})
			_, _, err := get(t, c, "http://"+tt.host+"/")
			var de *net.DNSError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v (%T), want a *net.DNSError inside", err, err)
			}
			if de.IsNotFound != tt.wantNotFound {
				t.Errorf("IsNotFound = %v, want %v", de.IsNotFound, tt.wantNotFound)
			}
			var oe *net.OpError
			if !errors.As(err, &oe) || oe.Op != "dial" {
				t.Errorf("err = %v, want it inside a dial *net.OpError as net.Dialer gives", err)
			}
		})
	}
}

func TestDialTriesAddressesInOrder(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "", nil)
	// The server listens on 127.0.0.1 only, so 127.0.0.2 refuses.
	res := &fakeResolver{addrs: map[string][]string{"multi.test": {"127.0.0.2", "127.0.0.1"}}}
	c := testClient(t, Options{DNSTTL: time.Minute, Resolver: res})
	var (
		mu    sync.Mutex
		tried []string
	)
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		ConnectStart: func(_, addr string) {
			mu.Lock()
			tried = append(tried, addr)
			mu.Unlock()
		},
	})
	req, err := newGet(ctx, "http://multi.test:"+srv.port()+"/")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	want := []string{"127.0.0.2:" + srv.port(), "127.0.0.1:" + srv.port()}
	if len(tried) != len(want) || tried[0] != want[0] || tried[1] != want[1] {
		t.Errorf("dialled %v, want %v", tried, want)
	}
}

func TestDNSCacheSweepsExpiredEntries(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	c := newDNSCache(Options{DNSTTL: time.Second, now: clock.Now})
	addrs := []net.IPAddr{{IP: net.ParseIP("192.0.2.1")}}
	c.sweepAt = 4
	for _, h := range []string{"a", "b", "c", "d"} {
		c.put(h, addrs)
	}
	clock.Advance(2 * time.Second)
	c.put("e", addrs)
	c.mu.Lock()
	n := len(c.entries)
	c.mu.Unlock()
	if n != 1 {
		t.Errorf("cache holds %d entries after the others expired, want 1", n)
	}
	if _, ok := c.get("e"); !ok {
		t.Error("fresh entry missing")
	}
}

func TestPartialDeadline(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	tests := []struct {
		name      string
		left      time.Duration
		remaining int
		want      time.Duration
	}{
		{"last address gets all", 9 * time.Second, 1, 9 * time.Second},
		{"even share", 9 * time.Second, 3, 3 * time.Second},
		{"share floored at two seconds", 3 * time.Second, 3, 2 * time.Second},
		{"less than the floor left", time.Second, 3, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := partialDeadline(now, now.Add(tt.left), tt.remaining).Sub(now)
			if got != tt.want {
				t.Errorf("share = %v, want %v", got, tt.want)
			}
		})
	}
	if !partialDeadline(now, time.Time{}, 3).IsZero() {
		t.Error("no deadline must stay no deadline")
	}
}
