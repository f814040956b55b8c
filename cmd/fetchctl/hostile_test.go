package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fetchctl/fetchctl/internal/target"
)

// startHeadServer starts a target.RawServer answering with head.
func startHeadServer(t *testing.T, head string) *target.RawServer {
	t.Helper()
	s, err := target.StartRaw(head)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// bigHead is a 200 whose head holds one header of n bytes.
func bigHead(n int) string {
	return "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", n) + "\r\nContent-Length: 2\r\n\r\nok"
}

// TestHostileHeadsEndToEnd: --max-header-size (flag, env, config) bounds a
// response head, a head over it or a malformed one is kind protocol and not
// retried unless --retry-on says protocol, and records, -v lines and the
// summary stay small whatever the server sent. A head over the limit says
// so, naming --max-header-size as written.
func TestHostileHeadsEndToEnd(t *testing.T) {
	t.Parallel()
	malformed := "HTTP/1.1 200 OK\r\nX-Bad: " + strings.Repeat("b\x01", 50_000) + "\r\nContent-Length: 2\r\n\r\nok"
	tests := []struct {
		name   string
		head   string
		args   []string
		env    []string
		config string
		kind   string // "" is ok
		tries  int64
		// message is the record's error message, when given.
		message string
	}{
		{name: "2 MiB header by default", head: bigHead(2 << 20), kind: "protocol", tries: 1, message: "response head over --max-header-size 1MiB"},
		{name: "malformed 100 KB line", head: malformed, kind: "protocol", tries: 1},
		{name: "512 KiB header under 1MiB", head: bigHead(512 << 10), args: []string{"--max-header-size", "1MiB"}, tries: 1},
		{name: "10 KiB header over 4KiB flag", head: bigHead(10 << 10), args: []string{"--max-header-size", "4KiB"}, kind: "protocol", tries: 1, message: "response head over --max-header-size 4KiB"},
		{name: "10 KiB header over 4KiB env", head: bigHead(10 << 10), env: []string{"FETCHCTL_MAX_HEADER_SIZE=4KiB"}, kind: "protocol", tries: 1, message: "response head over --max-header-size 4KiB"},
		{name: "10 KiB header over 4KiB config", head: bigHead(10 << 10), config: "max_header_size: 4KiB\n", kind: "protocol", tries: 1, message: "response head over --max-header-size 4KiB"},
		{name: "retried with --retry-on protocol", head: malformed, args: []string{"--retry-on", "5xx,protocol", "--backoff", "1ms"}, kind: "protocol", tries: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startHeadServer(t, tt.head)
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "urls.txt"), []byte(srv.URL+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"run", "-v", "--retries", "2", "--progress", "never", "-o", "out.ndjson", "--summary", "sum.json"}
			if tt.config != "" {
				if err := os.WriteFile(filepath.Join(dir, "cfg.yaml"), []byte(tt.config), 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", "cfg.yaml")
			}
			args = append(append(args, tt.args...), "urls.txt")
			res := runFetchctl(t, dir, tt.env, args...)
			recs := readRecords(t, filepath.Join(dir, "out.ndjson"))
			if len(recs) != 1 {
				t.Fatalf("%d records; stderr %.500q", len(recs), res.stderr)
			}
			r := recs[0]
			if got := srv.Requests(); got != tt.tries || int64(r.Attempts) != tt.tries {
				t.Errorf("%d requests, %d attempts; want %d", got, r.Attempts, tt.tries)
			}
			if tt.kind == "" {
				if !r.OK {
					t.Fatalf("record not ok: %.300q", fmt.Sprint(r.Error))
				}
				return
			}
			if r.Error == nil || r.Error.Kind != tt.kind {
				t.Fatalf("error %.300q, want kind %s", fmt.Sprint(r.Error), tt.kind)
			}
			if tt.message != "" && r.Error.Message != tt.message {
				t.Errorf("message %q, want %q", r.Error.Message, tt.message)
			}
			if n := len(r.Error.Message); n > 1024+200 {
				t.Errorf("message of %d bytes", n)
			}
			out, err := os.ReadFile(filepath.Join(dir, "out.ndjson"))
			if err != nil {
				t.Fatal(err)
			}
			if len(out) > 4<<10 {
				t.Errorf("record of %d bytes", len(out))
			}
			for _, line := range strings.Split(res.stderr, "\n") {
				if len(line) > 2<<10 {
					t.Errorf("stderr line of %d bytes: %.200q", len(line), line)
				}
			}
			sum, err := os.ReadFile(filepath.Join(dir, "sum.json"))
			if err != nil {
				t.Fatal(err)
			}
			var s struct {
				Errors map[string]int `json:"errors"`
			}
			if err := json.Unmarshal(sum, &s); err != nil || s.Errors[tt.kind] != 1 || len(sum) > 8<<10 {
				t.Errorf("summary of %d bytes, errors %v (%v)", len(sum), s.Errors, err)
			}
		})
	}
}

func TestMaxHeaderSizeSetting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "urls.txt"), []byte("http://127.0.0.1:9/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		env    []string
		value  string
		source string
		code   int
	}{
		{name: "default", value: "1MiB", source: "default"},
		{name: "flag", args: []string{"--max-header-size", "64KiB"}, value: "64KiB", source: "flag"},
		{name: "env", env: []string{"FETCHCTL_MAX_HEADER_SIZE=2MiB"}, value: "2MiB", source: "env"},
		{name: "zero", args: []string{"--max-header-size", "0"}, code: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append(append([]string{"run", "--dry-run"}, tt.args...), "urls.txt")
			res := runFetchctl(t, dir, tt.env, args...)
			if res.code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %q", res.code, tt.code, res.stderr)
			}
			if tt.code != 0 {
				if !strings.Contains(res.stderr, "max-header-size") {
					t.Errorf("stderr %q does not name the setting", res.stderr)
				}
				return
			}
			var out struct {
				Settings map[string]struct {
					Value  any    `json:"value"`
					Source string `json:"source"`
				} `json:"settings"`
			}
			if err := json.Unmarshal([]byte(res.stdout), &out); err != nil {
				t.Fatal(err)
			}
			got := out.Settings["max_header_size"]
			if got.Value != tt.value || got.Source != tt.source {
				t.Errorf("max_header_size = %v from %s, want %s from %s", got.Value, got.Source, tt.value, tt.source)
			}
		})
	}
}
