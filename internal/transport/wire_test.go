package transport

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/testnet"
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
		if out, in, _ := ClaimWire(conn, nil); out != 0 || in != 0 {
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
	out, in, ok = ClaimWire(conn, nil)
	return conn, out, in, ok
}

// countingRelay passes every connection it accepts on to a proxy, counting
// the bytes as the proxy sees them: fromClient those the client sent,
// toClient those it got. Bytes are counted before they are passed on, so
// once a client has read an answer the counts hold all that led to it.
type countingRelay struct {
	addr                 string
	fromClient, toClient atomic.Int64
	// ended gets a value as each relayed connection ends.
	ended chan struct{}
}

func startCountingRelay(t *testing.T, upstream string) *countingRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	r := &countingRelay{addr: ln.Addr().String(), ended: make(chan struct{}, 16)}
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			go r.relay(client, upstream)
		}
	}()
	return r
}

func (r *countingRelay) relay(client net.Conn, upstream string) {
	defer func() { r.ended <- struct{}{} }()
	defer client.Close()
	server, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer server.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pass(client, server, &r.toClient)
		client.Close()
	}()
	pass(server, client, &r.fromClient)
	server.Close()
	<-done
}

// pass copies from src to dst until either fails, adding each read to n
// before writing it on.
func pass(dst io.Writer, src io.Reader, n *atomic.Int64) {
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		n.Add(int64(k))
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// through returns p with its host replaced by the relay's.
func (r *countingRelay) through(p *url.URL) *url.URL {
	c := *p
	c.Host = r.addr
	return &c
}

// waitEnded waits for n relayed connections to end.
func (r *countingRelay) waitEnded(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for range n {
		select {
		case <-r.ended:
		case <-timeout:
			t.Fatal("relayed connections did not end")
		}
	}
}

// TestClaimWireCountsTheSOCKSExchange: through microsocks, the bytes a
// request claims are those the proxy saw on its connection, the SOCKS5
// greeting, the user/password sub-negotiation and the CONNECT exchange
// included; a connection on which the SOCKS exchange fails (credentials
// refused, a CONNECT answered with an error) is paid by the request that
// dialled it, every connection when the target's addresses are tried in
// turn.
func TestClaimWireCountsTheSOCKSExchange(t *testing.T) {
	t.Parallel()
	plain := newServer(t, "", nil)
	h1 := newServer(t, "h1", nil)
	socks := startMicrosocks(t)
	res := &fakeResolver{addrs: map[string][]string{"two.test": {"127.0.0.1", "127.0.0.2"}}}

	t.Run("answered", func(t *testing.T) {
		for _, tt := range []struct {
			name, scheme, target string
		}{
			{"socks5, http target", "socks5", plain.URL},
			{"socks5h, http target by name", "socks5h", "http://localhost:" + plain.port() + "/"},
			{"socks5, https target", "socks5", h1.URL},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				relay := startCountingRelay(t, socks.Host)
				c := testClient(t, Options{Proxy: withScheme(relay.through(socks), tt.scheme), Insecure: true,
					KeepAlive: time.Minute, ConnectTimeout: 5 * time.Second})
				_, out, in, ok := getAndClaim(t, c, tt.target)
				if !ok {
					t.Fatal("ClaimWire: not a connection of this package")
				}
				// Nothing more crosses an HTTP/1.1 connection once its
				// response is read.
				if wantOut, wantIn := relay.fromClient.Load(), relay.toClient.Load(); out != wantOut || in != wantIn {
					t.Errorf("claimed %d bytes out and %d in, the proxy saw %d and %d", out, in, wantOut, wantIn)
				}
			})
		}
	})

	t.Run("refused", func(t *testing.T) {
		for _, tt := range []struct {
			name        string
			proxy       func(t *testing.T) *url.URL
			target      string
			conns       int  // connections made to the proxy
			unreachable bool // TargetUnreachable
		}{
			{name: "microsocks refuses the password", proxy: func(*testing.T) *url.URL { return withPassword(socks, "wrong") },
				target: plain.URL, conns: 1},
			{name: "microsocks cannot reach the target", proxy: func(*testing.T) *url.URL { return socks },
				target: "http://" + closedAddr(t) + "/", conns: 1, unreachable: true},
			{name: "CONNECT answered connection refused", proxy: func(t *testing.T) *url.URL { return socksReplier(t, 5) },
				target: plain.URL, conns: 1, unreachable: true},
			{name: "every address of the target refused", proxy: func(t *testing.T) *url.URL { return socksReplier(t, 5) },
				target: "http://two.test:" + plain.port() + "/", conns: 2, unreachable: true},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				p := tt.proxy(t)
				relay := startCountingRelay(t, p.Host)
				c := testClient(t, Options{Proxy: relay.through(p), Resolver: res, ConnectTimeout: 5 * time.Second})
				var wc wireCount
				req, _ := http.NewRequestWithContext(WithDialObserver(context.Background(), &wc), "GET", tt.target, nil)
				_, err := c.Do(req)
				var pe *ProxyError
				if !errors.As(err, &pe) {
					t.Fatalf("err = %v, want a *ProxyError", err)
				}
				if pe.TargetUnreachable != tt.unreachable {
					t.Errorf("TargetUnreachable = %v, want %v (%v)", pe.TargetUnreachable, tt.unreachable, err)
				}
				if strings.Contains(err.Error(), "wrong") {
					t.Errorf("error leaks the password: %q", err)
				}
				relay.waitEnded(t, tt.conns)
				wantOut, wantIn := relay.fromClient.Load(), relay.toClient.Load()
				if wantOut == 0 || wc.out.Load() != wantOut || wc.in.Load() != wantIn {
					t.Errorf("the request paid %d bytes out and %d in, the proxy saw %d and %d",
						wc.out.Load(), wc.in.Load(), wantOut, wantIn)
				}
			})
		}
	})
}

