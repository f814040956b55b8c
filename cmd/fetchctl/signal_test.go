package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/target"
)

// TestSignalWithStdinOpen checks that SIGINT and SIGTERM end a run whose
// stdin is still open, as `(cat urls; sleep 60) | fetchctl run -` leaves it:
// the reader blocked on stdin must not hold up the shutdown.
func TestSignalWithStdinOpen(t *testing.T) {
	bin, err := exec.LookPath("fetchctl")
	if err != nil {
		t.Fatalf("fetchctl not in PATH: %v", err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			sum := filepath.Join(dir, "sum.json")
			stdinR, stdinW, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			// The producer keeps its end open for the whole test.
			t.Cleanup(func() { stdinW.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "run", "-", "--progress", "never", "--summary", sum)
			cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir)
			cmd.Dir = dir
			cmd.Stdin = stdinR
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			stdinR.Close()
			const n = 3
			for i := 1; i <= n; i++ {
				fmt.Fprintf(stdinW, "%s/%d\n", srv.URL, i)
			}
			sc := bufio.NewScanner(stdout)
			for i := 0; i < n; i++ {
				if !sc.Scan() {
					t.Fatalf("stdout ended after %d records: %v", i, sc.Err())
				}
			}
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			// stdout closes when the process ends.
			rest := make(chan []string, 1)
			go func() {
				var lines []string
				for sc.Scan() {
					lines = append(lines, sc.Text())
				}
				rest <- lines
			}()
			select {
			case lines := <-rest:
				for _, l := range lines {
					t.Errorf("a record after the signal: %s", l)
				}
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("fetchctl still running 5s after %s while stdin stays open", tc.sig)
			}
			werr := cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(werr, &ee) || ee.ExitCode() != tc.code {
				t.Fatalf("exit = %v, want code %d", werr, tc.code)
			}
			data, err := os.ReadFile(sum)
			if err != nil {
				t.Fatal(err)
			}
			var res struct {
				Total       int  `json:"total"`
				Interrupted bool `json:"interrupted"`
			}
			if err := json.Unmarshal(data, &res); err != nil {
				t.Fatal(err)
			}
			if res.Total != n || !res.Interrupted {
				t.Errorf("summary = %s, want total %d and interrupted", data, n)
			}
		})
	}
}

// TestStoppedWithStdinOpen checks that a run stopped on a failure of its own
// (here its one proxy refusing) ends at once even though stdin stays open,
// with exit 1 and the reason in the summary.
func TestStoppedWithStdinOpen(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("fetchctl")
	if err != nil {
		t.Fatalf("fetchctl not in PATH: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()

	dir := t.TempDir()
	sumFile := filepath.Join(dir, "sum.json")
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inW.Close() })
	cmd := exec.Command(bin, "run", "-", "-q", "--progress", "never", "--limit", "1",
		"--proxy", "http://user:pw-dead@"+dead, "--summary", sumFile)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "XDG_CONFIG_HOME=" + dir}
	cmd.Stdin = inR
	var stdout, stderr target.LockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	inR.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
		}
	})
	for i := range 3 {
		fmt.Fprintf(inW, "http://127.0.0.1:1/u%d\n", i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var waitErr error
	select {
	case waitErr = <-done:
	case <-ctx.Done():
		t.Fatalf("fetchctl still running 5s after its proxy failed, with stdin open; stderr:\n%s", stderr.String())
	}
	var ee *exec.ExitError
	if !errors.As(waitErr, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want exit code 1; stderr:\n%s", waitErr, stderr.String())
	}
	data, err := os.ReadFile(sumFile)
	if err != nil {
		t.Fatalf("summary: %v", err)
	}
	var sum struct {
		Total       int64  `json:"total"`
		Interrupted bool   `json:"interrupted"`
		Stopped     string `json:"stopped"`
	}
	if err := json.Unmarshal(data, &sum); err != nil {
		t.Fatalf("summary %s: %v", data, err)
	}
	if !sum.Interrupted || !strings.HasPrefix(sum.Stopped, "every proxy is failing: ") || strings.Contains(sum.Stopped, "pw-dead") {
		t.Errorf("summary interrupted=%v stopped=%q, want true and the reason, password masked", sum.Interrupted, sum.Stopped)
	}
	if got := int64(strings.Count(stdout.String(), "\n")); got != sum.Total || got != 3 {
		t.Errorf("%d records written, summary total %d, want 3 and 3", got, sum.Total)
	}
}
