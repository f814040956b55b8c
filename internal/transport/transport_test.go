package transport

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/testnet"
)

// server is an httptest server that counts the connections it accepted.
type server struct {
	*httptest.Server
	conns atomic.Int64
}

// newServer starts a loopback server; tlsMode is "" (plain), "h1" (TLS,
// HTTP/1.1 only) or "h2" (TLS with HTTP/2 enabled).
func newServer(t *testing.T, tlsMode string, h http.Handler) *server {
	t.Helper()
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, r.Proto)
		})
	}
	s := &server{Server: httptest.NewUnstartedServer(h)}
	// Handshakes that tests make fail on purpose are not news.
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.Config.ConnState = func(_ net.Conn, cs http.ConnState) {
		if cs == http.StateNew {
			s.conns.Add(1)
		}
	}
	switch tlsMode {
	case "":
		s.Start()
	case "h1":
		s.StartTLS()
	case "h2":
		s.EnableHTTP2 = true
		s.StartTLS()
	case "tls12":
		// HTTP/1.1 over TLS 1.2, whose handshake ends differently from
		// TLS 1.3's.
		s.TLS = &tls.Config{MaxVersion: tls.VersionTLS12}
		s.StartTLS()
	default:
		t.Fatalf("unknown TLS mode %q", tlsMode)
	}
	t.Cleanup(s.Close)
	return s
}

// port is the server's port.
func (s *server) port() string {
	u, _ := url.Parse(s.URL)
	return u.Port()
}

