package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// h1Transport carries direct plain-http GET and HEAD requests over
// HTTP/1.1 on the caller's goroutine: it writes the request, reads the
// response head and hands the connection back to its pool when the body
// ends, where net/http's Transport runs a read and a write goroutine per
// connection and passes each request and response between them. It keeps
// net/http's behaviour: the same request head, the same limits, errors of
// the same kinds and texts, and a request that finds its kept connection
// closed by the server goes again on another.
type h1Transport struct {
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// tlsConf, when set, lets https requests through too: over TLS that
	// offers HTTP/1.1 alone (the client's HTTP/2 is off).
	tlsConf *tls.Config
	// perHost caps the connections to one host, idle ones included; 0 is
	// no cap. A request that finds the host at its cap waits for one.
	perHost int
	// maxIdlePerHost and maxIdle cap the idle connections of one host and
	// of all; 0 is no cap.
	maxIdlePerHost, maxIdle int
	idleTimeout             time.Duration
	maxHeader               int64  // bound on a response head
	onWait                  func() // tests: a request started waiting for its host
	onWrite                 func() // tests: a request is about to be written

	mu    sync.Mutex
	hosts map[string]*h1Host
	// The idle connections of every host, least recently used first.
	lru   h1List
	nIdle int
}

// h1Host is one host's connections.
type h1Host struct {
	key     string // the pool's key: addr, with "https://" first over TLS
	addr    string // host:port to dial
	tls     bool
	idle    []*h1Conn // most recently used last
	conns   int       // open or being dialled, idle ones included
	waiters []*h1Waiter
}

// h1Waiter is a request waiting for a connection to a host at its cap: it
// gets an idle connection, or nil as leave to dial one.
type h1Waiter struct {
	ch chan *h1Conn
}

type h1Conn struct {
	t    *h1Transport
	host *h1Host
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	// readLimit bounds what a response head may read (see Read).
	readLimit int64
	served    int // requests written on the connection
	idleAt    time.Time
	timer     *time.Timer // closes the connection once idle for idleTimeout
	inIdle    bool
	closed    bool
	prev      *h1Conn // LRU links while idle
	next      *h1Conn
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

// eligible reports whether req can go through t: a GET or HEAD with no
// body to a plain-http URL (or an https one when t speaks TLS), whose host
// and headers net/http would send as they are. Anything else goes through
// net/http, which then refuses or rewrites it as it always did.
func (t *h1Transport) eligible(req *http.Request) bool {
	if req.URL.Scheme != "http" && (req.URL.Scheme != "https" || t.tlsConf == nil) {
		return false
	}
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return false
	}
	if req.Body != nil && req.Body != http.NoBody || req.Close || req.URL.Opaque != "" {
		return false
	}
	if req.Method == http.MethodGet && req.Header.Get("Accept-Encoding") == "" && req.Header.Get("Range") == "" {
		// net/http would ask for gzip itself and decode it out of sight.
		return false
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if host == "" || !ascii(host) || strings.IndexByte(host, '%') >= 0 || !httpguts.ValidHostHeader(host) {
		return false
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return false
		}
		switch k {
		case "Connection", "Expect", "Upgrade", "Transfer-Encoding", "Content-Length", "Trailer", "Te":
			// Framing and connection handling that net/http owns.
			return false
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return false
			}
		}
	}
	return true
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// h1Key is the key of the pool of u's host: the address its connections
// dial, with "https://" first over TLS.
func h1Key(u *url.URL) string {
	port := u.Port()
	if u.Scheme == "https" {
		if port == "" {
			port = "443"
		}
		return "https://" + net.JoinHostPort(u.Hostname(), port)
	}
	if port == "" {
		port = "80"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// RoundTrip implements [http.RoundTripper] for a request that
// [h1Eligible] accepts.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	trace := httptrace.ContextClientTrace(ctx)
	key := h1Key(req.URL)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if trace != nil && trace.GetConn != nil {
			trace.GetConn(strings.TrimPrefix(key, "https://"))
		}
		pc, idleFor, err := t.getConn(ctx, key)
		if err != nil {
			return nil, err
		}
		reused := pc.served > 0
		if trace != nil && trace.GotConn != nil {
			trace.GotConn(httptrace.GotConnInfo{Conn: pc.conn, Reused: reused, WasIdle: idleFor > 0, IdleTime: idleFor})
		}
		resp, err := pc.roundTrip(ctx, req, trace)
		if err == nil {
			return resp, nil
		}
		var retry *h1Retry
		if !errors.As(err, &retry) {
			return nil, err
		}
		if !reused {
			// A new connection that failed before a byte of an answer:
			// the error as net/http passes it on.
			return nil, retry.err
		}
		// The server closed a kept connection before this request reached
		// it, as servers do to idle ones: net/http sends such a request
		// again on another connection, and so does this.
	}
}

