//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// summaryLine is what --summary writes, as an earlier run left it.
const summaryLine = `{"total":1,"ok":1,"failed":0,"success_ratio":1,"status":{"200":1},"errors":{},"attempts":1,"retries":0,"bytes":0,"elapsed_ms":1,"rate_per_s":1000,"latency_ms":{"p50":1,"p90":1,"p99":1,"max":1},"interrupted":false,"stopped":null,"by_host":[]}` + "\n"

// TestSummaryInUse: a --summary file that another run holds (as its -o) is
// exit 2 for run and summarize, whatever the file holds and with
// --overwrite too, one line naming it, before anything is fetched, read or
// written.
func TestSummaryInUse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		keep string // what s.ndjson holds
		args []string
	}{
		{"run new", "", []string{"run", "urls.txt", "-o", "out.ndjson"}},
		{"run onto records with overwrite", recordLine, []string{"run", "urls.txt", "-o", "out.ndjson", "--overwrite"}},
		{"run onto a summary", summaryLine, []string{"run", "urls.txt", "-o", "out.ndjson"}},
		{"summarize onto records", recordLine, []string{"summarize", "r.ndjson"}},
		{"summarize onto a summary with overwrite", summaryLine, []string{"summarize", "r.ndjson", "--overwrite"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for name, data := range map[string]string{
				"urls.txt": "http://127.0.0.1:9/\n",
				"r.ndjson": recordLine,
				"s.ndjson": tt.keep,
			} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			holdLock(t, filepath.Join(dir, "s.ndjson"))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := fetchctlCmd(t, ctx, dir, append(tt.args, "-q", "--summary", "s.ndjson")...)
			cmd.Dir = dir
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("fetchctl ended with %v, want exit 2; stderr: %s", err, stderr.String())
			}
			if want := "fetchctl: --summary s.ndjson is in use by another run: wait for it to end, or name another file\n"; stderr.String() != want {
				t.Errorf("stderr %q, want %q", stderr.String(), want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
			if b, err := os.ReadFile(filepath.Join(dir, "s.ndjson")); err != nil || string(b) != tt.keep {
				t.Errorf("s.ndjson holds %q (%v), want %q untouched", b, err, tt.keep)
			}
			if _, err := os.Stat(filepath.Join(dir, "out.ndjson")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("out.ndjson is there (%v): the run went on", err)
			}
		})
	}
}

// TestSummaryOntoRunningOutput: a run, or summarize, whose --summary is the
// -o file of a run still writing it is refused, and that run's file keeps
// every record it wrote: nothing else lands in it.
func TestSummaryOntoRunningOutput(t *testing.T) {
	t.Parallel()
	const fast = 3
	dir, list := slowList(t, fast)
	out := filepath.Join(dir, "a.ndjson")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first := fetchctlCmd(t, ctx, dir, "run", "-q", list, "-o", out)
	var stderr strings.Builder
	first.Stderr = &stderr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	// The run holds its lock and has written the records of the fast
	// URLs; the slow one keeps it running.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(10 * time.Second); !lockHeld(t, out) || countLines(out) < fast; <-tick.C {
		if time.Now().After(deadline) {
			first.Process.Kill()
			first.Wait()
			t.Fatalf("after 10s the run holds no lock or wrote %d records; stderr: %s", countLines(out), stderr.String())
		}
	}
	other := filepath.Join(dir, "b.txt")
	if err := os.WriteFile(other, []byte("http://127.0.0.1:9/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	results := filepath.Join(dir, "r.ndjson")
	if err := os.WriteFile(results, []byte(recordLine), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"run", "-q", other, "-o", filepath.Join(dir, "b.ndjson"), "--summary", out},
		{"summarize", "-q", results, "--summary", out},
	} {
		msg, err := fetchctlCmd(t, ctx, dir, args...).CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(msg), "--summary "+out+" is in use by another run") {
			t.Errorf("%s ended with %v, %q; want exit 2, in use", args[0], err, msg)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "b.ndjson")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("b.ndjson is there (%v): the second run went on", err)
	}
	if err := first.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitEnd(t, first, &stderr, "SIGTERM")
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[int]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct {
			URL  string `json:"url"`
			Line int    `json:"line"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || rec.URL == "" || rec.Line < 1 {
			t.Errorf("%s holds a line that is no record of the run: %q", out, sc.Text())
			continue
		}
		seen[rec.Line] = true
	}
	for line := 1; line <= fast; line++ {
		if !seen[line] {
			t.Errorf("%s lost the record of line %d", out, line)
		}
	}
}

// TestSummaryTakenDuringRun: a --summary file that another run took as its
// -o, or that got results, after this run's start is left as it is at the
// end: the summary is not written, and a line says why.
func TestSummaryTakenDuringRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		take func(t *testing.T, path string)
		keep string // what s.json holds at the end
		want string // the stderr line
	}{
		{
			name: "locked",
			take: func(t *testing.T, path string) {
				if err := os.WriteFile(path, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				holdLock(t, path)
			},
			want: "fetchctl: write summary: --summary s.json is in use by another run: it is left as it is\n",
		},
		{
			name: "records",
			take: func(t *testing.T, path string) {
				if err := os.WriteFile(path, []byte(recordLine), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			keep: recordLine,
			want: "fetchctl: write summary: --summary s.json now holds results, not a summary: it is left as it is\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir, list := slowList(t, 1)
			out := filepath.Join(dir, "out.ndjson")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			run := fetchctlCmd(t, ctx, dir, "run", "-q", list, "-o", out, "--summary", "s.json")
			run.Dir = dir
			var stderr strings.Builder
			run.Stderr = &stderr
			if err := run.Start(); err != nil {
				t.Fatal(err)
			}
			// Once the run holds its -o, its checks are behind it.
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for deadline := time.Now().Add(10 * time.Second); !lockHeld(t, out); <-tick.C {
				if time.Now().After(deadline) {
					run.Process.Kill()
					run.Wait()
					t.Fatalf("the run holds no lock on its -o file after 10s; stderr: %s", stderr.String())
				}
			}
			summary := filepath.Join(dir, "s.json")
			tt.take(t, summary)
			if err := run.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			err := waitEnd(t, run, &stderr, "SIGTERM")
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 143 {
				t.Errorf("fetchctl ended with %v, want exit 143", err)
			}
			if stderr.String() != tt.want {
				t.Errorf("stderr %q, want %q", stderr.String(), tt.want)
			}
			if b, err := os.ReadFile(summary); err != nil || string(b) != tt.keep {
				t.Errorf("s.json holds %q (%v), want %q", b, err, tt.keep)
			}
		})
	}
}
