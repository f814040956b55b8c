package runner

import (
	"crypto/tls"
	"net"
	"net/http/httptrace"
	"net/url"
	"sync"
	"time"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/transport"
)

// phaseClock gathers httptrace events of one attempt. net/http calls the
// hooks from its own goroutines, and a dial may outlive the request it was
// started for, so every field is guarded by mu.
type phaseClock struct {
	mu                     sync.Mutex
	start                  time.Time
	dnsStart, dnsDone      time.Time
	connStart, connDone    time.Time
	tlsStart, tlsDone      time.Time
	firstByte              time.Time
	gotConn, reused, wrote bool
	// connAsked: net/http asked for a connection (its GetConn hook), to
	// dial or to reuse; an attempt that never got that far has no timings.
	connAsked bool
	idled     bool          // the connection is back in the pool
	idle      chan struct{} // made by a waiter for idled; closed with it

	// sent counts the requests of the attempt (net/http's own retries
	// and redirects included), answered those that got a response.
	sent, answered int
	// ws is the worker whose attempt this is, while it runs: the attempt
	// is stopped through it when too many requests go unanswered.
	ws *workerState

	// conn is the connection the attempt's last request took, whose bytes
	// on the wire it claims when done; wireOut and wireIn add those of the
	// connections it left for another (a redirect elsewhere) and of those
	// that closed before a request took them.
	conn            net.Conn
	wireOut, wireIn int64
	// late, once the attempt has claimed its bytes, takes those that a
	// connection dialled for it reports afterwards, as lateAs.
	late    *lateWire
	lateAs  lateBytes
	claimed bool

	// redirectedTo is the URL of the last redirect the attempt followed.
	redirectedTo *url.URL
}

// ObserveRedirect implements [transport.RedirectObserver].
func (c *phaseClock) ObserveRedirect(to *url.URL) {
	c.mu.Lock()
	c.redirectedTo = to
	c.mu.Unlock()
}

// ObserveWire implements [transport.WireObserver].
func (c *phaseClock) ObserveWire(out, in int64) {
	c.mu.Lock()
	if !c.claimed || c.late == nil {
		c.wireOut += out
		c.wireIn += in
		c.mu.Unlock()
		return
	}
	b := c.lateAs
	c.mu.Unlock()
	b.a.BytesOut, b.a.BytesIn = out, in
	c.late.add(b)
}

// claimWire returns the bytes the attempt sent and received on the wire.
// Call it once the attempt is over: bytes reported later go to late.
//
// c.mu is never held while claiming from a connection: the transport hands
// a connection's bytes to c (ObserveWire) while it holds the connection.
func (c *phaseClock) claimWire() (out, in int64) {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		out, in, _ = transport.ClaimWire(conn, c)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.claimed = true
	return out + c.wireOut, in + c.wireIn
}

// maxUnanswered is how many requests of one attempt may go without an
// answer. net/http sends a request again by itself when an HTTP/2 server
// resets its stream with PROTOCOL_ERROR, and may do so without end
// (golang/go#52459): nginx's `return 444` on an http2 listener got
// thousands of requests from one attempt.
const maxUnanswered = 3

// connected counts a request about to be sent over HTTP/2, and stops the
// attempt when too many went unanswered. HTTP/1 requests are not counted:
// net/http sends one again only on a reused connection that failed before
// any answer, at most once per idle connection, and such a failure is a
// reset. c.mu is held.
func (c *phaseClock) connected(reused, h2 bool) {
	c.gotConn, c.reused = true, reused
	if !h2 {
		return
	}
	c.sent++
	if c.sent-c.answered > maxUnanswered && c.ws != nil {
		c.ws.abort(errUnanswered)
		c.ws = nil
	}
}

func (c *phaseClock) mark(f func()) {
	c.mu.Lock()
	f()
	c.mu.Unlock()
}

