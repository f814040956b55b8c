package transport

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// errConnRetired fails a write on a connection that has carried
// MaxConnRequests requests; net/http retries a request that wrote nothing
// on a new connection when it can replay it.
var errConnRetired = errors.New("connection has carried MaxConnRequests requests")

// trackedConn is a dialed connection, under any TLS that net/http adds.
type trackedConn struct {
	net.Conn
	timeout  time.Duration
	armed    atomic.Bool  // the connect deadline is set
	retired  atomic.Bool  // writes fail
	requests atomic.Int64 // requests handed this connection
	served   atomic.Int64 // requests that took it, for ConnReused
	proto    atomic.Int32 // protoUnknown until IsHTTP2 has asked
	readDone atomic.Bool  // a read failed: the peer closed or broke the connection
	pooled   atomic.Bool  // an HTTP/2 connection of an h2Pool (see ResendsBounded)
	// out and in count the bytes written and read on the wire (TLS,
	// CONNECT and proxy handshakes included) that no request has claimed
	// yet (see ClaimWire).
	out, in atomic.Int64
	// holderMu guards holder: on a connection that carries one request at
	// a time (not HTTP/2), the WireObserver of the request that took it
	// last, which alone claims its bytes (see takeWire).
	holderMu sync.Mutex
	holder   WireObserver
	// gate, once the connection counts as a live HTTP/2 connection in a
	// tunnelGate, undoes that; gateLeft once it has run or the connection
	// closed first.
	gate atomic.Pointer[func()]
	// wireTo, when set, learns the bytes of a connection that closes
	// before any request took it (a refused CONNECT, a failed handshake):
	// the request that dialled it pays for them.
	wireTo WireObserver
	// meter, on a connection through a proxy, adds up its bytes with
	// those of the run's other such connections (see WireMeter).
	meter *WireMeter
	// untaken, on a connection through a proxy, holds it until a request
	// takes it or it closes (see Shared.CloseUntaken).
	untaken   *untaken
	closeOnce sync.Once

	// A direct connection dialed with no word of its target's scheme
	// learns it from what is written to it (writes come one after another:
	// the TLS handshake's, then the requests'). start is when the dial
	// began.
	sniff, inTLS bool
	start        time.Time

	// wb, once the connection speaks HTTP/2, carries its writes (see
	// writeBehind).
	wb atomic.Pointer[writeBehind]
}

// TLS record types (RFC 8446, 5.1).
const (
	recordChangeCipherSpec = 20
	recordHandshake        = 22
	recordApplicationData  = 23
)

// sniffWrite sets the connect deadline of a direct connection by what is
// about to be written to it. A TLS record first means a handshake, which
// the deadline bounds from the dial's start; anything else is a plain-http
// request, and the connection is ready. The first application-data record
// after a handshake ends the deadline: with TLS 1.3 it carries the client's
// Finished, with TLS 1.2 the first request.
func (c *trackedConn) sniffWrite(p []byte) {
	if len(p) == 0 {
		return
	}
	if !c.inTLS {
		if p[0] < recordChangeCipherSpec || p[0] > recordHandshake {
			c.sniff = false
			return
		}
		c.inTLS = true
		if c.Conn.SetDeadline(c.start.Add(c.timeout)) == nil {
			c.armed.Store(true)
		}
		return
	}
	if p[0] == recordApplicationData {
		c.sniff = false
		c.disarm()
	}
}

func (c *trackedConn) Read(p []byte) (int, error) {
	if c.meter != nil && c.meter.stopped() {
		return 0, ErrWireLimit
	}
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	if c.meter != nil && n > 0 {
		err = c.metered(n, err)
	}
	if err != nil {
		c.readDone.Store(true)
		if w := c.wb.Load(); w != nil {
			if werr := w.failed(); werr != nil {
				return n, werr
			}
		}
		err = c.connectErr(err)
	}
	return n, err
}

