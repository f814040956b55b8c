package transport

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// entryCounter counts the requests that entered a RoundTripper and closes
// all once n have.
type entryCounter struct {
	rt  http.RoundTripper
	n   int64
	got atomic.Int64
	all chan struct{}
}

func (e *entryCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	if e.got.Add(1) == e.n {
		close(e.all)
	}
	return e.rt.RoundTrip(req)
}

// burst sends n GETs of u at once through c, the proxy holding every
// CONNECT until all n requests are in the client, and returns the
// protocols of the answers.
func burst(t *testing.T, c *http.Client, p *fakeProxy, n int, u string) []string {
	t.Helper()
	hold := make(chan struct{})
	p.mu.Lock()
	p.hold = hold
	p.mu.Unlock()
	ec := &entryCounter{rt: c.Transport, n: int64(n), all: hold}
	c = &http.Client{Transport: ec, CheckRedirect: c.CheckRedirect}
	protos := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, body, err := get(t, c, u)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
			}
			protos[i] = body
		})
	}
	wg.Wait()
	return protos
}

func connects(p *fakeProxy) int {
	_, targets := p.seen()
	return len(targets)
}

// Ten requests to one HTTP/2 host start at once through a proxy: one tunnel
// carries them all, rather than one dialled for each request that waited
// while the first tunnel was being set up.
func TestOneTunnelPerHTTP2Host(t *testing.T) {
	t.Parallel()
	for _, perHost := range []int{0, 10} {
		t.Run(map[int]string{0: "no per-host cap", 10: "per-host 10"}[perHost], func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, "h2", nil)
			p := newFakeProxy(t, false, nil)
			c := testClient(t, Options{
				Proxy: p.url(nil), HTTP2: true, Insecure: true, PerHost: perHost,
				KeepAlive: time.Minute, ConnectTimeout: 10 * time.Second,
			})
			protos := burst(t, c, p, 10, srv.URL)
			for i, proto := range protos {
				if proto != "HTTP/2.0" {
					t.Errorf("request %d was answered over %q, want HTTP/2.0", i, proto)
				}
			}
			if n := connects(p); n != 1 {
				t.Errorf("the proxy set up %d tunnels, want 1", n)
			}
			if n := srv.conns.Load(); n != 1 {
				t.Errorf("the target accepted %d connections, want 1", n)
			}

			// Once that connection is gone, the next burst sets up one
			// again.
			c.CloseIdleConnections()
			burst(t, c, p, 10, srv.URL)
			if n := connects(p); n != 2 {
				t.Errorf("after a second burst the proxy has set up %d tunnels, want 2", n)
			}
		})
	}
}

// An HTTP/1.1 host still gets a connection for each request in flight, up
// to the per-host cap.
func TestHTTP1HostGetsParallelTunnels(t *testing.T) {
	t.Parallel()
	const n = 6
	// Each request waits at the target until all are in, so that each
	// needs a connection of its own.
	var in sync.WaitGroup
	in.Add(n)
	srv := newServer(t, "h1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.Done()
		in.Wait()
		w.Write([]byte(r.Proto))
	}))
	p := newFakeProxy(t, false, nil)
	c := testClient(t, Options{
		Proxy: p.url(nil), HTTP2: true, Insecure: true, PerHost: 10,
		KeepAlive: time.Minute, ConnectTimeout: 10 * time.Second,
	})
	for i, proto := range burst(t, c, p, n, srv.URL) {
		if proto != "HTTP/1.1" {
			t.Errorf("request %d was answered over %q, want HTTP/1.1", i, proto)
		}
	}
	if got := connects(p); got != n {
		t.Errorf("the proxy set up %d tunnels, want %d", got, n)
	}
}

// A request waiting for another's connection to tell the host's protocol
// gives up when its context ends.
func TestTunnelWaitEndsWithContext(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "h2", nil)
	p := newFakeProxy(t, false, nil)
	hold := make(chan struct{})
	p.hold = hold
	c := testClient(t, Options{
		Proxy: p.url(nil), HTTP2: true, Insecure: true, PerHost: 10,
		KeepAlive: time.Minute, ConnectTimeout: 10 * time.Second,
	})
	waiting := make(chan struct{}, 1)
	c.Transport.(*roundTripper).tunnels.onWait = func() { waiting <- struct{}{} }
	// The first request sets up the connection, held at the proxy.
	first := make(chan error, 1)
	go func() {
		req, _ := newGet(context.Background(), srv.URL)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		first <- err
	}()

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		req, _ := newGet(ctx, srv.URL)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-waiting
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("the waiting request ended with %v, want context.Canceled", err)
	}
	close(hold)
	if err := <-first; err != nil {
		t.Errorf("the first request: %v", err)
	}
}

// When the request setting up a host's connection fails without one, the
// requests that waited for it try for themselves, and each gets the
// proxy's answer.
func TestTunnelFailureReleasesTheOthers(t *testing.T) {
	t.Parallel()
	p := newFakeProxy(t, false, func(p *fakeProxy) { p.status = http.StatusBadGateway })
	c := testClient(t, Options{
		Proxy: p.url(nil), HTTP2: true, Insecure: true, PerHost: 10,
		KeepAlive: time.Minute, ConnectTimeout: 10 * time.Second,
	})
	const n = 5
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, _, err := get(t, c, "https://127.0.0.1:9/")
			if kindOf(err) != "proxy" {
				t.Errorf("error %v, want a proxy error", err)
			}
		})
	}
	wg.Wait()
	if got := connects(p); got != n {
		t.Errorf("the proxy saw %d CONNECTs, want %d", got, n)
	}
}
