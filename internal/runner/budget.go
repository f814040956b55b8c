package runner

import (
	"context"
	"errors"
	"sync"

	"github.com/fetchctl/fetchctl/internal/report"
)

// watchBudget has the run stop, through cancel, the moment the bytes on
// the wire through proxies reach Options.Meter's limit: the transport
// calls back from the goroutine whose read or write reached it, and every
// connection through a proxy fails from then on.
func watchBudget(opts Options, cancel context.CancelCauseFunc) {
	m := opts.Meter
	if m == nil || m.Limit() <= 0 {
		return
	}
	m.OnLimit(func() { cancel(&BudgetError{Budget: m.Limit(), Text: opts.BudgetText}) })
}

// stopCause is why the run's context ended: a *BudgetError when the
// budget did it, else the context's error.
func stopCause(ctx context.Context) error {
	var be *BudgetError
	if errors.As(context.Cause(ctx), &be) {
		return be
	}
	return ctx.Err()
}

// unrecorded counts the attempts of a task that the run leaves without a
// record: res, the attempt that came back after the stop (nil for none),
// joins the bytes spent, and every attempt through a proxy, res and those
// before it, goes to Options.Unrecorded. The proxies carried them all the
// same.
func (d *dispatcher) unrecorded(t *task, res *result) {
	for i, a := range t.history {
		d.lose(a, i > 0)
	}
	if res == nil {
		return
	}
	d.spent += res.wireOut + res.wireIn
	d.lose(report.Attempt{Proxy: res.proxy, BytesOut: res.wireOut, BytesIn: res.wireIn}, t.attempts > 1)
}

func (d *dispatcher) lose(a report.Attempt, retry bool) {
	if d.opts.Unrecorded != nil && (a.BytesOut > 0 || a.BytesIn > 0) {
		d.opts.Unrecorded(a, retry)
	}
}

// unfinished, once a run that ended with err has no attempt in flight,
// reports the earlier attempts of the tasks left queued or waiting for a
// retry, and sets what a *BudgetError says was spent: every attempt's
// bytes, those cancelled by the stop included.
func (d *dispatcher) unfinished(err error) {
	if d.pending > 0 && d.opts.Unrecorded != nil {
		for _, h := range d.hosts {
			for _, t := range h.queue[h.qhead:] {
				d.unrecorded(t, nil)
			}
		}
		for _, e := range d.timers {
			if e.kind == wakeTask {
				d.unrecorded(e.task, nil)
			}
		}
	}
	var be *BudgetError
	if errors.As(err, &be) {
		be.Spent = d.spent
	}
}

// lateWire gathers the bytes that connections through proxies report after
// the attempt that dialled them has claimed its own: a dial that outlived
// its attempt (the attempt timed out, or took another connection) and then
// failed, or was closed unused. Those bytes went over the wire all the
// same; the dispatcher takes them as an attempt of no record. Safe for
// concurrent use.
type lateWire struct {
	mu   sync.Mutex
	list []lateBytes
	// wake tells the dispatcher that list holds something.
	wake chan struct{}
}

// lateBytes are bytes of one attempt's dial, as an Attempt naming its
// proxy; retry is true when it was not the job's first attempt.
type lateBytes struct {
	a     report.Attempt
	retry bool
}

func (l *lateWire) add(b lateBytes) {
	if b.a.BytesOut == 0 && b.a.BytesIn == 0 {
		return
	}
	l.mu.Lock()
	l.list = append(l.list, b)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// takeLate counts the late bytes gathered so far: in the bytes spent, and
// through Options.Unrecorded in the totals and by_proxy.
func (d *dispatcher) takeLate() {
	d.late.mu.Lock()
	list := d.late.list
	d.late.list = nil
	d.late.mu.Unlock()
	for _, b := range list {
		d.addSpent(b.a.BytesOut + b.a.BytesIn)
		d.lose(b.a, b.retry)
	}
}
