package target

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// PathsHelp lists the paths the target serves, one a line, for a command's
// help.
const PathsHelp = `Paths (each takes latency=DURATION; the default path also size= and status=):
  /                       200 with the default body (-body)
  /status/NNN             status NNN (200-599)
  /slow?ms=50             the default path after ms milliseconds
  /echo                   the request as JSON (method, uri, header, body)
  /flaky?fail=K&status=503&key=X
                          the status for the first K requests of key X, then 200
  /429?after=1&times=1&key=X[&date=1]
                          429 with Retry-After for the first requests of key X
  /redirect?n=3           a chain of n redirects to /
  /redirect-host?to=HOST:PORT&path=/x
                          302 to another host of this server
  /loop                   302 to itself, forever
  /reset                  the connection reset before any answer
  /reset-mid              reset in the middle of the head
  /short                  Content-Length 1000 and only 10 body bytes
  /stall?for=10s          nothing until the duration has passed
  /drip?bytes=10&every=1s one body byte per interval
  /big?size=20MiB         a streamed body of that size
`

// The fault paths. Unless a path says otherwise, it waits the latency query
// parameter (default [Options.Latency]) before answering and ignores the
// other parameters of the default path. Parameters that do not parse get a
// 400 response.
const (
	// PathFlaky (/flaky?fail=K&status=503&key=X) answers the first K
	// requests (default 1) for key X with the status (default 503), then
	// 200 with the default body.
	PathFlaky = "/flaky"

	// PathRetryAfter (/429?after=2&times=1&key=X) answers 429 with
	// "Retry-After: <after>" (seconds, default 1) the first `times` requests
	// (default 1) for key X, then 200. With date=1 the Retry-After is an
	// HTTP-date `after` seconds from now.
	PathRetryAfter = "/429"

	// PathReset (/reset) closes the connection before writing anything,
	// with a TCP RST (SO_LINGER 0). Under HTTP/2 it resets the stream.
	PathReset = "/reset"

	// PathResetMid (/reset-mid) writes part of the status line and headers,
	// then resets the connection like [PathReset].
	PathResetMid = "/reset-mid"

	// PathShort (/short) sends "Content-Length: 1000" and only 10 body
	// bytes, then closes the connection (under HTTP/2, resets the stream).
	PathShort = "/short"

	// PathStall (/stall?for=10s) sends nothing until the duration (default
	// 10s) has passed, then answers 200 with the default body. It returns
	// early when the client goes away or the server closes.
	PathStall = "/stall"

	// PathDrip (/drip?bytes=10&every=1s) answers 200 with
	// "Content-Length: bytes", flushes the headers at once, then sends one
	// byte per `every`, flushing each, until done or the client goes away.
	// Defaults: 10 bytes, 1s.
	PathDrip = "/drip"

	// PathBig (/big?size=20MiB) answers 200 with a streamed body of that
	// size (default 20MiB), never held in memory whole.
	PathBig = "/big"

	// PathRedirect (/redirect?n=3) is a chain of n 302 redirects (default
	// 3): /redirect?n=3 → /redirect?n=2 → /redirect?n=1 → /. Other query
	// parameters are kept along the chain; n=0 answers like the default
	// path.
	PathRedirect = "/redirect"

	// PathLoop (/loop) answers 302 to itself, query included, forever.
	PathLoop = "/loop"

	// PathRedirectHost (/redirect-host?to=HOST:PORT&path=/x) answers 302 to
	// path (default /) on another host of this server; `to` must be one of
	// [Server.Addrs].
	PathRedirectHost = "/redirect-host"

	// PathStatus (/status/NNN) answers status NNN (200-599) with a one-line
	// body, or none where the status forbids one.
	PathStatus = "/status/"

	// PathEcho (/echo) answers 200 with an [Echo] in JSON describing the
	// request. A request body over 1 MiB gets 413.
	PathEcho = "/echo"

	// PathSlow (/slow?ms=50) is the default path with a latency of ms
	// milliseconds (default 50); size and status apply as on the default
	// path.
	PathSlow = "/slow"
)

// maxEchoBody bounds the request body /echo reads.
const maxEchoBody = 1 << 20

