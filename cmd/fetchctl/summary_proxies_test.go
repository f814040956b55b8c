package main

import (
	"bytes"
	"context"
	"errors"
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

// hasProxiesLine reports whether a text summary has its line of bytes
// through proxies.
func hasProxiesLine(stderr string) bool {
	for _, line := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(line, "  proxies   ") && strings.Contains(line, " on the wire ") {
			return true
		}
	}
	return false
}

// TestProxiesLineWithoutRecord: a run through a proxy that stops before
// any record, its --budget spent or a SIGINT, still ends its text summary
// with the proxies line, as the README promises whenever the run had
// proxies.
func TestProxiesLineWithoutRecord(t *testing.T) {
	t.Parallel()
	t.Run("budget", func(t *testing.T) {
		t.Parallel()
		// A gateway that answers every forwarded request itself with 1 MiB.
		body := bytes.Repeat([]byte("x"), 1<<20)
		gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write(body)
		}))
		t.Cleanup(gw.Close)
		dir := t.TempDir()
		urls := "http://a.example/1\nhttp://a.example/2\nhttp://b.example/1\nhttp://b.example/2\n"
		if err := os.WriteFile(filepath.Join(dir, "urls.txt"), []byte(urls), 0o644); err != nil {
			t.Fatal(err)
		}
		res := runFetchctl(t, dir, nil, "run", "urls.txt", "--proxy", "http://u:p@"+gw.Listener.Addr().String(),
			"--limit", "4", "--budget", "64KiB", "-o", "out.ndjson")
		if res.code != 1 || !strings.Contains(res.stderr, "fetchctl: 0/0 ok") || !strings.Contains(res.stderr, "--budget") {
			t.Fatalf("exit %d, want a run stopped by --budget before any record:\n%s", res.code, res.stderr)
		}
		if !hasProxiesLine(res.stderr) {
			t.Errorf("no proxies line:\n%s", res.stderr)
		}
	})
	t.Run("input without a URL", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "empty.txt"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		res := runFetchctl(t, dir, nil, "run", "empty.txt", "--proxy", "http://u:p@127.0.0.1:1")
		if !strings.Contains(res.stderr, "held no URL") || !strings.Contains(res.stderr, "  proxies   0 B on the wire (0 B out, 0 B in)") {
			t.Errorf("exit %d, want a proxies line of 0 B:\n%s", res.code, res.stderr)
		}
	})
	t.Run("SIGINT", func(t *testing.T) {
		t.Parallel()
		bin, err := exec.LookPath("fetchctl")
		if err != nil {
			t.Fatal(err)
		}
		// A gateway that holds every request until the client goes away,
		// and says when the first one came.
		arrived := make(chan struct{}, 1)
		gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case arrived <- struct{}{}:
			default:
			}
			<-r.Context().Done()
		}))
		t.Cleanup(gw.Close)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "run", "-", "--progress", "never", "--proxy", "http://u:p@"+gw.Listener.Addr().String())
		cmd.Dir = t.TempDir()
		cmd.Env = append(os.Environ(), "HOME="+cmd.Dir)
		cmd.Stdin = strings.NewReader("http://a.example/1\n")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-arrived:
		case <-ctx.Done():
			t.Fatal("the request never reached the gateway")
		}
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 130 {
			t.Fatalf("wait: %v, want exit 130\n%s", err, stderr.String())
		}
		if !strings.Contains(stderr.String(), "fetchctl: 0/0 ok") || !hasProxiesLine(stderr.String()) {
			t.Errorf("summary of a run interrupted before any record has no proxies line:\n%s", stderr.String())
		}
	})
}
