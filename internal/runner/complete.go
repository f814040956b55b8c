package runner

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/secret"
)

// complete takes a finished attempt, in steps: it frees the attempt's
// slots, ends the run or drops the task when the attempt says so, lets the
// host's window and the proxy's streak learn from it, then retries the task
// later or finishes it with a record.
func (d *dispatcher) complete(res *result) {
	d.release(res)
	if d.stopped(res) {
		return
	}
	now := d.clock.Now()
	d.adapt(res)
	d.trackProxy(res, res.route, now)
	d.block(res, now)
	t, h := res.task, res.task.host
	t.wireOut += res.wireOut
	t.wireIn += res.wireIn
	defer d.spend(res)
	entry := historyEntry(res)
	if d.retry(t, res, entry, now) {
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

// release frees the slots the attempt held: the run's, its route's and its
// host's, and lets the hosts parked for a route slot try again.
func (d *dispatcher) release(res *result) {
	r, h := res.route, res.task.host
	d.inflight--
	r.inflight--
	h.inflight--
	if len(d.parked) > 0 {
		d.unpark()
	}
}

// stopped reports whether the attempt leaves its task without a record: the
// run was cancelled, or the attempt failed in a way that ends the run (a
// body that could not be saved, a panic), which it then sets in d.fatal.
func (d *dispatcher) stopped(res *result) bool {
	switch {
	case res.canceled:
	case res.saveErr != nil:
		d.fatal = res.saveErr
	case res.panicked != "":
		d.fatal = fmt.Errorf("internal error while fetching %s: %s", secret.URL(res.task.job.URL), res.panicked)
	default:
		return false
	}
	d.unrecorded(res.task, res)
	d.pending--
	return true
}

// adapt feeds the attempt's outcome to its host's window when --adaptive is
// on, and logs a change of the limit.
func (d *dispatcher) adapt(res *result) {
	if !d.opts.Adaptive {
		return
	}
	h := res.task.host
	if old, updated := h.adapt.observe(res, d.opts.PerHost, d.clock.Now()); updated {
		d.logf("adaptive: %s limit %d -> %d (%s)", h.key, old, h.adapt.limit(), res.adaptiveCause())
	}
}

// spend adds the attempt's bytes through a proxy to the run's, and ends
// the run once they reach Options.Budget.
func (d *dispatcher) spend(res *result) {
	d.addSpent(res.wireOut + res.wireIn)
}

// addSpent adds n bytes through proxies to the run's, and ends the run
// once they reach Options.Budget.
func (d *dispatcher) addSpent(n int64) {
	d.spent += n
	if d.opts.Budget > 0 && d.spent >= d.opts.Budget && d.fatal == nil {
		d.fatal = &BudgetError{Budget: d.opts.Budget, Spent: d.spent, Text: d.opts.BudgetText}
	}
}

// historyEntry is the attempt as a record's history lists it, with the
// server's Retry-After whenever it sent one, the last attempt included.
func historyEntry(res *result) report.Attempt {
	entry := report.Attempt{MS: ms(res.dur), Proxy: res.proxy, Blocked: res.blocked, BytesOut: res.wireOut, BytesIn: res.wireIn}
	if res.hasRetryAfter {
		entry.RetryAfter = new(res.retryAfter.Seconds())
	}
	switch {
	case res.status != 0 && res.kind == "" || res.kind == report.KindStatus:
		entry.Status = res.status
	case res.blocked:
		entry.Status, entry.Error = res.status, res.kind
	default:
		entry.Error = res.kind
	}
	return entry
}

// retry puts the task back, at once or after a wait, when the policy lets it
// try again, and reports whether it did. entry is the attempt just made,
// which then joins the task's history with the wait.
func (d *dispatcher) retry(t *task, res *result, entry report.Attempt, now time.Time) bool {
	reroutes := t.reroutes
	wait, ok := d.retryWait(t, res)
	if !ok {
		return false
	}
	// There when 0 too: the next attempt went at once.
	entry.WaitMS = new(ms(wait))
	t.history = append(t.history, entry)
	if t.reroutes > reroutes {
		d.logf("move %s off proxy %s: %s", secret.URL(t.job.URL), res.route.Proxy, res.msg)
	} else {
		d.logf("retry %d/%d %s: %s; waiting %s", t.attempts-t.reroutes, d.opts.Retries, secret.URL(t.job.URL), res.failure(), wait.Round(time.Millisecond))
	}
	h := t.host
	if wait <= 0 {
		h.pushFront(t)
	} else {
		h.waiting++
		// A blocked URL's wait is for an exit to cool down for its host,
		// but for a backoff on the exit it keeps.
		d.schedule(timerEntry{at: now.Add(wait), kind: wakeTask, task: t, cooling: res.blocked && !res.sameExit})
	}
	return true
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
	if res.blocked {
		// Tried again through another exit, whatever --retry-on says; a
		// request that may have changed something only when the target
		// said it did not take it.
		if !idempotent(d.opts.Method) && res.sent && res.status != 429 {
			return 0, false
		}
		if res.sameExit {
			return d.backoffWait(t, res), true
		}
		return d.unblockedIn(t.host), true
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
	return d.backoffWait(t, res), true
}

// backoffWait is the wait before the task's next attempt after res: the
// server's Retry-After up to --backoff-max, else the backoff for the
// retries spent.
func (d *dispatcher) backoffWait(t *task, res *result) time.Duration {
	if res.hasRetryAfter {
		return min(res.retryAfter, d.opts.BackoffMax)
	}
	return backoff(d.opts.Backoff, d.opts.BackoffMax, t.attempts-t.reroutes)
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
		Proxy:           res.proxy,
		Blocked:         res.blocked,
		BytesOut:        t.wireOut,
		BytesIn:         t.wireIn,
		Time:            t.start.UTC(),
		HostKey:         t.job.host,
	}
	if d.opts.Adaptive {
		// The summary reports the limit of each host's last record.
		rec.HostLimit = t.host.adapt.limit()
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
		Time:  d.clock.Now().UTC(),
		Error: &report.Error{Kind: report.KindInvalidURL, Message: secret.Text(j.Err.Error(), d.opts.Secrets...)},
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
