package target

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// hostHandler is the http.Handler of one host.
type hostHandler struct{ h *Host }

func (hh hostHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := hh.h
	status := h.Enter()
	if status == 0 {
		panic(http.ErrAbortHandler)
	}
	defer h.Leave()
	if status == http.StatusTooManyRequests {
		writeStatusText(w, status)
		return
	}
	h.s.route(w, r, h.c)
}

// route dispatches on the path. The default path is checked first as it is
// the hot one.
func (s *Server) route(w http.ResponseWriter, r *http.Request, c *hostCounters) {
	p := r.URL.Path
	switch {
	case p == "/":
		s.serveDefault(w, r, c)
	case p == PathFlaky:
		s.serveFlaky(w, r, c)
	case p == PathRetryAfter:
		s.serveRetryAfter(w, r, c)
	case p == PathReset:
		s.serveReset(w, r)
	case p == PathResetMid:
		s.serveResetMid(w, r)
	case p == PathShort:
		s.serveShort(w, r)
	case p == PathStall:
		s.serveStall(w, r)
	case p == PathDrip:
		s.serveDrip(w, r)
	case p == PathBig:
		s.serveBig(w, r)
	case p == PathRedirect:
		s.serveRedirect(w, r, c)
	case p == PathLoop:
		s.serveLoop(w, r)
	case p == PathRedirectHost:
		s.serveRedirectHost(w, r)
	case strings.HasPrefix(p, PathStatus):
		s.serveStatus(w, r, c)
	case p == PathEcho:
		s.serveEcho(w, r)
	case p == PathSlow:
		s.serveSlow(w, r, c)
	default:
		s.serveDefault(w, r, c)
	}
}

// wait blocks for d, or until the client goes away or the server closes. It
// reports whether the whole duration passed.
func (s *Server) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.life.Done():
		return false
	}
}

// writeStatus answers code with a one-line text body (none where the status
// forbids one), counting 429s.
func (s *Server) writeStatus(w http.ResponseWriter, c *hostCounters, code int) {
	if code == http.StatusTooManyRequests {
		c.tooMany.Add(1)
	}
	writeStatusText(w, code)
}

// writeStatusText answers code with a one-line text body, or none where the
// status forbids one.
func writeStatusText(w http.ResponseWriter, code int) {
	hd := w.Header()
	if !bodyAllowed(code) {
		w.WriteHeader(code)
		return
	}
	msg := strconv.Itoa(code) + " " + http.StatusText(code) + "\n"
	hd["Content-Type"] = textPlain
	hd["Content-Length"] = []string{strconv.Itoa(len(msg))}
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg)
}

// bodyAllowed reports whether a response with this status may carry a body.
func bodyAllowed(code int) bool {
	return code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
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
