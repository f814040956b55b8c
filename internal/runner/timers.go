package runner

import (
	"container/heap"
	"time"
)

// clock is the time as the dispatcher reads it: when a task starts, when a
// cut to a host's window was made, when rate limits, retry waits and a
// proxy's cool-down end. Runs use the system's clock; tests use one whose
// waits take no time, so that what the dispatcher schedules is exact.
type clock interface {
	Now() time.Time
	// NewTimer returns a timer that is not set.
	NewTimer() wakeTimer
}

// wakeTimer delivers on C once the time set with ResetAt has come.
type wakeTimer interface {
	C() <-chan time.Time
	// ResetAt sets the timer to at, replacing any earlier setting.
	ResetAt(at time.Time)
	Stop()
}

// systemClock is the system's clock.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer() wakeTimer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return systemTimer{t}
}

type systemTimer struct{ t *time.Timer }

func (t systemTimer) C() <-chan time.Time  { return t.t.C }
func (t systemTimer) ResetAt(at time.Time) { t.t.Reset(time.Until(at)) }
func (t systemTimer) Stop()                { t.t.Stop() }

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
	// cooling marks the wait of a task or a host for an exit to cool down
	// for its host: a proxy back in use ends it early.
	cooling bool
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
			e.host.asleep = false
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
			d.endCoolingWaits(now)
		}
	}
}
