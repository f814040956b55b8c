package transport

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type wireCount struct{ out, in atomic.Int64 }

func (w *wireCount) ObserveDNS(time.Time, time.Time)     {}
func (w *wireCount) ObserveConnect(time.Time, time.Time) {}
func (w *wireCount) ObserveWire(out, in int64)           { w.out.Add(out); w.in.Add(in) }

// TestClaimWire: a request claims the bytes its connection carried on the
// wire, TLS included, once; a connection no request took (a refused
// CONNECT) reports its bytes to the request that dialled it.
func TestClaimWire(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("x", 5000)
	srv := newServer(t, "h1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }))
	c := testClient(t, Options{KeepAlive: time.Minute, Insecure: true, ConnectTimeout: 5 * time.Second})
	for i := range 2 {
		conn, out, in, ok := getAndClaim(t, c, srv.URL+"/a")
		if !ok {
			t.Fatal("ClaimWire: not a connection of this package")
		}
		// The first request pays the handshake (certificate and all).
		minIn := int64(len(body))
		if i == 0 {
			minIn += 500
		}
		if out < 50 || in < minIn || in > minIn+4000 {
			t.Errorf("request %d claimed %d bytes out and %d in, want at least 50 and %d", i, out, in, minIn)
		}
		if out, in, _ := ClaimWire(conn); out != 0 || in != 0 {
			t.Errorf("a second claim got %d and %d bytes, want none", out, in)
		}
	}

	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusProxyAuthRequired)
	}))
	defer refusing.Close()
	pu, _ := url.Parse(refusing.URL)
	pc := testClient(t, Options{Proxy: pu, Insecure: true, ConnectTimeout: 5 * time.Second})
	var wc wireCount
	req, _ := http.NewRequestWithContext(WithDialObserver(context.Background(), &wc), "GET", srv.URL, nil)
	if _, err := pc.Do(req); err == nil {
		t.Fatal("a refused CONNECT succeeded")
	}
	if wc.out.Load() < 20 || wc.in.Load() < 20 {
		t.Errorf("the refused CONNECT reported %d bytes out and %d in, want both counted", wc.out.Load(), wc.in.Load())
	}
}

// TestClaimWireThroughRealProxies: through tinyproxy (CONNECT, then TLS
// to the target) and microsocks (SOCKS5), a request claims the proxy's
// handshake, the TLS handshake and the body; a CONNECT that tinyproxy
// refuses is paid by the request that dialled it.
func TestClaimWireThroughRealProxies(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("y", 5000)
	srv := newServer(t, "h2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }))
	for _, tt := range []struct {
		name  string
		proxy func() *url.URL
	}{
		{"tinyproxy", func() *url.URL { return startTinyproxy(t, proxyUser, proxyPass) }},
		{"microsocks", func() *url.URL { return startMicrosocks(t) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.proxy()
			c := testClient(t, Options{Proxy: p, HTTP2: true, KeepAlive: time.Minute, Insecure: true, ConnectTimeout: 5 * time.Second})
			_, out, in, ok := getAndClaim(t, c, srv.URL)
			// A TLS handshake alone is over a kilobyte in (the
			// certificate) and a few hundred bytes out.
			if !ok || out < 300 || in < int64(len(body))+1000 {
				t.Errorf("claimed %d bytes out and %d in (ok %v), want the handshakes and the %d-byte body", out, in, ok, len(body))
			}
		})
	}
	t.Run("tinyproxy refuses the CONNECT", func(t *testing.T) {
		p := withPassword(startTinyproxy(t, proxyUser, proxyPass), "wrong")
		c := testClient(t, Options{Proxy: p, Insecure: true, ConnectTimeout: 5 * time.Second})
		var wc wireCount
		req, _ := http.NewRequestWithContext(WithDialObserver(context.Background(), &wc), "GET", srv.URL, nil)
		if _, err := c.Do(req); err == nil {
			t.Fatal("a CONNECT with a wrong password went through")
		}
		if wc.out.Load() < 50 || wc.in.Load() < 20 {
			t.Errorf("the refused CONNECT reported %d bytes out and %d in", wc.out.Load(), wc.in.Load())
		}
	})
}

// getAndClaim fetches rawURL whole and claims its connection's bytes.
func getAndClaim(t *testing.T, c *http.Client, rawURL string) (conn net.Conn, out, in int64, ok bool) {
	t.Helper()
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { conn = info.Conn; ConnReused(info.Conn) },
	})
	req, _ := http.NewRequestWithContext(ctx, "GET", rawURL, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	out, in, ok = ClaimWire(conn)
	return conn, out, in, ok
}
