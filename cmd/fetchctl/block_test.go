package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/fetchctl/fetchctl/internal/report"
)

// gatewayAnswering is a loopback gateway that answers forwarded requests
// itself: status for hosts that block it, 200 and a 2 KiB body otherwise.
func gatewayAnswering(t *testing.T, status int, blockedHost string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Host == blockedHost {
			w.WriteHeader(status)
			io.WriteString(w, "blocked")
			return
		}
		io.WriteString(w, strings.Repeat("x", 2048))
	}))
	t.Cleanup(srv.Close)
	return "http://" + srv.Listener.Addr().String()
}

func readSummary(t *testing.T, path string) report.Result {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var res report.Result
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

// TestBlockRotationAndProxyCosts drives the binary through two gateways,
// one of which a.example blocks: every a.example URL ends ok through the
// other, and the summary shows the blocking proxy's attempts and bytes.
func TestBlockRotationAndProxyCosts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	banned := gatewayAnswering(t, 403, "a.example")
	fine := gatewayAnswering(t, 200, "")
	var urls strings.Builder
	for i := range 10 {
		urls.WriteString("http://a.example/" + strings.Repeat("x", i) + "\nhttp://b.example/" + strings.Repeat("x", i) + "\n")
	}
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("urls.txt", urls.String())
	write("proxies.txt", banned+"\n"+fine+"\n")
	res := runFetchctl(t, dir, nil, "run", "-q", "--proxy-file", "proxies.txt", "--limit", "2", "--per-host", "1",
		"-o", "out.ndjson", "--summary", "sum.json", "urls.txt")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	recs := readRecords(t, filepath.Join(dir, "out.ndjson"))
	blocked := 0
	for _, r := range recs {
		if !r.OK {
			t.Errorf("%s not ok: %+v", r.URL, r.Error)
		}
		if r.BytesOut == 0 || r.BytesIn < 1024 {
			t.Errorf("%s: bytes_out %d, bytes_in %d: want what its attempts sent and received", r.URL, r.BytesOut, r.BytesIn)
		}
		if r.Attempts > 1 {
			blocked++
			if len(r.History) != r.Attempts {
				t.Fatalf("%s: %d attempts, %d history entries", r.URL, r.Attempts, len(r.History))
			}
			first, last := r.History[0], r.History[len(r.History)-1]
			if !first.Blocked || first.Status != 403 || first.Proxy != banned || first.BytesIn == 0 {
				t.Errorf("%s: first attempt %+v: want blocked, 403, through %s, with its bytes", r.URL, first, banned)
			}
			if last.Blocked || last.Proxy != fine {
				t.Errorf("%s: last attempt %+v: want not blocked, through %s", r.URL, last, fine)
			}
			if r.BytesIn != first.BytesIn+last.BytesIn {
				t.Errorf("%s: bytes_in %d, want its attempts' %d + %d", r.URL, r.BytesIn, first.BytesIn, last.BytesIn)
			}
		}
	}
	sum := readSummary(t, filepath.Join(dir, "sum.json"))
	var bannedGroup *report.Group
	for i, g := range sum.ByProxy {
		if g.Proxy == banned {
			bannedGroup = &sum.ByProxy[i]
		}
	}
	if bannedGroup == nil || bannedGroup.Blocks == 0 || bannedGroup.Blocks != int64(blocked) || bannedGroup.BytesIn == 0 {
		t.Errorf("by_proxy %+v: want the blocking proxy with %d blocks and its bytes", sum.ByProxy, blocked)
	}
	if blocked == 0 || blocked > 2 {
		t.Errorf("%d URLs were blocked before moving on, want 1 or 2: a blocked proxy cools down for the host", blocked)
	}
	if sum.BytesIn < 20*2048 {
		t.Errorf("summary counts %d bytes in through proxies, want at least the 20 bodies", sum.BytesIn)
	}
}

