package transport

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
)

// h2Pool carries a direct client's https requests when HTTP/2 may be
// spoken. It keeps the client's HTTP/2 connections itself, one
// [http.ClientConn] each, so that it decides what net/http's HTTP/2 client
// would decide alone: when to dial, how many streams a new connection
// takes, and what becomes of a request the server did not process.
//
//   - A host's first request goes through net/http (base), which dials and
//     learns the protocol; the host's other requests wait for it. An
//     HTTP/2 connection is handed to the pool (adopt), and the waiting
//     requests share it; an HTTP/1.1 host is remembered, and its requests
//     go through net/http from then on. When the connection cannot be
//     made within the connect timeout, the requests that waited for it
//     fail with the same error; after a quicker failure they try again
//     for themselves.
//   - A new HTTP/2 connection carries one request until the server's
//     SETTINGS are known (as many as the host's last connection took, when
//     there was one): net/http would take up to 100 streams on it, and a
//     server that allows fewer refuses the others. The pool learns of
//     SETTINGS that change the limit at once, and of others (exactly 100)
//     with the connection's first answer or after settleWait.
//   - When every connection to a host is at the server's stream limit, one
//     more request goes through net/http to dial one more (one dial at a
//     time per host).
//   - A request the server did not process (its stream refused with
//     REFUSED_STREAM, or above a GOAWAY's last stream) is sent again at
//     once on another stream or connection. net/http's own client sends it
//     again after a growing pause (1, 2, 4 s) or without end; here a send
//     again is free while the connection that turned the request away had
//     answered others or still carries one (the server rotates connections
//     or limits streams); a request turned away maxMisses times by
//     connections that had answered nothing, or maxTurns times in all,
//     fails (TurnedAwayError).
type h2Pool struct {
	base *http.Transport // the host's first request, and HTTP/1.1 hosts
	h2   *http.Transport // makes the pool's connections (NewClientConn)

	mu    sync.Mutex
	hosts map[string]*poolHost
	http1 map[string]struct{} // hosts that answered over HTTP/1.1, bounded by maxKnownHTTP1

	// onWait, for tests, is called when a request starts waiting.
	onWait func()
}

// maxKnownHTTP1 bounds the HTTP/1.1 hosts a pool remembers; past it, it
// forgets them all, and their next requests wait for one setup again.
const maxKnownHTTP1 = 4096

// maxMisses is how many times connections on which the server made no
// progress may turn one request away unprocessed before it fails; maxTurns
// bounds the turns of any kind.
const (
	maxMisses = 4
	maxTurns  = 1000
)

// initialStreams is how many streams net/http's HTTP/2 client lets a new
// connection take before the server's SETTINGS say otherwise.
const initialStreams = 100

func newH2Pool(base, h2 *http.Transport) *h2Pool {
	return &h2Pool{base: base, h2: h2, hosts: make(map[string]*poolHost), http1: make(map[string]struct{})}
}

// poolHost is one host:port's connections and the requests waiting for one.
type poolHost struct {
	key string

	users int // requests in RoundTrip, and adopt; guarded by the pool's mu

	mu      sync.Mutex
	conns   []*poolConn
	dialing int // requests through base to dial a connection
	// waiting counts the requests waiting for a change at the host.
	waiting atomic.Int32
	// turnover is how many requests the host's last connection to close
	// answered, when it answered any: a server that closes connections
	// after a few requests (nginx's keepalive_requests) needs as many
	// connections dialled at once as that leaves requests waiting.
	turnover atomic.Int32
	// probing is true while a request through base sets up the host's
	// first connection; probeFailed tells the requests that waited for it
	// that it failed without one.
	probing     bool
	probeFailed bool
	// probeSeq counts the host's probes; failSeq is the one whose dial
	// failed with probeErr, which the requests that waited for it share.
	probeSeq, failSeq uint64
	probeErr          error
	http1             bool // the host answered over HTTP/1.1 (the pool remembers it too)

	// noStreams is set once one of the host's connections took no stream
	// at all: while the entry lasts, its requests fail at once rather than
	// dial connections that will take none either.
	noStreams atomic.Bool
	// room is how many streams the host's last settled connection took,
	// which a new connection may carry before its own SETTINGS are known;
	// 0 before any.
	room atomic.Int32

	sigMu sync.Mutex
	gen   uint64
	wake  chan struct{} // closed at the next change, when someone waits
}

// changed wakes the requests that wait for a connection to key's host.
func (h *poolHost) changed() {
	h.sigMu.Lock()
	h.gen++
	if h.wake != nil {
		close(h.wake)
		h.wake = nil
	}
	h.sigMu.Unlock()
}

func (h *poolHost) generation() uint64 {
	h.sigMu.Lock()
	defer h.sigMu.Unlock()
	return h.gen
}