// caFile writes the server's certificate as a PEM file and returns its path.
func (s *server) caFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func testClient(t *testing.T, opts Options) *http.Client {
	t.Helper()
	c, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func baseOf(t *testing.T, c *http.Client) *http.Transport {
	t.Helper()
	rt, ok := c.Transport.(*roundTripper)
	if !ok {
		t.Fatalf("client transport is %T, want *roundTripper", c.Transport)
	}
	return rt.base
}

// get fetches u, reads the body and returns the response and body text.
func get(t *testing.T, c *http.Client, u string) (*http.Response, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := newGet(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

func newGet(ctx context.Context, u string) (*http.Request, error) {
	return http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
}

func mustGet(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, body, err := get(t, c, u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return resp, body
}

// kinder is how callers outside this package see an error's kind.
type kinder interface{ ErrorKind() string }

func kindOf(err error) string {
	var k kinder
	if errors.As(err, &k) {
		return k.ErrorKind()
	}
	return ""
}

func TestNewSetsTransportFields(t *testing.T) {
	t.Parallel()
	def := http.DefaultTransport.(*http.Transport)
	tests := []struct {
		name                       string
		opts                       Options
		perHost, idlePerHost, idle int
		disableKeepAlives          bool
		idleTimeout                time.Duration
		forceH2                    bool
		connectTimeout             time.Duration
	}{
		{name: "datacenter preset", opts: Options{PerHost: 20, MaxIdle: 40, KeepAlive: 30 * time.Second, HTTP2: true, ConnectTimeout: 10 * time.Second},
			perHost: 20, idlePerHost: 20, idle: 40, idleTimeout: 30 * time.Second, forceH2: true},
		{name: "max idle defaults to per host times 64", opts: Options{PerHost: 10, KeepAlive: time.Minute},
			perHost: 10, idlePerHost: 10, idle: 640, idleTimeout: time.Minute},
		{name: "max idle never below per host", opts: Options{PerHost: 30, MaxIdle: 5, KeepAlive: time.Second},
			perHost: 30, idlePerHost: 30, idle: 30, idleTimeout: time.Second},
		{name: "zero value keeps net/http idle defaults, keep-alive off", opts: Options{},
			idlePerHost: def.MaxIdleConns, idle: def.MaxIdleConns, disableKeepAlives: true},
		{name: "no per-host cap lets a host keep all idle", opts: Options{MaxIdle: 7, KeepAlive: time.Second},
			idlePerHost: 7, idle: 7, idleTimeout: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr := baseOf(t, testClient(t, tt.opts))
			if tr.MaxConnsPerHost != tt.perHost {
				t.Errorf("MaxConnsPerHost = %d, want %d", tr.MaxConnsPerHost, tt.perHost)
			}
			if tr.MaxIdleConnsPerHost != tt.idlePerHost {
				t.Errorf("MaxIdleConnsPerHost = %d, want %d", tr.MaxIdleConnsPerHost, tt.idlePerHost)
			}
			if tr.MaxIdleConns != tt.idle {
				t.Errorf("MaxIdleConns = %d, want %d", tr.MaxIdleConns, tt.idle)
			}
			if tr.DisableKeepAlives != tt.disableKeepAlives {
				t.Errorf("DisableKeepAlives = %v, want %v", tr.DisableKeepAlives, tt.disableKeepAlives)
			}
			if !tt.disableKeepAlives && tr.IdleConnTimeout != tt.idleTimeout {
				t.Errorf("IdleConnTimeout = %v, want %v", tr.IdleConnTimeout, tt.idleTimeout)
			}
			if tr.ForceAttemptHTTP2 != tt.forceH2 {
				t.Errorf("ForceAttemptHTTP2 = %v, want %v", tr.ForceAttemptHTTP2, tt.forceH2)
			}
			if !tt.forceH2 && (tr.TLSNextProto == nil || len(tr.TLSNextProto) != 0) {
				t.Errorf("TLSNextProto = %v, want an empty non-nil map to keep HTTP/2 off", tr.TLSNextProto)
			}
			if tr.TLSHandshakeTimeout != 0 {
				t.Errorf("TLSHandshakeTimeout = %v, want 0 (the connect deadline bounds handshakes)", tr.TLSHandshakeTimeout)
			}
			if tr.Proxy != nil {
				t.Error("Proxy is set without a proxy option")
			}
		})
	}
}

// TestPerProxyCapsForwardedConnections: through an HTTP proxy, the
// connections that carry forwarded plain-http requests (one host to
// net/http) are capped at PerProxy, and the tunnels to each https target at
// PerHost, so that a request that finds every tunnel busy waits for one
// rather than dialling another.
func TestPerProxyCapsForwardedConnections(t *testing.T) {
	t.Parallel()
	proxy := &url.URL{Scheme: "http", Host: "127.0.0.1:1"}
	c := testClient(t, Options{Proxy: proxy, PerHost: 2, PerProxy: 40, KeepAlive: time.Minute, HTTP2: true})
	rt := c.Transport.(*roundTripper)
	if got := rt.base.MaxConnsPerHost; got != 2 {
		t.Errorf("tunnels per host capped at %d, want 2", got)
	}
	if got := rt.fwd.MaxConnsPerHost; got != 40 {
		t.Errorf("connections to the proxy for forwarded requests capped at %d, want 40", got)
	}
	if got := rt.fwd.MaxIdleConnsPerHost; got != 40 {
		t.Errorf("forwarded requests keep %d idle connections, want 40", got)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"negative per host", Options{PerHost: -1}, "PerHost"},
		{"negative per proxy", Options{PerProxy: -1}, "PerProxy"},
		{"negative keepalive", Options{KeepAlive: -time.Second}, "KeepAlive"},
		{"negative redirects", Options{MaxRedirects: -2}, "MaxRedirects"},
		{"negative dns ttl", Options{DNSTTL: -time.Second}, "DNSTTL"},
		{"negative conn requests", Options{MaxConnRequests: -1}, "MaxConnRequests"},
		{"proxy with ftp scheme", Options{Proxy: &url.URL{Scheme: "ftp", Host: "h:21", User: url.UserPassword("u", "hunter2")}}, "unsupported scheme"},
		{"missing CA file", Options{CACertFile: filepath.Join(t.TempDir(), "none.pem")}, "none.pem: no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tt.opts)
			if err == nil {
				t.Fatalf("New(%+v) succeeded, want error mentioning %q", tt.opts, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks the proxy password: %q", err)
			}
		})
	}
}

func TestCACertFile(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "h1", nil)
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		opts     Options
		newErr   string
		verified bool // the request succeeds
	}{
		{name: "server CA trusted", opts: Options{CACertFile: srv.caFile(t)}, verified: true},
		{name: "system pool only", opts: Options{}},
		{name: "insecure", opts: Options{Insecure: true}, verified: true},
		{name: "file without PEM", opts: Options{CACertFile: garbage}, newErr: "holds no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := New(tt.opts)
			if tt.newErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.newErr) {
					t.Fatalf("New error = %v, want one mentioning %q", err, tt.newErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseIdleConnections()
			_, _, err = get(t, c, srv.URL)
			if tt.verified && err != nil {
				t.Fatalf("GET: %v", err)
			}
			if !tt.verified && err == nil {
				t.Fatal("GET succeeded against an untrusted certificate")
			}
		})
	}
}

