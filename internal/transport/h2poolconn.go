package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"time"
)

// poolConn is one HTTP/2 connection of the pool.
type poolConn struct {
	h  *poolHost
	p  *h2Pool
	cc *http.ClientConn
	nc net.Conn // the TLS connection, for httptrace's GotConn
	// used is set once the connection carried a request; answered once the
	// server answered one; settled once the server's SETTINGS are known.
	used, answered, settled atomic.Bool
	// forBase is set while a stream is reserved on c for the request
	// through base that dialled it.
	forBase atomic.Bool
	// noStreams is set once c is closed for taking no stream at all.
	noStreams atomic.Bool
}

// A server whose SETTINGS allow no stream (SETTINGS_MAX_CONCURRENT_STREAMS
// 0) leaves a request that net/http's client had not yet written waiting
// for a stream without end, and no state hook runs for it. A new
// connection is looked at after each of these delays while it has
// answered nothing; one with no room and nothing in flight is closed.
var noStreamChecks = []time.Duration{100 * time.Millisecond, 400 * time.Millisecond, 1600 * time.Millisecond, 6400 * time.Millisecond}

// watch looks at c after noStreamChecks[i] (see noStreamChecks).
func (c *poolConn) watch(i int) {
	if i >= len(noStreamChecks) {
		return
	}
	time.AfterFunc(noStreamChecks[i], func() {
		if c.answered.Load() || c.cc.Err() != nil {
			return
		}
		if c.cc.Available() == 0 && c.cc.InFlight() == 0 {
			c.closeNoStreams()
			return
		}
		c.watch(i + 1)
	})
}

// closeNoStreams closes c, which takes no stream.
func (c *poolConn) closeNoStreams() {
	c.noStreams.Store(true)
	c.h.noStreams.Store(true)
	c.cc.Close()
}

// NoStreamsError is the error of a request to a server whose HTTP/2
// SETTINGS allow no stream (SETTINGS_MAX_CONCURRENT_STREAMS 0). Its
// ErrorKind method returns "protocol".
type NoStreamsError struct{ Err error }

func (e *NoStreamsError) Error() string {
	msg := "the server takes no HTTP/2 streams (SETTINGS_MAX_CONCURRENT_STREAMS 0)"
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}
func (e *NoStreamsError) Unwrap() error     { return e.Err }
func (e *NoStreamsError) ErrorKind() string { return "protocol" }

func errNoStreams(err error) error { return &NoStreamsError{Err: err} }

// TurnedAwayError is a request that HTTP/2 connections which had answered
// nothing turned away unprocessed, Times times: its stream refused
// (REFUSED_STREAM) or above a GOAWAY's last stream. Its ErrorKind method
// returns "protocol".
type TurnedAwayError struct {
	Times int
	Err   error
}

func (e *TurnedAwayError) Error() string {
	return fmt.Sprintf("the server turned the request away unprocessed %d times, on HTTP/2 connections that answered nothing: %v", e.Times, e.Err)
}
func (e *TurnedAwayError) Unwrap() error     { return e.Err }
func (e *TurnedAwayError) ErrorKind() string { return "protocol" }

// onState is the connection's state hook. It may run inside a call on
// c.cc made with c.h.mu held, so it takes no such lock.
func (c *poolConn) onState(cc *http.ClientConn) {
	if cc.Err() != nil {
		go c.p.drop(c)
		return
	}
	if !c.settled.Load() && cc.Available()+cc.InFlight() != initialStreams {
		c.settled.Store(true)
	}
	c.learn()
	c.h.changed()
}

// learn keeps how many streams c takes, once its SETTINGS are known and it
// has room (a connection with none may have had GOAWAY).
func (c *poolConn) learn() {
	if !c.settled.Load() {
		return
	}
	if n := c.cc.Available(); n > 0 {
		c.h.room.Store(int32(min(n+c.cc.InFlight(), 1<<20)))
	}
}

// done notes an answer (or a refusal) on c: the server's SETTINGS came
// before it.
func (c *poolConn) done(answered bool) {
	if answered {
		c.answered.Store(true)
	}
	if !c.settled.Swap(true) {
		c.learn()
		c.h.changed()
	}
}

// RoundTrip sends req on c for net/http: the request through base whose
// connection c is. net/http keeps c in its idle list, and hands it to a
// later request through base when the pool has forgotten the host, after
// c closed or turned away new streams: such a request is told to dial.
func (c *poolConn) RoundTrip(req *http.Request) (*http.Response, error) {
	if !c.forBase.CompareAndSwap(true, false) {
		return nil, errNoCachedConn{}
	}
	c.gotConn(req)
	resp, err := c.cc.RoundTrip(req)
	if err == nil || unprocessed(err) {
		c.done(err == nil)
	}
	if err != nil && unprocessed(err) {
		return nil, &turnedAway{c: c, err: err}
	}
	return resp, err
}

