package runner

import (
	"compress/gzip"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/secret"
)

// task is one job on its way through the dispatcher, across its attempts.
type task struct {
	job       Job
	host      *host
	start     time.Time // first attempt
	attempts  int
	reroutes  int // attempts moved to another proxy, not counted as retries
	history   []report.Attempt
	lastRoute *route
}

// host is the dispatcher's state for one host key. It exists while the host
// has queued, waiting or in-flight work, so memory follows live hosts.
type host struct {
	key      string
	queue    []*task // FIFO; queue[qhead:] are waiting for a slot
	qhead    int
	inflight int
	perRoute []int // in flight per route, when there are several routes
	waiting  int   // tasks in a backoff
	inReady  bool
	parked   bool
	rateWait bool // waiting for its rate limiter
	reclaim  bool // a reclaim check is scheduled
	limiter  *rate.Limiter
	adapt    adaptive
}

func (h *host) queued() int { return len(h.queue) - h.qhead }

func (h *host) pushBack(t *task) { h.queue = append(h.queue, t) }

func (h *host) pushFront(t *task) {
	if h.qhead > 0 {
		h.qhead--
		h.queue[h.qhead] = t
		return
	}
	h.queue = append(h.queue, nil)
	copy(h.queue[1:], h.queue)
	h.queue[0] = t
}

func (h *host) popFront() *task {
	t := h.queue[h.qhead]
	h.queue[h.qhead] = nil
	h.qhead++
	switch {
	case h.qhead == len(h.queue):
		h.queue = h.queue[:0]
		h.qhead = 0
	case h.qhead >= 64 && h.qhead*2 >= len(h.queue):
		// A host whose queue never empties would otherwise grow its slice
		// for ever: move the live part down once half of it is spent.
		n := copy(h.queue, h.queue[h.qhead:])
		clear(h.queue[n:])
		h.queue = h.queue[:n]
		h.qhead = 0
	}
	return t
}

func (h *host) idle() bool {
	return h.queued() == 0 && h.inflight == 0 && h.waiting == 0 && !h.rateWait
}

// route is the dispatcher's state for one way out.
type route struct {
	Route
	index     int
	inflight  int
	fails     int // consecutive proxy failures
	down      bool
	lastError string
}

// timer kinds
const (
	wakeTask = iota
	wakeHost
	wakeRoute
	wakeReclaim
)

type timerEntry struct {
	at    time.Time
	kind  int
	task  *task
	host  *host
	route *route
}

type timerHeap []timerEntry

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timerEntry)) }
func (h *timerHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = timerEntry{}
	*h = old[:len(old)-1]
	return e
}

type dispatcher struct {
	opts    Options
	ctx     context.Context
	hosts   map[string]*host
	ready   []*host // round-robin queue of hosts that may be able to start
	rhead   int
	parked  []*host // hosts that wait for a route slot
	routes  []*route
	timers  timerHeap
	results chan *result
	work    chan work
	workers int // started so far; each lives until the run ends
	out     chan *report.Record
	wg      sync.WaitGroup

	pending  int // jobs accepted and not yet finished
	inflight int
	upRoutes int
	fatal    error
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
		return fmt.Errorf("runner: no route")
	}
	opts.setDefaults()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := &dispatcher{
		opts:    opts,
		ctx:     ctx,
		hosts:   make(map[string]*host),
		results: make(chan *result, 64),
		work:    make(chan work),
		out:     make(chan *report.Record, 256),
	}
	for i, r := range opts.Routes {
		d.routes = append(d.routes, &route{Route: r, index: i})
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
	cancel()
	// Wait for the attempts still running; their results are dropped.
	for d.inflight > 0 {
		<-d.results
		d.inflight--
	}
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
	timer := time.NewTimer(time.Hour)
	timer.Stop()
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
		if jobs != nil && d.pending < d.opts.ReadAhead {
			jobsC = jobs
		}
		var timerC <-chan time.Time
		if len(d.timers) > 0 {
			if at := d.timers[0].at; !at.Equal(timerAt) {
				timer.Reset(time.Until(at))
				timerAt = at
			}
			timerC = timer.C
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
			for n := 0; n < 256 && d.pending < d.opts.ReadAhead; n++ {
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
		case <-timerC:
			timerAt = time.Time{}
			d.fireTimers(time.Now())
		case err := <-emitErr:
			return err
		case <-d.ctx.Done():
			return d.ctx.Err()
		}
	}
}

