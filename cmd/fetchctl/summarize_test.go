package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestSummarizeStdinFile: stdin redirected from a results file is that
// file: naming it too would count its records twice, and --summary onto it
// would destroy them. Both are exit 2 before anything is read or written.
func TestSummarizeStdinFile(t *testing.T) {
	bin, err := exec.LookPath("fetchctl")
	if err != nil {
		t.Fatal(err)
	}
	const rec = `{"url":"https://a.example/","line":1,"ok":true,"status":200,"bytes":0,"attempts":1,"duration_ms":1,"time":"2025-01-01T00:00:00Z"}` + "\n"
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"named after stdin", []string{"summarize", "-", "r.ndjson"},
			"fetchctl: results file r.ndjson is the same file as stdin: name each file once\n"},
		{"named before stdin", []string{"summarize", "r.ndjson", "-"},
			"fetchctl: stdin is the same file as results file r.ndjson: name each file once\n"},
		{"summary onto it", []string{"summarize", "-q", "-", "--summary", "r.ndjson"},
			"fetchctl: --summary r.ndjson is the input stdin: writing it would destroy the records; name another file\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "r.ndjson")
			if err := os.WriteFile(path, []byte(rec), 0o644); err != nil {
				t.Fatal(err)
			}
			in, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(bin, tt.args...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = in, &stdout, &stderr
			err = cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit: %v, want code 2; stderr:\n%s", err, stderr.String())
			}
			if got := stderr.String(); got != tt.want {
				t.Errorf("stderr = %q, want %q", got, tt.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
			if data, _ := os.ReadFile(path); string(data) != rec {
				t.Errorf("r.ndjson now holds %q, want it untouched", data)
			}
		})
	}
}
