package runner

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/transport"
)

// result is the outcome of one attempt, as the worker saw it.
type result struct {
	task  *task
	route *route
	start time.Time
	dur   time.Duration

	ok          bool
	status      int
	proto       string
	finalURL    string
	contentType string
	bytes       int64
	sha256      string
	bodyFile    string
	timings     *report.Timings

	kind, msg     string
	retryAfter    time.Duration
	hasRetryAfter bool
	sent          bool   // the request may have reached the server
	canceled      bool   // the run was cancelled: no record
	panicked      string // the attempt panicked: this is what it said

	// clock is the attempt's trace, kept here to save an allocation; only
	// the attempt itself reads it.
	clock phaseClock
}

func (r *result) brief() string {
	if r.kind == report.KindStatus {
		return "status " + strconv.Itoa(r.status)
	}
	return r.kind
}

// signal names what an adaptive change reacted to.
func (r *result) signal() string {
	if r.status != 0 {
		return "status " + strconv.Itoa(r.status)
	}
	if r.kind != "" {
		return r.kind
	}
	return "ok"
}

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
	dialed                 bool
	idled                  bool          // the connection is back in the pool
	idle                   chan struct{} // made by a waiter for idled; closed with it

	// sent counts the requests of the attempt (net/http's own retries
	// and redirects included), answered those that got a response.
	sent, answered int
	// ws is the worker whose attempt this is, while it runs: the attempt
	// is stopped through it when too many requests go unanswered.
	ws *workerState
}

// maxUnanswered is how many requests of one attempt may go without an
// answer. net/http sends a request again by itself when an HTTP/2 server
// resets its stream with PROTOCOL_ERROR, and may do so without end
// (golang/go#52459): nginx's `return 444` on an http2 listener got
// thousands of requests from one attempt.
const maxUnanswered = 3

