package main

import "fmt"

// fdReserve is kept free for the inputs, the output, body files, DNS and
// the runtime.
const fdReserve = 64

// fitOpenFiles lowers the total limit when the open-file limit cannot hold
// the connections it needs (one per request in flight on every route, plus
// --max-idle idle ones), so a run never fails with EMFILE half-way. It
// returns the limit to use, the open files each route may keep in its idle
// pool (0 when the limit is unknown), and a one-line notice when it had to
// lower the limit.
func fitOpenFiles(fdLimit uint64, limit, routes, maxIdle int) (int, int, string) {
	if fdLimit == 0 || routes < 1 {
		return limit, 0, ""
	}
	budget := func(l int) int {
		return max((int(fdLimit)-fdReserve-l*routes)/routes, 1)
	}
	need := uint64(limit*routes+maxIdle) + fdReserve
	if need <= fdLimit {
		return limit, budget(limit), ""
	}
	avail := int(fdLimit) - fdReserve - maxIdle
	lowered := avail / routes
	if lowered < 1 {
		lowered = 1
	}
	return lowered, budget(lowered), fmt.Sprintf("open-file limit is %d, too low for --limit %d over %d route(s) and %d idle connections; using --limit %d (raise it with 'ulimit -n')",
		fdLimit, limit, routes, maxIdle, lowered)
}
