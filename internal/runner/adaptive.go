package runner

import "time"

var timeNow = time.Now

// adaptive is one host's concurrency window, in the manner of TCP congestion
// control: slow start from 1 doubles the window each round of successes up to
// the threshold, then it grows by one per window of successes; a 429, a 503
// or a timeout halves it, once per window (a cut ignores the signals of
// requests sent before the previous cut).
type adaptive struct {
	cwnd, ssthresh float64
	cutAt          int64 // start time (unix ns) of the last cut
}

func (a *adaptive) init(perHost int) {
	a.cwnd = 1
	a.ssthresh = float64(perHost)
}

func (a *adaptive) limit() int {
	if a.cwnd < 1 {
		return 1
	}
	return int(a.cwnd)
}

func (h *host) limit(o Options) int {
	if o.Adaptive {
		return min(h.adapt.limit(), o.PerHost)
	}
	return o.PerHost
}

// observe updates the window from one attempt's outcome. It reports the old
// limit and whether the limit changed.
func (a *adaptive) observe(res *result, perHost int) (old int, changed bool) {
	old = a.limit()
	congested := res.status == 429 || res.status == 503 || res.kind == "timeout"
	switch {
	case congested:
		if res.start.UnixNano() <= a.cutAt {
			return old, false
		}
		a.ssthresh = max(a.cwnd/2, 1)
		a.cwnd = a.ssthresh
		// Requests already in flight were sent under the old window; only
		// those started from now on may cut again.
		a.cutAt = timeNow().UnixNano()
	case res.status != 0:
		if a.cwnd < a.ssthresh {
			a.cwnd++
		} else {
			a.cwnd += 1 / a.cwnd
		}
		a.cwnd = min(a.cwnd, float64(perHost))
	default:
		return old, false
	}
	return old, a.limit() != old
}