// wait returns when the host changed after generation gen, or ctx ended.
func (h *poolHost) wait(ctx context.Context, gen uint64) error {
	h.sigMu.Lock()
	if h.gen != gen {
		h.sigMu.Unlock()
		return nil
	}
	if h.wake == nil {
		h.wake = make(chan struct{})
	}
	w := h.wake
	h.sigMu.Unlock()
	select {
	case <-w:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// drop forgets c, which closed, and its host when nothing is left of it.
func (p *h2Pool) drop(c *poolConn) {
	h := c.h
	p.mu.Lock()
	defer p.mu.Unlock()
	h.mu.Lock()
	for i, x := range h.conns {
		if x == c {
			h.conns = append(h.conns[:i:i], h.conns[i+1:]...)
			break
		}
	}
	h.mu.Unlock()
	if n := c.served.Load(); n > 0 {
		h.turnover.Store(n)
	}
	p.forgetLocked(h)
	h.changed()
}

func (p *h2Pool) markHTTP1(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.http1) >= maxKnownHTTP1 {
		clear(p.http1)
	}
	p.http1[key] = struct{}{}
}

// RoundTrip implements [http.RoundTripper].
func (p *h2Pool) RoundTrip(req *http.Request) (*http.Response, error) {
	key := poolKey(req.URL)
	h := p.enter(key)
	if h == nil {
		return p.base.RoundTrip(req)
	}
	defer p.leave(h)
	ctx := req.Context()
	trace := httptrace.ContextClientTrace(ctx)
	if trace != nil && trace.GetConn != nil {
		trace.GetConn(key)
	}
	var (
		waitedFor     uint64 // the probe this request waited for
		misses, turns int
		prev          *poolConn // the connection of the last turn
		prevGoAway    bool      // that turn was a GOAWAY's, not a refused stream
	)
	for {
		if h.noStreams.Load() {
			closeBody(req)
			return nil, errNoStreams(nil)
		}
		gen := h.generation()
		h.mu.Lock()
		if waitedFor != 0 && h.failSeq == waitedFor {
			// The connection this request waited for could not be
			// made: the host's failure is this request's too, as it
			// would be had it dialled alongside.
			err := h.probeErr
			h.mu.Unlock()
			closeBody(req)
			return nil, err
		}
		c, next := h.pick()
		if next == actWait && h.probing {
			waitedFor = h.probeSeq
		}
		h.mu.Unlock()
		var (
			resp *http.Response
			err  error
		)
		switch next {
		case actWait:
			if p.onWait != nil {
				p.onWait()
			}
			h.waiting.Add(1)
			err := h.wait(ctx, gen)
			h.waiting.Add(-1)
			if err != nil {
				closeBody(req)
				return nil, err
			}
			continue
		case actBase:
			resp, err = p.viaBase(h, req)
		case actProbe, actDial:
			resp, err = p.throughBase(h, req, next == actProbe)
		case actSend:
			resp, err = c.send(req)
		}
		if err == nil {
			return resp, nil
		}
		if ta, ok := err.(*turnedAway); ok {
			// Through base, on a connection of the pool.
			c, err = ta.c, ta.err
		}
		if c != nil && c.noStreams.Load() {
			return nil, errNoStreams(err)
		}
		if c == nil || !unprocessed(err) && !(lostUnanswered(err) && idempotent(req)) {
			return nil, err
		}
		if refusedAll(c, err) {
			c.closeNoStreams()
			return nil, errNoStreams(err)
		}
		// A turn counts as a miss when the server made no progress on the
		// connection. That is known of the one before this (see
		// progressed); this one counts until it has answered a request.
		if prev != nil && !prev.progressed(prevGoAway) {
			misses++
		}
		refused := isRefused(err)
		if refused {
			c.refused.Store(true)
		}
		prev, prevGoAway = c, !refused
		turns++
		pending := 0
		if !c.answered.Load() {
			pending = 1
		}
		if misses+pending >= maxMisses || turns >= maxTurns {
			return nil, &TurnedAwayError{Times: turns, Idle: misses+pending >= maxMisses, Err: err}
		}
		var rerr error
		if req, rerr = rewind(req); rerr != nil {
			return nil, err
		}
	}
}

// turnedAway is a request through base that a connection of the pool
// turned away unprocessed; the pool sends it again.
type turnedAway struct {
	c   *poolConn
	err error
}

func (e *turnedAway) Error() string { return e.err.Error() }
func (e *turnedAway) Unwrap() error { return e.err }

// What a request to a host does next (see poolHost.pick).
const (
	actSend  = iota // on the connection reserved for it
	actWait         // for a change at the host
	actProbe        // through base, to set up the host's first connection
	actDial         // on a new connection
	actBase         // through base, after the probe failed
)

// pick chooses what a request to h does next, and reserves a stream on
// the connection it returns for actSend. h.mu is held.
func (h *poolHost) pick() (*poolConn, int) {
	unsettled := false
	for _, x := range h.conns {
		x.seeSettings()
		if !x.settled.Load() && int32(x.cc.InFlight()) >= max(h.room.Load(), 1) {
			unsettled = true
			continue
		}
		if x.refused.Load() {
			continue
		}
		if x.cc.Reserve() == nil {
			return x, actSend
		}
	}
	switch {
	case h.http1:
		return nil, actBase
	case h.probing || unsettled || h.dialing > 0 && h.dialing >= h.dialsWanted():
		return nil, actWait
	case len(h.conns) > 0 || h.dialing > 0:
		h.dialing++
		return nil, actDial
	case h.probeFailed:
		return nil, actBase
	}
	h.probing = true
	h.probeSeq++
	return nil, actProbe
}

// dialsWanted is how many connections to h may be dialled at once: one,
// unless the host's connections turn over after a few requests (see
// turnover), when the requests waiting need as many as they fill.
func (h *poolHost) dialsWanted() int {
	per := int(h.turnover.Load())
	if per <= 0 {
		return 1
	}
	return max(1, (int(h.waiting.Load())+per-1)/per)
}

// enter returns key's entry, made if need be, for a request that calls
// leave when done with it, or nil when key is an HTTP/1.1 host.
func (p *h2Pool) enter(key string) *poolHost {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.http1[key]; ok {
		return nil
	}
	return p.enterLocked(key)
}

// enterLocked is enter for a host of any protocol. p.mu is held.
func (p *h2Pool) enterLocked(key string) *poolHost {
	h := p.hosts[key]
	if h == nil {
		h = &poolHost{key: key}
		p.hosts[key] = h
	}
	h.users++
	return h
}

// leave ends a request's use of h, and forgets h when nothing is left of it.
func (p *h2Pool) leave(h *poolHost) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h.users--
	p.forgetLocked(h)
}

