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

// TestReaderGoingAwayEndsTheRun checks that `fetchctl run ... | head -n 1`
// ends as soon as head is gone, while a URL is still in flight: the run
// does not wait for that URL's record to find the pipe closed. It dies of
// SIGPIPE (141 in a shell), as a write to the closed pipe would end it.
func TestReaderGoingAwayEndsTheRun(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("fetchctl")
	if err != nil {
		t.Fatalf("fetchctl not on PATH: %v", err)
	}
	// /slow answers only when the test ends: the run cannot end by itself
	// before then.
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

	dir := t.TempDir()
	list := filepath.Join(dir, "urls.txt")
	urls := srv.URL + "/?a\n" + srv.URL + "/?b\n" + srv.URL + "/?c\n" + srv.URL + "/slow\n"
	if err := os.WriteFile(list, []byte(urls), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, bin, "run", "-q", "-c", "4", "--per-host", "4", list)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir)
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
