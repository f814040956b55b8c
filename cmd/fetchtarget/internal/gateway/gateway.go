// Package gateway is the benchmark's proxy gateway: an HTTP proxy on a
// loopback port that forwards plain-http requests (absolute-URI) and
// tunnels CONNECT, as far from its clients as a set round-trip time.
//
// The latency sits on the path between the client and the gateway (see
// link): a new connection costs one round trip before its first request,
// and every exchange one more; inside a tunnel, where the gateway cannot see
// exchanges, the bytes themselves take half a round trip each way, so a TLS
// handshake and each request inside cost what they would through a real
// gateway that far away, and HTTP/2 streams in flight at once share theirs.
// The path from the gateway to the targets adds nothing.
//
// It counts the connections clients open to it, the tunnels it sets up and
// the requests it forwards. It is a test tool: it binds 127.0.0.1 only,
// sends nothing but what its clients ask for, and is never part of
// fetchctl.
package gateway

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Stats are the gateway's counters.
type Stats struct {
	RTT string `json:"rtt"`
	// Conns counts the connections clients opened to the gateway.
	Conns int64 `json:"conns"`
	// Tunnels counts the CONNECT requests answered 200.
	Tunnels int64 `json:"tunnels"`
	// Forwarded counts the plain-http requests forwarded.
	Forwarded int64 `json:"forwarded"`
	// Refused counts requests answered with an error status (a CONNECT
	// that could not reach its target, a request that was not absolute).
	Refused int64 `json:"refused"`
}

// Gateway is a running gateway.
type Gateway struct {
	ln  net.Listener
	rtt time.Duration
	up  *http.Transport
	wg  sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool

	nConns, nTunnels, nForwarded, nRefused atomic.Int64
}

// Start listens on a free loopback port and serves until Close.
func Start(rtt time.Duration) (*Gateway, error) {
	if rtt < 0 {
		return nil, errors.New("the round-trip time must not be negative")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	g := &Gateway{
		ln:  ln,
		rtt: rtt,
		up: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		},
		conns: make(map[net.Conn]struct{}),
	}
	g.wg.Add(1)
	go g.accept()
	return g, nil
}

// Addr is the gateway's host:port.
func (g *Gateway) Addr() string { return g.ln.Addr().String() }

// Stats returns the counters.
func (g *Gateway) Stats() Stats {
	return Stats{
		RTT:       g.rtt.String(),
		Conns:     g.nConns.Load(),
		Tunnels:   g.nTunnels.Load(),
		Forwarded: g.nForwarded.Load(),
		Refused:   g.nRefused.Load(),
	}
}

// Close stops listening, closes every connection and waits for them.
func (g *Gateway) Close() error {
	err := g.ln.Close()
	g.mu.Lock()
	g.closed = true
	for c := range g.conns {
		c.Close()
	}
	g.mu.Unlock()
	g.wg.Wait()
	g.up.CloseIdleConnections()
	return err
}

func (g *Gateway) accept() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		accepted := time.Now()
		g.nConns.Add(1)
		if !g.track(c, true) {
			c.Close()
			return
		}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			defer g.track(c, false)
			g.serve(newLink(c, g.rtt, accepted))
		}()
	}
}

// track adds or removes a connection to close on Close; false once closed.
func (g *Gateway) track(c net.Conn, add bool) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !add {
		delete(g.conns, c)
		return true
	}
	if g.closed {
		return false
	}
	g.conns[c] = struct{}{}
	return true
}

// serve reads the client's requests until it closes or a tunnel takes the
// connection over.
func (g *Gateway) serve(c *link) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.Method == http.MethodConnect {
			g.tunnel(c, br, req)
			return
		}
		if !g.forward(c, req) {
			return
		}
	}
}

// forward sends a plain-http request on and its answer back; false when the
// connection is done.
func (g *Gateway) forward(c *link, req *http.Request) bool {
	if req.URL.Scheme != "http" || req.URL.Host == "" {
		g.nRefused.Add(1)
		answer(c, http.StatusBadRequest, "the gateway forwards absolute http:// URLs and tunnels CONNECT")
		return false
	}
	g.nForwarded.Add(1)
	keep := !req.Close
	out := req.Clone(req.Context())
	out.RequestURI = ""
	out.Close = false
	removeHopHeaders(out.Header)
	resp, err := g.up.RoundTrip(out)
	if err != nil {
		g.nRefused.Add(1)
		answer(c, http.StatusBadGateway, "the gateway could not reach the target")
		return false
	}
	defer resp.Body.Close()
	removeHopHeaders(resp.Header)
	resp.Close = !keep
	if err := resp.Write(c); err != nil {
		return false
	}
	return keep
}

// tunnel answers CONNECT and copies bytes both ways until both sides are
// done.
func (g *Gateway) tunnel(c *link, br *bufio.Reader, req *http.Request) {
	up, err := net.DialTimeout("tcp", req.Host, 10*time.Second)
	if err != nil {
		g.nRefused.Add(1)
		answer(c, http.StatusBadGateway, "the gateway could not reach the target")
		return
	}
	defer up.Close()
	g.nTunnels.Add(1)
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// What the client sent after CONNECT is already in br.
		io.Copy(up, br)
		if tc, ok := up.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}()
	io.Copy(c, up)
	c.CloseWrite()
	<-done
}

// hopHeaders are the headers of one hop that a proxy does not pass on.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func removeHopHeaders(h http.Header) {
	for _, f := range h["Connection"] {
		for _, name := range strings.Split(f, ",") {
			h.Del(strings.TrimSpace(name))
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
}

// answer writes a short error response and asks the client to close.
func answer(w io.Writer, code int, msg string) {
	resp := &http.Response{
		StatusCode:    code,
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
		Body:          io.NopCloser(strings.NewReader(msg + "\n")),
		ContentLength: int64(len(msg) + 1),
		Close:         true,
	}
	resp.Write(w)
}
