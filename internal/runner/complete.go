package runner

import (
	"fmt"
	"time"

	"github.com/fetchctl/fetchctl/internal/report"
)

// complete takes a finished attempt: it frees the slots, then retries the
// task later or finishes it with a record.
func (d *dispatcher) complete(res *result) {
	t, r, h := res.task, res.route, res.task.host
	d.inflight--
	r.inflight--
	h.inflight--
	if h.perRoute != nil {
		h.perRoute[r.index]--
	}
	if len(d.parked) > 0 {
		d.unpark()
	}
	if res.canceled {
		d.pending--
		return
	}
	if res.saveErr != nil {
		d.pending--
		d.fatal = res.saveErr
		return
	}
	if res.panicked != "" {
		d.pending--
		d.fatal = fmt.Errorf("internal error while fetching %s: %s", report.RedactURL(t.job.URL), res.panicked)
		return
	}
	now := time.Now()
	if d.opts.Adaptive {
		if old, updated := h.adapt.observe(res, d.opts.PerHost); updated {
			d.logf("adaptive: %s limit %d -> %d (%s)", h.key, old, h.adapt.limit(), res.signal())
		}
	}
	d.trackProxy(res, r, now)

	entry := report.Attempt{MS: ms(res.dur)}
	if res.status != 0 && res.kind == "" || res.kind == report.KindStatus {
		entry.Status = res.status
	} else {
		entry.Error = res.kind
	}
	reroutes := t.reroutes
	if wait, ok := d.retryWait(t, res); ok {
		moved := t.reroutes > reroutes
		entry.WaitMS = ms(wait)
		if res.hasRetryAfter {
			entry.RetryAfter = res.retryAfter.Seconds()
		}
		t.history = append(t.history, entry)
		if moved {
			d.logf("move %s off proxy %s: %s", report.RedactURL(t.job.URL), r.Proxy, res.msg)
		} else {
			d.logf("retry %d/%d %s: %s; waiting %s", t.attempts-t.reroutes, d.opts.Retries, report.RedactURL(t.job.URL), res.brief(), wait.Round(time.Millisecond))
		}
		if wait <= 0 {
			h.pushFront(t)
		} else {
			h.waiting++
			d.schedule(timerEntry{at: now.Add(wait), kind: wakeTask, task: t})
		}
		d.markReady(h)
		return
	}
	if len(t.history) > 0 {
		// A record lists the attempts only when there were several.
		t.history = append(t.history, entry)
	}
	d.finish(t, res, now)
	d.markReady(h)
	d.maybeReclaim(h)
}

// retryWait decides whether the task is tried again and after how long. A
// proxy failure that sends the task to another proxy at once counts in
// t.reroutes: such a move is not a retry and spends none.
func (d *dispatcher) retryWait(t *task, res *result) (time.Duration, bool) {
	if res.ok || d.ctx.Err() != nil {
		return 0, false
	}
	// A proxy failure moves the URL to another proxy at once, without
	// spending a retry, while another proxy is in use. A task moves at
	// most as many times as there are proxies, so a run whose proxies all
	// fail now and then still ends.
	if res.kind == report.KindProxy && len(d.routes) > 1 && d.upRoutes > 0 && t.reroutes < len(d.routes) {
		t.reroutes++
		return 0, true
	}
	if t.attempts-t.reroutes > d.opts.Retries {
		return 0, false
	}
	retryable := false
	switch res.kind {
	case report.KindStatus:
		retryable = d.opts.RetryOn.Status(res.status)
	default:
		retryable = d.opts.RetryOn.Kind(res.kind)
	}
	if !retryable {
		return 0, false
	}
	if !idempotent(d.opts.Method) {
		// A request that may have reached the server is sent again only
		// when the server asked for it.
		askedFor := (res.status == 429 || res.status == 503) && res.hasRetryAfter
		if res.sent && !askedFor {
			return 0, false
		}
	}
	if res.hasRetryAfter {
		return min(res.retryAfter, d.opts.BackoffMx), true
	}
	return backoff(d.opts.Backoff, d.opts.BackoffMx, t.attempts-t.reroutes), true
}

// trackProxy counts a proxy's failures in a row and sets the proxy aside
