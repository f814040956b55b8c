package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRecordsReachAPipePromptly checks that a finished URL's record reaches
// a pipe while the run is still busy with another URL, not at the next tick
// of a slow flush: a reader of `fetchctl run ... | ...` sees each record as
// its URL finishes.
func TestRecordsReachAPipePromptly(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("fetchctl")
	if err != nil {
		t.Fatalf("fetchctl not on PATH: %v", err)
	}
	release := make(chan struct{})
	served := make(chan time.Time, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		fmt.Fprintln(w, "ok")
		if r.URL.Path == "/fast" {
			w.(http.Flusher).Flush()
			served <- time.Now()
		}
	}))
	t.Cleanup(srv.Close)
	closeRelease := func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}
	t.Cleanup(closeRelease)

	dir := t.TempDir()
	list := filepath.Join(dir, "urls.txt")
	if err := os.WriteFile(list, []byte(srv.URL+"/slow\n"+srv.URL+"/fast\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", "-q", "--limit", "2", list)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			first <- sc.Text()
		}
		close(first)
		for sc.Scan() {
		}
	}()

	var at time.Time
	select {
	case at = <-served:
	case <-ctx.Done():
		t.Fatal("the fast URL was never fetched")
	}
	// The slow URL holds the run open: the fast URL's record must come
	// well before the second that a ticking flush would take.
	const within = 750 * time.Millisecond
	select {
	case line, ok := <-first:
		if !ok {
			t.Fatal("stdout ended without a record")
		}
		if waited := time.Since(at); waited > within {
			t.Fatalf("the first record came %v after its response, want within %v", waited, within)
		}
		if want := `"url":"` + srv.URL + `/fast"`; !strings.Contains(line, want) {
			t.Errorf("first record %s is not the fast URL's", line)
		}
	case <-time.After(within - time.Since(at)):
		t.Fatalf("no record on stdout %v after the fast URL was answered, while the slow one is in flight", within)
	}
	closeRelease()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("fetchctl: %v", err)
	}
}
