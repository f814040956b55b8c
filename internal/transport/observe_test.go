package transport

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

// spanRecorder is a DialObserver that keeps what it is told.
type spanRecorder struct {
	mu       sync.Mutex
	dns      int
	connects int
	bad      bool // a span that ends before it starts
}

func (r *spanRecorder) ObserveDNS(start, done time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dns++
	r.bad = r.bad || start.IsZero() || done.Before(start)
}

func (r *spanRecorder) ObserveConnect(start, done time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.connects++
	r.bad = r.bad || start.IsZero() || done.Before(start)
}

func (r *spanRecorder) counts() (dns, connects int, bad bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dns, r.connects, r.bad
}

// TestDialObserver checks what a request's DialObserver hears: a lookup
// and a connect for a new connection to a name, nothing for a reused
// connection, only a connect when the DNS cache has the name, and the
// lookups and connects of a dial that resolves names itself (no DNS cache).
func TestDialObserver(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "", nil)
	fetch := func(t *testing.T, c *http.Client, obs DialObserver, url string) {
		t.Helper()
		req, err := http.NewRequestWithContext(WithDialObserver(context.Background(), obs), http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	check := func(t *testing.T, step string, r *spanRecorder, wantDNS, wantConnects int) {
		t.Helper()
		dns, connects, bad := r.counts()
		if dns != wantDNS || connects != wantConnects || bad {
			t.Errorf("%s: %d lookups and %d connects (bad span: %v), want %d and %d",
				step, dns, connects, bad, wantDNS, wantConnects)
		}
	}

	t.Run("DNS cache", func(t *testing.T) {
		t.Parallel()
		res := &fakeResolver{addrs: map[string][]string{"named.test": {"127.0.0.1"}}}
		c := testClient(t, Options{Resolver: res, DNSTTL: time.Minute, KeepAlive: time.Minute, ConnectTimeout: 5 * time.Second})
		url := "http://named.test:" + srv.port() + "/"
		first, second, third := &spanRecorder{}, &spanRecorder{}, &spanRecorder{}
		fetch(t, c, first, url)
		check(t, "new connection", first, 1, 1)
		fetch(t, c, second, url)
		check(t, "reused connection", second, 0, 0)
		c.CloseIdleConnections()
		fetch(t, c, third, url)
		check(t, "name in the cache", third, 0, 1)
	})
	t.Run("no DNS cache", func(t *testing.T) {
		t.Parallel()
		c := testClient(t, Options{KeepAlive: time.Minute})
		r := &spanRecorder{}
		fetch(t, c, r, "http://localhost:"+srv.port()+"/")
		dns, connects, bad := r.counts()
		if dns != 1 || connects < 1 || bad {
			t.Errorf("%d lookups and %d connects (bad span: %v), want 1 and at least 1", dns, connects, bad)
		}
	})
}
