package main

import "fmt"

// fdReserve is kept free for the inputs, the output, body files, DNS and
// the runtime.
const fdReserve = 64

// fitOpenFiles lowers the total limit when the open-file limit cannot hold
// the connections it needs (one per request in flight on every route, plus
// the idle pool), so a run never fails with EMFILE half-way. It returns the
// limit to use and a one-line notice when it had to lower it.
func fitOpenFiles(fdLimit uint64, limit, routes, maxIdle int) (int, string) {
	if fdLimit == 0 || routes < 1 {
		return limit, ""
	}
	need := uint64(limit*routes+maxIdle) + fdReserve
	if need <= fdLimit {
		return limit, ""
	}
	avail := int(fdLimit) - fdReserve - maxIdle
	lowered := avail / routes
	if lowered < 1 {
		lowered = 1
	}
	return lowered, fmt.Sprintf("open-file limit is %d, too low for --limit %d over %d route(s) and %d idle connections; using --limit %d (raise it with 'ulimit -n')",
		fdLimit, limit, routes, maxIdle, lowered)
}
