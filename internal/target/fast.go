package target

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// The plain HTTP/1.1 listeners answer the hot request of a benchmark, a GET
// or HEAD of "/" that asks for the default answer, themselves; everything
// else goes to net/http with the connection. The target shares the cores of
// the machine with the client it measures, which a remote server would not:
// net/http's server took 0.89 s of CPU to answer the 20,000 requests of the
// benchmark's S1, this path takes about 0.5 s.
//
// A connection starts on the fast path and stays there while its requests
// qualify. The first request that does not (another path, a parameter, a
// body, HTTP/1.0, an Upgrade, a malformed head) hands the connection, with
// the bytes already read, to the listener's http.Server for the rest of its
// life, so the fault paths and the error answers are net/http's own.

// maxFastHead bounds the request head the fast path reads; a longer one is
// handed to net/http, which applies its own limit.
const maxFastHead = 4096

// fastHost is what the fast path of one listener needs.
type fastHost struct {
	s    *Server
	c    *hostCounters
	hand *handoffListener

	// Prebuilt responses: the status line and headers up to the Date
	// header's value, and the default body.
	okHead, tooMany []byte
}

func newFastHost(s *Server, c *hostCounters, hand *handoffListener) *fastHost {
	cl := strconv.Itoa(len(s.body))
	ok := "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " + cl + "\r\nDate: "
	msg := "429 Too Many Requests\n"
	return &fastHost{
		s: s, c: c, hand: hand,
		okHead: []byte(ok),
		tooMany: []byte("HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
			strconv.Itoa(len(msg)) + "\r\nDate: "),
	}
}

// serveFast accepts the connections of ln until it is closed. Like
// net/http's server it waits and tries again after any other error, such as
// running out of file descriptors.
func (s *Server) serveFast(ln net.Listener, f *fastHost) {
	defer s.serving.Done()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.closing.Load() {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		f.c.conns.Add(1)
		if !s.fast.add(c) {
			c.Close()
			continue
		}
		s.serving.Add(1)
		go f.serveConn(c)
	}
}

// serveConn answers the requests of one connection until it closes, or
// hands it to net/http.
func (f *fastHost) serveConn(c net.Conn) {
	s := f.s
	r := bufio.NewReaderSize(c, maxFastHead)
	var (
		out    []byte
		sl     *sleeper
		handed bool
	)
	defer func() {
		if sl != nil {
			sl.close()
		}
		if !handed {
			s.fast.remove(c)
			c.Close()
		}
		s.serving.Done()
	}()
	for {
		_ = c.SetReadDeadline(time.Now().Add(fastIdleTimeout))
		n, head, closeAfter, err := readFastHead(r)
		if err != nil {
			return
		}
		if n == 0 {
			_ = c.SetReadDeadline(time.Time{})
			s.fast.remove(c)
			handed = true
			f.hand.handoff(&handedConn{Conn: c, r: r})
			return
		}
		_, _ = r.Discard(n)
		if sl == nil && s.opts.Latency > 0 {
			sl = newSleeper(s.life)
		}
		var ok, body bool
		out, body, ok = f.answer(out[:0], head, sl)
		if !ok {
			return
		}
		if _, err := c.Write(out); err != nil {
			return
		}
		if body {
			if _, err := c.Write(s.body); err != nil {
				return
			}
		}
		if closeAfter {
			return
		}
	}
}

// fastIdleTimeout closes a fast-path connection that sends nothing for so
// long, like net/http's IdleTimeout and ReadHeaderTimeout together.
const fastIdleTimeout = 2 * time.Minute

