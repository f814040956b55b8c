package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fetchctl/fetchctl/internal/target"
)

// TestProtoValuesDocumented: a record's proto is the protocol the server
// answered with, HTTP/1.0 included, and the README's record table names
// every value a record can hold.
func TestProtoValuesDocumented(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `proto` \\|.*$").Find(readme)
	if row == nil {
		t.Fatal("README's record table has no proto row")
	}
	h2, err := target.Start(target.Options{Hosts: 1, TLS: true, HTTP2: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h2.Close)
	tests := []struct {
		name, url, want string
	}{
		{"HTTP/1.0", startHeadServer(t, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok").URL, "HTTP/1.0"},
		{"HTTP/1.1", startHeadServer(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").URL, "HTTP/1.1"},
		{"HTTP/2", h2.URL(0, "/"), "HTTP/2.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "urls.txt"), []byte(tt.url+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			res := runFetchctl(t, dir, nil, "run", "-q", "-k", "--retries", "0", "-o", "out.ndjson", "urls.txt")
			recs := readRecords(t, filepath.Join(dir, "out.ndjson"))
			if res.code != 0 || len(recs) != 1 {
				t.Fatalf("exit %d, %d records; stderr %q", res.code, len(recs), res.stderr)
			}
			if got := recs[0].Proto; got != tt.want {
				t.Errorf("proto %q, want %q", got, tt.want)
			}
			if !strings.Contains(string(row), "`"+tt.want+"`") {
				t.Errorf("README's proto row does not name %s: %s", tt.want, row)
			}
		})
	}
}
