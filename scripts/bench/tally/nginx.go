package main

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// serverCounts are what a server's log says about one run.
type serverCounts struct {
	requests, conns, peak int64
	// TLS handshakes, full and resumed, of the connections that carried a
	// request; -1 when no request came over TLS.
	full, resumed int64
}

// countNginx reads the access log written by scripts/bench/nginx.sh, one
// request a line:
//
//	$server_port $connection $connection_requests $ssl_session_reused $msec $request_time $status
//
// A connection counts once, by its serial number ($connection, unique with
// one worker); its handshake was resumed when $ssl_session_reused is "r".
// The peak in flight per host comes from the requests' start (msec minus
// request_time) and end, to the millisecond: an end and a start in the
// same millisecond do not overlap.
func countNginx(r io.Reader) (serverCounts, error) {
	c := serverCounts{full: -1, resumed: -1}
	type event struct {
		ms    int64
		delta int64
	}
	seen := make(map[int64]bool)
	events := make(map[string][]event)
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 7 {
			return c, fmt.Errorf("line %d: %d fields, want 7", n, len(f))
		}
		conn, err1 := strconv.ParseInt(f[1], 10, 64)
		end, err2 := strconv.ParseFloat(f[4], 64)
		took, err3 := strconv.ParseFloat(f[5], 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return c, fmt.Errorf("line %d: %q is not the bench's log format", n, sc.Text())
		}
		c.requests++
		endMS := int64(end*1000 + 0.5)
		events[f[0]] = append(events[f[0]], event{endMS - int64(took*1000+0.5), 1}, event{endMS, -1})
		if seen[conn] {
			continue
		}
		seen[conn] = true
		c.conns++
		switch f[3] {
		case "r":
			c.resumed = max(c.resumed, 0) + 1
			c.full = max(c.full, 0)
		case ".":
			c.full = max(c.full, 0) + 1
			c.resumed = max(c.resumed, 0)
		}
	}
	if err := sc.Err(); err != nil {
		return c, err
	}
	for _, evs := range events {
		// Ends before starts in the same millisecond.
		slices.SortFunc(evs, func(a, b event) int {
			if a.ms != b.ms {
				return int(a.ms - b.ms)
			}
			return int(a.delta - b.delta)
		})
		var in int64
		for _, e := range evs {
			in += e.delta
			c.peak = max(c.peak, in)
		}
	}
	return c, nil
}
