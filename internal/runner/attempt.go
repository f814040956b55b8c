package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strconv"
	"time"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/secret"
	"github.com/fetchctl/fetchctl/internal/transport"
)

// result is the outcome of one attempt, as the worker saw it.
type result struct {
	task  *task
	route *route
	start time.Time     // when the dispatcher started the attempt, on its clock
	dur   time.Duration // how long the attempt took, on the system's clock

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

	kind, msg string
	// targetUnreachable is a proxy failure that the proxy put down to the
	// target (see [transport.ProxyError]): it does not count against the
	// proxy.
	targetUnreachable bool
	retryAfter        time.Duration
	hasRetryAfter     bool
	sent              bool   // the request may have reached the server
	canceled          bool   // the run was cancelled: no record
	panicked          string // the attempt panicked: this is what it said
	saveErr           error  // the body could not be saved: the run ends

	// proxy names the proxy that carried the attempt, "" for none.
	proxy string
	// blocked: the target answered, through a proxy, with a status of
	// Options.RotateOn or a body matching Options.BlockPattern. exit then
	// names the session that was blocked, for a route with sessions (see
	// [ExitNamer]); "" otherwise.
	blocked bool
	exit    string
	// sameExit: the block leaves the exit in use for the host, which had
	// no other (see [dispatcher.block]); the retry backs off instead.
	sameExit bool
	// wireOut and wireIn are the bytes the attempt sent and received on
	// the wire, counted when it went through a proxy.
	wireOut, wireIn int64

	// clock is the attempt's trace, kept here to save an allocation; only
	// the attempt itself reads it.
	clock phaseClock
}

// failure names, for a retry's log line, what failed: "status 503" for a
// status outside --ok-status, the error kind otherwise.
func (r *result) failure() string {
	if r.kind == report.KindStatus {
		return "status " + strconv.Itoa(r.status)
	}
	return r.kind
}

// adaptiveCause names, for the log line of a host's window changing, the
// outcome it reacted to: the status when there was one (a 200 that opened
// the window, a 429 that cut it), else the error kind, else "ok".
func (r *result) adaptiveCause() string {
	if r.status != 0 {
		return "status " + strconv.Itoa(r.status)
	}
	if r.kind != "" {
		return r.kind
	}
	return "ok"
}

