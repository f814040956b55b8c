package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/idna"
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
	// pending counts the requests sent on c that have not returned;
	// served those it answered.
	pending, served atomic.Int32
	// refused is set when the server refused a stream on c, and cleared
	// when it answers one there: meanwhile requests go to other
	// connections. A server counts a stream the client gave up on until
	// its handler ends (nginx does), so a connection at a low limit may
	// refuse what the client thinks it has room for.
	refused atomic.Bool
}

// settleWait is how long a new connection carries only the streams its
// host is known to take (one, at first) while its SETTINGS are not known:
// SETTINGS that allow exactly net/http's initial 100 streams change
// nothing the pool can see, and after this long the connection takes as
// many as net/http lets it.
const settleWait = 100 * time.Millisecond

// A server whose SETTINGS allow no stream (SETTINGS_MAX_CONCURRENT_STREAMS
// 0) leaves a request that net/http's client had not yet written waiting
// for a stream without end, and no state hook runs for it. A connection
// is looked at after each of these delays while it has answered nothing;
// one with no room and nothing in flight is closed, and the requests
// waiting on it go elsewhere.
var idleChecks = []time.Duration{settleWait, 4 * settleWait, 16 * settleWait, 64 * settleWait}

// watch looks at c after idleChecks[i] (see idleChecks); the first look
// ends settleWait.
func (c *poolConn) watch(i int) {
	if i >= len(idleChecks) {
		return
	}
	time.AfterFunc(idleChecks[i], func() {
		if i == 0 {
			c.settled.Store(true)
			c.h.changed()
		}
		if c.answered.Load() || c.cc.Err() != nil {
			return
		}
		if c.cc.Available() == 0 && c.cc.InFlight() == 0 {
			c.cc.Close()
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

// TurnedAwayError is a request that the server turned away unprocessed
// Times times over HTTP/2: its stream refused (REFUSED_STREAM) or above a
// GOAWAY's last stream, or, for an idempotent request, its connection
// lost before an answer. Idle says that the connections that did so had
// answered nothing. Its ErrorKind method returns "reset" when the last
// turn was a connection lost, else "protocol".
type TurnedAwayError struct {
	Times int
	Idle  bool
	Err   error
}

func (e *TurnedAwayError) Error() string {
	if e.Idle {
		return fmt.Sprintf("the server turned the request away unprocessed %d times, on HTTP/2 connections that answered nothing: %v", e.Times, e.Err)
	}
	return fmt.Sprintf("the server turned the request away unprocessed %d times: %v", e.Times, e.Err)
}

func (e *TurnedAwayError) ErrorKind() string {
	if !unprocessed(e.Err) && lostUnanswered(e.Err) {
		return "reset"
	}
	return "protocol"
}
func (e *TurnedAwayError) Unwrap() error { return e.Err }

// onState is the connection's state hook. It may run inside a call on
// c.cc made with c.h.mu held, so it takes no such lock.
func (c *poolConn) onState(cc *http.ClientConn) {
	if cc.Err() != nil {
		go c.p.drop(c)
		return
	}
	if c.answered.Load() && cc.Available() == 0 && cc.InFlight() == 0 {
		// No room and nothing in flight: the server sent GOAWAY, or
		// SETTINGS that allow no stream, after it answered here. A
		// request waiting for a stream on c would wait without end.
		// (Requests that reserved a stream before such SETTINGS count as
		// in flight while they wait, and still wait for --timeout.)
		go cc.Close()
		return
	}
	c.seeSettings()
	c.learn()
	c.h.changed()
}

// seeSettings marks c settled once its room is not net/http's initial
// 100 streams: the server's SETTINGS changed it. SETTINGS that lower the
// limit run no state hook, so pick looks too.
func (c *poolConn) seeSettings() {
	if !c.settled.Load() && c.cc.Err() == nil && c.cc.Available()+c.cc.InFlight() != initialStreams {
		c.settled.Store(true)
	}
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
		c.refused.Store(false)
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
	resp, err := c.send(req)
	if err != nil && (unprocessed(err) || lostUnanswered(err) && idempotent(req)) {
		return nil, &turnedAway{c: c, err: err}
	}
	return resp, err
}

// send sends req on c, where a stream is reserved for it. It tells req's
// trace of c, as net/http's HTTP/2 client does (net/http leaves GotConn to
// the client of an HTTP/2 connection). Until c has answered a request,
// the first byte of an answer marks it: on the connection's read loop,
// before a GOAWAY that follows it can turn other requests away.
func (c *poolConn) send(req *http.Request) (*http.Response, error) {
	reused := c.used.Swap(true)
	trace := httptrace.ContextClientTrace(req.Context())
	if trace != nil && trace.GotConn != nil {
		trace.GotConn(httptrace.GotConnInfo{Conn: c.nc, Reused: reused})
	}
	orig := req
	if !c.answered.Load() {
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotFirstResponseByte: func() { c.answered.Store(true) },
		}))
	}
	c.pending.Add(1)
	resp, err := c.cc.RoundTrip(req)
	c.pending.Add(-1)
	if resp != nil {
		resp.Request = orig
	}
	if err == nil {
		c.served.Add(1)
	}
	if err == nil || unprocessed(err) {
		c.done(err == nil)
	}
	return resp, err
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

// poolKey is u's host and port as net/http names them to TLSNextProto
// (canonicalAddr in its transport.go): a host that is not ASCII in IDNA
// form, the port the scheme's when none is given. adopt learns of a
// connection by that name alone.
func poolKey(u *url.URL) string {
	host := u.Hostname()
	if !isASCII(host) {
		if v, err := idna.Lookup.ToASCII(host); err == nil {
			host = v
		}
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	return net.JoinHostPort(host, port)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// dialAdopted is the pool's transport's DialTLSContext: the connection adopt
// hands over. The pool dials through base.
func dialAdopted(ctx context.Context, _, _ string) (net.Conn, error) {
	if c, ok := ctx.Value(adoptKey{}).(*tls.Conn); ok {
		return c, nil
	}
	return nil, errors.New("the HTTP/2 pool dials through net/http")
}

type adoptKey struct{}

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
	p.mu.Lock()
	h := p.enterLocked(authority)
	p.mu.Unlock()
	defer p.leave(h)
	pc := p.newConn(h, cc, c)
	if err := cc.Reserve(); err != nil {
		if cc.Err() == nil && cc.Available() == 0 && cc.InFlight() == 0 {
			// The server's SETTINGS came at once, and allow no stream.
			pc.closeNoStreams()
			return erringRT{errNoStreams(err)}
		}
		cc.Close()
		return erringRT{fmt.Errorf("the server ended the HTTP/2 connection before its first request: %w", io.ErrUnexpectedEOF)}
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
	c.seeSettings()
	c.watch(0)
	return c
}

// h2StreamErr has the fields of net/http's HTTP/2 stream error, which its
// As method fills (net/http h2_error.go).
type h2StreamErr struct {
	StreamID uint32
	Code     uint32
	Cause    error
}

func (e h2StreamErr) Error() string { return "stream error" }

// StreamErrorCode returns the code of the HTTP/2 stream error in err's
// chain (net/http's is of an unexported type), and whether there is one.
func StreamErrorCode(err error) (code uint32, ok bool) {
	var se h2StreamErr
	if !errors.As(err, &se) {
		return 0, false
	}
	return se.Code, true
}

const codeRefusedStream = 0x7

// The texts of net/http's errors (h2_bundle.go) for a request that never
// started on its connection: the connection had sent GOAWAY, or the
// stream was above its last stream ID.
const (
	textGotGoAway  = "http2: Transport received Server's graceful shutdown GOAWAY"
	textUnusable   = "http2: client conn not usable"
	textNotStarted = "http2: client conn could not be established"
	// A connection that a failed write ended, or that broke.
	textForceClosed = "http2: client connection force closed via ClientConn.Close"
	textConnLost    = "http2: client connection lost"
	// A connection the server closed after a GOAWAY, before answering
	// a request it had taken.
	textGoAwayClosed = "http2: server sent GOAWAY and closed the connection"
)

// unprocessed reports an error by which the server says it did not
// process the request, which may be sent again anywhere.
func unprocessed(err error) bool {
	if code, ok := StreamErrorCode(err); ok {
		return code == codeRefusedStream
	}
	switch err.Error() {
	case textGotGoAway, textUnusable, textNotStarted:
		return true
	}
	return false
}

// lostUnanswered reports an error by which a request's connection ended
// before the request had an answer: the server closed it (after a GOAWAY,
// its answers to the last requests it took may be lost with it, when a
// write of the client's failed first), or it broke. The request may have
// been processed; an idempotent one goes again, as net/http sends again
// an HTTP/1 request whose kept connection broke.
func lostUnanswered(err error) bool {
	return HTTP2ConnEnded(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// HTTP2ConnEnded reports net/http's error (of an unexported type) for a
// request whose HTTP/2 connection ended under it before its answer:
// closed after a failed write, lost, or closed by the server after a
// GOAWAY.
func HTTP2ConnEnded(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, textForceClosed) || strings.Contains(msg, textConnLost) ||
		strings.Contains(msg, textGoAwayClosed)
}

// idempotent reports a request that may go twice (RFC 9110, 9.2.2).
func idempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// isRefused reports a stream the server refused (REFUSED_STREAM).
func isRefused(err error) bool {
	code, ok := StreamErrorCode(err)
	return ok && code == codeRefusedStream
}

// progressed reports whether the server made progress on c, which turned
// a request away a moment ago: it answered a request there, or, when it
// turned the request away with a GOAWAY, a request sent on c still waits
// for its answer (nginx sends GOAWAY on the last request it takes, before
// its answer). Looked at a moment later, the requests that the GOAWAY
// ended have returned.
func (c *poolConn) progressed(goAway bool) bool {
	return c.answered.Load() || goAway && c.pending.Load() > 0
}

// refusedAll reports a stream refused on a connection that takes none:
// the server's SETTINGS allow no stream, so every new connection will
// refuse the request too.
func refusedAll(c *poolConn, err error) bool {
	return isRefused(err) && !c.answered.Load() &&
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