func TestHTTP2Negotiation(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "h2", nil)
	ca := srv.caFile(t)
	tests := []struct {
		http2 bool
		want  string
	}{
		{http2: true, want: "HTTP/2.0"},
		{http2: false, want: "HTTP/1.1"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			c := testClient(t, Options{HTTP2: tt.http2, CACertFile: ca, KeepAlive: time.Minute, ConnectTimeout: 5 * time.Second})
			resp, body := mustGet(t, c, srv.URL)
			if resp.Proto != tt.want || body != tt.want {
				t.Errorf("client proto %q, server saw %q, want %q", resp.Proto, body, tt.want)
			}
		})
	}
}

func TestRedirects(t *testing.T) {
	t.Parallel()
	// /r/N redirects to /r/N-1; /r/0 answers 200.
	srv := newServer(t, "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/r/"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		if n > 0 {
			http.Redirect(w, r, fmt.Sprintf("/r/%d", n-1), http.StatusFound)
			return
		}
		io.WriteString(w, "done")
	}))
	tests := []struct {
		name       string
		max, hops  int
		wantStatus int
		wantErr    bool
	}{
		{name: "zero follows none", max: 0, hops: 2, wantStatus: http.StatusFound},
		{name: "within the limit", max: 3, hops: 3, wantStatus: http.StatusOK},
		{name: "over the limit", max: 2, hops: 3, wantErr: true},
		{name: "no redirect", max: 0, hops: 0, wantStatus: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := testClient(t, Options{MaxRedirects: tt.max, KeepAlive: time.Minute})
			resp, _, err := get(t, c, fmt.Sprintf("%s/r/%d", srv.URL, tt.hops))
			if tt.wantErr {
				var ue *url.Error
				if !errors.As(err, &ue) || !errors.Is(err, ErrTooManyRedirects) {
					t.Fatalf("err = %v, want a *url.Error wrapping ErrTooManyRedirects", err)
				}
				if k := kindOf(err); k != "redirect" {
					t.Errorf("ErrorKind = %q, want redirect", k)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
		})
	}
}

func TestKeepAlive(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		keepAlive time.Duration
		requests  int
		wantConns int64
	}{
		{name: "off opens one connection per request", keepAlive: 0, requests: 3, wantConns: 3},
		{name: "on reuses one connection", keepAlive: time.Minute, requests: 3, wantConns: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, "", nil)
			c := testClient(t, Options{KeepAlive: tt.keepAlive})
			for range tt.requests {
				mustGet(t, c, srv.URL)
			}
			if got := srv.conns.Load(); got != tt.wantConns {
				t.Errorf("server saw %d connections, want %d", got, tt.wantConns)
			}
		})
	}
}

func TestPerHostCap(t *testing.T) {
	t.Parallel()
	const perHost, requests = 2, 6
	var inFlight, maxInFlight atomic.Int64
	entered := make(chan struct{}, requests)
	release := make(chan struct{})
	srv := newServer(t, "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		entered <- struct{}{}
		<-release
	}))
	c := testClient(t, Options{PerHost: perHost, KeepAlive: time.Minute})
	var wg sync.WaitGroup
	errs := make(chan error, requests)
	for range requests {
		wg.Go(func() {
			_, _, err := get(t, c, srv.URL)
			errs <- err
		})
	}
	for range perHost {
		<-entered
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := maxInFlight.Load(); got > perHost {
		t.Errorf("max in flight = %d, want at most %d", got, perHost)
	}
	if got := srv.conns.Load(); got > perHost {
		t.Errorf("server saw %d connections, want at most %d", got, perHost)
	}
}

// stallListener accepts connections and never answers, like a target whose
// TLS handshake hangs.
func stallListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testnet.Serve(t, ln, func(c net.Conn) { io.Copy(io.Discard, c) })
	return ln.Addr().String()
}

