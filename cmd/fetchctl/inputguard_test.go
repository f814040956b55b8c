//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStdoutIsAnInput: what the run writes to stdout (the records, the
// --summary - JSON, the --dry-run report) onto a file that is one of its
// inputs, appended or written over, named or read as stdin, would be read
// back as lines of the list or destroy it: exit 2 before anything is
// fetched, the list untouched. summarize's JSON onto a results file it
// reads, stdin's included, is refused the same way.
func TestStdoutIsAnInput(t *testing.T) {
	t.Parallel()
	const list = "http://127.0.0.1:9/\n"
	tests := []struct {
		name   string
		args   []string
		stdin  bool // stdin is read from the file too
		append bool // stdout appends, as >> does; else writes from the start
		keep   string
		want   string
	}{
		{"records appended to the input", []string{"run", "-q", "urls.txt"}, false, true, list,
			"fetchctl: stdout is the input urls.txt: the records would be read back as its lines; give -o FILE\n"},
		{"records written over the input", []string{"run", "-q", "urls.txt"}, false, false, list,
			"fetchctl: stdout is the input urls.txt: the records would be read back as its lines; give -o FILE\n"},
		{"records appended to stdin's file", []string{"run", "-q", "-"}, true, true, list,
			"fetchctl: stdout is the input stdin: the records would be read back as its lines; give -o FILE\n"},
		{"records appended to stdin's file, no argument", []string{"run", "-q"}, true, true, list,
			"fetchctl: stdout is the input stdin: the records would be read back as its lines; give -o FILE\n"},
		{"summary to the input", []string{"run", "-q", "urls.txt", "-o", "out.ndjson", "--summary", "-"}, false, true, list,
			"fetchctl: --summary - is stdout, which is the input urls.txt: writing it would destroy the list; give --summary FILE\n"},
		{"dry run report to the input", []string{"run", "urls.txt", "--dry-run"}, false, true, list,
			"fetchctl: stdout is the input urls.txt: the --dry-run report would land in the list; give another stdout\n"},
		{"summarize JSON to stdin's file", []string{"summarize", "-q", "--json", "-"}, true, true, recordLine,
			"fetchctl: stdout is the results file stdin: the summary would land in its records; give --summary FILE\n"},
		{"summarize --summary - to stdin's file", []string{"summarize", "-q", "--summary", "-", "-"}, true, true, recordLine,
			"fetchctl: stdout is the results file stdin: the summary would land in its records; give --summary FILE\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "urls.txt")
			if err := os.WriteFile(path, []byte(tt.keep), 0o644); err != nil {
				t.Fatal(err)
			}
			flag := os.O_WRONLY
			if tt.append {
				flag |= os.O_APPEND
			}
			out, err := os.OpenFile(path, flag, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := fetchctlCmd(t, ctx, dir, tt.args...)
			cmd.Dir = dir
			if tt.stdin {
				in, err := os.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				defer in.Close()
				cmd.Stdin = in
			}
			var stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = out, &stderr
			err = cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("fetchctl ended with %v, want exit 2; stderr: %s", err, stderr.String())
			}
			if stderr.String() != tt.want {
				t.Errorf("stderr %q, want %q", stderr.String(), tt.want)
			}
			if b, err := os.ReadFile(path); err != nil || string(b) != tt.keep {
				t.Errorf("the file holds %q (%v), want %q untouched", b, err, tt.keep)
			}
			if _, err := os.Stat(filepath.Join(dir, "out.ndjson")); err == nil {
				t.Error("out.ndjson was made")
			}
		})
	}
}

// TestStdoutOnAnotherFile: stdout appended to a file that is not an input
// still gets the records.
func TestStdoutOnAnotherFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "urls.txt"), []byte("not a url\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "out.ndjson")
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := fetchctlCmd(t, ctx, dir, "run", "-q", "urls.txt")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("fetchctl ended with %v, want exit 0; stderr: %s", err, stderr.String())
	}
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), `"invalid_url"`) || strings.Count(string(b), "\n") != 1 {
		t.Errorf("out.ndjson holds %q, want the one record", b)
	}
}

// TestStdinIsABodyFile: stdin read from a file in the --save-bodies folder
// under a name a body could take would be replaced by that body: exit 2
// before anything is fetched, the list untouched. Under another name it is
// read as any list.
func TestStdinIsABodyFile(t *testing.T) {
	t.Parallel()
	const list = "http://127.0.0.1:9/a\nhttp://127.0.0.1:9/b\n"
	tests := []struct {
		name string
		file string // under sbx
		args []string
		want string // "" for exit 0
	}{
		{"dash", "2.body", []string{"run", "-q", "-", "--save-bodies", "sbx", "--retries", "0"},
			"fetchctl: stdin, the file sbx/2.body, could be a body file of --save-bodies sbx: a saved body would replace it; give --save-bodies another folder\n"},
		{"no argument", "1.body", []string{"run", "-q", "--save-bodies", "sbx/", "--retries", "0"},
			"fetchctl: stdin, the file sbx/1.body, could be a body file of --save-bodies sbx/: a saved body would replace it; give --save-bodies another folder\n"},
		{"another name", "urls.txt", []string{"run", "-q", "-", "--save-bodies", "sbx", "--retries", "0"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.Mkdir(filepath.Join(dir, "sbx"), 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "sbx", tt.file)
			if err := os.WriteFile(path, []byte(list), 0o644); err != nil {
				t.Fatal(err)
			}
			in, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := fetchctlCmd(t, ctx, dir, tt.args...)
			cmd.Dir = dir
			var stdout, stderr bytes.Buffer
			cmd.Stdin, cmd.Stdout, cmd.Stderr = in, &stdout, &stderr
			err = cmd.Run()
			if tt.want == "" {
				if err != nil || strings.Count(stdout.String(), "\n") != 2 {
					t.Fatalf("fetchctl ended with %v and %q, want exit 0 and two records; stderr: %s", err, stdout.String(), stderr.String())
				}
			} else {
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != 2 {
					t.Fatalf("fetchctl ended with %v, want exit 2; stderr: %s", err, stderr.String())
				}
				if stderr.String() != tt.want {
					t.Errorf("stderr %q, want %q", stderr.String(), tt.want)
				}
			}
			if b, err := os.ReadFile(path); err != nil || string(b) != list {
				t.Errorf("the list holds %q (%v), want it untouched", b, err)
			}
		})
	}
}