// gotConn tells req's trace of c, as net/http's HTTP/2 client does (net/http
// leaves it to the client of an HTTP/2 connection).
func (c *poolConn) gotConn(req *http.Request) {
	reused := c.used.Swap(true)
	if trace := httptrace.ContextClientTrace(req.Context()); trace != nil && trace.GotConn != nil {
		trace.GotConn(httptrace.GotConnInfo{Conn: c.nc, Reused: reused})
	}
}

// errNoCachedConn has net/http send a request again on a new connection:
// the connection it took from its idle list was the pool's, and is closed.
type errNoCachedConn struct{}

func (errNoCachedConn) Error() string             { return "http2: no cached connection was available" }
func (errNoCachedConn) IsHTTP2NoCachedConnError() {}

// erringRT is net/http's erringRoundTripper: a connection that could not
// be set up, closed.
type erringRT struct{ err error }

func (e erringRT) RoundTripErr() error                             { return e.err }
func (e erringRT) RoundTrip(*http.Request) (*http.Response, error) { return nil, e.err }

type adoptKey struct{}

// dialSlot receives the TLS connection that the pool's dial made.
type dialSlot struct{ conn *tls.Conn }

type dialSlotKey struct{}

// adopt is base's TLSNextProto entry for "h2": the connection net/http
// dialled for a host's first request becomes the pool's.
func (p *h2Pool) adopt(authority string, c *tls.Conn) http.RoundTripper {
	if tc := trackedOf(c); tc != nil {
		tc.writeBehind()
		tc.pooled.Store(true)
	}
	ctx := context.WithValue(context.Background(), adoptKey{}, c)
	cc, err := p.h2.NewClientConn(ctx, "https", authority)
	if err != nil {
		c.Close()
		return erringRT{err}
	}
	h := p.enter(authority)
	defer p.leave(h)
	pc := p.newConn(h, cc, c)
	if err := cc.Reserve(); err != nil {
		// The server's SETTINGS came at once, and allow no stream.
		pc.closeNoStreams()
		return erringRT{errNoStreams(err)}
	}
	pc.forBase.Store(true)
	h.mu.Lock()
	h.conns = append(h.conns, pc)
	h.mu.Unlock()
	h.changed()
	return pc
}

func (p *h2Pool) newConn(h *poolHost, cc *http.ClientConn, nc net.Conn) *poolConn {
	c := &poolConn{h: h, p: p, cc: cc, nc: nc}
	cc.SetStateHook(c.onState)
	// The hook runs when the connection's room grows; SETTINGS read
	// before it was set are seen here.
	if cc.Err() == nil && cc.Available()+cc.InFlight() != initialStreams {
		c.settled.Store(true)
	}
	c.watch(0)
	return c
}

// h2StreamErr has the fields of net/http's HTTP/2 stream error, which its
// As method fills (see the runner's h2StreamError).
type h2StreamErr struct {
	StreamID uint32
	Code     uint32
	Cause    error
}

func (e h2StreamErr) Error() string { return "stream error" }

const codeRefusedStream = 0x7

// The texts of net/http's errors (h2_bundle.go) for a request that never
// started on its connection: the connection had sent GOAWAY, or the
// stream was above its last stream ID.
const (
	textGotGoAway  = "http2: Transport received Server's graceful shutdown GOAWAY"
	textUnusable   = "http2: client conn not usable"
	textNotStarted = "http2: client conn could not be established"
)

// unprocessed reports an error by which the server says it did not
// process the request, which may be sent again anywhere.
func unprocessed(err error) bool {
	var se h2StreamErr
	if errors.As(err, &se) {
		return se.Code == codeRefusedStream
	}
	switch err.Error() {
	case textGotGoAway, textUnusable, textNotStarted:
		return true
	}
	return false
}

// refusedAll reports a stream refused on a connection that takes none:
// the server's SETTINGS allow no stream, so every new connection will
// refuse the request too.
func refusedAll(c *poolConn, err error) bool {
	var se h2StreamErr
	return errors.As(err, &se) && se.Code == codeRefusedStream &&
		c.cc.Err() == nil && c.cc.Available() == 0 && c.cc.InFlight() == 0
}

// rewind returns req ready to be sent again, with a new body if it has one.
func rewind(req *http.Request) (*http.Request, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, nil
	}
	if req.GetBody == nil {
		return nil, errors.New("the request body cannot be sent again")
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	r := *req
	r.Body = body
	return &r, nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
