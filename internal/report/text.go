package report

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// textHosts is how many failing hosts the human summary names.
const textHosts = 5

// WriteText writes the human summary: the status counts, error kinds,
// retries and latency percentiles, the bytes through proxies whenever the
// run had proxies (Result.Proxied, or bytes or by_proxy to show; 0 B
// included, with or without a record), the hosts with the most failures, a
// warning when a finished run had no record (see Result.NoRecord), why the run stopped or that it
// was interrupted, and last a
// line of the form
//
//	fetchctl: 1982/2000 ok (99.10%) in 12.3s, 161.0/s
//
// It returns the first write error.
func (res Result) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	if res.Total > 0 {
		if len(res.Status) > 0 {
			fmt.Fprintf(bw, "  status    %s\n", joinCounts(res.Status, byNumber))
		}
		if len(res.Errors) > 0 {
			fmt.Fprintf(bw, "  errors    %s\n", joinCounts(res.Errors, byCount))
		}
		attempts := "attempts"
		if res.Attempts == 1 {
			attempts = "attempt"
		}
		fmt.Fprintf(bw, "  retries   %d (%d %s)\n", res.Retries, res.Attempts, attempts)
		if l := res.LatencyMS; l != (Latency{}) {
			fmt.Fprintf(bw, "  latency   p50 %s  p90 %s  p99 %s  max %s\n",
				formatMS(l.P50), formatMS(l.P90), formatMS(l.P99), formatMS(l.Max))
		}
	}
	// A run through proxies that stopped before any record may still
	// have spent bytes there.
	if wire := res.BytesOut + res.BytesIn; wire > 0 || res.ByProxy != nil || res.Proxied {
		fmt.Fprintf(bw, "  proxies   %s on the wire (%s out, %s in), %s of it on retries\n",
			formatBytes(wire), formatBytes(res.BytesOut), formatBytes(res.BytesIn), formatBytes(res.RetryBytes))
	}
	if res.Total > 0 {
		writeFailingHosts(bw, res.ByHost)
	} else if !res.Interrupted {
		none := res.NoRecord
		if none == "" {
			none = "the input held no URL"
		}
		fmt.Fprintf(bw, "fetchctl: warning: %s\n", none)
	}
	switch {
	case res.Stopped != "" && res.AllRecorded:
		fmt.Fprintf(bw, "fetchctl: stopped: %s\n", res.Stopped)
	case res.Stopped != "":
		fmt.Fprintf(bw, "fetchctl: stopped: %s: these counts cover only the records written before it stopped\n", res.Stopped)
	case res.Interrupted:
		fmt.Fprintln(bw, "fetchctl: interrupted: these counts cover only the URLs finished before the signal")
	}
	pct := percent(res.OK, res.Total)
	if res.Total == 0 && res.Interrupted {
		pct = "0.00"
	}
	fmt.Fprintf(bw, "fetchctl: %d/%d ok (%s%%) in %.1fs, %.1f/s\n",
		res.OK, res.Total, pct, res.ElapsedMS/1000, res.RatePerS)
	return bw.Flush()
}

// formatBytes writes n in B, KiB, MiB or GiB, with one decimal past B.
func formatBytes(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
}

func writeFailingHosts(w io.Writer, hosts []Group) {
	var failing []Group
	for _, g := range hosts {
		if g.Failed() > 0 && len(failing) < textHosts {
			failing = append(failing, g)
		}
	}
	if len(failing) == 0 {
		return
	}
	width := 0
	for _, g := range failing {
		width = max(width, len(g.Host))
	}
	label := "  failing  "
	for _, g := range failing {
		fmt.Fprintf(w, "%s %-*s  %d/%d failed", label, width, g.Host, g.Failed(), g.Total)
		if len(g.Errors) > 0 {
			fmt.Fprintf(w, " (%s)", joinCounts(g.Errors, byCount))
		}
		fmt.Fprintln(w)
		label = strings.Repeat(" ", len(label))
	}
}

const (
	byNumber = iota // keys in numeric order: statuses
	byCount         // largest count first, then by key: error kinds
)

// joinCounts formats counts as "200: 1982, 503: 6".
func joinCounts(counts map[string]int64, order int) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if order == byCount && counts[a] != counts[b] {
			if counts[a] > counts[b] {
				return -1
			}
			return 1
		}
		if order == byNumber && len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteString(": ")
		b.WriteString(strconv.FormatInt(counts[k], 10))
	}
	return b.String()
}

// percent formats ok/total as a percentage with two decimals, 100 when total
// is 0. It never rounds a partial success up to 100.00 nor a partial failure
// down to 0.00.
func percent(ok, total int64) string {
	if total == 0 {
		return "100.00"
	}
	p := float64(ok) / float64(total) * 100
	switch {
	case ok < total && p > 99.99:
		p = 99.99
	case ok > 0 && p < 0.01:
		p = 0.01
	}
	return strconv.FormatFloat(math.Round(p*100)/100, 'f', 2, 64)
}

// formatMS formats a latency: "84ms", "412.5ms", "0.231ms", or in seconds
// from 10 s on.
func formatMS(ms float64) string {
	if ms >= 10000 {
		return strconv.FormatFloat(math.Round(ms/100)/10, 'f', -1, 64) + "s"
	}
	return strconv.FormatFloat(ms, 'f', -1, 64) + "ms"
}
