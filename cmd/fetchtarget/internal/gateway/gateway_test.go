package gateway

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"
)

const rtt = 80 * time.Millisecond

func startGateway(t *testing.T) (*Gateway, *url.URL) {
	t.Helper()
	g, err := Start(rtt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g, &url.URL{Scheme: "http", Host: g.Addr()}
}

// get fetches u and returns how long it took.
func get(t *testing.T, c *http.Client, u string) time.Duration {
	t.Helper()
	start := time.Now()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || string(body) != "hello" {
		t.Fatalf("GET %s: %d %q %v", u, resp.StatusCode, body, err)
	}
	return time.Since(start)
}

func hello(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }

func atLeast(t *testing.T, what string, got, want time.Duration) {
	t.Helper()
	if got < want {
		t.Errorf("%s took %v, want at least %v", what, got, want)
	}
}

func TestForwardAddsRTT(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(hello))
	defer srv.Close()
	g, proxy := startGateway(t)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
	defer c.CloseIdleConnections()

	// A new connection: one round trip to set it up, one for the exchange.
	atLeast(t, "the first request", get(t, c, srv.URL+"/a"), 2*rtt)
	// The same connection again: one round trip each.
	for _, p := range []string{"/b", "/c"} {
		atLeast(t, "a request on a kept connection", get(t, c, srv.URL+p), rtt)
	}
	want := Stats{RTT: rtt.String(), Conns: 1, Forwarded: 3}
	if st := g.Stats(); st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
}

func TestConnectCountsTunnelsAndDelaysData(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(hello))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	g, proxy := startGateway(t)
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyURL(proxy)
	tr.ForceAttemptHTTP2 = true
	c := &http.Client{Transport: tr}
	defer c.CloseIdleConnections()

	// TCP, CONNECT, the TLS handshake inside and the request: four round
	// trips.
	atLeast(t, "the first request through a tunnel", get(t, c, srv.URL+"/first"), 4*rtt)

	// Ten streams at once on the tunnel's HTTP/2 connection share one
	// round trip: the delay is the path's, not a pause per exchange.
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			get(t, c, srv.URL+"/again")
		}()
	}
	wg.Wait()
	took := time.Since(start)
	atLeast(t, "ten streams at once", took, rtt)
	if took >= 10*rtt {
		t.Errorf("ten streams at once took %v, as if one after another (%v each)", took, rtt)
	}
	want := Stats{RTT: rtt.String(), Conns: 1, Tunnels: 1}
	if st := g.Stats(); st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
}

func TestCountsParallelConnections(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(hello)) // HTTP/1.1 only
	defer srv.Close()
	plain := httptest.NewServer(http.HandlerFunc(hello))
	defer plain.Close()
	g, proxy := startGateway(t)
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyURL(proxy)
	c := &http.Client{Transport: tr}
	defer c.CloseIdleConnections()

	// Each request waits at the server until all four are in, so each
	// needs a connection of its own.
	const n = 4
	var all sync.WaitGroup
	all.Add(2 * n)
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		all.Done()
		all.Wait()
		hello(w, r)
	})
	plain.Config.Handler = srv.Config.Handler
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(2)
		go func() { defer wg.Done(); get(t, c, srv.URL) }()
		go func() { defer wg.Done(); get(t, c, plain.URL) }()
	}
	wg.Wait()
	want := Stats{RTT: rtt.String(), Conns: 2 * n, Tunnels: n, Forwarded: n}
	if st := g.Stats(); st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
}

func TestRefusals(t *testing.T) {
	g, proxy := startGateway(t)
	srv := httptest.NewTLSServer(http.HandlerFunc(hello))
	addr := srv.Listener.Addr().String()
	srv.Close() // nothing listens there now

	tr := &http.Transport{Proxy: http.ProxyURL(proxy), TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(context.Background(), "GET", "https://"+addr+"/", nil)
	if _, err := tr.RoundTrip(req); err == nil {
		t.Fatal("CONNECT to a closed port succeeded")
	}
	// A request in origin form is no proxy request.
	resp, err := http.Get("http://" + g.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("origin-form request: status %d, want 400", resp.StatusCode)
	}
	if st := g.Stats(); st.Tunnels != 0 || st.Refused != 2 || st.Conns != 2 {
		t.Errorf("stats = %+v, want 2 connections, 2 refused, no tunnel", st)
	}
}
