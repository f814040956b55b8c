package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/target"
)

// TestCrashAndResume kills fetchctl at seeded random moments of a run of
// thousands of URLs (SIGKILL: no chance to flush; SIGINT: a clean stop),
// resumes until the run completes, and checks that the output holds exactly
// one record per input line, all ok.
func TestCrashAndResume(t *testing.T) {
	bin, err := exec.LookPath("fetchctl")
	if err != nil {
		t.Fatalf("fetchctl not in PATH: %v", err)
	}
	srv, err := target.Start(target.Options{Hosts: 4, BodySize: 64, Latency: 3 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	const n = 3000
	dir := t.TempDir()
	list := filepath.Join(dir, "urls.txt")
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "%s?i=%d\n", srv.URL(i%4, "/x"), i)
	}
	if err := os.WriteFile(list, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sig  syscall.Signal
		seed uint64
	}{
		{syscall.SIGKILL, 1}, {syscall.SIGKILL, 2}, {syscall.SIGKILL, 3}, {syscall.SIGKILL, 4},
		{syscall.SIGINT, 5}, {syscall.SIGINT, 6},
	} {
		t.Run(fmt.Sprintf("%s/seed%d", tc.sig, tc.seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(tc.seed, 0))
			out := filepath.Join(dir, fmt.Sprintf("out-%d.ndjson", tc.seed))
			kills := 0
			for round := 0; round < 50; round++ {
				args := []string{"run", "-q", "--progress", "never", "--limit", "32", "--per-host", "8", "-o", out, list}
				if round > 0 {
					args = append(args, "--resume")
				}
				cmd := exec.Command(bin, args...)
				cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir)
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { done <- cmd.Wait() }()
				// A random moment: once the output has grown by a random
				// amount, or at once, or not at all (the run finishes).
				size0 := fileSize(out)
				grow := int64(rng.IntN(400 * 1024))
				finished := false
				if round < 3 {
					for !finished && fileSize(out)-size0 < grow {
						select {
						case err := <-done:
							finished = true
							if err != nil {
								t.Fatalf("round %d: %v", round, err)
							}
						case <-time.After(2 * time.Millisecond):
						}
					}
				}
				if !finished && round < 3 {
					_ = cmd.Process.Signal(tc.sig)
					kills++
					t.Logf("round %d: %s with %d bytes of records written", round, tc.sig, fileSize(out))
					err := <-done
					if tc.sig == syscall.SIGINT && err != nil {
						if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
							t.Fatalf("round %d: after SIGINT: %v, want exit 130", round, err)
						}
					}
				} else if !finished {
					if err := <-done; err != nil {
						t.Fatalf("round %d: %v", round, err)
					}
					break
				} else {
					break
				}
			}
			if kills == 0 {
				t.Fatalf("the run finished before any signal: nothing was tested")
			}
			checkOnePerLine(t, out, n)
			t.Logf("%d signals, then --resume: %d lines, one record each, all ok", kills, n)
		})
	}
}

func fileSize(name string) int64 {
	st, err := os.Stat(name)
	if err != nil {
		return 0
	}
	return st.Size()
}

func checkOnePerLine(t *testing.T, name string, n int) {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := make([]int, n+1)
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	records := 0
	for sc.Scan() {
		var rec struct {
			Line int  `json:"line"`
			OK   bool `json:"ok"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("record %d is not JSON: %v: %q", records+1, err, sc.Text())
		}
		if rec.Line < 1 || rec.Line > n {
			t.Fatalf("line %d out of range", rec.Line)
		}
		if !rec.OK {
			t.Errorf("line %d not ok", rec.Line)
		}
		seen[rec.Line]++
		records++
	}
	for line := 1; line <= n; line++ {
		if seen[line] != 1 {
			t.Errorf("line %d has %d records, want 1", line, seen[line])
		}
	}
	if records != n {
		t.Errorf("%d records, want %d", records, n)
	}
}