// answer counts the request, waits the latency and appends the response to
// out: all of it, or all but a body of more than maxInlineBody, which body
// says is still to be written. It reports false when the server closed
// during the wait.
//
// The in-flight counts drop before the response is written, as with a
// net/http handler, whose small responses reach the client after it
// returns: a client that sends its next request on another connection as
// soon as it has an answer is never counted twice.
func (f *fastHost) answer(out []byte, head bool, sl *sleeper) (_ []byte, body, ok bool) {
	s, c := f.s, f.c
	total := s.inFlight.Add(1)
	defer s.leave()
	if s.closing.Load() {
		return out, false, false
	}
	raise(&s.peak, total)
	c.requests.Add(1)
	n := c.inFlight.Add(1)
	raise(&c.peak, n)
	if lim := s.opts.Limit429; lim > 0 && n > int64(lim) {
		c.inFlight.Add(-1)
		c.tooMany.Add(1)
		out = appendDate(append(out, f.tooMany...))
		return append(out, "\r\n\r\n429 Too Many Requests\n"...), false, true
	}
	if h := s.opts.onFastWait; h != nil {
		h()
	}
	if !s.waitFast(sl) {
		c.inFlight.Add(-1)
		return out, false, false
	}
	c.inFlight.Add(-1)
	out = appendDate(append(out, f.okHead...))
	out = append(out, "\r\n\r\n"...)
	switch {
	case head:
	case len(s.body) <= maxInlineBody:
		out = append(out, s.body...)
	default:
		body = true
	}
	return out, body, true
}

// maxInlineBody is the largest body copied next to the headers for one
// write; a larger one is written from the server's copy.
const maxInlineBody = 16 << 10

// waitFast waits the latency on sl, which is nil when there is none.
func (s *Server) waitFast(sl *sleeper) bool {
	if sl == nil {
		return s.life.Err() == nil
	}
	return sl.sleep(s.opts.Latency)
}

// leave ends a request's share of the server-wide in-flight count.
func (s *Server) leave() {
	if s.inFlight.Add(-1) == 0 && s.closing.Load() {
		select {
		case s.idle <- struct{}{}:
		default:
		}
	}
}

// readFastHead reads the next request head into r's buffer without
// consuming it. It returns the head's length when the fast path serves the
// request, or 0 when net/http must. An error means the connection is done:
// the client closed it, or sent nothing in time.
func readFastHead(r *bufio.Reader) (n int, head, closeAfter bool, err error) {
	if _, err := r.Peek(1); err != nil {
		return 0, false, false, err
	}
	for {
		b, _ := r.Peek(r.Buffered())
		if !fastStart(b) {
			// Not a request the fast path serves, perhaps not HTTP at all
			// (a TLS handshake): net/http answers at once.
			return 0, false, false, nil
		}
		if i := bytes.Index(b, crlf2); i >= 0 {
			head, closeAfter, ok := parseFastHead(b[:i+2])
			if !ok {
				return 0, false, false, nil
			}
			return i + 4, head, closeAfter, nil
		}
		if len(b) >= maxFastHead {
			return 0, false, false, nil
		}
		if _, err := r.Peek(len(b) + 1); err != nil {
			if len(b) > 0 && err != bufio.ErrBufferFull {
				// A partial head and then EOF or a timeout: net/http
				// would close without an answer too.
				return 0, false, false, err
			}
			return 0, false, false, nil
		}
	}
}

var crlf2 = []byte("\r\n\r\n")

// fastStart reports whether b could begin a request the fast path serves,
// so that the wait for the rest of the head is not in vain.
func fastStart(b []byte) bool {
	for _, m := range [...]string{"GET /", "HEAD /"} {
		n := min(len(b), len(m))
		if string(b[:n]) == m[:n] {
			return true
		}
	}
	return false
}