// TestSOCKSTargetThatSpeaksFirst: bytes that come with the CONNECT reply
// are the target's; they are read from the connection after it, and
// counted once.
func TestSOCKSTargetThatSpeaksFirst(t *testing.T) {
	t.Parallel()
	p := socksReplierThen(t, 0, []byte("hello"))
	relay := startCountingRelay(t, p.Host)
	d := &dialer{track: true, custom: new(net.Dialer).DialContext}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := d.dialSOCKS(ctx, relay.through(p), "socks5 proxy", "tcp", "127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got := make([]byte, 5)
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != "hello" {
		t.Fatalf("read %q (%v), want the target's hello", got, err)
	}
	out, in, ok := ClaimWire(conn, nil)
	if wantOut, wantIn := relay.fromClient.Load(), relay.toClient.Load(); !ok || out != wantOut || in != wantIn {
		t.Errorf("claimed %d bytes out and %d in (ok %v), the proxy saw %d and %d", out, in, ok, wantOut, wantIn)
	}
}

// holdingProxy is a loopback HTTP proxy that reads a CONNECT, says so on
// got, and answers nothing: it reads on until its client closes, then says
// so on closed. read is what it read.
type holdingProxy struct {
	url         *url.URL
	got, closed chan struct{}
	read        atomic.Int64
}

func startHoldingProxy(t *testing.T) *holdingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdingProxy{got: make(chan struct{}, 4), closed: make(chan struct{}, 4)}
	p.url, _ = url.Parse("http://" + ln.Addr().String())
	testnet.Serve(t, ln, func(c net.Conn) {
		buf := make([]byte, 4096)
		head := ""
		for !strings.Contains(head, "\r\n\r\n") {
			n, err := c.Read(buf)
			p.read.Add(int64(n))
			head += string(buf[:n])
			if err != nil {
				return
			}
		}
		p.got <- struct{}{}
		for {
			n, err := c.Read(buf)
			p.read.Add(int64(n))
			if err != nil {
				break
			}
		}
		p.closed <- struct{}{}
	})
	return p
}

// TestCloseUntakenReportsDialsUnderWay: a CONNECT still waiting for its
// answer when the request that dialled it has given up is closed by
// CloseUntaken, which returns once its bytes reached that request's
// observer; a dial that starts afterwards is closed at once.
func TestCloseUntakenReportsDialsUnderWay(t *testing.T) {
	t.Parallel()
	p := startHoldingProxy(t)
	opts := Options{Proxy: p.url, KeepAlive: time.Minute, PerHost: 4}
	opts.Shared = NewShared(opts)
	c := testClient(t, opts)
	var wc wireCount
	ctx, cancel := context.WithCancel(WithDialObserver(context.Background(), &wc))
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://a.test/", nil)
	go func() {
		<-p.got
		cancel()
	}()
	if _, err := c.Do(req); err == nil {
		t.Fatal("a request whose CONNECT got no answer succeeded")
	}
	opts.Shared.CloseUntaken()
	out, in := wc.out.Load(), wc.in.Load()
	<-p.closed
	if want := p.read.Load(); want == 0 || out != want || in != 0 {
		t.Errorf("the dialling request learnt %d bytes out and %d in by the time CloseUntaken returned; the proxy read %d and wrote none",
			out, in, want)
	}

	var late wireCount
	req, _ = http.NewRequestWithContext(WithDialObserver(context.Background(), &late), "GET", "https://b.test/", nil)
	if _, err := c.Do(req); err == nil {
		t.Fatal("a request after CloseUntaken succeeded")
	}
	if n := late.out.Load() + late.in.Load(); n != 0 {
		t.Errorf("a dial after CloseUntaken carried %d bytes, want none", n)
	}
}