// connected counts a request about to be sent, and stops the attempt when
// too many went unanswered. c.mu is held.
func (c *phaseClock) connected(reused bool) {
	c.gotConn, c.reused = true, reused
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
		GetConn:              func(string) { c.mark(func() { c.dialed = true }) },
		TLSHandshakeStart:    func() { t := now(); c.mark(func() { c.tlsStart = t }) },
		TLSHandshakeDone:     func(tls.ConnectionState, error) { t := now(); c.mark(func() { c.tlsDone = t }) },
		GotConn:              func(i httptrace.GotConnInfo) { c.mark(func() { c.connected(i.Reused) }) },
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
	if !c.dialed {
		return nil
	}
	b := &timingsBox{}
	b.t = report.Timings{
		DNSMS:     span(&b.dns, c.dnsStart, c.dnsDone),
		ConnectMS: span(&b.conn, c.connStart, c.connDone),
		TLSMS:     span(&b.tls, c.tlsStart, c.tlsDone),
		TTFBMS:    span(&b.fb, c.start, c.firstByte),
		Reused:    c.reused,
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

// attempt makes one request and reads its body. It runs on a worker's
// goroutine and touches no dispatcher state.
func (d *dispatcher) attempt(ws *workerState, t *task, r *route, start time.Time) *result {
	res := &result{task: t, route: r, start: start}
	ctx := ws.begin()
	defer ws.end()
	clock := &res.clock
	clock.start = start
	clock.ws = ws
	// The lookups and connects of a dial come from the transport's dialer
	// (see transport.DialObserver), the rest from net/http's trace.
	ctx = transport.WithDialObserver(httptrace.WithClientTrace(ctx, clock.trace(!idempotent(d.opts.Method))), clock)
	req := d.newRequest(ctx, t)

	resp, err := r.Client.Do(req)
	if err == nil {
		res.status = resp.StatusCode
		res.proto = resp.Proto
		// The content type and a redirect's location are the server's:
		// a record holds at most report.MaxServerText of either.
		res.contentType = report.Clip(resp.Header.Get("Content-Type"))
		if resp.Request != nil && resp.Request.URL != req.URL && resp.Request.URL.String() != req.URL.String() {
			res.finalURL = report.Clip(report.RedactURL(resp.Request.URL.String()))
		}
		if v := resp.Header.Get("Retry-After"); v != "" {
			res.retryAfter, res.hasRetryAfter = parseRetryAfter(v, time.Now())
		}
		err = d.readBody(ws, resp, t, res)
		resp.Body.Close()
		if err == nil && d.opts.KeepAlive && resp.ProtoMajor == 1 && !resp.Close {
			// net/http hands an HTTP/1 connection back to its pool from
			// another goroutine after the body's end. Waiting for that keeps
			// the host's next request from dialling a connection it does not
			// need (the pool would then close one, and the churn goes on).
			// It is nearly always back already.
			clock.waitIdle()
		}
	}
	res.dur = time.Since(start)
	res.timings = clock.timings()
	clock.mu.Lock()
	res.sent = clock.wrote
	unanswered := clock.sent - clock.answered
	clock.ws = nil
	clock.mu.Unlock()

	switch {
	case d.ctx.Err() != nil:
		res.canceled = true
	case err != nil && context.Cause(ctx) == errAttemptTimeout:
		res.kind = report.KindTimeout
		res.msg = fmt.Sprintf("attempt took longer than --timeout %s", d.opts.Timeout)
		if res.status != 0 {
			res.msg += fmt.Sprintf(" (status %d received, %d body bytes read)", res.status, res.bytes)
		}
	case err != nil && context.Cause(ctx) == errUnanswered:
		res.kind = report.KindProtocol
		res.msg = fmt.Sprintf("the server answered none of %d requests in a row (HTTP/2 streams reset?); attempt stopped", unanswered)
	case err != nil:
		res.kind, res.msg = Classify(err)
		if res.kind == report.KindReset && res.status != 0 {
			res.msg = fmt.Sprintf("connection closed after %d body bytes: %s", res.bytes, res.msg)
		}
	case d.opts.OKStatus.Contains(res.status):
		res.ok = true
	default:
		res.kind = report.KindStatus
		res.msg = fmt.Sprintf("status %d is not in --ok-status %s", res.status, d.opts.OKStatus)
	}
	if res.msg != "" {
		res.msg = report.RedactText(res.msg, d.opts.Secrets...)
	}
	return res
}

func (d *dispatcher) newRequest(ctx context.Context, t *task) *http.Request {
	// net/http does not modify a request's URL, so the parsed one serves
	// every attempt.
	u := t.job.parsed
	req := &http.Request{
		Method:     d.opts.Method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     d.opts.Header,
		Host:       u.Host,
	}
	if body := d.opts.Body; body != nil {
		req.ContentLength = int64(len(body))
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	return req.WithContext(ctx)
}

// readBody reads at most MaxBody bytes into the hash and the body file.
func (d *dispatcher) readBody(ws *workerState, resp *http.Response, t *task, res *result) error {
	var src io.Reader = resp.Body
	if d.opts.gunzip && strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
		gz, err := ws.gunzip(resp.Body)
		switch {
		case err == io.EOF:
			// No body at all, as for a 204 or a 304.
			src = http.NoBody
		case err != nil:
			return err
		default:
			src = gz
		}
	}
	var (
		w    io.Writer = io.Discard
		sum  hash.Hash
		file *os.File
	)
	var writers []io.Writer
	if d.opts.Hash {
		sum = sha256.New()
		writers = append(writers, sum)
	}
	if d.opts.SaveDir != "" {
		name := bodyFileName(t.job, d.opts.MultiInput)
		f, err := os.Create(filepath.Join(d.opts.SaveDir, name))
		if err != nil {
			return fmt.Errorf("save body: %w", err)
		}
		file = f
		writers = append(writers, f)
		res.bodyFile = f.Name()
	}
	switch len(writers) {
	case 0:
	case 1:
		w = writers[0]
	default:
		w = io.MultiWriter(writers...)
	}
	if d.opts.MaxBody > 0 {
		ws.body = io.LimitedReader{R: src, N: d.opts.MaxBody + 1}
		src = &ws.body
	}
	ws.out.Writer = w
	n, err := io.CopyBuffer(&ws.out, src, ws.buf)
	ws.body.R, ws.out.Writer = nil, nil
	res.bytes = n
	if file != nil {
		if cerr := file.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("save body: %w", cerr)
		}
	}
	if err == nil && d.opts.MaxBody > 0 && n > d.opts.MaxBody {
		res.bytes = d.opts.MaxBody
		return &bodyTooLargeError{limit: d.opts.MaxBody}
	}
	if sum != nil && err == nil {
		res.sha256 = hex.EncodeToString(sum.Sum(nil))
	}
	return err
}

// gunzip returns the worker's gzip decoder reading body, made or reset.
func (ws *workerState) gunzip(body io.Reader) (*gzip.Reader, error) {
	if ws.gz == nil {
		gz, err := gzip.NewReader(body)
		if err != nil {
			return nil, err
		}
		ws.gz = gz
		return gz, nil
	}
	return ws.gz, ws.gz.Reset(body)
}

// onlyWriter hides io.ReaderFrom so that CopyBuffer uses the worker's buffer.
type onlyWriter struct{ io.Writer }

// bodyFileName is "<line>.body", or "<input>-<line>.body" with several
// inputs, the input's base name made safe for a file name.
func bodyFileName(j Job, multi bool) string {
	name := strconv.FormatInt(j.Line, 10) + ".body"
	if !multi {
		return name
	}
	in := filepath.Base(j.Input)
	if in == "-" {
		in = "stdin"
	}
	in = strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r < 0x20 {
			return '_'
		}
		return r
	}, in)
	return in + "-" + name
}

