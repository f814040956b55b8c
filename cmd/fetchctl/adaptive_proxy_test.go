package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/target"
)

// TestAdaptiveThroughOneProxy is the README's adaptive run (a host that
// answers 429 beyond 3 in flight, --adaptive --per-host 20 --retries 3
// --backoff 50ms) through a single proxy without sessions: the 429s, blocks
// by the default --rotate-on, have no other exit to go to, so they back off
// on that one and cut the host's limit, as without a proxy, rather than
// cooling the proxy down for 30 s each.
func TestAdaptiveThroughOneProxy(t *testing.T) {
	t.Parallel()
	const urls = 150
	srv, err := target.Start(target.Options{Hosts: 1, BodySize: 16, Latency: 10 * time.Millisecond, Limit429: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	proxy := newForwardProxy(t, "u", "p")
	dir := t.TempDir()
	var list strings.Builder
	for i := range urls {
		fmt.Fprintf(&list, "%s?i=%d\n", srv.URL(0, "/"), i)
	}
	if err := os.WriteFile(filepath.Join(dir, "urls.txt"), []byte(list.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	res := runFetchctl(t, dir, nil, "run", "-q", "--adaptive", "--per-host", "20", "--retries", "3", "--backoff", "50ms",
		"--proxy", "http://u:p@"+proxy.hostPort(), "-o", "out.ndjson", "--summary", "sum.json", "urls.txt")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	if srv.Stats().TooMany == 0 {
		t.Fatal("the target answered no 429: the run tested nothing")
	}
	sum := readSummary(t, filepath.Join(dir, "sum.json"))
	if sum.Total != urls || sum.OK < urls*95/100 {
		t.Errorf("%d of %d records ok, want at least 95%%", sum.OK, sum.Total)
	}
	if len(sum.ByHost) != 1 || sum.ByHost[0].Limit < 1 || sum.ByHost[0].Limit > 6 {
		t.Errorf("by_host %+v: want the host's limit settled near its cap of 3", sum.ByHost)
	}
	f, err := os.Open(filepath.Join(dir, "out.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	blocked := 0
	for sc.Scan() {
		var r report.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		for _, a := range r.History {
			if !a.Blocked {
				continue
			}
			blocked++
			if a.WaitMS != nil && *a.WaitMS >= 1000 {
				t.Errorf("%s: waited %.0f ms after a 429 with no other exit, want a backoff, not the proxy's cool-down", r.URL, *a.WaitMS)
			}
		}
	}
	if blocked == 0 {
		t.Error("no attempt was blocked: the 429s did not reach the records")
	}
}
