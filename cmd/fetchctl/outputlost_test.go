//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// slowList serves a list of fast URLs and one /slow that answers only when
// the test ends, and writes the list to a file: a run of it cannot end by
// itself before the test does.
func slowList(t *testing.T, fast int) (dir, list string) {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	var urls strings.Builder
	for i := range fast {
		fmt.Fprintf(&urls, "%s/?%d\n", srv.URL, i)
	}
	urls.WriteString(srv.URL + "/slow\n")
	dir = t.TempDir()
	list = filepath.Join(dir, "urls.txt")
	if err := os.WriteFile(list, []byte(urls.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, list
}

// fetchctlCmd is the built binary run with args, its config kept in dir.
func fetchctlCmd(t *testing.T, ctx context.Context, dir string, args ...string) *exec.Cmd {
	t.Helper()
	bin, err := exec.LookPath("fetchctl")
	if err != nil {
		t.Fatalf("fetchctl not on PATH: %v", err)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir)
	return cmd
}

// waitEnd waits for a started cmd to end, failing the test when it still
// runs 10s later: what it waits for has happened by then.
func waitEnd(t *testing.T, cmd *exec.Cmd, stderr fmt.Stringer, what string) error {
	t.Helper()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		return err
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-waited
		t.Fatalf("fetchctl still ran 10s after %s; stderr: %s", what, stderr)
		return nil
	}
}

// TestBackgroundWriteFailureStopsTheRun checks that a record whose write
// fails in the writer's background flush (here the first one, onto
// /dev/full) stops the run at once, as a failed write of the next record
// would: exit 1, the same message, with /slow still in flight.
func TestBackgroundWriteFailureStopsTheRun(t *testing.T) {
	t.Parallel()
	dir, list := slowList(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	summary := filepath.Join(dir, "summary.json")
	cmd := fetchctlCmd(t, ctx, dir, "run", "-c", "2", "--per-host", "2", "-o", "/dev/full", "--summary", summary, list)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	err := waitEnd(t, cmd, &stderr, "its output failed")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("fetchctl ended with %v, want exit 1; stderr: %s", err, stderr.String())
	}
	if want := "fetchctl: run stopped: write output: write /dev/full: no space left on device\n"; !strings.HasSuffix(stderr.String(), want) {
		t.Errorf("stderr ends %q, want %q", stderr.String(), want)
	}
	res := readSummary(t, summary)
	if !res.Interrupted || !strings.Contains(res.Stopped, "no space left on device") {
		t.Errorf("summary interrupted %v, stopped %q; want a run stopped for the full disk", res.Interrupted, res.Stopped)
	}
}

// killedBySIGPIPE fails the test unless err is of a process killed by
// SIGPIPE (141 in a shell).
func killedBySIGPIPE(t *testing.T, err error, stderr fmt.Stringer) {
	t.Helper()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("fetchctl ended with %v, want it killed by SIGPIPE; stderr: %s", err, stderr)
	}
	if ws := exit.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGPIPE {
		t.Fatalf("fetchctl ended with %v, want killed by SIGPIPE (141 in a shell); stderr: %s", ws, stderr)
	}
}

// TestFIFOReaderGoingAwayEndsTheRun checks that with -o onto a FIFO the run
// is not a reader of its own output: when the FIFO's reader goes away, with
// /slow still in flight, the run ends at once, killed by SIGPIPE, as it does
// when the reader of stdout goes away. With --resume there is nothing to
// read back from a FIFO: the run writes to it all the same.
func TestFIFOReaderGoingAwayEndsTheRun(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		extra []string
	}{
		{"plain", nil},
		{"resume", []string{"--resume"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir, list := slowList(t, 3)
			fifo := filepath.Join(dir, "out.fifo")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			args := append([]string{"run", "-q", "-c", "4", "--per-host", "4", "-o", fifo, list}, tt.extra...)
			cmd := fetchctlCmd(t, ctx, dir, args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// The open waits for fetchctl to open the FIFO for writing.
			opened := make(chan *os.File, 1)
			go func() {
				f, err := os.Open(fifo)
				if err != nil {
					t.Error(err)
				}
				opened <- f
			}()
			var r *os.File
			select {
			case r = <-opened:
			case <-time.After(10 * time.Second):
				t.Fatalf("fetchctl did not open the FIFO in 10s; stderr: %s", stderr.String())
			}
			if r == nil {
				t.FailNow()
			}
			r.SetReadDeadline(time.Now().Add(10 * time.Second))
			sc := bufio.NewScanner(r)
			for i := range 3 {
				if !sc.Scan() {
					t.Fatalf("the FIFO ended after %d records (%v); stderr: %s", i, sc.Err(), stderr.String())
				}
			}
			r.Close()
			killedBySIGPIPE(t, waitEnd(t, cmd, &stderr, "the FIFO's reader went away"), &stderr)
		})
	}
}

// TestReaderLeavingAfterTheLastRecord checks that a reader of stdout that
// goes away once it has every record loses nothing: the run ends with its
// own exit code (here, reading stdin, when stdin ends). A line that comes
// after the reader left is a record that cannot be delivered: the run
// then dies of SIGPIPE, as a write to the closed pipe would end it.
func TestReaderLeavingAfterTheLastRecord(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(srv.Close)
	for _, tt := range []struct {
		name     string
		lineMore bool // a line comes after the reader left
	}{
		{"stdin ends", false},
		{"another line comes", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := fetchctlCmd(t, ctx, dir, "run", "-", "--progress", "never")
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stdout = w
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			w.Close()
			const n = 2
			for i := range n {
				fmt.Fprintf(stdin, "%s/%d\n", srv.URL, i)
			}
			r.SetReadDeadline(time.Now().Add(10 * time.Second))
			sc := bufio.NewScanner(r)
			for i := range n {
				if !sc.Scan() {
					t.Fatalf("stdout ended after %d records (%v); stderr: %s", i, sc.Err(), stderr.String())
				}
			}
			// Every record is in: the reader goes away, and then the input
			// ends or brings one more line.
			r.Close()
			if tt.lineMore {
				fmt.Fprintf(stdin, "%s/more\n", srv.URL)
				killedBySIGPIPE(t, waitEnd(t, cmd, &stderr, "a line came with no reader left"), &stderr)
				return
			}
			stdin.Close()
			if err := waitEnd(t, cmd, &stderr, "stdin ended"); err != nil {
				t.Fatalf("fetchctl ended with %v, want exit 0: every record was delivered; stderr: %s", err, stderr.String())
			}
			if !strings.Contains(stderr.String(), "fetchctl: 2/2 ok") {
				t.Errorf("stderr has no summary of the 2 URLs: %s", stderr.String())
			}
		})
	}
}
