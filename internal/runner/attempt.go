package runner

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
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

	ok              bool
	status          int
	proto           string
	finalURL        string
	contentType     string
	contentEncoding string
	bytes           int64
	sha256          string
	bodyFile        string
	timings         *report.Timings

	kind, msg     string
	retryAfter    time.Duration
	hasRetryAfter bool
	sent          bool   // the request may have reached the server
	canceled      bool   // the run was cancelled: no record
	panicked      string // the attempt panicked: this is what it said
	saveErr       error  // the body could not be saved: the run ends

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

// isHTTP2 reports whether conn speaks HTTP/2 (negotiated by ALPN).
func isHTTP2(conn net.Conn) bool {
	tc, ok := conn.(*tls.Conn)
	return ok && tc.ConnectionState().NegotiatedProtocol == "h2"
}

// maxUnanswered is how many requests of one attempt may go without an
// answer. net/http sends a request again by itself when an HTTP/2 server
// resets its stream with PROTOCOL_ERROR, and may do so without end
// (golang/go#52459): nginx's `return 444` on an http2 listener got
// thousands of requests from one attempt.
const maxUnanswered = 3

// connected counts a request about to be sent over HTTP/2, and stops the
// attempt when too many went unanswered. HTTP/1 requests are not counted:
// net/http sends one again only on a reused connection that failed before
// any answer, at most once per idle connection, and such a failure is a
// reset. c.mu is held.
func (c *phaseClock) connected(reused, h2 bool) {
	c.gotConn, c.reused = true, reused
	if !h2 {
		return
	}
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
		GetConn:           func(string) { c.mark(func() { c.dialed = true }) },
		TLSHandshakeStart: func() { t := now(); c.mark(func() { c.tlsStart = t }) },
		TLSHandshakeDone:  func(tls.ConnectionState, error) { t := now(); c.mark(func() { c.tlsDone = t }) },
		GotConn: func(i httptrace.GotConnInfo) {
			reused := i.Reused
			if r, ok := transport.ConnReused(i.Conn); ok {
				reused = r
			}
			h2 := isHTTP2(i.Conn)
			c.mark(func() { c.connected(reused, h2) })
		},
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
		TTFBMS: span(&b.fb, c.start, c.firstByte),
		Reused: c.reused,
	}
	if !c.reused {
		// A request that took a connection that had carried others may
		// still have started a dial (net/http dials and takes whichever is
		// ready first); those phases are another connection's.
		b.t.DNSMS = span(&b.dns, c.dnsStart, c.dnsDone)
		b.t.ConnectMS = span(&b.conn, c.connStart, c.connDone)
		b.t.TLSMS = span(&b.tls, c.tlsStart, c.tlsDone)
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
	if err != nil {
		// A redirect that failed keeps the 3xx that asked for it: net/http
		// returns it with the error when its CheckRedirect refused (too
		// many redirects), the transport's error carries it otherwise.
		if resp == nil {
			var re *transport.RedirectError
			if errors.As(err, &re) {
				resp = re.Response
			}
		}
		if resp != nil {
			res.status = resp.StatusCode
			res.proto = resp.Proto
			res.finalURL = finalURL(req, resp)
		}
	} else {
		res.status = resp.StatusCode
		res.proto = resp.Proto
		// The content type and a redirect's location are the server's:
		// a record holds at most report.MaxServerText of either.
		res.contentType = report.Clip(resp.Header.Get("Content-Type"))
		res.finalURL = finalURL(req, resp)
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

	var saveErr *SaveError
	switch {
	case d.ctx.Err() != nil:
		res.canceled = true
	case errors.As(err, &saveErr):
		res.saveErr = saveErr
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

// finalURL is the URL that answered resp, when it is not req's own: a
// redirect was followed.
func finalURL(req *http.Request, resp *http.Response) string {
	if resp.Request == nil || resp.Request.URL == req.URL || resp.Request.URL.String() == req.URL.String() {
		return ""
	}
	return report.Clip(report.RedactURL(resp.Request.URL.String()))
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
	enc := resp.Header.Get("Content-Encoding")
	switch {
	case enc == "" || strings.EqualFold(enc, "identity"):
	case d.opts.gunzip && strings.EqualFold(enc, "gzip"):
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
	default:
		// Kept as received: the record says so, since its bytes and hash
		// are not of the decoded body.
		res.contentEncoding = enc
	}
	var (
		w    io.Writer = io.Discard
		sum  hash.Hash
		file bodyFile
	)
	var writers []io.Writer
	if d.opts.Hash {
		sum = sha256.New()
		writers = append(writers, sum)
	}
	if d.opts.SaveDir != "" {
		// The body goes to a new file of its own, renamed into place once
		// whole: a link or file planted under the final name is replaced,
		// never written through, and no partial body is ever left there.
		f, err := d.opts.saveFile(d.opts.SaveDir, ".fetchctl-*.tmp")
		if err != nil {
			return d.saveError(err)
		}
		file = f
		writers = append(writers, savingWriter{f})
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
	tooLarge := err == nil && d.opts.MaxBody > 0 && n > d.opts.MaxBody
	if tooLarge {
		res.bytes = d.opts.MaxBody
	}
	if file != nil {
		if ferr := d.keepBody(file, t, res, err == nil, tooLarge); ferr != nil {
			return ferr
		}
	}
	if tooLarge {
		return &bodyTooLargeError{limit: d.opts.MaxBody}
	}
	var se *SaveError
	if errors.As(err, &se) {
		return d.saveError(err)
	}
	if sum != nil && err == nil {
		res.sha256 = hex.EncodeToString(sum.Sum(nil))
	}
	return err
}

// keepBody closes the temporary body file and renames it into place when the
// body was read whole (cut to --max-body when it was larger, so that the file
// holds the record's bytes), or removes it. It returns a [SaveError] when the
// file could not be kept.
func (d *dispatcher) keepBody(f bodyFile, t *task, res *result, whole, tooLarge bool) error {
	tmp := f.Name()
	var err error
	if whole && tooLarge {
		err = f.Truncate(d.opts.MaxBody)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && whole {
		final := filepath.Join(d.opts.SaveDir, bodyFileName(t.job, d.opts.MultiInput))
		if err = os.Rename(tmp, final); err == nil {
			res.bodyFile = final
			return nil
		}
	}
	os.Remove(tmp)
	if err != nil {
		return d.saveError(err)
	}
	return nil
}

// bodyFile is where a body is saved; *os.File is one.
type bodyFile interface {
	io.Writer
	Name() string
	Truncate(size int64) error
	Close() error
}

func createTemp(dir, pattern string) (bodyFile, error) { return os.CreateTemp(dir, pattern) }

// savingWriter marks the errors of writing a body file as the run's own, so
// that a full disk is not taken for a failure of the target.
type savingWriter struct{ f bodyFile }

func (s savingWriter) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	if err != nil {
		err = &SaveError{Err: err}
	}
	return n, err
}

// SaveError is a body that could not be written under --save-bodies (a full
// disk, say). It ends the run: the URL gets no record, so that --resume
// fetches it again.
type SaveError struct {
	Dir string // the --save-bodies folder
	Err error
}

func (e *SaveError) Error() string {
	return fmt.Sprintf("cannot save bodies in %s: %v", e.Dir, e.Err)
}

func (e *SaveError) Unwrap() error { return e.Err }

func (d *dispatcher) saveError(err error) error {
	var se *SaveError
	if errors.As(err, &se) {
		err = se.Err
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		// The folder is named once; the file names say nothing more.
		err = pe.Err
	}
	return &SaveError{Dir: d.opts.SaveDir, Err: err}
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

// bodyFileName is "<line>.body", or with several inputs
// "<position>-<input>-<line>.body": the input's position among the inputs
// (from 1) keeps two inputs of one base name, or one named twice, apart, and
// its base name, made safe for a file name, says which it is.
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
	return strconv.Itoa(j.index) + "-" + in + "-" + name
}

// finish builds the record of a task whose last attempt is res.
func (d *dispatcher) finish(t *task, res *result, now time.Time) {
	rec := &report.Record{
		URL:             t.job.RecordURL(),
		Line:            t.job.Line,
		OK:              res.ok,
		Status:          res.status,
		FinalURL:        res.finalURL,
		Bytes:           res.bytes,
		ContentType:     res.contentType,
		ContentEncoding: res.contentEncoding,
		Attempts:        t.attempts,
		DurationMS:      ms(now.Sub(t.start)),
		Timings:         res.timings,
		SHA256:          res.sha256,
		BodyFile:        res.bodyFile,
		Proxy:           res.route.Proxy,
		Time:            t.start.UTC(),
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
	if d.opts.SaveDir != "" && res.bodyFile == "" {
		// No body kept for this URL: a file from an earlier attempt (a 503
		// retried, say) or run under its name is not its body.
		os.Remove(filepath.Join(d.opts.SaveDir, bodyFileName(t.job, d.opts.MultiInput)))
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
		URL:   j.RecordURL(),
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