// trace returns the hooks that feed c. Whether the request was written
// matters only to retrying a method that is not idempotent (see retryWait),
// so other requests go without that hook.
func (c *phaseClock) trace(watchWrite bool) *httptrace.ClientTrace {
	now := time.Now
	tr := &httptrace.ClientTrace{
		GetConn:           func(string) { c.mark(func() { c.connAsked = true }) },
		TLSHandshakeStart: func() { t := now(); c.mark(func() { c.tlsStart = t }) },
		TLSHandshakeDone:  func(tls.ConnectionState, error) { t := now(); c.mark(func() { c.tlsDone = t }) },
		GotConn: func(i httptrace.GotConnInfo) {
			reused := i.Reused
			if r, ok := transport.ConnReused(i.Conn); ok {
				reused = r
			}
			// A direct client's own HTTP/2 connections send a request
			// again only within bounds of their own.
			h2 := transport.IsHTTP2(i.Conn) && !transport.ResendsBounded(i.Conn)
			c.mu.Lock()
			c.connected(reused, h2)
			prev := c.conn
			c.conn = i.Conn
			c.mu.Unlock()
			if prev != nil && prev != i.Conn {
				// net/http sends the request again on another connection
				// (the one it took first was closing), or a redirect goes
				// elsewhere: what the request spent on the first is its own.
				o, n, _ := transport.ClaimWire(prev, c)
				c.mark(func() {
					c.wireOut += o
					c.wireIn += n
				})
			}
		},
		GotFirstResponseByte: func() { t := now(); c.mark(func() { c.firstByte = t; c.answered++ }) },
		PutIdleConn: func(error) {
			c.mark(func() {
				if !c.idled {
					c.idled = true
					if c.idle != nil {
						close(c.idle)
					}
				}
			})
		},
	}
	if watchWrite {
		tr.WroteHeaders = func() { c.mark(func() { c.wrote = true }) }
	}
	return tr
}

// ObserveDNS implements [transport.DialObserver].
func (c *phaseClock) ObserveDNS(start, done time.Time) {
	c.mark(func() { c.dnsStart, c.dnsDone = start, done })
}

// ObserveConnect implements [transport.DialObserver].
func (c *phaseClock) ObserveConnect(start, done time.Time) {
	c.mark(func() { c.connStart, c.connDone = start, done })
}

// span sets *v to the milliseconds from a to b and returns v, or returns
// nil when either end is missing.
func span(v *float64, a, b time.Time) *float64 {
	if a.IsZero() || b.IsZero() || b.Before(a) {
		return nil
	}
	*v = ms(b.Sub(a))
	return v
}

// timingsBox holds a record's timings and the values they point to, in one
// allocation.
type timingsBox struct {
	t                  report.Timings
	dns, conn, tls, fb float64
}

func (c *phaseClock) timings() *report.Timings {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.connAsked {
		return nil
	}
	b := &timingsBox{}
	b.t = report.Timings{
		TTFBMS: span(&b.fb, c.start, c.firstByte),
		Reused: c.reused,
	}
	if !c.reused {
		// A request that took a connection that had carried others may
		// still have started a dial (net/http dials and takes whichever is
		// ready first); those phases are another connection's.
		b.t.DNSMS = span(&b.dns, c.dnsStart, c.dnsDone)
		b.t.ConnectMS = span(&b.conn, c.connStart, c.connDone)
		b.t.TLSMS = span(&b.tls, c.tlsStart, c.tlsDone)
	}
	return &b.t
}

// waitIdle waits, up to idleWait, for the connection of the attempt to be
// back in the pool.
func (c *phaseClock) waitIdle() {
	c.mu.Lock()
	if c.idled {
		c.mu.Unlock()
		return
	}
	if c.idle == nil {
		c.idle = make(chan struct{})
	}
	idle := c.idle
	c.mu.Unlock()
	timer := time.NewTimer(idleWait)
	defer timer.Stop()
	select {
	case <-idle:
	case <-timer.C:
	}
}

// idleWait bounds the wait for a connection to go back to the pool.
const idleWait = 50 * time.Millisecond