func (d *dispatcher) accept(job Job) {
	if job.Err != nil {
		d.pending++
		d.emitInvalid(job)
		return
	}
	h := d.hosts[job.host]
	if h == nil {
		h = &host{key: job.host}
		if len(d.routes) > 1 {
			h.perRoute = make([]int, len(d.routes))
		}
		if d.opts.Rate > 0 {
			h.limiter = rate.NewLimiter(rate.Limit(d.opts.Rate), 1)
		}
		h.adapt.init(d.opts.PerHost)
		d.hosts[job.host] = h
	}
	h.pushBack(&task{job: job, host: h})
	d.pending++
	d.markReady(h)
}

func (d *dispatcher) markReady(h *host) {
	if h.inReady || h.parked || h.rateWait || h.queued() == 0 {
		return
	}
	h.inReady = true
	d.ready = append(d.ready, h)
}

func (d *dispatcher) popReady() *host {
	h := d.ready[d.rhead]
	d.ready[d.rhead] = nil
	d.rhead++
	if d.rhead == len(d.ready) {
		d.ready = d.ready[:0]
		d.rhead = 0
	} else if d.rhead > 1024 && d.rhead*2 > len(d.ready) {
		n := copy(d.ready, d.ready[d.rhead:])
		clear(d.ready[n:])
		d.ready = d.ready[:n]
		d.rhead = 0
	}
	h.inReady = false
	return h
}

func (d *dispatcher) routeFree() bool {
	for _, r := range d.routes {
		if !r.down && r.inflight < d.opts.Limit {
			return true
		}
	}
	return false
}

// pickRoute chooses the least loaded route on which h may start one more
// request. parked reports that some route was skipped only for being full.
//
// A task whose last attempt failed at its proxy is not handed back to that
// proxy while another one is in use: it waits for a slot there instead, so
// that a dead proxy, which answers fastest and so looks least loaded, does
// not take the same URL again and again before it is set aside.
func (d *dispatcher) pickRoute(h *host) (best *route, parked bool) {
	limit := h.limit(d.opts)
	avoid := d.failedRoute(h)
	for _, r := range d.routes {
		if r.down || r == avoid {
			continue
		}
		if r.inflight >= d.opts.Limit {
			parked = true
			continue
		}
		n := h.inflight
		if h.perRoute != nil {
			n = h.perRoute[r.index]
		}
		if n >= limit {
			continue
		}
		if best == nil || r.inflight < best.inflight {
			best = r
		}
	}
	return best, parked
}

// failedRoute returns the route that the next task of h last failed on with
// a proxy failure, when some other route is in use; otherwise nil.
func (d *dispatcher) failedRoute(h *host) *route {
	if len(d.routes) < 2 || h.queued() == 0 {
		return nil
	}
	t := h.queue[h.qhead]
	r := t.lastRoute
	if r == nil || len(t.history) == 0 || t.history[len(t.history)-1].Error != report.KindProxy {
		return nil
	}
	for _, o := range d.routes {
		if o != r && !o.down {
			return r
		}
	}
	return nil
}

