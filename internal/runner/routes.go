package runner

import (
	"container/heap"
	"fmt"
	"net/http"
	"time"

	"github.com/fetchctl/fetchctl/internal/report"
)

// route is the dispatcher's state for one way out.
type route struct {
	Route
	index     int
	inflight  int
	fails     int // consecutive proxy failures
	down      bool
	lastError string
	// blocks are the hosts that blocked this route, until when.
	blocks map[string]time.Time
}

// coolingFor returns until when the route cools down for host, which
// blocked it; ok is false when it does not (any more) at now.
func (r *route) coolingFor(host string, now time.Time) (until time.Time, ok bool) {
	if len(r.blocks) == 0 {
		return time.Time{}, false
	}
	until, ok = r.blocks[host]
	if ok && !now.Before(until) {
		delete(r.blocks, host)
		return time.Time{}, false
	}
	return until, ok
}

// block marks the exit of a blocked attempt: a route that can give the host
// a fresh session does so; any other gets a cool-down of
// Options.ProxyCooldown for the host, unless the block is a 429 and no
// other route can carry the host's requests now (one proxy without
// sessions, or every other one set aside, failing or cooling down for the
// host): the host then keeps that exit, and the URL is retried through it
// after a backoff (res.sameExit, task.keep), as a 429 is without a proxy.
// A cool-down there would stall the host for the whole of it over an
// answer that asks it to slow down, which the backoff (and --adaptive)
// does, and would send its URLs to a proxy that fails them.
func (d *dispatcher) block(res *result, now time.Time) {
	if !res.blocked {
		return
	}
	r, key := res.route, res.task.host.key
	if rot, ok := r.Client.(Rotator); ok && rot.Rotate(res.task.job.parsed.Host, res.exit) {
		return
	}
	if res.status == http.StatusTooManyRequests && !d.otherExit(r, key, now) {
		res.sameExit = true
		res.task.keep = r
		return
	}
	if r.blocks == nil {
		r.blocks = map[string]time.Time{}
	}
	if len(r.blocks) >= maxBlocks {
		// Forget the blocks that have run out; a host that blocks every
		// route keeps the map small.
		for h, until := range r.blocks {
			if !now.Before(until) {
				delete(r.blocks, h)
			}
		}
	}
	r.blocks[key] = now.Add(d.opts.ProxyCooldown)
	d.logf("proxy %s: blocked by %s, not used for it for %s", r.Proxy, key, d.opts.ProxyCooldown)
}

// otherExit reports whether a route other than r can take the host key's
// requests now: it is in use, its last attempt did not fail at the proxy
// (a dead proxy not yet set aside fails them), and it does not cool down
// for the host.
func (d *dispatcher) otherExit(r *route, key string, now time.Time) bool {
	for _, o := range d.routes {
		if o == r || o.down || o.fails > 0 {
			continue
		}
		if _, cooling := o.coolingFor(key, now); !cooling {
			return true
		}
	}
	return false
}

// maxBlocks is how many hosts a route remembers blocks of before it sweeps
// the expired ones.
const maxBlocks = 1024

// unblockedIn returns how long until some route in use may carry h's next
// request: 0 when one does not cool down for h now.
func (d *dispatcher) unblockedIn(h *host) time.Duration {
	now := d.clock.Now()
	var soonest time.Time
	for _, r := range d.routes {
		if r.down {
			continue
		}
		until, cooling := r.coolingFor(h.key, now)
		if !cooling {
			return 0
		}
		if soonest.IsZero() || until.Before(soonest) {
			soonest = until
		}
	}
	if soonest.IsZero() {
		return 0
	}
	return soonest.Sub(now)
}

// routeFree reports whether the run may start one more attempt: a slot is
// free in total and on some route in use.
func (d *dispatcher) routeFree() bool {
	if d.inflight >= d.opts.Limit {
		return false
	}
	for _, r := range d.routes {
		if !r.down && r.inflight < d.opts.PerProxy {
			return true
		}
	}
	return false
}