func (c *trackedConn) Write(p []byte) (int, error) {
	if c.retired.Load() {
		return 0, errConnRetired
	}
	if c.meter != nil && c.meter.stopped() {
		return 0, ErrWireLimit
	}
	if c.sniff {
		c.sniffWrite(p)
	}
	if w := c.wb.Load(); w != nil {
		return w.write(c, p)
	}
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	if c.meter != nil && n > 0 {
		err = c.metered(n, err)
	}
	if err != nil {
		err = c.connectErr(err)
	}
	return n, err
}

// metered counts n bytes just read or written on the meter, and returns
// err, or ErrWireLimit when they reached its limit.
func (c *trackedConn) metered(n int, err error) error {
	if merr := c.meter.add(n); merr != nil && err == nil {
		return merr
	}
	return err
}

// Close closes the connection; one that no request took reports its bytes
// to the request that dialled it, those counted so far before the peer can
// see the close, and any that a read or write under way adds after it. A
// Close while another runs returns once that one has reported.
func (c *trackedConn) Close() error {
	first := false
	var err error
	c.closeOnce.Do(func() {
		first = true
		err = c.close()
	})
	if !first {
		return c.Conn.Close()
	}
	return err
}

func (c *trackedConn) close() error {
	if w := c.wb.Load(); w != nil {
		w.close(c)
	}
	report := c.wireTo != nil && c.served.Load() == 0
	if report {
		c.reportWire()
	}
	err := c.Conn.Close()
	c.leaveGate()
	if report {
		c.reportWire()
	}
	if c.untaken != nil {
		c.untaken.remove(c)
	}
	return err
}

// reportWire hands the bytes no request claimed to the request that
// dialled the connection.
func (c *trackedConn) reportWire() {
	if out, in := c.out.Swap(0), c.in.Swap(0); out+in > 0 {
		c.wireTo.ObserveWire(out, in)
	}
}

// untaken is the set of connections through proxies that no request has
// taken yet, of the clients that share one [Shared].
type untaken struct {
	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool // CloseUntaken has run: new connections close at once
}

// add holds c until a request takes it or it closes; after CloseUntaken it
// closes c's network connection at once, so that its dial fails having
// carried nothing.
func (u *untaken) add(c *trackedConn) {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		c.Conn.Close()
		return
	}
	if u.conns == nil {
		u.conns = make(map[*trackedConn]struct{})
	}
	u.conns[c] = struct{}{}
	c.untaken = u
	u.mu.Unlock()
}

func (u *untaken) remove(c *trackedConn) {
	u.mu.Lock()
	delete(u.conns, c)
	u.mu.Unlock()
}

// gateLeft marks a connection that a tunnelGate no longer counts.
var gateLeft = new(func())

// leaveGate ends the connection's count as a live HTTP/2 connection, once.
func (c *trackedConn) leaveGate() {
	if f := c.gate.Swap(gateLeft); f != nil && f != gateLeft {
		(*f)()
	}
}

// WireObserver learns bytes on the wire that no request claimed with
// [ClaimWire]: those of a connection that closed before a request took it,
// reported to the request that dialled it. A [DialObserver] that is also a
// WireObserver gets them. Calls come from any goroutine.
type WireObserver interface {
	ObserveWire(out, in int64)
}

// ClaimWire returns the bytes written and read on the wire by the
// connection of an httptrace GotConn hook (TLS records, CONNECT and proxy
// handshakes included) since the last claim, and resets them: each byte is
// claimed once. A request claims its connection's bytes when it is done;
// on an HTTP/2 connection that others share, it may claim some of theirs,
// but the sum over requests is the connection's. by is the WireObserver
// of the claiming request, the one its context carries (see
// [WithDialObserver]): a connection that carries one request at a time
// and that a later request has taken since holds nothing for it, since
// the taking handed it its bytes (see takeWire). ok is false for a
// connection this package did not dial. Safe for concurrent use.
func ClaimWire(c net.Conn, by WireObserver) (out, in int64, ok bool) {
	tc := trackedOf(c)
	if tc == nil {
		return 0, 0, false
	}
	tc.holderMu.Lock()
	defer tc.holderMu.Unlock()
	if tc.holder != nil && tc.holder != by {
		return 0, 0, true
	}
	return tc.out.Swap(0), tc.in.Swap(0), true
}

