package runner

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/fetchctl/fetchctl/internal/report"
)

// dispatcher is the state of one [Run]. Every field is owned by the
// goroutine that runs loop; workers see only what is handed to them in a
// work and hand back a result.
type dispatcher struct {
	opts    Options
	clock   clock
	ctx     context.Context
	hosts   map[string]*host
	ready   []*host // round-robin queue of hosts that may be able to start
	rhead   int
	parked  []*host // hosts that wait for a route slot
	routes  []*route
	rnext   int // where pickRoute starts looking
	timers  timerHeap
	results chan *result
	work    chan work
	workers int // started so far; each lives until the run ends
	out     chan *report.Record
	wg      sync.WaitGroup

	pending int // jobs accepted and not yet finished
	// sinceNewHost counts the jobs accepted since the last one for a host
	// with no work queued, waiting or in flight (see wantJobs).
	sinceNewHost int
	inflight     int
	upRoutes     int
	fatal        error
	// spent is the bytes on the wire through proxies so far.
	spent int64
	// late gathers the bytes of dials that ended after their attempt.
	late lateWire
	// keepHost is the longest Route.KeepHost: when positive, each host
	// keeps the route it was given (host.pin), and pins remembers it for
	// keepHost after the host was forgotten.
	keepHost  time.Duration
	pins      map[string]pin
	pinsSwept time.Time
}

// pin is the route of a host that was forgotten, and until when it holds.
type pin struct {
	route *route
	until time.Time
}

// Run fetches every job received from jobs until jobs is closed and all are
// done, calling emit once per job from a single goroutine, in completion
// order. Invalid jobs are emitted at once with attempts 0.
//
// When ctx is cancelled Run stops dispatching, cancels the requests in flight
// and returns ctx's error once every record finished before the cancel has
// been emitted; the jobs cancelled get no record. An error from emit ends the
// run the same way and is returned. Run returns [ErrAllProxiesDown] (wrapped)
// when every proxy route has been set aside. Run never leaves a goroutine
// behind; it does not drain jobs after it returns.
func Run(ctx context.Context, opts Options, jobs <-chan Job, emit func(*report.Record) error) error {
	if len(opts.Routes) == 0 {
		return errors.New("no route")
	}
	opts.setDefaults()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchBudget(opts, cancel)
	d := &dispatcher{
		opts:    opts,
		clock:   opts.clock,
		ctx:     ctx,
		hosts:   make(map[string]*host),
		results: make(chan *result, 64),
		work:    make(chan work),
		out:     make(chan *report.Record, 256),
		late:    lateWire{wake: make(chan struct{}, 1)},
	}
	for i, r := range opts.Routes {
		d.routes = append(d.routes, &route{Route: r, index: i})
		d.keepHost = max(d.keepHost, r.KeepHost)
	}
	if d.keepHost > 0 {
		d.pins = make(map[string]pin)
	}
	d.upRoutes = len(d.routes)

	emitErr := make(chan error, 1)
	var writerDone sync.WaitGroup
	writerDone.Add(1)
	go func() {
		defer writerDone.Done()
		var failed bool
		for rec := range d.out {
			if failed {
				continue
			}
			if err := emit(rec); err != nil {
				failed = true
				emitErr <- err
			}
		}
	}()

	err := d.loop(jobs, emitErr)
	cancel(nil)
	// Wait for the attempts still running; their results are dropped.
	for d.inflight > 0 {
		res := <-d.results
		d.inflight--
		d.unrecorded(res.task, res)
	}
	if opts.Settle != nil {
		opts.Settle()
	}
	d.takeLate()
	d.unfinished(err)
	close(d.work)
	d.wg.Wait()
	close(d.out)
	writerDone.Wait()
	if err == nil {
		select {
		case err = <-emitErr:
		default:
		}
	}
	return err
}

