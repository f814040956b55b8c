package runner

import (
	"time"

	"github.com/fetchctl/fetchctl/internal/report"
)

// maxStrikes bounds how much slower the probe of a level that failed before
// gets: 2^maxStrikes times the normal growth.
const maxStrikes = 6

// adaptive is one host's concurrency window, in the manner of TCP congestion
// control.
//
//   - Slow start: from 1, the window grows by one per success, so it doubles
//     each round trip, up to the threshold (PerHost at first).
//   - Congestion avoidance: past the threshold it grows by one per window of
//     successes.
//   - A 429, a 503 or a timeout halves the window, once per window: a cut
//     ignores every outcome, good or bad, of the requests sent before it.
//   - The window grows only when it was in use: a success that came back
//     while fewer requests than the limit were in flight says nothing about
//     whether the host takes more (RFC 7661's reasoning), so a host fed a
//     trickle does not end up with a window it never tried.
//   - Probing the level of the last cut again is spaced out: the step from
//     one below that level back up to it is 2^strikes times slower, strikes
//     counting the cuts in a row at that same level. A host with a hard
//     concurrency cap is thus tried above the cap less and less often, as
//     CUBIC lingers near the window of its last loss. A whole window of
//     successes at that level forgets it.
//
// The zero value is not ready: call init. It is owned by the dispatcher's
// goroutine.
type adaptive struct {
	cwnd, ssthresh int
	acked          int   // window-full successes toward the next step up
	cutAt          int64 // time (unix ns) of the last cut

	failedAt int // limit in force at the last cut; 0 when none is remembered
	strikes  int // cuts in a row at failedAt
	heldOK   int // window-full successes at failedAt or above since the cut
}

func (a *adaptive) init(perHost int) {
	*a = adaptive{cwnd: 1, ssthresh: perHost}
}

func (a *adaptive) limit() int { return max(a.cwnd, 1) }

func (h *host) limit(o Options) int {
	if o.Adaptive {
		return min(h.adapt.limit(), o.PerHost)
	}
	return o.PerHost
}

// congested reports whether an attempt's outcome asks the host's window to
// shrink.
func congested(res *result) bool {
	return res.status == 429 || res.status == 503 || res.kind == report.KindTimeout
}

// windowFull reports whether the host had at least limit requests in flight
// (over all routes) when res came back. The dispatcher frees the attempt's slot
// before it calls observe, so the attempt itself is added back.
func windowFull(res *result, limit int) bool {
	if res.task == nil || res.task.host == nil {
		return true
	}
	h := res.task.host
	return h.inflight+1 >= limit
}

// observe updates the window from one attempt's outcome, now being the
// dispatcher's time: a cut is stamped with it, and the outcomes of attempts
// started before the cut are ignored. It reports the old limit and whether
// the limit changed.
func (a *adaptive) observe(res *result, perHost int, now time.Time) (old int, changed bool) {
	old = a.limit()
	if res.start.UnixNano() <= a.cutAt {
		// Sent under the window before the last cut.
		return old, false
	}
	switch {
	case congested(res):
		if old == a.failedAt {
			a.strikes = min(a.strikes+1, maxStrikes)
		} else {
			a.failedAt, a.strikes = old, 1
		}
		a.heldOK, a.acked = 0, 0
		a.ssthresh = max(a.cwnd/2, 1)
		a.cwnd = a.ssthresh
		a.cutAt = now.UnixNano()
	case res.status != 0:
		if !windowFull(res, old) {
			return old, false
		}
		if a.failedAt > 0 && old >= a.failedAt {
			if a.heldOK++; a.heldOK >= old {
				a.failedAt, a.strikes, a.heldOK = 0, 0, 0
			}
		}
		if a.cwnd < a.ssthresh {
			a.cwnd++
		} else {
			need := a.cwnd
			if a.failedAt > 0 && old == a.failedAt-1 {
				need <<= a.strikes
			}
			if a.acked++; a.acked >= need {
				a.cwnd++
				a.acked = 0
			}
		}
		a.cwnd = min(a.cwnd, perHost)
	default:
		return old, false
	}
	return old, a.limit() != old
}