// h1Retry is a failure before any byte of the response was read: the
// request may go again when its connection had carried one before.
type h1Retry struct{ err error }

func (e *h1Retry) Error() string { return e.err.Error() }

// getConn returns an idle connection to key (with how long it was idle),
// or a new one, waiting while the host is at its cap.
func (t *h1Transport) getConn(ctx context.Context, key string) (*h1Conn, time.Duration, error) {
	t.mu.Lock()
	h := t.hosts[key]
	if h == nil {
		h = &h1Host{key: key, addr: strings.TrimPrefix(key, "https://"), tls: strings.HasPrefix(key, "https://")}
		if t.hosts == nil {
			t.hosts = make(map[string]*h1Host)
		}
		t.hosts[key] = h
	}
	if pc, idleFor := t.takeIdleLocked(h); pc != nil {
		t.mu.Unlock()
		var buf [unsolicitedQuote]byte
		n, ok := 0, true
		if !h.tls {
			// A TLS connection may hold records of TLS's own (session
			// tickets, say) that no look at its socket can tell apart.
			n, ok = quiet(pc.conn, buf[:])
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
		conn, err = t.handshake(ctx, conn, h.addr)
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

// handshake makes conn a TLS connection to addr's host, as net/http does:
// the name checked is the host without its port, and the trace hears of
// the handshake's start and end.
func (t *h1Transport) handshake(ctx context.Context, conn net.Conn, addr string) (net.Conn, error) {
	host, _, _ := net.SplitHostPort(addr)
	conf := t.tlsConf.Clone()
	if conf.ServerName == "" {
		conf.ServerName = host
	}
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

// unsolicitedQuote is how many of the bytes a server sent past the end of
// its response a log line quotes.
const unsolicitedQuote = 256

// logUnsolicited logs, through the standard logger as net/http does for
// its own connections, that the server at addr sent bytes no request asked
// for, quoting their start p. They may echo the request, secrets and all:
// the command masks what the standard logger writes.
func logUnsolicited(addr string, p []byte) {
	log.Printf("bytes past the end of a response from %s, starting with %q: connection closed", addr, p)
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

// Read reads from the connection for the bufio.Reader, at most readLimit
// bytes while a response head is read, as net/http bounds a head.
func (pc *h1Conn) Read(p []byte) (int, error) {
	if pc.readLimit <= 0 {
		return 0, fmt.Errorf("read limit of %d bytes exhausted", pc.t.maxHeader)
	}
	if int64(len(p)) > pc.readLimit {
		p = p[:pc.readLimit]
	}
	n, err := pc.conn.Read(p)
	pc.readLimit -= int64(n)
	return n, err
}

// reqWriteExclude are the headers that the request line and the head's
// first fields carry, as net/http leaves them out of the rest.
var reqWriteExclude = map[string]bool{
	"Host":              true,
	"User-Agent":        true,
	"Content-Length":    true,
	"Transfer-Encoding": true,
	"Trailer":           true,
}

// writeRequest writes req's head as net/http's Transport does for a
// request with no body.
func (pc *h1Conn) writeRequest(req *http.Request) error {
	w := pc.bw
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	w.WriteString(req.Method)
	w.WriteByte(' ')
	w.WriteString(req.URL.RequestURI())
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	// h1Eligible let through no value with a line break in it.
	ua := "Go-http-client/1.1"
	if v, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(v) > 0 {
			ua = textproto.TrimString(v[0])
		}
	}
	if ua != "" {
		w.WriteString("User-Agent: ")
		w.WriteString(ua)
		w.WriteString("\r\n")
	}
	if err := req.Header.WriteSubset(w, reqWriteExclude); err != nil {
		return err
	}
	_, err := w.WriteString("\r\n")
	return err
}

// roundTrip sends req on pc and reads the response head. A failure before
// a byte of the response came is an *h1Retry.
func (pc *h1Conn) roundTrip(ctx context.Context, req *http.Request, trace *httptrace.ClientTrace) (*http.Response, error) {
	t := pc.t
	// Cancelling the request breaks off whatever read or write waits.
	stop := context.AfterFunc(ctx, func() { pc.conn.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, error) {
		stop()
		t.closeConn(pc)
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	pc.served++
	if t.onWrite != nil {
		t.onWrite()
	}
	err := pc.writeRequest(req)
	if err == nil && trace != nil && trace.WroteHeaders != nil {
		trace.WroteHeaders()
	}
	if err == nil {
		err = pc.bw.Flush()
	}
	if trace != nil && trace.WroteRequest != nil {
		trace.WroteRequest(httptrace.WroteRequestInfo{Err: err})
	}
	if err != nil {
		pc.bw.Reset(pc.conn)
		return fail(&h1Retry{err})
	}
	pc.readLimit = t.maxHeader
	if _, err := pc.br.Peek(1); err != nil {
		if pc.readLimit <= 0 {
			err = fmt.Errorf("net/http: server response headers exceeded %d bytes; aborted", t.maxHeader)
			return fail(fmt.Errorf("net/http: HTTP/1.x transport connection broken: %w", err))
		}
		return fail(&h1Retry{err})
	}
	if trace != nil && trace.GotFirstResponseByte != nil {
		trace.GotFirstResponseByte()
	}
	var resp *http.Response
	for {
		resp, err = http.ReadResponse(pc.br, req)
		if err != nil {
			if pc.readLimit <= 0 {
				err = fmt.Errorf("net/http: server response headers exceeded %d bytes; aborted", t.maxHeader)
			}
			return fail(fmt.Errorf("net/http: HTTP/1.x transport connection broken: %w", err))
		}
		if resp.StatusCode < 100 || resp.StatusCode > 199 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		// An informational answer comes before the final one.
	}
	pc.readLimit = 1<<63 - 1
	if tc, ok := pc.conn.(*tls.Conn); ok {
		state := tc.ConnectionState()
		resp.TLS = &state
	}
	keep := !resp.Close && resp.StatusCode >= 200
	b := &h1Body{pc: pc, body: resp.Body, stop: stop, ctx: ctx, trace: trace, keep: keep}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The connection now speaks another protocol: what follows the
		// head, to the connection's end, is the body, as net/http has it.
		b.body = io.NopCloser(pc.br)
		resp.Body = b
		return resp, nil
	}
	if req.Method == http.MethodHead || resp.ContentLength == 0 || resp.Body == http.NoBody {
		// Nothing to read: the connection goes back now, as net/http puts
		// it back before it returns such a response.
		b.finish(true)
		resp.Body = http.NoBody
		return resp, nil
	}
	resp.Body = b
	return resp, nil
}

// h1Body is a response body; its end hands the connection back to the
// pool, and an early close closes it.
type h1Body struct {
	pc    *h1Conn
	body  io.ReadCloser
	stop  func() bool
	ctx   context.Context
	trace *httptrace.ClientTrace
	keep  bool
	done  bool
	err   error
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		if b.err != nil {
			return 0, b.err
		}
		return 0, io.EOF
	}
	n, err := b.body.Read(p)
	switch {
	case err == io.EOF:
		b.finish(true)
	case err != nil:
		if cerr := b.ctx.Err(); cerr != nil {
			err = cerr
		}
		b.err = err
		b.finish(false)
	}
	return n, err
}

// Close closes the body. A body not read to its end takes its connection
// with it: what is left of it may be long, or never come.
func (b *h1Body) Close() error {
	if !b.done {
		b.err = errBodyClosed
		b.finish(false)
	}
	return nil
}

var errBodyClosed = errors.New("http: read on closed response body")

// finish ends the request: its connection goes back to the pool when the
// body was read to its end and the connection may carry another request,
// and is closed otherwise.
func (b *h1Body) finish(whole bool) {
	b.done = true
	pc := b.pc
	notCanceled := b.stop()
	// Bytes past the response's end are no answer to any request: the
	// connection cannot carry another.
	extra := 0
	if whole && b.keep {
		extra = pc.br.Buffered()
	}
	if extra > 0 {
		p, _ := pc.br.Peek(min(extra, unsolicitedQuote))
		logUnsolicited(pc.host.addr, p)
	}
	if whole && b.keep && notCanceled && extra == 0 {
		err := pc.t.putIdle(pc)
		if b.trace != nil && b.trace.PutIdleConn != nil {
			b.trace.PutIdleConn(err)
		}
		return
	}
	pc.t.closeConn(pc)
	if whole && b.trace != nil && b.trace.PutIdleConn != nil {
		b.trace.PutIdleConn(errConnNotKept)
	}
}

var errConnNotKept = errors.New("http: connection closed after its response")
