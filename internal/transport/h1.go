package transport

import (
	"bufio"
	"bytes"
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

// h1Transport carries direct GET and HEAD requests (plain http, and https
// when the client's HTTP/2 is off) over HTTP/1.1 on the caller's goroutine: it writes the request, reads the
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
	ca      *caRoots // see connTLS
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

// unsolicitedQuote is how many of the bytes a server sent past the end of
// its response a log line quotes.
const unsolicitedQuote = 256

// logUnsolicited logs, through the standard logger as net/http does for
// its own connections, that the server at addr sent bytes no request asked
// for, quoting their start p. They may echo the request, secrets and all:
// the command masks what the standard logger writes.
func logUnsolicited(addr string, p []byte) {
	if bytes.HasPrefix(p, []byte("HTTP/1.1 408 ")) || bytes.HasPrefix(p, []byte("HTTP/1.0 408 ")) {
		// A server's word that it closes an idle connection, as net/http
		// takes it too: no news.
		return
	}
	log.Printf("bytes past the end of a response from %s, starting with %q: connection closed", addr, p)
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
