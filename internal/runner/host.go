package runner

import (
	"time"

	"github.com/fetchctl/fetchctl/internal/report"
	"golang.org/x/time/rate"
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
	// keep is the exit the task's next attempt goes through: the one that
	// answered 429 with no other exit to rotate to (see [dispatcher.block]).
	keep *route
	// wireOut and wireIn add up the bytes on the wire of the attempts
	// made through proxies.
	wireOut, wireIn int64
}

// host is the dispatcher's state for one host key. It exists while the host
// has queued, waiting or in-flight work, so memory follows live hosts.
type host struct {
	key      string
	queue    []*task // FIFO; queue[qhead:] are waiting for a slot
	qhead    int
	inflight int // over all routes
	waiting  int // tasks in a backoff
	inReady  bool
	parked   bool
	asleep   bool // waits for a timer: its rate limiter, or an exit cooling down for it
	reclaim  bool // a reclaim check is scheduled
	limiter  *rate.Limiter
	adapt    adaptive
	// pin is the route the host keeps, with routes that keep an exit per
	// host (see Route.KeepHost).
	pin *route
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
	return h.queued() == 0 && h.inflight == 0 && h.waiting == 0 && !h.asleep
}

func (d *dispatcher) markReady(h *host) {
	if h.inReady || h.parked || h.asleep || h.queued() == 0 {
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

func (d *dispatcher) maybeReclaim(h *host) {
	if !h.idle() || h.inReady || h.parked || h.reclaim {
		return
	}
	if h.limiter != nil {
		now := d.clock.Now()
		if tokens := h.limiter.TokensAt(now); tokens < 1 {
			h.reclaim = true
			wait := time.Duration((1 - tokens) / d.opts.Rate * float64(time.Second))
			d.schedule(timerEntry{at: now.Add(wait + time.Millisecond), kind: wakeReclaim, host: h})
			return
		}
	}
	delete(d.hosts, h.key)
	if h.pin != nil {
		d.remember(h)
	}
}

// remember keeps the route of a host being forgotten for d.keepHost, as
// long as the route's exit for it lasts at most, so that the host comes
// back to it; it also drops the pins that have run out, once per keepHost.
func (d *dispatcher) remember(h *host) {
	now := d.clock.Now()
	if now.Sub(d.pinsSwept) >= d.keepHost {
		d.pinsSwept = now
		for key, p := range d.pins {
			if !now.Before(p.until) {
				delete(d.pins, key)
			}
		}
	}
	d.pins[h.key] = pin{route: h.pin, until: now.Add(d.keepHost)}
}

// unpin returns the route remembered for a host met again, or nil.
func (d *dispatcher) unpin(key string) *route {
	p, ok := d.pins[key]
	if !ok {
		return nil
	}
	delete(d.pins, key)
	if !d.clock.Now().Before(p.until) {
		return nil
	}
	return p.route
}
