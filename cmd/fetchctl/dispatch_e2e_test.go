package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/target"
)

// TestSortedListOverSlowHosts drives the binary over a list sorted by host:
// 20 hosts with 100 ms latency, 20 URLs each, --limit 40 --per-host 2. The
// ideal is 400 URLs / 40 slots × 100 ms = 1 s; with head-of-line blocking
// (one host at a time) it would be 20 s. The server sees every host at its
// cap and the total at the limit, never more, and every URL exactly once.
func TestSortedListOverSlowHosts(t *testing.T) {
	const hosts, perHost, limit, each = 20, 2, 40, 20
	const latency = 100 * time.Millisecond
	srv, err := target.Start(target.Options{Hosts: hosts, Latency: latency, BodySize: 100})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	var b strings.Builder
	for h := 0; h < hosts; h++ {
		for i := 0; i < each; i++ {
			fmt.Fprintf(&b, "%s?i=%d\n", srv.URL(h, "/x"), i)
		}
	}
	list := filepath.Join(dir, "sorted.txt")
	if err := os.WriteFile(list, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.ndjson")
	cmd := exec.Command("fetchctl", "run", "-q", "--retries", "0", "--limit", fmt.Sprint(limit), "--per-host", fmt.Sprint(perHost), "-o", out, list)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir)
	start := time.Now()
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fetchctl: %v\n%s", err, msg)
	}
	wall := time.Since(start)
	checkOnePerLine(t, out, hosts*each)

	st := srv.Stats()
	if st.Requests != hosts*each {
		t.Errorf("server saw %d requests, want %d", st.Requests, hosts*each)
	}
	for _, h := range st.Hosts {
		if h.PeakInFlight != perHost {
			t.Errorf("host %s: peak in flight %d, want exactly --per-host %d", h.Addr, h.PeakInFlight, perHost)
		}
		if h.Conns > perHost {
			t.Errorf("host %s: %d connections dialled, want at most %d (idle connections reused)", h.Addr, h.Conns, perHost)
		}
	}
	if st.PeakInFlight != limit {
		t.Errorf("peak in flight over all hosts %d, want exactly --limit %d", st.PeakInFlight, limit)
	}
	ideal := time.Duration(hosts*each/limit) * latency
	t.Logf("wall %s, ideal %s, efficiency %.2f", wall, ideal, float64(ideal)/float64(wall))
	// Generous for a shared 2-core machine, yet far below the 20 s of
	// head-of-line blocking.
	if wall > 2*ideal {
		t.Errorf("wall %s, more than twice the ideal %s", wall, ideal)
	}
}
