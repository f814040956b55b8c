package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSaveBodiesFullDisk runs --save-bodies onto a small tmpfs that fills up:
// the run stops with exit 1 and one line saying so, no URL is recorded as the
// target's failure, every record's body file holds its bytes, nothing partial
// is left, and --resume with room again completes the list.
func TestSaveBodiesFullDisk(t *testing.T) {
	bin, err := exec.LookPath("fetchctl")
	if err != nil {
		t.Fatalf("fetchctl not in PATH: %v", err)
	}
	dir := t.TempDir()
	bodies := filepath.Join(dir, "bodies")
	if err := os.Mkdir(bodies, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", bodies).CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount a tmpfs: %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs (needs root): %v: %s", err, out)
	}
	mounted := true
	unmount := func() {
		if mounted {
			if out, err := exec.Command("umount", bodies).CombinedOutput(); err != nil {
				t.Errorf("umount: %v: %s", err, out)
			}
			mounted = false
		}
	}
	t.Cleanup(unmount)

	body := strings.Repeat("b", 4096)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	const n = 200
	var list strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&list, "%s/%d\n", srv.URL, i)
	}
	urls := filepath.Join(dir, "urls.txt")
	if err := os.WriteFile(urls, []byte(list.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.ndjson")
	run := func(extra ...string) (int, string) {
		args := append([]string{"run", "--progress", "never", "-q", "--limit", "4", "--per-host", "4", "--save-bodies", bodies, "-o", out, urls}, extra...)
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), stderr.String()
	}

	code, stderr := run()
	if code != 1 {
		t.Fatalf("exit %d on a full disk, want 1; stderr:\n%s", code, stderr)
	}
	if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "no space left on device") {
		t.Errorf("stderr = %q, want one line naming the full disk", stderr)
	}
	first := checkBodies(t, out, bodies)
	if first == 0 || first >= n {
		t.Fatalf("%d records before the disk filled, want some but not all", first)
	}
	if left, _ := filepath.Glob(filepath.Join(bodies, ".*.tmp")); len(left) > 0 {
		t.Errorf("partial body files left: %v", left)
	}

	// Room again: the same folder, now on the disk under the test's temp dir.
	var keep [][2]string
	for _, f := range mustGlob(t, filepath.Join(bodies, "*.body")) {
		data, _ := os.ReadFile(f)
		keep = append(keep, [2]string{filepath.Base(f), string(data)})
	}
	unmount()
	for _, k := range keep {
		if err := os.WriteFile(filepath.Join(bodies, k[0]), []byte(k[1]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if code, stderr := run("--resume"); code != 0 {
		t.Fatalf("--resume: exit %d; stderr:\n%s", code, stderr)
	}
	if got := checkBodies(t, out, bodies); got != n {
		t.Errorf("after --resume: %d records, want %d", got, n)
	}
}

// checkBodies checks that out holds one record per line, none of kind other,
// each with a body file of its bytes, and returns how many.
func checkBodies(t *testing.T, out, bodies string) int {
	t.Helper()
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[int64]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct {
			Line     int64  `json:"line"`
			OK       bool   `json:"ok"`
			Bytes    int64  `json:"bytes"`
			BodyFile string `json:"body_file"`
			Error    *struct {
				Kind, Message string
			} `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		if seen[rec.Line] {
			t.Errorf("line %d recorded twice", rec.Line)
		}
		seen[rec.Line] = true
		if !rec.OK {
			t.Errorf("line %d: %+v, want ok", rec.Line, rec.Error)
			continue
		}
		fi, err := os.Stat(rec.BodyFile)
		if err != nil || fi.Size() != rec.Bytes {
			t.Errorf("line %d: body file %s: %v, size want %d", rec.Line, rec.BodyFile, err, rec.Bytes)
		}
	}
	return len(seen)
}

func mustGlob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
