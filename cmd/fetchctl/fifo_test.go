//go:build linux

package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// blockedInFIFOOpen waits, up to 10s, until a thread of process pid is
// blocked opening a FIFO that has no other end yet (wait_for_partner).
func blockedInFIFOOpen(t *testing.T, pid int) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		tasks, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "wchan"))
		for _, w := range tasks {
			if b, err := os.ReadFile(w); err == nil && strings.TrimSpace(string(b)) == "wait_for_partner" {
				return
			}
		}
		<-tick.C
	}
	t.Fatalf("fetchctl (pid %d) not blocked opening the FIFO after 10s", pid)
}

// TestSignalWhileOpeningFIFOInput checks that SIGINT and SIGTERM end a run
// that waits to open an input FIFO no one writes to yet, at the first
// signal, with 130 or 143, as they end the wait for an -o FIFO's reader.
func TestSignalWhileOpeningFIFOInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			fifo := filepath.Join(dir, "in.fifo")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := fetchctlCmd(t, ctx, dir, "run", "-q", fifo)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			blockedInFIFOOpen(t, cmd.Process.Pid)
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			err := waitEnd(t, cmd, &stderr, "one "+tc.sig.String()+" while it opened its input FIFO")
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != tc.code {
				t.Fatalf("fetchctl ended with %v, want exit %d; stderr: %s", err, tc.code, stderr.String())
			}
		})
	}
}

// TestSummaryOnTheOutputFIFO checks that -o and --summary on one FIFO, by
// any path to it, are refused (exit 2, before the FIFO is opened) as they
// are on one regular file: records and summary would be mixed in one
// stream.
func TestSummaryOnTheOutputFIFO(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		summary string // under the test's folder
	}{
		{"same name", "out.fifo"},
		{"through a link", "link.fifo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			fifo := filepath.Join(dir, "out.fifo")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(fifo, filepath.Join(dir, "link.fifo")); err != nil {
				t.Fatal(err)
			}
			list := filepath.Join(dir, "urls.txt")
			if err := os.WriteFile(list, []byte("http://127.0.0.1:1/\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			summary := filepath.Join(dir, tc.summary)
			cmd := fetchctlCmd(t, ctx, dir, "run", "-q", "-o", fifo, "--summary", summary, list)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			err := waitEnd(t, cmd, &stderr, "it was given one FIFO for -o and --summary")
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("fetchctl ended with %v, want exit 2; stderr: %s", err, stderr.String())
			}
			if want := "fetchctl: --summary " + summary + " is the output -o " + fifo + ": name another file\n"; stderr.String() != want {
				t.Errorf("stderr %q, want %q", stderr.String(), want)
			}
		})
	}
}

// TestSummaryOnRedirectedStdout: with the records on stdout, redirected to
// a file, --summary naming that file would write the summary over them:
// exit 2 before anything is fetched, the file untouched.
func TestSummaryOnRedirectedStdout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	list := filepath.Join(dir, "urls.txt")
	if err := os.WriteFile(list, []byte("http://127.0.0.1:9/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.ndjson")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stderr strings.Builder
	cmd := fetchctlCmd(t, ctx, dir, "run", "-q", list, "--summary", out)
	cmd.Stdout, cmd.Stderr = f, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("fetchctl ended with %v, want exit 2; stderr: %s", err, stderr.String())
	}
	if want := "is stdout, which gets the records too"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q does not say %q", stderr.String(), want)
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() != 0 {
		t.Errorf("the records file holds %v bytes (%v), want it untouched", fi.Size(), err)
	}
}

// TestSummaryStdoutIsTheOutput: stdout redirected to the very file that
// -o or summarize reads gets no JSON summary from --summary - (or --json):
// it would land in the records. Exit 2 before anything is written.
func TestSummaryStdoutIsTheOutput(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		args func(out string) []string
		keep string // what the file holds before, and must hold after
	}{
		{"run -o FILE --summary -", func(out string) []string {
			return []string{"run", "-q", "urls.txt", "-o", out, "--summary", "-"}
		}, ""},
		{"summarize FILE --summary -", func(out string) []string {
			return []string{"summarize", "-q", out, "--summary", "-"}
		}, recordLine},
		{"summarize FILE --json", func(out string) []string {
			return []string{"summarize", "-q", "--json", out}
		}, recordLine},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "urls.txt"), []byte("http://127.0.0.1:9/\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out.ndjson")
			if err := os.WriteFile(out, []byte(tt.keep), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var stderr strings.Builder
			cmd := fetchctlCmd(t, ctx, dir, tt.args(out)...)
			cmd.Dir = dir
			cmd.Stdout, cmd.Stderr = f, &stderr
			err = cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("fetchctl ended with %v, want exit 2; stderr: %s", err, stderr.String())
			}
			if b, err := os.ReadFile(out); err != nil || string(b) != tt.keep {
				t.Errorf("the file holds %q (%v), want %q untouched", b, err, tt.keep)
			}
		})
	}
}

// recordLine is one record of a result file.
const recordLine = `{"url":"http://127.0.0.1:9/","line":1,"ok":true,"status":200,"bytes":0,"attempts":1,"duration_ms":1,"time":"2026-11-29T08:00:00Z"}` + "\n"
