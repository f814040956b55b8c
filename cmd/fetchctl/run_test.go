package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/fetchctl/fetchctl/internal/batch"
	"github.com/fetchctl/fetchctl/internal/secret"
	"github.com/fetchctl/fetchctl/internal/settings"
)

// testStreams returns streams backed by buffers: stdin, stdout, stderr.
func testStreams() (*IOStreams, *bytes.Buffer, *bytes.Buffer, *bytes.Buffer) {
	in, out, errOut := &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: in, Out: out, ErrOut: errOut}, in, out, errOut
}

// runInProcess resolves args as the run command's flags and calls runRun
// with buffer streams: no subprocess, no terminal.
func runInProcess(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	streams, in, out, errOut := testStreams()
	in.WriteString(stdin)
	env := map[string]string{"HOME": t.TempDir()}
	d := &deps{io: streams, getenv: func(k string) string { return env[k] }, redact: &secret.Set{}, started: true}
	cmd := newRunCmd(d)
	cmd.Flags().String("config", "", "")
	if err := cmd.Flags().Parse(args); err != nil {
		t.Fatal(err)
	}
	s, err := settings.Load(cmd.Flags(), d.getenv, version)
	if err != nil {
		return "", "", err
	}
	err = runRun(context.Background(), d, &runOptions{files: cmd.Flags().Args()}, s)
	return out.String(), errOut.String(), err
}

func TestRunInProcess(t *testing.T) {
	t.Chdir(t.TempDir())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("hello"))
	}))
	defer srv.Close()
	list := srv.URL + "/a\n" + srv.URL + "/missing\nnot a url\n"

	t.Run("records and summary", func(t *testing.T) {
		out, errOut, err := runInProcess(t, list, "-q=false", "--retries", "0")
		if err != nil {
			t.Fatalf("runRun: %v", err)
		}
		if n := strings.Count(out, "\n"); n != 3 {
			t.Errorf("%d records, want 3:\n%s", n, out)
		}
		if !strings.Contains(errOut, "1/3 ok") {
			t.Errorf("summary %q does not say 1/3 ok", errOut)
		}
	})
	t.Run("below min-success", func(t *testing.T) {
		_, _, err := runInProcess(t, list, "-q", "--min-success", "0.9")
		var below *batch.BelowMinError
		if !errors.As(err, &below) || !strings.Contains(err.Error(), "below --min-success 0.9") {
			t.Errorf("err = %v, want a *batch.BelowMinError", err)
		}
		if code := exitCode(err, &deps{redact: &secret.Set{}, started: true, signal: new(atomic.Value)}, &IOStreams{ErrOut: &bytes.Buffer{}}); code != exitBelowMin {
			t.Errorf("exit %d, want %d", code, exitBelowMin)
		}
	})
	t.Run("setup error", func(t *testing.T) {
		in := filepath.Join(t.TempDir(), "urls.txt")
		if err := os.WriteFile(in, []byte(list), 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, err := runInProcess(t, "", "-o", in, "--overwrite", in)
		var se *batch.SetupError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), "would destroy the list") {
			t.Errorf("err = %v, want a *batch.SetupError about destroying the input", err)
		}
		if code := exitCode(err, &deps{redact: &secret.Set{}, started: true, signal: new(atomic.Value)}, &IOStreams{ErrOut: &bytes.Buffer{}}); code != exitUsage {
			t.Errorf("exit %d, want %d", code, exitUsage)
		}
	})
	t.Run("setting error", func(t *testing.T) {
		_, _, err := runInProcess(t, list, "--limit", "0")
		var se *settings.Error
		if !errors.As(err, &se) || err.Error() != "--limit: must be at least 1, got 0" {
			t.Errorf("err = %v, want the *settings.Error of --limit", err)
		}
	})
}