// Echo is the JSON body of [PathEcho]. Header holds every request header as
// received (Host is in Host, not in Header).
type Echo struct {
	Method        string              `json:"method"`
	URI           string              `json:"uri"`
	Proto         string              `json:"proto"`
	Host          string              `json:"host"`
	Header        map[string][]string `json:"header"`
	ContentLength int64               `json:"content_length"`
	Body          string              `json:"body"`
}

// pattern is the repeating unit of every body; chunk holds whole repeats so
// that a streamed body continues the pattern across chunks.
const pattern = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_\n"

var chunk = fill(make([]byte, 512*len(pattern)))

// fill writes the body pattern into b and returns it.
func fill(b []byte) []byte {
	for i := 0; i < len(b); i += len(pattern) {
		copy(b[i:], pattern)
	}
	return b
}

// Body returns the n bytes the server sends as a body of size n, on every
// path that sends a sized body (default, /slow, /stall, /big, /drip, ...),
// so a test can compare bodies or hashes.
func Body(n int) []byte { return fill(make([]byte, n)) }

// writeBody streams n pattern bytes to w.
func writeBody(w io.Writer, n int64) error {
	for n > 0 {
		k := min(n, int64(len(chunk)))
		if _, err := w.Write(chunk[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// query returns the parsed query, skipping the parse when there is none.
func query(r *http.Request) url.Values {
	if r.URL.RawQuery == "" {
		return nil
	}
	return r.URL.Query()
}

func qDuration(q url.Values, name string, def time.Duration) (time.Duration, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%w: %s=%q: want a duration such as 50ms", errBadParam, name, v)
	}
	return d, nil
}

func qInt(q url.Values, name string, def int) (int, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: %s=%q: want a non-negative integer", errBadParam, name, v)
	}
	return n, nil
}

func qSize(q url.Values, name string, def int64) (int64, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := ParseSize(v)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %v", errBadParam, name, err)
	}
	return n, nil
}

func qStatus(q url.Values, name string, def int) (int, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	return parseStatus(v)
}

func parseStatus(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 200 || n > 599 {
		return 0, fmt.Errorf("%w: status %q: want 200-599", errBadParam, v)
	}
	return n, nil
}

// counter returns the fault counter of kind and key, creating it at zero.
func (s *Server) counter(kind, key string) *atomic.Int64 {
	k := kind + "\x00" + key
	if c, ok := s.keys.Load(k); ok {
		return c.(*atomic.Int64)
	}
	c, _ := s.keys.LoadOrStore(k, new(atomic.Int64))
	return c.(*atomic.Int64)
}

// delay waits the latency parameter (default Options.Latency). It reports
// false, having answered 400 if the parameter is bad, when the handler
// should stop.
func (s *Server) delay(w http.ResponseWriter, r *http.Request, q url.Values) bool {
	lat, err := qDuration(q, "latency", s.opts.Latency)
	if err != nil {
		badRequest(w, err)
		return false
	}
	return s.wait(r.Context(), lat)
}

// respond answers status with a body of size bytes, or a bare status where
// the status forbids a body.
func (s *Server) respond(w http.ResponseWriter, c *hostCounters, status int, size int64) {
	if status == http.StatusTooManyRequests {
		c.tooMany.Add(1)
	}
	hd := w.Header()
	if !bodyAllowed(status) {
		w.WriteHeader(status)
		return
	}
	hd["Content-Type"] = textPlain
	if size == int64(len(s.body)) {
		hd["Content-Length"] = s.bodyCL
	} else {
		hd["Content-Length"] = []string{strconv.FormatInt(size, 10)}
	}
	w.WriteHeader(status)
	if size <= int64(len(s.body)) {
		_, _ = w.Write(s.body[:size])
		return
	}
	_ = writeBody(w, size)
}

// serveDefault is the default path: latency, size and status from the query
// or the options.
func (s *Server) serveDefault(w http.ResponseWriter, r *http.Request, c *hostCounters) {
	q := query(r)
	if q == nil {
		if s.wait(r.Context(), s.opts.Latency) {
			s.respond(w, c, http.StatusOK, int64(len(s.body)))
		}
		return
	}
	lat, err := qDuration(q, "latency", s.opts.Latency)
	if err != nil {
		badRequest(w, err)
		return
	}
	s.serveParams(w, r, c, q, lat)
}

// serveParams finishes the default path once the latency is known.
func (s *Server) serveParams(w http.ResponseWriter, r *http.Request, c *hostCounters, q url.Values, lat time.Duration) {
	size, err := qSize(q, "size", int64(len(s.body)))
	if err != nil {
		badRequest(w, err)
		return
	}
	status, err := qStatus(q, "status", http.StatusOK)
	if err != nil {
		badRequest(w, err)
		return
	}
	if s.wait(r.Context(), lat) {
		s.respond(w, c, status, size)
	}
}

func (s *Server) serveSlow(w http.ResponseWriter, r *http.Request, c *hostCounters) {
	q := query(r)
	ms, err := qInt(q, "ms", 50)
	if err != nil {
		badRequest(w, err)
		return
	}
	s.serveParams(w, r, c, q, time.Duration(ms)*time.Millisecond)
}

func (s *Server) serveFlaky(w http.ResponseWriter, r *http.Request, c *hostCounters) {
	q := query(r)
	fail, err := qInt(q, "fail", 1)
	if err != nil {
		badRequest(w, err)
		return
	}
	status, err := qStatus(q, "status", http.StatusServiceUnavailable)
	if err != nil {
		badRequest(w, err)
		return
	}
	n := s.counter("flaky", q.Get("key")).Add(1)
	if !s.delay(w, r, q) {
		return
	}
	if n <= int64(fail) {
		s.writeStatus(w, c, status)
		return
	}
	s.respond(w, c, http.StatusOK, int64(len(s.body)))
}

func (s *Server) serveRetryAfter(w http.ResponseWriter, r *http.Request, c *hostCounters) {
	q := query(r)
	after, err := qInt(q, "after", 1)
	if err != nil {
		badRequest(w, err)
		return
	}
	times, err := qInt(q, "times", 1)
	if err != nil {
		badRequest(w, err)
		return
	}
	n := s.counter("429", q.Get("key")).Add(1)
	if !s.delay(w, r, q) {
		return
	}
	if n > int64(times) {
		s.respond(w, c, http.StatusOK, int64(len(s.body)))
		return
	}
	if d := q.Get("date"); d == "1" || d == "true" {
		at := time.Now().Add(time.Duration(after) * time.Second)
		w.Header().Set("Retry-After", at.UTC().Format(http.TimeFormat))
	} else {
		w.Header().Set("Retry-After", strconv.Itoa(after))
	}
	s.writeStatus(w, c, http.StatusTooManyRequests)
}

// hijack takes over an HTTP/1 connection. It reports false under HTTP/2,
// where there is no connection of the request's own to take.
func hijack(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter, bool) {
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, false
	}
	return conn, rw, true
}

