package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/target"
)

// env returns a getenv that sees only vars, so tests never read the user's
// environment or config.
func env(t *testing.T, vars map[string]string) func(string) string {
	home := t.TempDir()
	return func(k string) string {
		if v, ok := vars[k]; ok {
			return v
		}
		switch k {
		case "HOME":
			return home
		case "XDG_CONFIG_HOME":
			return filepath.Join(home, ".config")
		}
		return ""
	}
}

func TestProgressOnlyOnATerminal(t *testing.T) {
	srv, err := target.Start(target.Options{Hosts: 2, BodySize: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	list := filepath.Join(t.TempDir(), "urls.txt")
	var b strings.Builder
	for i := 0; i < 50; i++ {
		b.WriteString(srv.URL(i%2, "/x") + "\n")
	}
	if err := os.WriteFile(list, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		tty      bool
		same     bool // stdout is the same terminal
		toFile   bool // records go to -o FILE, not to stdout
		ci       string
		progress string
		wantBar  bool
	}{
		{name: "auto, not a terminal", tty: false, progress: "auto", wantBar: false},
		{name: "auto, terminal", tty: true, progress: "auto", wantBar: true},
		{name: "auto, records on the same terminal", tty: true, same: true, progress: "auto", wantBar: false},
		{name: "auto, same terminal, records to a file", tty: true, same: true, toFile: true, progress: "auto", wantBar: true},
		{name: "auto, terminal under CI", tty: true, ci: "true", progress: "auto", wantBar: false},
		{name: "never, terminal", tty: true, progress: "never", wantBar: false},
		{name: "always, not a terminal", tty: false, progress: "always", wantBar: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			streams, _, stdout, stderr := testStreams()
			streams.SetStderrTTY(tt.tty)
			streams.sameTerminal = tt.same
			args := []string{"run", "--progress", tt.progress, list}
			out := filepath.Join(t.TempDir(), "out.ndjson")
			if tt.toFile {
				args = append(args, "-o", out)
			}
			code := mainWith(args, streams, env(t, map[string]string{"CI": tt.ci}))
			if code != 0 {
				t.Fatalf("exit %d, stderr %s", code, stderr)
			}
			records := stdout.Bytes()
			if tt.toFile {
				if stdout.Len() != 0 {
					t.Errorf("stdout %q, want nothing with -o", stdout)
				}
				b, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				records = b
			}
			n := 0
			sc := bufio.NewScanner(bytes.NewReader(records))
			for sc.Scan() {
				var rec report.Record
				if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
					t.Fatalf("stdout line %q is not a record: %v", sc.Text(), err)
				}
				n++
			}
			if n != 50 {
				t.Errorf("%d records on stdout, want 50", n)
			}
			gotBar := strings.Contains(stderr.String(), "\r")
			if gotBar != tt.wantBar {
				t.Errorf("progress drawn = %v, want %v; stderr %q", gotBar, tt.wantBar, stderr.String())
			}
			lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
			if last := lines[len(lines)-1]; !strings.HasPrefix(last, "fetchctl: 50/50 ok (100.00%) in ") {
				t.Errorf("last stderr line %q", last)
			}
		})
	}
}

// TestStdinHint checks that a run reading a terminal says so, as cat users
// expect, and that a pipe gets no such line.
func TestStdinHint(t *testing.T) {
	tests := []struct {
		name                string
		stdinTTY, stderrTTY bool
		quiet, want         bool
	}{
		{name: "both terminals", stdinTTY: true, stderrTTY: true, want: true},
		{name: "both terminals, -q", stdinTTY: true, stderrTTY: true, quiet: true},
		{name: "stdin a pipe", stderrTTY: true},
		{name: "stderr redirected", stdinTTY: true},
		{name: "neither"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			streams, _, _, stderr := testStreams()
			streams.stdinTTY, streams.stderrTTY = tt.stdinTTY, tt.stderrTTY
			args := []string{"run", "--progress", "never"}
			if tt.quiet {
				args = append(args, "-q")
			}
			if code := mainWith(args, streams, env(t, nil)); code != 0 {
				t.Fatalf("exit %d, stderr %s", code, stderr)
			}
			hint := strings.Contains(stderr.String(), "reading URLs from stdin, one a line (Ctrl-D to end)")
			if hint != tt.want {
				t.Errorf("hint shown: %v, want %v; stderr %q", hint, tt.want, stderr)
			}
		})
	}
}

// TestDryRunIndentsForATerminal checks that --dry-run's JSON is indented for
// a person at a terminal and one line for a pipe.
func TestDryRunIndentsForATerminal(t *testing.T) {
	for _, tty := range []bool{true, false} {
		streams, _, stdout, stderr := testStreams()
		streams.SetStdoutTTY(tty)
		if code := mainWith([]string{"run", "--dry-run"}, streams, env(t, nil)); code != 0 {
			t.Fatalf("exit %d, stderr %s", code, stderr)
		}
		var v map[string]any
		if err := json.Unmarshal(stdout.Bytes(), &v); err != nil {
			t.Fatalf("not JSON: %v: %s", err, stdout)
		}
		lines := strings.Count(strings.TrimSpace(stdout.String()), "\n") + 1
		if indented := lines > 1; indented != tty {
			t.Errorf("stdout a terminal: %v; %d lines of JSON", tty, lines)
		}
	}
}
