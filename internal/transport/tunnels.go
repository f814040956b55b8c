package transport

import (
	"context"
	"net"
	"net/url"
	"strings"
	"sync"
)

// tunnelGate keeps a burst of requests to an https host from opening a
// connection each while the host's protocol is unknown.
//
// net/http dials a new connection for every request that finds none idle,
// up to the per-host cap, and learns only once a TLS handshake is done that
// the host speaks HTTP/2 and one connection would have carried them all;
// the connections dialled meanwhile are set up in full (through a proxy:
// one CONNECT each, a tunnel a gateway may bill) and closed. So while a
// client has no HTTP/2 connection to a host, one request sets one up and
// the others to that host wait until its connection tells the protocol:
// HTTP/2, and they share it; HTTP/1.1, and each goes its way, dialling up to
// the per-host cap as before (the client remembers such hosts, so only their
// first requests wait). Should that request fail before it has a
// connection, the others go their way too.
//
// A client carries one proxy, so hosts are the keys. Only hosts being set
// up or with a live HTTP/2 connection have an entry; the HTTP/1.1 hosts
// remembered are bounded by maxKnownHTTP1.
type tunnelGate struct {
	mu    sync.Mutex
	hosts map[string]*gateHost
	http1 map[string]struct{}
	// onWait, for tests, is called when a request starts waiting.
	onWait func()
}

type gateHost struct {
	// setup is closed when the request setting up the connection has one
	// or has failed; failed tells which.
	setup   chan struct{}
	failed  bool
	probing bool
	live    int // HTTP/2 connections that take new requests
}

func newTunnelGate() *tunnelGate {
	return &tunnelGate{hosts: make(map[string]*gateHost), http1: make(map[string]struct{})}
}

// hostKey is u's host and port, as net/http keys its connections.
func hostKey(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// probe is the request that sets up a host's first connection.
type probe struct {
	g    *tunnelGate
	key  string
	h    *gateHost
	once sync.Once
}

// enter returns when the request for key may go on: at once when the host
// has a live HTTP/2 connection or is known to speak HTTP/1.1, or as the
// probe that sets up its connection (then the caller must call its conn
// and done), or once the probe before it is through. It fails only when
// ctx ends first.
func (g *tunnelGate) enter(ctx context.Context, key string) (*probe, error) {
	for {
		g.mu.Lock()
		if _, ok := g.http1[key]; ok {
			g.mu.Unlock()
			return nil, nil
		}
		h := g.hosts[key]
		if h == nil {
			h = &gateHost{}
			g.hosts[key] = h
		}
		if h.live > 0 {
			g.mu.Unlock()
			return nil, nil
		}
		if !h.probing {
			h.probing = true
			h.failed = false
			h.setup = make(chan struct{})
			g.mu.Unlock()
			return &probe{g: g, key: key, h: h}, nil
		}
		setup := h.setup
		g.mu.Unlock()
		if g.onWait != nil {
			g.onWait()
		}
		select {
		case <-setup:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
		g.mu.Lock()
		failed := h.failed && h.setup == setup
		g.mu.Unlock()
		if failed {
			return nil, nil
		}
	}
}

// conn tells the gate of the connection a request to key got: an HTTP/2
// connection counts as live until it closes; any
// other, when it is the probe's, marks the host as HTTP/1.1. A probe's connection ends its wait.
func (g *tunnelGate) conn(key string, c net.Conn, p *probe) {
	if IsHTTP2(c) {
		g.addLive(key, c)
	} else if p != nil {
		g.mu.Lock()
		if len(g.http1) >= maxKnownHTTP1 {
			clear(g.http1)
		}
		g.http1[key] = struct{}{}
		g.mu.Unlock()
	}
	if p != nil {
		p.finish(false)
	}
}

// addLive counts c as a live HTTP/2 connection to key, once, until
// trackedConn.leaveGate.
func (g *tunnelGate) addLive(key string, c net.Conn) {
	tc := trackedOf(c)
	if tc == nil || tc.gate.Load() != nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	leave := func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		h := g.hosts[key]
		if h == nil {
			return
		}
		h.live--
		g.forgetLocked(key, h)
	}
	if !tc.gate.CompareAndSwap(nil, &leave) {
		return // counted already, or closed
	}
	h := g.hosts[key]
	if h == nil {
		h = &gateHost{}
		g.hosts[key] = h
	}
	h.live++
}

// forgetLocked drops a host with nothing left to wait for.
func (g *tunnelGate) forgetLocked(key string, h *gateHost) {
	if h.live <= 0 && !h.probing && g.hosts[key] == h {
		delete(g.hosts, key)
	}
}

// done ends the probe when its request is over; a probe that got no
// connection lets the requests waiting for it go their way.
func (p *probe) done() { p.finish(true) }

func (p *probe) finish(failed bool) {
	p.once.Do(func() {
		g := p.g
		g.mu.Lock()
		defer g.mu.Unlock()
		p.h.probing = false
		p.h.failed = failed
		close(p.h.setup)
		g.forgetLocked(p.key, p.h)
	})
}