// finish builds the record of a task whose last attempt is res.
func (d *dispatcher) finish(t *task, res *result, now time.Time) {
	rec := &report.Record{
		URL:         report.RedactURL(t.job.URL),
		Line:        t.job.Line,
		OK:          res.ok,
		Status:      res.status,
		FinalURL:    res.finalURL,
		Bytes:       res.bytes,
		ContentType: res.contentType,
		Attempts:    t.attempts,
		DurationMS:  ms(now.Sub(t.start)),
		Timings:     res.timings,
		SHA256:      res.sha256,
		BodyFile:    res.bodyFile,
		Proxy:       res.route.Proxy,
		Time:        t.start.UTC(),
	}
	if rec.Proxy == "" && res.route.ProxyFor != nil {
		rec.Proxy = res.route.ProxyFor(t.job.parsed)
	}
	if res.status != 0 {
		rec.Proto = res.proto
	}
	if d.opts.MultiInput {
		rec.Input = t.job.Input
	}
	if !res.ok {
		rec.Error = &report.Error{Kind: res.kind, Message: res.msg}
		d.logf("fail %s: %s: %s", rec.URL, res.kind, res.msg)
	}
	if len(t.history) > 1 {
		rec.History = t.history
	}
	d.pending--
	d.send(rec)
}

func (d *dispatcher) emitInvalid(j Job) {
	rec := &report.Record{
		URL:   report.RedactURL(j.URL),
		Line:  j.Line,
		Time:  time.Now().UTC(),
		Error: &report.Error{Kind: report.KindInvalidURL, Message: report.RedactText(j.Err.Error(), d.opts.Secrets...)},
	}
	if d.opts.MultiInput {
		rec.Input = j.Input
	}
	d.logf("fail line %d: invalid_url: %s", j.Line, rec.Error.Message)
	d.pending--
	d.send(rec)
}

// send hands a finished record to the writer. It waits for room even after
// a cancel: the writer drains d.out to the end, and a record finished
// before the cancel must not be lost.
func (d *dispatcher) send(rec *report.Record) {
	d.out <- rec
}