// rst closes conn so that the peer sees a TCP RST rather than a FIN: with
// SO_LINGER 0 the kernel drops unsent data and resets. Under TLS the raw
// connection is closed, so no close_notify alert is sent either.
func rst(conn net.Conn) {
	raw := conn
	if tc, ok := conn.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = raw.Close()
}

func (s *Server) serveReset(w http.ResponseWriter, _ *http.Request) {
	conn, _, ok := hijack(w)
	if !ok {
		// HTTP/2: abort the handler, which resets the stream.
		panic(http.ErrAbortHandler)
	}
	rst(conn)
}

// partialHead is the start of a response cut off inside a header.
const partialHead = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Len"

func (s *Server) serveResetMid(w http.ResponseWriter, _ *http.Request) {
	conn, _, ok := hijack(w)
	if !ok {
		w.WriteHeader(http.StatusOK)
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}
	_, _ = io.WriteString(conn, partialHead)
	rst(conn)
}

// shortHead announces 1000 bytes; serveShort sends 10.
const shortHead = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 1000\r\n\r\n"

func (s *Server) serveShort(w http.ResponseWriter, _ *http.Request) {
	conn, _, ok := hijack(w)
	if !ok {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(chunk[:10])
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}
	_, _ = io.WriteString(conn, shortHead+string(chunk[:10]))
	_ = conn.Close()
}

