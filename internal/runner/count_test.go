package runner

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestCountJobsMatchesReadJobs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := filepath.Join(dir, "a.txt")
	b := filepath.Join(dir, "b.txt")
	// Blank lines, comments, marks and an invalid line: the count is what
	// gets a record.
	if err := os.WriteFile(a, []byte("\ufeffhttp://a.example/1\n\n  # note\nhttp://b.example/2\nnot a url\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte("http://c.example/3\r\n\t\r\nhttp://d.example/4"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, shard := range []Shard{{}, {K: 0, N: 2}, {K: 1, N: 2}} {
		var inputs []Input
		for _, name := range []string{a, b} {
			f, err := os.Open(name)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			inputs = append(inputs, Input{Name: name, R: f})
		}
		jobs := make(chan Job, 64)
		if err := ReadJobs(context.Background(), inputs, ReadOptions{Shard: shard}, jobs); err != nil {
			t.Fatal(err)
		}
		close(jobs)
		want := int64(len(jobs))
		if got := CountJobs(context.Background(), []string{a, b}, shard); got != want {
			t.Errorf("shard %v: CountJobs = %d, ReadJobs sent %d", shard, got, want)
		}
	}
	if got := CountJobs(context.Background(), []string{a, "-"}, Shard{}); got != -1 {
		t.Errorf("CountJobs with stdin = %d, want -1", got)
	}
	if got := CountJobs(context.Background(), []string{dir}, Shard{}); got != -1 {
		t.Errorf("CountJobs of a folder = %d, want -1", got)
	}
}
