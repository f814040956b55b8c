package runner

import (
	"fmt"
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
}

// routeFree reports whether some route in use has a free slot.
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

// unpark makes the hosts that waited for a route slot ready again.
func (d *dispatcher) unpark() {
	for _, h := range d.parked {
		h.parked = false
		d.markReady(h)
	}
	clear(d.parked)
	d.parked = d.parked[:0]
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
