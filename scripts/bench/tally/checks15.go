package main

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// writeChecks15 prints the targets of issue 15 (HTTPS, HTTP/2 and memory)
// that these runs can judge, each "met" or "NOT met" with its figures.
func writeChecks15(w io.Writer, rows []runRow) error {
	var lines []string
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	// best is the fastest group among those of tools (any tool but
	// fetchctl when tools is nil).
	best := func(gs []*group, tools []string) *group {
		var b *group
		for _, g := range gs {
			if g.tool == "fetchctl" || (tools != nil && !strings.Contains(" "+strings.Join(tools, " ")+" ", " "+g.tool+" ")) {
				continue
			}
			if b == nil || g.wall < b.wall {
				b = g
			}
		}
		return b
	}
	fetchctl := func(gs []*group) *group {
		for _, g := range gs {
			if g.tool == "fetchctl" {
				return g
			}
		}
		return nil
	}

	s1tls := groups(rows, "S1-TLS")
	if f := fetchctl(s1tls); f != nil {
		const what = "S1-TLS wall ≤ 0.8× the best of curl, vegeta and a Go pool"
		if b := best(s1tls, []string{"curl", "vegeta", "gopool"}); b != nil {
			ratio := f.wall / b.wall
			lines = append(lines, fmt.Sprintf("%s: %.2f s vs %s's %.2f s = %.2f×: %s", what, f.wall, b.tool, b.wall, ratio, verdict(ratio <= 0.8)))
		} else {
			lines = append(lines, what+": not judged (none of them ran)")
		}
	}
	s2tls := groups(rows, "S2-TLS")
	if f := fetchctl(s2tls); f != nil {
		eff := f.ideal / f.wall
		capN := float64(f.hosts * f.per)
		lines = append(lines,
			fmt.Sprintf("S2-TLS efficiency ≥ 0.95: %.3f (%.2f s for an ideal %.2f s): %s", eff, f.wall, f.ideal, verdict(eff >= 0.95)),
			fmt.Sprintf("S2-TLS conns dialled ≤ hosts × per-host: %s ≤ %s: %s", fmtCount(f.conns), fmtCount(capN), verdict(f.conns <= capN)))
	}
	s1 := groups(rows, "S1")
	if f := fetchctl(s1); f != nil {
		const what = "S1 (plain HTTP/1.1) wall ahead of every peer"
		if b := best(s1, nil); b != nil {
			lines = append(lines, fmt.Sprintf("%s: %.2f s vs %s's %.2f s: %s", what, f.wall, b.tool, b.wall, verdict(f.wall < b.wall)))
		} else {
			lines = append(lines, what+": not judged (no peer ran)")
		}
	}
	var big *group
	for _, g := range groups(rows, "S3") {
		if g.tool == "fetchctl" && (big == nil || g.urls > big.urls) {
			big = g
		}
	}
	if big != nil {
		const what = "S3 peak RSS for 1,000,000 URLs ≤ 28 MiB"
		if big.urls < 1000000 {
			lines = append(lines, fmt.Sprintf("%s: not judged (the largest list had %s URLs)", what, fmtCount(float64(big.urls))))
		} else {
			lines = append(lines, fmt.Sprintf("%s: %.1f MiB for %s URLs: %s", what, big.rssMiB, fmtCount(float64(big.urls)), verdict(big.rssMiB <= 28)))
		}
	}
	for _, sc := range []string{"S1-TLS", "S2-TLS"} {
		if f := fetchctl(groups(rows, sc)); f != nil {
			lines = append(lines, fmt.Sprintf("%s fetchctl answered every URL exactly once: %s", sc, verdict(f.once)))
			if !math.IsNaN(f.tlsFull) {
				lines = append(lines, fmt.Sprintf("%s fetchctl TLS handshakes: %s full, %s resumed, over %s connections", sc, fmtCount(f.tlsFull), fmtCount(f.tlsResumed), fmtCount(f.conns)))
			}
		}
	}
	if len(lines) == 0 {
		lines = append(lines, "not judged: these runs hold none of S1, S1-TLS, S2-TLS and S3 for fetchctl")
	}
	for _, l := range lines {
		if _, err := fmt.Fprintf(w, "- %s\n", l); err != nil {
			return err
		}
	}
	return nil
}