// parseFastHead reports whether the fast path serves the request whose head
// is b (each line ending in CRLF, the blank line excluded): a GET or HEAD of
// the default answer (see defaultTarget) in HTTP/1.1, with a Host header and
// without a body, an Expect or an Upgrade.
func parseFastHead(b []byte) (head, closeAfter, ok bool) {
	line, rest, found := bytes.Cut(b, crlf)
	if !found {
		return false, false, false
	}
	method, line, _ := bytes.Cut(line, space)
	target, proto, _ := bytes.Cut(line, space)
	switch {
	case string(method) == "GET":
	case string(method) == "HEAD":
		head = true
	default:
		return false, false, false
	}
	if string(proto) != "HTTP/1.1" || !defaultTarget(target) {
		return false, false, false
	}
	host := false
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, crlf)
		name, value, found := bytes.Cut(line, colon)
		value = bytes.Trim(value, " \t")
		// net/http's own rules for names and values; it answers 400 to
		// what they refuse.
		if !found || !httpguts.ValidHeaderFieldName(string(name)) || !httpguts.ValidHeaderFieldValue(string(value)) {
			return false, false, false
		}
		switch {
		case equalFold(name, "host"):
			if host || len(value) == 0 || !httpguts.ValidHostHeader(string(value)) {
				return false, false, false
			}
			host = true
		case equalFold(name, "connection"):
			for _, tok := range bytes.Split(value, comma) {
				tok = bytes.Trim(tok, " \t")
				if equalFold(tok, "close") {
					closeAfter = true
				} else if !equalFold(tok, "keep-alive") {
					// An Upgrade or a hop-by-hop header: net/http's to handle.
					return false, false, false
				}
			}
		case equalFold(name, "content-length"), equalFold(name, "transfer-encoding"),
			equalFold(name, "expect"), equalFold(name, "upgrade"):
			return false, false, false
		}
	}
	return head, closeAfter, host
}

var (
	crlf  = []byte("\r\n")
	colon = []byte(":")
	comma = []byte(",")
	space = []byte(" ")
)

// defaultTarget reports whether the request target is "/" with a query
// that leaves the default answer as it is: none of the default path's
// parameters (latency, size, status), and no escapes that could spell one.
// The benchmark's lists add key=N to every URL, which the default path
// ignores.
func defaultTarget(t []byte) bool {
	path, query, _ := bytes.Cut(t, []byte("?"))
	if string(path) != "/" {
		return false
	}
	for _, c := range query {
		if c <= ' ' || c >= 0x7f || c == '%' || c == '+' || c == '#' {
			return false
		}
	}
	for len(query) > 0 {
		var pair []byte
		pair, query, _ = bytes.Cut(query, []byte("&"))
		key, _, _ := bytes.Cut(pair, []byte("="))
		switch string(key) {
		case "latency", "size", "status":
			return false
		}
	}
	return true
}

// equalFold reports whether b is s, lower case, in ASCII case folding, as
// HTTP's tokens are compared (bytes.EqualFold also folds Unicode: "ſ" would
// match "s").
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// appendDate appends the current time as an HTTP-date. The text changes
// once a second, so it is formatted once a second.
func appendDate(b []byte) []byte {
	now := time.Now().Unix()
	d := dateCache.Load()
	if d == nil || d.sec != now {
		d = &cachedDate{sec: now, text: time.Unix(now, 0).UTC().AppendFormat(nil, http.TimeFormat)}
		dateCache.Store(d)
	}
	return append(b, d.text...)
}

type cachedDate struct {
	sec  int64
	text []byte
}

var dateCache atomic.Pointer[cachedDate]

// handedConn is a connection given to net/http with the bytes the fast path
// had read but not consumed.
type handedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *handedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// handoffListener is the listener of a fast host's http.Server: it accepts
// the connections the fast path hands over.
type handoffListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// handoff gives c to the http.Server, or closes it when the server is gone.
func (l *handoffListener) handoff(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

// connSet tracks the connections on the fast path, so that Close can close
// them; net/http tracks the ones it was handed.
type connSet struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// add tracks c; it reports false once closeAll has run.
func (cs *connSet) add(c net.Conn) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		return false
	}
	if cs.conns == nil {
		cs.conns = make(map[net.Conn]struct{})
	}
	cs.conns[c] = struct{}{}
	return true
}

func (cs *connSet) remove(c net.Conn) {
	cs.mu.Lock()
	delete(cs.conns, c)
	cs.mu.Unlock()
}

func (cs *connSet) closeAll() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.closed = true
	for c := range cs.conns {
		c.Close()
	}
	clear(cs.conns)
}