func (d *dispatcher) loop(jobs <-chan Job, emitErr <-chan error) error {
	timer := d.clock.NewTimer()
	defer timer.Stop()
	var timerAt time.Time
	for {
		d.dispatch()
		if d.fatal != nil {
			return d.fatal
		}
		if jobs == nil && d.pending == 0 {
			return nil
		}
		var jobsC <-chan Job
		if jobs != nil && d.wantJobs() {
			jobsC = jobs
		}
		var timerC <-chan time.Time
		if len(d.timers) > 0 {
			if at := d.timers[0].at; !at.Equal(timerAt) {
				timer.ResetAt(at)
				timerAt = at
			}
			timerC = timer.C()
		}
		select {
		case job, ok := <-jobsC:
			if !ok {
				jobs = nil
				continue
			}
			d.accept(job)
			// Take whatever else is ready without another trip through
			// select: reading ahead is what keeps every host busy.
			for n := 0; n < 256 && d.wantJobs(); n++ {
				select {
				case job, ok := <-jobs:
					if !ok {
						jobs = nil
						n = 256
						continue
					}
					d.accept(job)
					continue
				default:
				}
				break
			}
		case res := <-d.results:
			d.complete(res)
		case <-d.late.wake:
			d.takeLate()
		case <-timerC:
			timerAt = time.Time{}
			d.fireTimers(d.clock.Now())
		case err := <-emitErr:
			return err
		case <-d.ctx.Done():
			return stopCause(d.ctx)
		}
	}
}

// wantJobs reports whether the loop takes more jobs, up to the read-ahead:
// while a slot is free (a job further down the list may be for a host that
// can start now), while fewer jobs are queued than there are slots, and
// while the list keeps bringing hosts with no work under way. On a list
// sorted by host those hosts are what the slots spread over; left unread,
// they would run last, on a few slots each, after the others are done. On a
// list that brings no new host, a run whose every slot is busy holds Limit
// queued jobs or so, not the whole read-ahead.
func (d *dispatcher) wantJobs() bool {
	if d.pending >= d.opts.ReadAhead {
		return false
	}
	return d.inflight < d.opts.Limit || d.pending-d.inflight < d.opts.Limit ||
		d.sinceNewHost < newHostWindow*d.opts.Limit
}

// newHostWindow, times Limit, is how many jobs in a row may come for hosts
// already queued before the loop stops reading ahead of busy slots.
const newHostWindow = 2

func (d *dispatcher) accept(job Job) {
	if job.Err != nil {
		d.pending++
		d.emitInvalid(job)
		return
	}
	h := d.hosts[job.host]
	d.sinceNewHost++
	if h == nil {
		d.sinceNewHost = 0
		h = &host{key: job.host}
		if d.opts.Rate > 0 {
			h.limiter = rate.NewLimiter(rate.Limit(d.opts.Rate), 1)
		}
		h.adapt.init(d.opts.PerHost)
		d.hosts[job.host] = h
		if d.keepHost > 0 {
			h.pin = d.unpin(job.host)
		}
	}
	h.pushBack(&task{job: job, host: h})
	d.pending++
	d.markReady(h)
}

// dispatch starts as many attempts as the free slots allow, round-robin over
// the hosts that have queued work, so that no host waits behind another.
func (d *dispatcher) dispatch() {
	for d.rhead < len(d.ready) && d.ctx.Err() == nil && d.routeFree() {
		h := d.popReady()
		if h.queued() == 0 || h.asleep {
			continue
		}
		r, parked, wake := d.pickRoute(h)
		if r == nil {
			switch {
			case parked:
				h.parked = true
				d.parked = append(d.parked, h)
			case !wake.IsZero():
				// Every exit cools down for the host: its URLs wait, holding
				// no slot, for the first one to come back.
				h.asleep = true
				d.schedule(timerEntry{at: wake, kind: wakeHost, host: h, cooling: true})
			}
			continue
		}
		if h.limiter != nil {
			now := d.clock.Now()
			res := h.limiter.ReserveN(now, 1)
			if delay := res.DelayFrom(now); delay > 0 {
				res.CancelAt(now)
				h.asleep = true
				d.schedule(timerEntry{at: now.Add(delay), kind: wakeHost, host: h})
				continue
			}
		}
		d.start(h.popFront(), r)
		d.markReady(h)
	}
}

func (d *dispatcher) start(t *task, r *route) {
	h := t.host
	h.inflight++
	r.inflight++
	d.inflight++
	t.attempts++
	t.lastRoute = r
	t.keep = nil
	now := d.clock.Now()
	if t.start.IsZero() {
		t.start = now
	}
	if d.inflight > d.workers {
		// Every worker is busy: one more. Workers live for the whole run,
		// so the stacks net/http grows are reused, and their number follows
		// the peak in flight, not the number of URLs.
		d.workers++
		d.wg.Add(1)
		go d.worker()
	}
	// A free worker exists: the in-flight count covers every worker that
	// has not handed back its result, and it does not exceed the workers.
	d.work <- work{t: t, r: r, start: now}
}

func (d *dispatcher) logf(format string, args ...any) {
	if d.opts.Logf != nil {
		d.opts.Logf(format, args...)
	}
}

func ms(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