// forgetLocked forgets h when no request uses it and it has no connection.
// p.mu is held.
func (p *h2Pool) forgetLocked(h *poolHost) {
	if h.users > 0 || p.hosts[h.key] != h {
		return
	}
	h.mu.Lock()
	empty := len(h.conns) == 0 && !h.probing && h.dialing == 0
	h.mu.Unlock()
	if empty {
		delete(p.hosts, h.key)
	}
}

// timedOut reports an error that is a timeout (a connection not ready
// within the connect timeout).
func timedOut(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// throughBase sends req through base while h's other requests wait: as
// the probe, the first to h's host, or to dial one more connection to it.
// net/http dials (a connection of the pool it finds idle tells it to), and
// the connection tells the host's protocol at once: over HTTP/2, adopt has
// made it the pool's; any other makes the host an HTTP/1.1 one, whose
// requests go through base. A probe that fails without a connection lets
// the requests that waited go through base.
func (p *h2Pool) throughBase(h *poolHost, req *http.Request, probe bool) (*http.Response, error) {
	orig := req
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			if !IsHTTP2(info.Conn) {
				p.markHTTP1(h.key)
				h.mu.Lock()
				h.http1 = true
				h.mu.Unlock()
				h.changed()
			}
		},
	}))
	resp, err := p.base.RoundTrip(req)
	if resp != nil {
		resp.Request = orig
	}
	_, adopted := err.(*turnedAway)
	h.mu.Lock()
	if !probe {
		h.dialing--
	} else {
		h.probing = false
		h.probeFailed = err != nil && !adopted && len(h.conns) == 0 && !h.http1
		if h.probeFailed && req.Context().Err() == nil && timedOut(err) {
			// The host's connect timeout, not the probe's own deadline:
			// the requests that waited would each wait as long again. A
			// quicker failure (refused, closed) they try for themselves,
			// as a host may fail a connection or two and then answer.
			h.failSeq, h.probeErr = h.probeSeq, err
		}
	}
	h.mu.Unlock()
	h.changed()
	return resp, err
}

// viaBase sends req through base when the host's first request failed
// without a connection, or the host answered over HTTP/1.1.
func (p *h2Pool) viaBase(h *poolHost, req *http.Request) (*http.Response, error) {
	resp, err := p.base.RoundTrip(req)
	if err == nil && resp.ProtoMajor < 2 {
		p.markHTTP1(h.key)
	}
	return resp, err
}

// closeIdle closes the pool's connections that carry no request.
func (p *h2Pool) closeIdle() {
	p.mu.Lock()
	var idle []*poolConn
	for _, h := range p.hosts {
		h.mu.Lock()
		for _, c := range h.conns {
			if c.cc.InFlight() == 0 {
				idle = append(idle, c)
			}
		}
		h.mu.Unlock()
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.cc.Close()
	}
}