func (s *Server) serveStall(w http.ResponseWriter, r *http.Request) {
	q := query(r)
	d, err := qDuration(q, "for", 10*time.Second)
	if err != nil {
		badRequest(w, err)
		return
	}
	if !s.wait(r.Context(), d) {
		return
	}
	w.Header()["Content-Type"] = textPlain
	w.Header()["Content-Length"] = s.bodyCL
	_, _ = w.Write(s.body)
}

func (s *Server) serveDrip(w http.ResponseWriter, r *http.Request) {
	q := query(r)
	n, err := qInt(q, "bytes", 10)
	if err != nil {
		badRequest(w, err)
		return
	}
	every, err := qDuration(q, "every", time.Second)
	if err != nil {
		badRequest(w, err)
		return
	}
	rc := http.NewResponseController(w)
	w.Header()["Content-Type"] = textPlain
	w.Header().Set("Content-Length", strconv.Itoa(n))
	w.WriteHeader(http.StatusOK)
	if rc.Flush() != nil {
		return
	}
	for i := 0; i < n; i++ {
		if !s.wait(r.Context(), every) {
			return
		}
		if _, err := w.Write(chunk[i%len(pattern) : i%len(pattern)+1]); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
	}
}

func (s *Server) serveBig(w http.ResponseWriter, r *http.Request) {
	size, err := qSize(query(r), "size", 20<<20)
	if err != nil {
		badRequest(w, err)
		return
	}
	w.Header()["Content-Type"] = textPlain
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	_ = writeBody(w, size)
}

func (s *Server) serveRedirect(w http.ResponseWriter, r *http.Request, c *hostCounters) {
	q := query(r)
	if q == nil {
		q = url.Values{}
	}
	n, err := qInt(q, "n", 3)
	if err != nil {
		badRequest(w, err)
		return
	}
	if n == 0 {
		// The end of a chain reached directly answers like the default path.
		s.serveDefault(w, r, c)
		return
	}
	if !s.delay(w, r, q) {
		return
	}
	loc := "/"
	if n > 1 {
		q.Set("n", strconv.Itoa(n-1))
		loc = PathRedirect + "?" + q.Encode()
	}
	redirect(w, loc)
}

func (s *Server) serveLoop(w http.ResponseWriter, r *http.Request) {
	if !s.delay(w, r, query(r)) {
		return
	}
	redirect(w, r.URL.RequestURI())
}

func (s *Server) serveRedirectHost(w http.ResponseWriter, r *http.Request) {
	q := query(r)
	to := q.Get("to")
	if !slices.Contains(s.addrs, to) {
		badRequest(w, fmt.Errorf("%w: to=%q: want one of %s", errBadParam, to, strings.Join(s.addrs, ", ")))
		return
	}
	path := q.Get("path")
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	if !s.delay(w, r, q) {
		return
	}
	redirect(w, s.scheme+"://"+to+path)
}

// redirect answers 302 to loc with an empty body.
func redirect(w http.ResponseWriter, loc string) {
	w.Header().Set("Location", loc)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusFound)
}

func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request, c *hostCounters) {
	code, err := parseStatus(strings.TrimPrefix(r.URL.Path, PathStatus))
	if err != nil {
		badRequest(w, err)
		return
	}
	if s.delay(w, r, query(r)) {
		s.writeStatus(w, c, code)
	}
}

func (s *Server) serveEcho(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxEchoBody+1))
	if err != nil {
		return
	}
	if len(body) > maxEchoBody {
		http.Error(w, "request body over 1 MiB", http.StatusRequestEntityTooLarge)
		return
	}
	if !s.delay(w, r, query(r)) {
		return
	}
	out, err := json.Marshal(Echo{
		Method:        r.Method,
		URI:           r.RequestURI,
		Proto:         r.Proto,
		Host:          r.Host,
		Header:        r.Header,
		ContentLength: r.ContentLength,
		Body:          string(body),
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header()["Content-Type"] = appJSON
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	_, _ = w.Write(out)
}