// takeWire records that the request whose WireObserver is by takes c, a
// connection that carries one request at a time. The bytes c carried that
// the request before it has not claimed are that request's, its exchange
// being over: they go to its WireObserver now, before by's request writes
// anything, so that a claim of the earlier request that comes later, or
// one of by's, cannot take bytes of the other. The bytes of a fresh
// connection (its dial, CONNECT and handshakes) stay for the first request
// that takes it.
func (c *trackedConn) takeWire(by WireObserver) {
	c.holderMu.Lock()
	defer c.holderMu.Unlock()
	prev := c.holder
	c.holder = by
	if prev == nil || prev == by {
		return
	}
	if out, in := c.out.Swap(0), c.in.Swap(0); out+in > 0 {
		// Under holderMu, so that prev's claim waits for these: a
		// WireObserver must not claim while it is being called.
		prev.ObserveWire(out, in)
	}
}

// connectErr says why a read or write timed out while the connect deadline
// was still set: the CONNECT exchange or a TLS handshake overran it.
func (c *trackedConn) connectErr(err error) error {
	if !c.armed.Load() || !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	return &connectTimeoutError{timeout: c.timeout, err: err}
}

// connectTimeoutError is a connection that was not ready (dialled, proxy
// CONNECT and TLS handshakes done) within ConnectTimeout. It is a net.Error
// whose Timeout is true, and unwraps to the failure it cut short.
type connectTimeoutError struct {
	timeout time.Duration
	err     error
}

func (e *connectTimeoutError) Error() string {
	return fmt.Sprintf("connection not ready within the connect timeout of %v: %v", e.timeout, e.err)
}

func (e *connectTimeoutError) Unwrap() error   { return e.err }
func (e *connectTimeoutError) Timeout() bool   { return true }
func (e *connectTimeoutError) Temporary() bool { return false }

// disarm clears the connect deadline once; net/http sets no deadlines of its
// own on client connections.
func (c *trackedConn) disarm() {
	if c.armed.CompareAndSwap(true, false) {
		_ = c.Conn.SetDeadline(time.Time{})
	}
}

// ConnReused counts one more request handed c (the connection of an
// httptrace GotConn hook, under whatever TLS net/http added) and reports
// whether c carried an earlier one: net/http's own GotConnInfo.Reused is
// also true for a connection that was dialled for another request and
// waited in the idle pool unused. ok is false for a connection this package
// did not dial. Call it once per request. Safe for concurrent use.
func ConnReused(c net.Conn) (reused, ok bool) {
	tc := trackedOf(c)
	if tc == nil {
		return false, false
	}
	n := tc.served.Add(1)
	if n == 1 && tc.untaken != nil {
		tc.untaken.remove(tc)
	}
	return n > 1, true
}

// ReadEnded reports whether a read on c (the connection of an httptrace
// GotConn hook) has failed: the peer closed or broke the connection, or it
// was closed under the reader. A response head that stops short of a line's
// end was then cut off, rather than sent malformed. ok is false for a
// connection this package did not dial. Safe for concurrent use.
func ReadEnded(c net.Conn) (ended, ok bool) {
	tc := trackedOf(c)
	if tc == nil {
		return false, false
	}
	return tc.readDone.Load(), true
}

// trackedOf finds the *trackedConn under the TLS layers of a connection
// net/http handed to a request.
func trackedOf(c net.Conn) *trackedConn {
	for {
		switch v := c.(type) {
		case *trackedConn:
			return v
		case *tls.Conn:
			c = v.NetConn()
		default:
			return nil
		}
	}
}
