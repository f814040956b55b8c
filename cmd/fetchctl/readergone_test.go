//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReaderGoingAwayEndsTheRun checks that `fetchctl run ... | head -n 1`
// ends as soon as head is gone, while a URL is still in flight: the run
// does not wait for that URL's record to find the pipe closed. It dies of
// SIGPIPE (141 in a shell), as a write to the closed pipe would end it.
func TestReaderGoingAwayEndsTheRun(t *testing.T) {
	t.Parallel()
	// /slow answers only when the test ends: the run cannot end by itself
	// before then.
	dir, list := slowList(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd := fetchctlCmd(t, ctx, dir, "run", "-q", "-c", "4", "--per-host", "4", list)
	cmd.Stdout = w
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	// The reader takes the three fast URLs' records and goes away with
	// /slow still in flight: nothing more is written until it answers.
	sc := bufio.NewScanner(r)
	for i := range 3 {
		if !sc.Scan() {
			t.Fatalf("stdout ended after %d records; stderr: %s", i, stderr.String())
		}
	}
	r.Close()

	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-waited:
	case <-time.After(10 * time.Second):
		cancel()
		<-waited
		t.Fatalf("fetchctl still ran 10s after its reader went away; stderr: %s", stderr.String())
	}
	var exit *exec.ExitError
	if !errors.As(werr, &exit) {
		t.Fatalf("fetchctl ended with %v, want it killed by SIGPIPE", werr)
	}
	if ws := exit.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGPIPE {
		t.Fatalf("fetchctl ended with %v, want killed by SIGPIPE (141 in a shell); stderr: %s", ws, stderr.String())
	}
}
