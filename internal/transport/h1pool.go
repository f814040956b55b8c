package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http/httptrace"
	"strings"
	"time"
)

// The pool of an h1Transport: each host's idle connections, its cap on
// connections and the requests waiting for one, the idle connections of
// all hosts in the order of their last use, and the dial (and TLS
// handshake) of a new connection.

// h1Host is one host's connections.
type h1Host struct {
	key     string // the pool's key: addr, with "https://" first over TLS
	addr    string // host:port to dial
	tls     bool
	tlsConf *tls.Config // over TLS: the configuration of its connections
	idle    []*h1Conn   // most recently used last
	conns   int         // open or being dialled, idle ones included
	waiters []*h1Waiter
}

// h1Waiter is a request waiting for a connection to a host at its cap: it
// gets an idle connection, or nil as leave to dial one.
type h1Waiter struct {
	ch chan *h1Conn
}

type h1List struct{ head, tail *h1Conn }

func (l *h1List) push(c *h1Conn) {
	c.prev, c.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = c
	} else {
		l.head = c
	}
	l.tail = c
}

func (l *h1List) remove(c *h1Conn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		l.tail = c.prev
	}
	c.prev, c.next = nil, nil
}

// getConn returns an idle connection to key (with how long it was idle),
// or a new one, waiting while the host is at its cap.
func (t *h1Transport) getConn(ctx context.Context, key string) (*h1Conn, time.Duration, error) {
	t.mu.Lock()
	h := t.hosts[key]
	if h == nil {
		h = &h1Host{key: key, addr: strings.TrimPrefix(key, "https://"), tls: strings.HasPrefix(key, "https://")}
		if h.tls {
			h.tlsConf = connTLS(t.tlsConf, t.ca, h.addr)
		}
		if t.hosts == nil {
			t.hosts = make(map[string]*h1Host)
		}
		t.hosts[key] = h
	}
	if pc, idleFor := t.takeIdleLocked(h); pc != nil {
		t.mu.Unlock()
		var buf [unsolicitedQuote]byte
		n, ok := quiet(pc.conn, buf[:])
		if !ok && h.tls {
			// What waits may be TLS's own (a session ticket, say).
			n, ok = pc.tlsIdle(buf[:])
		}
		if ok {
			return pc, idleFor, nil
		}
		// The server closed it, or sent bytes that no request asked for
		// and that would pass for the next request's answer.
		if n > 0 {
			logUnsolicited(h.addr, buf[:n])
		}
		t.closeConn(pc)
		return t.getConn(ctx, key)
	}
	if t.perHost <= 0 || h.conns < t.perHost {
		h.conns++
		t.mu.Unlock()
		return t.dialConn(ctx, h)
	}
	w := &h1Waiter{ch: make(chan *h1Conn, 1)}
	h.waiters = append(h.waiters, w)
	t.mu.Unlock()
	if t.onWait != nil {
		t.onWait()
	}
	select {
	case pc := <-w.ch:
		if pc == nil {
			return t.dialConn(ctx, h)
		}
		return pc, time.Since(pc.idleAt), nil
	case <-ctx.Done():
	}
	t.mu.Lock()
	for i, x := range h.waiters {
		if x == w {
			h.waiters = append(h.waiters[:i], h.waiters[i+1:]...)
			t.dropHostLocked(h)
			t.mu.Unlock()
			return nil, 0, ctx.Err()
		}
	}
	t.mu.Unlock()
	// Handed something while giving up: pass it on.
	if pc := <-w.ch; pc != nil {
		t.putIdle(pc)
	} else {
		t.release(h)
	}
	return nil, 0, ctx.Err()
}

// tlsIdle reads, for a moment, what waits on an idle TLS connection.
// Records of TLS's own (a session ticket) leave it able to carry a
// request; bytes of an answer no request asked for, the peer's close or an
// error do not, and the first bytes of such an answer go to buf, n saying
// how many.
func (pc *h1Conn) tlsIdle(buf []byte) (n int, ok bool) {
	pc.conn.SetReadDeadline(time.Now().Add(tlsIdleWait))
	_, err := pc.br.Peek(1)
	pc.conn.SetReadDeadline(time.Time{})
	if err == nil {
		p, _ := pc.br.Peek(min(pc.br.Buffered(), len(buf)))
		return copy(buf, p), false
	}
	var ne net.Error
	return 0, errors.As(err, &ne) && ne.Timeout()
}

// tlsIdleWait is how long tlsIdle waits for the rest of what came on an
// idle TLS connection; a read that times out leaves the connection usable.
const tlsIdleWait = time.Millisecond

// takeIdleLocked returns h's most recently used idle connection, closing
// those that stayed idle too long; nil when there is none.
func (t *h1Transport) takeIdleLocked(h *h1Host) (*h1Conn, time.Duration) {
	for n := len(h.idle); n > 0; n = len(h.idle) {
		pc := h.idle[n-1]
		h.idle[n-1] = nil
		h.idle = h.idle[:n-1]
		t.lru.remove(pc)
		t.nIdle--
		pc.inIdle = false
		idleFor := time.Since(pc.idleAt)
		if t.idleTimeout > 0 && idleFor >= t.idleTimeout {
			t.closeLocked(pc)
			continue
		}
		return pc, idleFor
	}
	return nil, 0
}