// TestBudgetStopsAResumableRun: --budget ends the run with exit 1, its
// summary interrupted and saying why; --resume with a larger budget
// finishes the list.
func TestBudgetStopsAResumableRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	gw := gatewayAnswering(t, 0, "")
	var urls strings.Builder
	for i := range 40 {
		urls.WriteString("http://h" + strings.Repeat("x", i%4) + ".example/" + strings.Repeat("p", i) + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "urls.txt"), []byte(urls.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	res := runFetchctl(t, dir, nil, "run", "-q", "--proxy", gw, "--limit", "1", "--budget", "20KB",
		"-o", "out.ndjson", "--summary", "sum.json", "urls.txt")
	if res.code != 1 || !strings.Contains(res.stderr, "--budget of 20KB through proxies reached") {
		t.Fatalf("exit %d, stderr %q; want 1 and a word on the budget as written", res.code, res.stderr)
	}
	sum := readSummary(t, filepath.Join(dir, "sum.json"))
	if !sum.Interrupted || !strings.Contains(sum.Stopped, "--budget of 20KB") || sum.Total == 0 || sum.Total >= 40 {
		t.Errorf("summary %+v: want interrupted by the budget part-way", sum)
	}
	res = runFetchctl(t, dir, nil, "run", "-q", "--proxy", gw, "--budget", "1GiB", "--resume", "-o", "out.ndjson", "urls.txt")
	if res.code != 0 {
		t.Fatalf("resume: exit %d: %s", res.code, res.stderr)
	}
	if n := len(readRecords(t, filepath.Join(dir, "out.ndjson"))); n != 40 {
		t.Errorf("after --resume the output holds %d records, want 40", n)
	}
}

// TestBudgetHoldsAsBytesFlow: a body far larger than --budget stops the
// run while it is read, not once it is whole; the attempt cancelled by the
// stop has no record, and its bytes count in what was spent, in the
// summary's totals and in by_proxy.
func TestBudgetHoldsAsBytesFlow(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const body = 16 << 20
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/big" {
			io.WriteString(w, strings.Repeat("x", 1024))
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(body))
		chunk := []byte(strings.Repeat("y", 32<<10))
		for n := 0; n < body; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	t.Cleanup(gw.Close)
	proxy := "http://" + gw.Listener.Addr().String()
	if err := os.WriteFile(filepath.Join(dir, "urls.txt"), []byte("http://a.example/big\nhttp://a.example/after\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const budget = 64 << 10
	res := runFetchctl(t, dir, nil, "run", "-q", "--proxy", proxy, "--limit", "1", "--max-body", "32MiB",
		"--budget", "64KiB", "-o", "out.ndjson", "--summary", "sum.json", "urls.txt")
	m := regexp.MustCompile(`--budget of 64KiB through proxies reached \((\d+) bytes spent\)`).FindStringSubmatch(res.stderr)
	if res.code != 1 || m == nil {
		t.Fatalf("exit %d, stderr %q; want 1 and the budget's message", res.code, res.stderr)
	}
	spent, _ := strconv.ParseInt(m[1], 10, 64)
	// One connection through the proxy: the overshoot is at most the
	// read (and write) under way when the budget was reached.
	if spent < budget || spent > budget+64<<10 {
		t.Errorf("spent %d bytes for a budget of %d, want at most one read past it", spent, budget)
	}
	if recs := readRecords(t, filepath.Join(dir, "out.ndjson")); len(recs) != 0 {
		t.Errorf("%d records, want none: the attempt under way when the budget ran out is fetched on --resume", len(recs))
	}
	sum := readSummary(t, filepath.Join(dir, "sum.json"))
	if sum.BytesOut+sum.BytesIn != spent {
		t.Errorf("summary counts %d+%d bytes through proxies, want the %d spent", sum.BytesOut, sum.BytesIn, spent)
	}
	if len(sum.ByProxy) != 1 || sum.ByProxy[0].BytesOut+sum.ByProxy[0].BytesIn != spent {
		t.Errorf("by_proxy %+v, want the one proxy with the %d bytes spent", sum.ByProxy, spent)
	}
}

// TestRotateOnNoneTurnsRotationOff: with --rotate-on none (or an empty
// value), a 403 through a proxy is a plain status failure, not a block:
// no attempt is blocked and the URL is not tried again elsewhere.
func TestRotateOnNoneTurnsRotationOff(t *testing.T) {
	t.Parallel()
	for _, value := range []string{"none", "NONE", ""} {
		t.Run("value="+value, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			banned := gatewayAnswering(t, 403, "a.example")
			if err := os.WriteFile(filepath.Join(dir, "urls.txt"), []byte("http://a.example/1\nhttp://a.example/2\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			res := runFetchctl(t, dir, nil, "run", "-q", "--proxy", banned, "--rotate-on", value, "--retries", "0",
				"-o", "out.ndjson", "--summary", "sum.json", "urls.txt")
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.stderr)
			}
			for _, r := range readRecords(t, filepath.Join(dir, "out.ndjson")) {
				if r.Blocked || r.Status != 403 || r.Error == nil || r.Error.Kind != report.KindStatus {
					t.Errorf("%s: blocked %v, status %d, error %+v: want a plain 403 status failure", r.URL, r.Blocked, r.Status, r.Error)
				}
			}
			sum := readSummary(t, filepath.Join(dir, "sum.json"))
			if len(sum.ByProxy) != 1 || sum.ByProxy[0].Blocks != 0 {
				t.Errorf("by_proxy %+v: want one proxy with no block", sum.ByProxy)
			}
		})
	}
}