// pickRoute chooses a route on which h may start one more request: the
// least loaded, the search starting after the route picked last so that
// routes equally loaded (idle ones, with many proxies) take turns. parked
// reports that some route was skipped only for being full. The host's own
// limit holds over all routes together: that is the target's tolerance.
//
// A route that cools down for h (h blocked it) carries none of h's
// requests until the cool-down ends. When every route in use cools down
// for h, pickRoute returns the end of the first cool-down in wake: h
// waits for it.
//
// A task whose last attempt failed at its proxy is never handed straight
// back to that proxy while another one is in use: it waits for a slot
// there, or for the other to cool down for h, instead, so that a dead
// proxy, which answers fastest and so looks least loaded, does not take
// the same URL again and again before it is set aside.
//
// A task retried after a 429 through an exit that had no other to rotate
// to (task.keep) goes through that exit again while it is in use. With
// routes that keep an exit per host (Route.KeepHost), h stays on the
// route it was given (h.pin) while that route can carry its requests.
func (d *dispatcher) pickRoute(h *host) (best *route, parked bool, wake time.Time) {
	if h.inflight >= h.limit(d.opts) {
		return nil, false, time.Time{}
	}
	now := d.clock.Now()
	avoid := d.failedRoute(h)
	p := h.pin
	if k := h.queue[h.qhead].keep; k != nil && !k.down {
		p = k
	}
	if p != nil && !p.down && p != avoid {
		if _, cooling := p.coolingFor(h.key, now); !cooling {
			if p.inflight >= d.opts.PerProxy {
				return nil, true, time.Time{}
			}
			return p, false, time.Time{}
		}
	}
	n := len(d.routes)
	for i := range n {
		r := d.routes[(d.rnext+i)%n]
		if r.down {
			continue
		}
		if len(r.blocks) > 0 {
			if until, cooling := r.coolingFor(h.key, now); cooling {
				if wake.IsZero() || until.Before(wake) {
					wake = until
				}
				continue
			}
		}
		if r == avoid {
			continue
		}
		if r.inflight >= d.opts.PerProxy {
			parked = true
			continue
		}
		if best == nil || r.inflight < best.inflight {
			best = r
			if r.inflight == 0 {
				break
			}
		}
	}
	if best == nil {
		if parked {
			wake = time.Time{}
		}
		return nil, parked, wake
	}
	d.rnext = best.index + 1
	if d.keepHost > 0 {
		h.pin = best
	}
	return best, false, time.Time{}
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

// unpark makes the hosts that waited for a route slot ready again.
func (d *dispatcher) unpark() {
	for _, h := range d.parked {
		h.parked = false
		d.markReady(h)
	}
	clear(d.parked)
	d.parked = d.parked[:0]
}

// endCoolingWaits ends at now the waits of tasks and hosts for an exit to
// cool down for their host: a proxy back in use may carry them. Those for
// which every exit still cools down wait again, for what is left; a task's
// history says how long it did wait.
func (d *dispatcher) endCoolingWaits(now time.Time) {
	kept := d.timers[:0]
	for _, e := range d.timers {
		if !e.cooling {
			kept = append(kept, e)
			continue
		}
		switch e.kind {
		case wakeTask:
			t := e.task
			if n := len(t.history); n > 0 && t.history[n-1].WaitMS != nil {
				*t.history[n-1].WaitMS -= ms(e.at.Sub(now))
			}
			t.host.waiting--
			t.host.pushFront(t)
			d.markReady(t.host)
		case wakeHost:
			e.host.asleep = false
			d.markReady(e.host)
		}
	}
	if len(kept) == len(d.timers) {
		return
	}
	clear(d.timers[len(kept):])
	d.timers = kept
	heap.Init(&d.timers)
}

// trackProxy counts a proxy's failures in a row and sets the proxy aside
// for the cool-down when they reach Options.ProxyFailures; when no proxy is
// left in use the run ends with [ErrAllProxiesDown]. A proxy that answered
// for itself that the target could not be reached, or is one it refuses,
// neither counts nor breaks the streak: a dead or banned target host must
// not take the proxy down.
func (d *dispatcher) trackProxy(res *result, r *route, now time.Time) {
	if r.Proxy == "" {
		return
	}
	if res.kind != report.KindProxy {
		r.fails = 0
		return
	}
	if res.targetUnreachable {
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

// maybeReclaim forgets an idle host, unless its rate limiter still has to
// space the next request, in which case it looks again when that passes.