func (t *h1Transport) dialConn(ctx context.Context, h *h1Host) (*h1Conn, time.Duration, error) {
	conn, err := t.dial(ctx, "tcp", h.addr)
	if err == nil && h.tls {
		conn, err = t.handshake(ctx, conn, h.tlsConf)
	}
	if err != nil {
		t.release(h)
		return nil, 0, err
	}
	pc := &h1Conn{t: t, host: h, conn: conn}
	pc.br = bufio.NewReaderSize(pc, readBufferSize)
	pc.bw = bufio.NewWriterSize(conn, writeBufferSize)
	return pc, 0, nil
}

// handshake makes conn a TLS connection with conf (see connTLS), as
// net/http does: the trace hears of the handshake's start and end.
func (t *h1Transport) handshake(ctx context.Context, conn net.Conn, conf *tls.Config) (net.Conn, error) {
	trace := httptrace.ContextClientTrace(ctx)
	if trace != nil && trace.TLSHandshakeStart != nil {
		trace.TLSHandshakeStart()
	}
	tc := tls.Client(conn, conf)
	err := tc.HandshakeContext(ctx)
	if trace != nil && trace.TLSHandshakeDone != nil {
		trace.TLSHandshakeDone(tc.ConnectionState(), err)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}

// release gives back a connection slot of h that was not used for a
// connection (a failed dial) or whose connection closed.
func (t *h1Transport) release(h *h1Host) {
	t.mu.Lock()
	t.releaseLocked(h)
	t.mu.Unlock()
}

func (t *h1Transport) releaseLocked(h *h1Host) {
	if len(h.waiters) > 0 {
		// The slot passes to the first waiter, which dials.
		w := h.waiters[0]
		h.waiters = h.waiters[1:]
		w.ch <- nil
		return
	}
	h.conns--
	t.dropHostLocked(h)
}

// dropHostLocked forgets a host with no connection and no waiter, so that
// a run over many hosts does not keep one entry for each.
func (t *h1Transport) dropHostLocked(h *h1Host) {
	if h.conns == 0 && len(h.waiters) == 0 && t.hosts[h.key] == h {
		delete(t.hosts, h.key)
	}
}

// putIdle hands pc to a request waiting for its host, or keeps it idle.
// It returns an error when the connection was closed instead.
func (t *h1Transport) putIdle(pc *h1Conn) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := pc.host
	pc.idleAt = time.Now()
	if len(h.waiters) > 0 {
		w := h.waiters[0]
		h.waiters = h.waiters[1:]
		w.ch <- pc
		return nil
	}
	if t.maxIdlePerHost > 0 && len(h.idle) >= t.maxIdlePerHost {
		t.closeLocked(pc)
		return errTooManyIdleHost
	}
	if t.maxIdle > 0 && t.nIdle >= t.maxIdle {
		// The least recently used idle connection makes room.
		t.closeIdleLocked(t.lru.head)
	}
	h.idle = append(h.idle, pc)
	t.lru.push(pc)
	t.nIdle++
	pc.inIdle = true
	if t.idleTimeout > 0 {
		if pc.timer == nil {
			pc.timer = time.AfterFunc(t.idleTimeout, pc.idleExpired)
		} else {
			pc.timer.Reset(t.idleTimeout)
		}
	}
	return nil
}

var errTooManyIdleHost = errors.New("http: putIdleConn: too many idle connections for host")

// idleExpired closes pc if it is still idle and has been for idleTimeout.
func (pc *h1Conn) idleExpired() {
	t := pc.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if !pc.inIdle || time.Since(pc.idleAt) < t.idleTimeout {
		return
	}
	t.closeIdleLocked(pc)
}

// closeIdleLocked takes pc out of the idle pool and closes it.
func (t *h1Transport) closeIdleLocked(pc *h1Conn) {
	h := pc.host
	for i, x := range h.idle {
		if x == pc {
			h.idle = append(h.idle[:i], h.idle[i+1:]...)
			break
		}
	}
	t.lru.remove(pc)
	t.nIdle--
	pc.inIdle = false
	t.closeLocked(pc)
}

// closeLocked closes a connection that is not idle.
func (t *h1Transport) closeLocked(pc *h1Conn) {
	if pc.closed {
		return
	}
	pc.closed = true
	if pc.timer != nil {
		pc.timer.Stop()
	}
	pc.conn.Close()
	t.releaseLocked(pc.host)
}

func (t *h1Transport) closeConn(pc *h1Conn) {
	t.mu.Lock()
	t.closeLocked(pc)
	t.mu.Unlock()
}

// CloseIdleConnections closes every idle connection.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.lru.head != nil {
		t.closeIdleLocked(t.lru.head)
	}
}
