package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// gcHeadroom is the least the heap may grow between two collections of a
// run. Go's default (GOGC=100) lets it grow by as much as it holds live,
// and a run over 50 hosts holds about 4 MiB: it would collect every 4 MiB
// allocated, at a cost per collection that hardly shrinks with the heap
// (most of it is scanning the stacks of the workers and of the idle
// connections' goroutines). With this floor a run collects about as often
// as when it held twice as much, and never more often than GOGC=100 would;
// the heap stays about 7 MiB above what is live.
const gcHeadroom = 7 << 20

// gcPercent is the GOGC that lets the heap grow by at least headroom bytes
// past scanned, the bytes the last collection marked and scanned (live
// heap, stacks and globals, which is what the runtime multiplies by GOGC),
// and never less than Go's default of 100.
func gcPercent(scanned, headroom uint64) int {
	if scanned == 0 {
		return 100
	}
	p := headroom * 100 / scanned
	if p < 100 {
		return 100
	}
	return int(min(p, 10000))
}

// gcTuner sets GOGC after every collection from what it found live.
type gcTuner struct {
	mu       sync.Mutex // makes stop final: no setting after it
	stopped  bool
	headroom uint64
	samples  []metrics.Sample
	set      func(percent int) // debug.SetGCPercent, or a test's
}

// tuneGC keeps the collections of a run gcHeadroom apart at least, and
// returns a function that stops doing so. It does nothing, and returns nil,
// when the user set GOGC or GOMEMLIMIT: the runtime then does as they say.
func tuneGC(getenv func(string) string) (stop func()) {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return nil
	}
	return startGCTuner(gcHeadroom, func(p int) { debug.SetGCPercent(p) })
}

func startGCTuner(headroom uint64, set func(int)) (stop func()) {
	g := &gcTuner{headroom: headroom, set: set, samples: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
	}}
	g.arm()
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if !g.stopped {
			g.stopped = true
			g.set(100)
		}
	}
}

// arm has g.collected called once the next collection is over: it runs
// when an object allocated now is found unreachable.
func (g *gcTuner) arm() {
	runtime.AddCleanup(new([16]byte), (*gcTuner).collected, g)
}

func (g *gcTuner) collected() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return
	}
	metrics.Read(g.samples)
	var scanned uint64
	for _, s := range g.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			scanned += s.Value.Uint64()
		}
	}
	// Armed before the setting is made, so that whoever sees the setting
	// (a test that then collects) finds the next collection watched.
	g.arm()
	g.set(gcPercent(scanned, g.headroom))
}