// closingProxy is a forward proxy that answers one request per
// connection, without "Connection: close", and then closes the connection
// once the next request on it arrives, unanswered. It keeps what each
// connection carried.
type closingProxy struct {
	mu    sync.Mutex
	read  []int64 // by connection, in the order they came
	wrote []int64
}

func (p *closingProxy) serve(c net.Conn) {
	p.mu.Lock()
	i := len(p.read)
	p.read = append(p.read, 0)
	p.wrote = append(p.wrote, 0)
	p.mu.Unlock()
	count := func(read, wrote int) {
		p.mu.Lock()
		p.read[i] += int64(read)
		p.wrote[i] += int64(wrote)
		p.mu.Unlock()
	}
	buf := make([]byte, 4096)
	for served := 0; ; served++ {
		// Each request is one GET head, read whole by its blank line.
		var head []byte
		for !strings.Contains(string(head), "\r\n\r\n") {
			n, err := c.Read(buf)
			head = append(head, buf[:n]...)
			count(n, 0)
			if err != nil {
				return
			}
		}
		if served == 1 {
			c.Close()
			return
		}
		n, _ := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
		count(0, n)
	}
}

func (p *closingProxy) conn(i int) (read, wrote int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.read[i], p.wrote[i]
}

// TestClaimWireWhenARequestGoesAgain: a request that takes a connection
// the proxy is closing, and goes again on a new one, claims only what it
// sent on each; the request before it on the closing connection gets the
// bytes of its own exchange even when it claims last.
func TestClaimWireWhenARequestGoesAgain(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &closingProxy{}
	testnet.Serve(t, ln, p.serve)
	pu := &url.URL{Scheme: "http", Host: ln.Addr().String()}
	c := testClient(t, Options{Proxy: pu, KeepAlive: time.Minute, ConnectTimeout: 5 * time.Second})

	// A: one exchange on the first connection, which goes back to the pool
	// unclaimed.
	var a wireCount
	var aConn net.Conn
	idle := make(chan struct{})
	ctx := httptrace.WithClientTrace(WithDialObserver(context.Background(), &a), &httptrace.ClientTrace{
		GotConn:     func(i httptrace.GotConnInfo) { aConn = i.Conn; ConnReused(i.Conn) },
		PutIdleConn: func(error) { close(idle) },
	})
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://a.test/1", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	<-idle

	// B takes that connection, which the proxy closes on its request, and
	// goes again on a new one; it claims the first as it leaves it, and
	// each request counts itself on its connections, as the runner does.
	var b wireCount
	var conns []net.Conn
	ctx = httptrace.WithClientTrace(WithDialObserver(context.Background(), &b), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) {
			ConnReused(i.Conn)
			if len(conns) > 0 {
				out, in, _ := ClaimWire(conns[len(conns)-1], &b)
				b.ObserveWire(out, in)
			}
			conns = append(conns, i.Conn)
		},
	})
	req, _ = http.NewRequestWithContext(ctx, "GET", "http://a.test/2", nil)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if len(conns) != 2 || conns[0] != aConn {
		t.Fatalf("the second request took %d connections, want A's and then a new one", len(conns))
	}
	out, in, _ := ClaimWire(conns[1], &b)
	b.ObserveWire(out, in)
	out, in, _ = ClaimWire(aConn, &a)
	a.ObserveWire(out, in)

	read0, wrote0 := p.conn(0)
	read1, wrote1 := p.conn(1)
	// Both requests are the same length: A's is what the second
	// connection read.
	if a.out.Load() != read1 || a.in.Load() != wrote0 {
		t.Errorf("A claimed %d bytes out and %d in, want its own exchange's %d and %d", a.out.Load(), a.in.Load(), read1, wrote0)
	}
	if b.out.Load() != read0 || b.in.Load() != wrote1 {
		t.Errorf("B claimed %d bytes out and %d in, want its request twice (%d) and one answer (%d)", b.out.Load(), b.in.Load(), read0, wrote1)
	}
}