// attempt makes one request and reads its body. It runs on a worker's
// goroutine and touches no dispatcher state.
func (d *dispatcher) attempt(ws *workerState, t *task, r *route, start time.Time) *result {
	res := &result{task: t, route: r, start: start, proxy: r.Proxy}
	if res.proxy == "" && r.ProxyFor != nil {
		res.proxy = r.ProxyFor(t.job.parsed)
	}
	ctx := ws.begin()
	defer ws.end()
	// start is the dispatcher's clock; the attempt's own phases are
	// measured on the system's.
	began := time.Now()
	clock := &res.clock
	clock.start = began
	clock.ws = ws
	if res.proxy != "" {
		clock.late = &d.late
		clock.lateAs = lateBytes{a: report.Attempt{Proxy: res.proxy}, retry: t.attempts > 1}
	}
	// The lookups and connects of a dial come from the transport's dialer
	// (see transport.DialObserver), the rest from net/http's trace.
	ctx = transport.WithDialObserver(httptrace.WithClientTrace(ctx, clock.trace(!idempotent(d.opts.Method))), clock)
	req := d.newRequest(ctx, t)

	var resp *http.Response
	var sent []string
	var err error
	if sd, ok := r.Client.(SentDoer); ok {
		resp, sent, err = sd.DoSent(req)
	} else {
		resp, err = r.Client.Do(req)
	}
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
		err = d.readBody(ws, resp, t, res, res.proxy != "" && d.opts.BlockPattern != nil)
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
	res.dur = time.Since(began)
	res.timings = clock.timings()
	if res.proxy != "" {
		res.wireOut, res.wireIn = clock.claimWire()
	}
	clock.mu.Lock()
	res.sent = clock.wrote
	redirectedTo := clock.redirectedTo
	unanswered := clock.sent - clock.answered
	readEnded := true
	if err != nil && clock.conn != nil {
		if ended, ok := transport.ReadEnded(clock.conn); ok {
			readEnded = ended
		}
	}
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
		res.msg = fmt.Sprintf("the request went %d times in this attempt and the server answered none (net/http sends it again when the server resets or refuses its HTTP/2 stream); attempt stopped", unanswered)
	case err != nil:
		res.kind, res.msg = ClassifyHead(err, readEnded)
		var pe *transport.ProxyError
		res.targetUnreachable = errors.As(err, &pe) && pe.TargetUnreachable
		if res.kind == report.KindReset && res.status != 0 {
			res.msg = fmt.Sprintf("connection closed after %d body bytes: %s", res.bytes, res.msg)
		}
	case res.proxy != "" && d.opts.RotateOn.Contains(res.status):
		res.block(r, resp)
		res.msg = fmt.Sprintf("status %d through proxy %s is in --rotate-on %s", res.status, res.exitName(), d.opts.RotateOn)
	case res.proxy != "" && d.opts.BlockPattern != nil && d.opts.BlockPattern.Match(ws.head):
		res.block(r, resp)
		res.msg = fmt.Sprintf("status %d through proxy %s: the body matches --block-pattern", res.status, res.exitName())
	case d.opts.OKStatus.Contains(res.status):
		res.ok = true
	default:
		res.kind = report.KindStatus
		res.msg = fmt.Sprintf("status %d is not in --ok-status %s", res.status, d.opts.OKStatus)
	}
	if resp == nil && redirectedTo != nil && !res.canceled {
		// A redirect's target failed before it answered: net/http's error
		// names neither the redirect nor, always, the URL.
		res.finalURL = redirectedTo.String()
		if res.msg != "" {
			res.msg = "after a redirect to " + secret.URL(res.finalURL) + ": " + res.msg
		}
	}
	if res.msg != "" || res.finalURL != "" {
		// A redirect's Location is the server's: it may quote what the
		// attempt sent, as a message may.
		secrets := d.sentSecrets(t, sent)
		res.msg = secret.Text(res.msg, secrets...)
		res.finalURL = report.Clip(secret.Text(secret.URL(res.finalURL), secrets...))
	}
	return res
}

// sentSecrets returns the secrets an attempt of t sent: the run's, and
// those only the attempt knows (sent by its route, see [SentDoer]).
func (d *dispatcher) sentSecrets(t *task, sent []string) []string {
	secrets := d.opts.Secrets
	if u := t.job.parsed; u != nil && u.User != nil {
		// The target may quote the URL's password or the Basic token
		// net/http sent for it: one job's secrets, not the run's.
		secrets = append(slices.Clip(secrets), secret.UserInfo(u)...)
	}
	if len(sent) > 0 {
		secrets = append(slices.Clip(secrets), sent...)
	}
	return secrets
}

// block marks the result blocked, and names the exit that carried resp on
// route r when the route's client tells its exits apart (see [ExitNamer]).
func (res *result) block(r *route, resp *http.Response) {
	res.blocked = true
	res.kind = report.KindBlocked
	if n, ok := r.Client.(ExitNamer); ok && resp != nil {
		res.exit = n.ExitName(resp)
	}
}

// exitName names the exit that carried a blocked attempt: its session, or
// else its proxy.
func (res *result) exitName() string {
	if res.exit != "" {
		return res.exit
	}
	return res.proxy
}

// finalURL is the URL that answered resp, when it is not req's own: a
// redirect was followed. It is as the server wrote it: the attempt masks
// it (see [dispatcher.sentSecrets]).
func finalURL(req *http.Request, resp *http.Response) string {
	if resp.Request == nil || resp.Request.URL == req.URL || resp.Request.URL.String() == req.URL.String() {
		return ""
	}
	return resp.Request.URL.String()
}

func (d *dispatcher) newRequest(ctx context.Context, t *task) *http.Request {
	// net/http does not modify a request's URL, so the parsed one serves
	// every attempt.
	u := t.job.parsed
	host := u.Host
	if d.opts.host != "" {
		host = d.opts.host
	}
	req := &http.Request{
		Method:     d.opts.Method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     d.opts.Header,
		Host:       host,
	}
	if body := d.opts.Body; body != nil {
		req.ContentLength = int64(len(body))
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	return req.WithContext(ctx)
}