func TestConnectTimeoutBoundsTLSHandshake(t *testing.T) {
	t.Parallel()
	addr := stallListener(t)
	const timeout = 500 * time.Millisecond
	c := testClient(t, Options{ConnectTimeout: timeout, Insecure: true})
	start := time.Now()
	_, _, err := get(t, c, "https://"+addr+"/")
	elapsed := time.Since(start)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if !strings.Contains(err.Error(), "connect timeout of "+timeout.String()) {
		t.Errorf("error %q does not name the connect timeout", err)
	}
	if elapsed > 10*timeout {
		t.Errorf("request took %v, want about %v", elapsed, timeout)
	}
}

func TestConnectDeadlineEndsWithTheHandshake(t *testing.T) {
	t.Parallel()
	// A response slower than ConnectTimeout, and a second request on the
	// same connection after it, must not trip the connect deadline.
	const timeout = 300 * time.Millisecond
	for _, mode := range []string{"", "h1", "h2", "tls12"} {
		t.Run("tls="+mode, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, mode, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/slow" {
					<-time.After(2 * timeout) // a slow target, not synchronisation
				}
				io.WriteString(w, "ok")
			}))
			c := testClient(t, Options{ConnectTimeout: timeout, KeepAlive: time.Minute, HTTP2: true, Insecure: true})
			for _, path := range []string{"/slow", "/"} {
				if _, body := mustGet(t, c, srv.URL+path); body != "ok" {
					t.Errorf("GET %s body = %q, want ok", path, body)
				}
			}
			if got := srv.conns.Load(); got != 1 {
				t.Errorf("server saw %d connections, want 1", got)
			}
		})
	}
}

func TestNewRefusesABadProxyWithoutShowingItsPassword(t *testing.T) {
	t.Parallel()
	bad := &url.URL{Scheme: "gopher", Host: "h:70", User: url.UserPassword("u", "s3cret")}
	_, err := New(Options{Proxy: bad})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("err = %v, want an error without the password", err)
	}
}

// TestSharedReadsTheCAFileOnce: the clients of one run (one per proxy, or
// per session) share the CA pool: the file is read and the system's roots
// copied for the first client only.
func TestSharedReadsTheCAFileOnce(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	opts := Options{CACertFile: ca}
	opts.Shared = NewShared(opts)
	first, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(first.CloseIdleConnections)
	if err := os.Remove(ca); err != nil {
		t.Fatal(err)
	}
	second, err := New(opts)
	if err != nil {
		t.Fatalf("second client: %v (the CA file was read again)", err)
	}
	t.Cleanup(second.CloseIdleConnections)
	for i, c := range []*http.Client{first, second} {
		if _, body := mustGet(t, c, srv.URL); body != "ok" {
			t.Errorf("client %d: body %q", i, body)
		}
	}
}

// TestSmallConnBuffersCarryLongHeads checks that the connection buffers,
// smaller than net/http's 4 KiB, still carry a request head and a response
// head longer than they are, with a body of several times their size, over
// one kept-alive connection.
func TestSmallConnBuffersCarryLongHeads(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("v", 6<<10)
	body := strings.Repeat("b", 40<<10)
	s := newServer(t, "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range 4 {
			w.Header().Set("X-Long-"+strconv.Itoa(i), long)
		}
		w.Header().Set("X-Echo-Len", strconv.Itoa(len(r.Header.Get("X-Sent"))))
		io.WriteString(w, body)
	}))
	c := testClient(t, Options{PerHost: 1, KeepAlive: time.Minute})
	tr := baseOf(t, c)
	if tr.ReadBufferSize != readBufferSize || tr.WriteBufferSize != writeBufferSize {
		t.Fatalf("buffers %d and %d bytes, want %d and %d", tr.ReadBufferSize, tr.WriteBufferSize, readBufferSize, writeBufferSize)
	}
	if readBufferSize >= 4<<10 || writeBufferSize >= 4<<10 {
		t.Errorf("buffers of %d and %d bytes: no smaller than net/http's", readBufferSize, writeBufferSize)
	}
	for i := range 3 {
		req, err := newGet(context.Background(), s.URL)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Sent", long)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(got) != body {
			t.Fatalf("request %d: body of %d bytes (%v), want %d", i, len(got), err, len(body))
		}
		if resp.Header.Get("X-Long-3") != long || resp.Header.Get("X-Echo-Len") != strconv.Itoa(len(long)) {
			t.Errorf("request %d: a long head was cut", i)
		}
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("%d connections for 3 requests, want 1", n)
	}
}