// dispatch starts as many attempts as the free slots allow, round-robin over
// the hosts that have queued work, so that no host waits behind another.
func (d *dispatcher) dispatch() {
	for d.rhead < len(d.ready) && d.ctx.Err() == nil && d.routeFree() {
		h := d.popReady()
		if h.queued() == 0 || h.rateWait {
			continue
		}
		r, parked := d.pickRoute(h)
		if r == nil {
			if parked && len(d.routes) > 1 {
				h.parked = true
				d.parked = append(d.parked, h)
			}
			continue
		}
		if h.limiter != nil {
			now := time.Now()
			res := h.limiter.ReserveN(now, 1)
			if delay := res.DelayFrom(now); delay > 0 {
				res.CancelAt(now)
				h.rateWait = true
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
	if h.perRoute != nil {
		h.perRoute[r.index]++
	}
	r.inflight++
	d.inflight++
	t.attempts++
	t.lastRoute = r
	now := time.Now()
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

// work is one attempt handed to a worker.
type work struct {
	t     *task
	r     *route
	start time.Time
}

// worker makes attempts until the run ends.
func (d *dispatcher) worker() {
	defer d.wg.Done()
	ws := newWorkerState(d.ctx, d.opts.Timeout)
	defer ws.close()
	for w := range d.work {
		d.results <- d.safeAttempt(ws, w)
	}
}

// workerState is what a worker keeps from one attempt to the next.
type workerState struct {
	buf  []byte // for reading bodies
	body io.LimitedReader
	out  onlyWriter
	gz   *gzip.Reader // made for the first gzip body

	// The attempts share one context, a child of the run's, until one
	// of them times out and it is cancelled; the next attempt gets a new
	// one. A context per attempt would cost a context, a timer, and the
	// table of children that net/http's own context per request is
	// entered in; this one's table is reused. Sharing the run's context
	// instead would have every worker take its lock.
	parent   context.Context
	timeout  time.Duration
	timer    *time.Timer // cancels ctx at deadline, when timeout > 0
	mu       sync.Mutex  // guards what follows, which the timer reads
	ctx      context.Context
	cancel   context.CancelCauseFunc
	armed    bool
	deadline time.Time
}

// errAttemptTimeout is the cause of a context cancelled by --timeout.
var errAttemptTimeout = errors.New("attempt timed out")

// errUnanswered is the cause of a context cancelled because too many
// requests of the attempt went unanswered (see maxUnanswered).
var errUnanswered = errors.New("requests unanswered")

func newWorkerState(parent context.Context, timeout time.Duration) *workerState {
	ws := &workerState{buf: make([]byte, 32<<10), parent: parent, timeout: timeout}
	ws.ctx, ws.cancel = context.WithCancelCause(parent)
	if timeout > 0 {
		ws.timer = time.AfterFunc(timeout, ws.expire)
		ws.timer.Stop()
	}
	return ws
}

// begin returns the context of an attempt that starts now, its timeout
// running.
func (ws *workerState) begin() context.Context {
	ws.mu.Lock()
	if ws.ctx.Err() != nil && ws.parent.Err() == nil {
		// The last attempt timed out or was stopped.
		ws.ctx, ws.cancel = context.WithCancelCause(ws.parent)
	}
	ctx := ws.ctx
	if ws.timer != nil {
		ws.armed = true
		ws.deadline = time.Now().Add(ws.timeout)
		ws.timer.Reset(ws.timeout)
	}
	ws.mu.Unlock()
	return ctx
}

// end stops the timeout of the attempt begun last.
func (ws *workerState) end() {
	if ws.timer == nil {
		return
	}
	ws.timer.Stop()
	ws.mu.Lock()
	ws.armed = false
	ws.mu.Unlock()
}

// abort stops the attempt in progress with cause. Its caller makes sure
// that the attempt has not ended.
func (ws *workerState) abort(cause error) {
	ws.mu.Lock()
	ws.cancel(cause)
	ws.mu.Unlock()
}

// expire runs on the timer's goroutine. A firing meant for an attempt that
// has ended may come late, when the next one has begun; the deadline tells.
func (ws *workerState) expire() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.armed && !time.Now().Before(ws.deadline) {
		ws.cancel(errAttemptTimeout)
	}
}

func (ws *workerState) close() {
	if ws.timer != nil {
		ws.timer.Stop()
	}
	ws.cancel(context.Canceled)
}

// safeAttempt runs one attempt; a panic in it ends the run with an error
// (its text scrubbed of secrets) instead of crashing with it unmasked.
func (d *dispatcher) safeAttempt(ws *workerState, w work) (res *result) {
	defer func() {
		if p := recover(); p != nil {
			msg := secret.Text(fmt.Sprintf("%v\n%s", p, debug.Stack()), d.opts.Secrets...)
			res = &result{task: w.t, route: w.r, start: w.start, panicked: msg}
		}
	}()
	return d.attempt(ws, w.t, w.r, w.start)
}

func (d *dispatcher) schedule(e timerEntry) {
	heap.Push(&d.timers, e)
}

func (d *dispatcher) fireTimers(now time.Time) {
	for len(d.timers) > 0 && !d.timers[0].at.After(now) {
		e := heap.Pop(&d.timers).(timerEntry)
		switch e.kind {
		case wakeTask:
			h := e.task.host
			h.waiting--
			h.pushFront(e.task)
			d.markReady(h)
		case wakeHost:
			e.host.rateWait = false
			d.markReady(e.host)
			d.maybeReclaim(e.host)
		case wakeReclaim:
			e.host.reclaim = false
			d.maybeReclaim(e.host)
		case wakeRoute:
			e.route.down = false
			e.route.fails = 0
			d.upRoutes++
			d.logf("proxy %s: back in use after its cool-down", e.route.Proxy)
			d.unpark()
		}
	}
}

func (d *dispatcher) unpark() {
	for _, h := range d.parked {
		h.parked = false
		d.markReady(h)
	}
	clear(d.parked)
	d.parked = d.parked[:0]
}

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
		d.fatal = fmt.Errorf("internal error while fetching %s: %s", secret.URL(t.job.URL), res.panicked)
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
			d.logf("move %s off proxy %s: %s", secret.URL(t.job.URL), r.Proxy, res.msg)
		} else {
			d.logf("retry %d/%d %s: %s; waiting %s", t.attempts-t.reroutes, d.opts.Retries, secret.URL(t.job.URL), res.brief(), wait.Round(time.Millisecond))
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
// for the cool-down when they reach Options.ProxyFailures; when no proxy is
// left in use the run ends with [ErrAllProxiesDown]. A proxy that answered
// for itself that the target could not be reached neither counts nor
// breaks the streak: a dead target host must not take the proxy down.
func (d *dispatcher) trackProxy(res *result, r *route, now time.Time) {
	if r.Proxy == "" {
		return
	}
	if res.kind != report.KindProxy {
		r.fails = 0
		return
	}
	if blamesTarget(res.msg) {
		return
	}
	r.fails++
	r.lastError = res.msg
	if r.down || r.fails < d.opts.ProxyFailures {
		return
	}
	r.down = true
	d.upRoutes--
	if d.upRoutes == 0 {
		d.fatal = fmt.Errorf("%w: %d proxy failures in a row on %s, the last: %s", ErrAllProxiesDown, r.fails, r.Proxy, r.lastError)
		return
	}
	d.logf("proxy %s: set aside for %s after %d failures in a row: %s", r.Proxy, d.opts.ProxyCooldown, r.fails, r.lastError)
	d.schedule(timerEntry{at: now.Add(d.opts.ProxyCooldown), kind: wakeRoute, route: r})
}

// blamesTarget reports whether a proxy failure's message says that the
// proxy works but could not reach the target: a CONNECT answered with a 5xx
// status (the text is the transport's ProxyError, "CONNECT answered 502 Bad
// Gateway"; tinyproxy says "500 Unable to connect"), or a SOCKS5 reply of
// network or host unreachable, connection refused or TTL expired (the text
// is golang.org/x/net/internal/socks's "unknown error host unreachable").
// The messages are all the runner sees of those failures.
func blamesTarget(msg string) bool {
	if strings.Contains(msg, "CONNECT answered 5") {
		return true
	}
	for _, reply := range [...]string{"network unreachable", "host unreachable", "connection refused", "TTL expired"} {
		if strings.Contains(msg, "socks connect") && strings.HasSuffix(msg, "unknown error "+reply) {
			return true
		}
	}
	return false
}

// maybeReclaim forgets an idle host, unless its rate limiter still has to
// space the next request, in which case it looks again when that passes.
func (d *dispatcher) maybeReclaim(h *host) {
	if !h.idle() || h.inReady || h.parked || h.reclaim {
		return
	}
	if h.limiter != nil {
		now := time.Now()
		if tokens := h.limiter.TokensAt(now); tokens < 1 {
			h.reclaim = true
			wait := time.Duration((1 - tokens) / d.opts.Rate * float64(time.Second))
			d.schedule(timerEntry{at: now.Add(wait + time.Millisecond), kind: wakeReclaim, host: h})
			return
		}
	}
	if d.opts.Adaptive && d.opts.OnHostLimit != nil {
		d.opts.OnHostLimit(h.key, h.adapt.limit())
	}
	delete(d.hosts, h.key)
}

func (d *dispatcher) logf(format string, args ...any) {
	if d.opts.Logf != nil {
		d.opts.Logf(format, args...)
	}
}

func ms(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
