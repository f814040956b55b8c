package batch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/runner"
)

// TestKeptRecordsHugeLines: line numbers that no input has take no memory
// of their own, and are a mismatch, not a panic. Not parallel: it measures
// what it allocates.
func TestKeptRecordsHugeLines(t *testing.T) {
	inputs := []runner.Input{{Name: "urls.txt", R: strings.NewReader("")}}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	k := newKeptRecords("out.ndjson", runner.Shard{}, inputs)
	for i, line := range []int64{math.MaxInt64, 10_000_000_000, 2} {
		if err := k.add(int64(i+1), &report.Record{URL: "https://a.example/", Line: line}); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.done(); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("three records took %d bytes, want well under 1 MiB", got)
	}
	for _, line := range []int64{1, 2, 3} {
		skip, err := k.check(&runner.Job{Input: "urls.txt", Line: line, URL: "https://a.example/"})
		if want := line == 2; skip != want || err != nil {
			t.Errorf("line %d: skip %v, %v; want %v, no error", line, skip, err, want)
		}
	}
	err := k.unseen()
	if err == nil || !strings.Contains(err.Error(), "out.ndjson line 1 holds a record of line 9223372036854775807") {
		t.Errorf("unseen = %v, want it to name the record of line 9223372036854775807", err)
	}
}

// TestKeptRecordsMatchAsWritten: a line's URL matches its record as the
// writer wrote it and the reader read it back: password masked, bytes that
// are not UTF-8 replaced.
func TestKeptRecordsMatchAsWritten(t *testing.T) {
	t.Parallel()
	lines := []string{
		"https://a.example/plain",
		"http://user:hunter2@a.example/secret",
		"https://a.example/\xff\xfe-not-utf8",
		"ftp://a.example/\xc3(",
	}
	var buf bytes.Buffer
	for i, l := range lines {
		j := runner.Job{Line: int64(i + 1), URL: l}
		buf.Write(report.AppendJSON(nil, &report.Record{URL: j.RecordURL(), Line: j.Line}))
		buf.WriteByte('\n')
	}
	k := newKeptRecords("out.ndjson", runner.Shard{}, []runner.Input{{Name: "-"}})
	if _, err := report.ReadNumbered(&buf, k.add); err != nil {
		t.Fatal(err)
	}
	if err := k.done(); err != nil {
		t.Fatal(err)
	}
	for i, l := range lines {
		skip, err := k.check(&runner.Job{Input: "-", Line: int64(i + 1), URL: l})
		if !skip || err != nil {
			t.Errorf("line %d %q: skip %v, %v; want its record kept", i+1, l, skip, err)
		}
	}
	_, err := k.check(&runner.Job{Input: "-", Line: 2, URL: "http://user:hunter2@a.example/other"})
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "user:***@a.example/other") {
		t.Errorf("another URL on line 2: %v; want a mismatch with the password masked", err)
	}
	if err := k.unseen(); err != nil {
		t.Errorf("unseen = %v, want none", err)
	}
}

// TestKeptRecordsShard: with --shard, a record is kept only when its line
// falls in the run's shard by the reader's rule; an invalid line's record
// belongs to shard 0.
func TestKeptRecordsShard(t *testing.T) {
	t.Parallel()
	// In shards of 3: 127.0.0.1:1 is in shard 0, 127.0.0.1:2 in shard 1.
	lines := []string{"http://127.0.0.1:1/a", "http://127.0.0.1:2/b", "ftp://127.0.0.1:2/x"}
	tests := []struct {
		shard   runner.Shard
		line    int64
		wantErr string // "" when kept
	}{
		{runner.Shard{K: 0, N: 3}, 1, ""},
		{runner.Shard{K: 1, N: 3}, 1, "out.ndjson line 1 holds a record of line 1 for http://127.0.0.1:1/a, a URL of shard 0/3, not 1/3"},
		{runner.Shard{K: 1, N: 3}, 2, ""},
		{runner.Shard{K: 0, N: 3}, 2, "a URL of shard 1/3, not 0/3"},
		{runner.Shard{K: 0, N: 3}, 3, ""},
		{runner.Shard{K: 1, N: 3}, 3, "for ftp://127.0.0.1:2/x, an invalid line, which shard 0/3 records, not 1/3"},
		{runner.Shard{}, 2, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d-%d line %d", tt.shard.K, tt.shard.N, tt.line), func(t *testing.T) {
			t.Parallel()
			k := newKeptRecords("out.ndjson", tt.shard, []runner.Input{{Name: "urls.txt"}})
			if err := k.add(1, &report.Record{URL: lines[tt.line-1], Line: tt.line}); err != nil {
				t.Fatal(err)
			}
			if err := k.done(); err != nil {
				t.Fatal(err)
			}
			in := runner.Input{Name: "urls.txt", R: strings.NewReader(strings.Join(lines, "\n") + "\n")}
			jobs := make(chan runner.Job, len(lines))
			err := runner.ReadJobs(context.Background(), []runner.Input{in}, runner.ReadOptions{Shard: tt.shard, Recorded: k.check}, jobs)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ReadJobs = %v, want the record kept", err)
				}
				return
			}
			var se *SetupError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ReadJobs = %v, want a setup error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestKeptRecordsSameFileOtherName: a record of an input this run does not
// name is refused, as inputs match by name as written; when this run reads
// that very file under another name, or from stdin, the message says so.
func TestKeptRecordsSameFileOtherName(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, []byte("https://a.example/\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	open := func(p string) *os.File {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	tests := []struct {
		name   string
		inputs []runner.Input
		want   string
	}{
		{name: "another path", inputs: []runner.Input{{Name: dir + "/./a.txt", R: open(a)}, {Name: b, R: open(b)}},
			want: fmt.Sprintf("holds a record of %s line 1, but this run names that file %s: name each input as the run that wrote it did", a, dir+"/./a.txt")},
		{name: "stdin", inputs: []runner.Input{{Name: "-", R: open(a)}, {Name: b, R: open(b)}},
			want: fmt.Sprintf("holds a record of %s line 1, but this run reads that file from stdin: name each input as the run that wrote it did", a)},
		{name: "another file", inputs: []runner.Input{{Name: b, R: open(b)}, {Name: "-", R: strings.NewReader("")}},
			want: fmt.Sprintf("holds a record of %s line 1, but this run does not read %s: results of another run?", a, a)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k := newKeptRecords("out.ndjson", runner.Shard{}, tt.inputs)
			err := k.add(1, &report.Record{URL: "https://a.example/", Line: 1, Input: a})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("add = %v, want it to say %q", err, tt.want)
			}
		})
	}
}

// TestKeptRecordsBodyNumbers checks the numbers of body file names that a
// resumed run takes from the records, whatever the order of its inputs, and
// that records whose numbers clash refuse the run only with --save-bodies.
func TestKeptRecordsBodyNumbers(t *testing.T) {
	t.Parallel()
	type rec struct {
		input string
		line  int64
		body  string
	}
	tests := []struct {
		name    string
		inputs  []string // this run's, in order
		records []rec
		want    []int  // BodyNo of each input once numbered
		wantErr string // with --save-bodies
	}{
		{name: "reordered", inputs: []string{"y/u.txt", "x/u.txt"},
			records: []rec{{"x/u.txt", 1, "b/1-u.txt-1.body"}, {"y/u.txt", 1, "b/2-u.txt-1.body"}, {"x/u.txt", 2, "b/1-u.txt-2.body"}},
			want:    []int{2, 1}},
		{name: "added", inputs: []string{"z/u.txt", "x/u.txt", "y/u.txt"},
			records: []rec{{"x/u.txt", 1, "b/1-u.txt-1.body"}, {"y/u.txt", 1, "b/2-u.txt-1.body"}},
			want:    []int{3, 1, 2}},
		{name: "no body in the records", inputs: []string{"y/u.txt", "x/u.txt"},
			records: []rec{{"x/u.txt", 1, ""}, {"y/u.txt", 1, "b/1-u.txt-1.body"}},
			want:    []int{1, 2}},
		{name: "stdin", inputs: []string{"x/u.txt", "-"},
			records: []rec{{"-", 3, "b/1-stdin-3.body"}},
			want:    []int{2, 1}},
		{name: "a name not of this form is no number", inputs: []string{"y/u.txt", "x/u.txt"},
			records: []rec{{"x/u.txt", 1, "b/2-u.txt-9.body"}},
			want:    []int{1, 2}},
		{name: "one number, two inputs", inputs: []string{"x/u.txt", "y/u.txt"},
			records: []rec{{"x/u.txt", 2, "b/1-u.txt-2.body"}, {"y/u.txt", 2, "b/1-u.txt-2.body"}},
			wantErr: "--resume: out.ndjson line 2 holds a record of y/u.txt line 2 whose body_file b/1-u.txt-2.body has the number of x/u.txt's bodies: start again with --overwrite"},
		{name: "two numbers, one input", inputs: []string{"x/u.txt", "y/u.txt"},
			records: []rec{{"x/u.txt", 1, "b/1-u.txt-1.body"}, {"x/u.txt", 2, "b/2-u.txt-2.body"}},
			wantErr: "--resume: out.ndjson line 2 holds a record of x/u.txt line 2 whose body_file b/2-u.txt-2.body does not have the number 1 of its other bodies: start again with --overwrite"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, bodies := range []bool{false, true} {
				inputs := make([]runner.Input, len(tt.inputs))
				for i, name := range tt.inputs {
					inputs[i] = runner.Input{Name: name, R: strings.NewReader("")}
				}
				k := newKeptRecords("out.ndjson", runner.Shard{}, inputs)
				k.bodies = bodies
				for i, r := range tt.records {
					if err := k.add(int64(i+1), &report.Record{URL: "https://a.example/", Line: r.line, Input: r.input, BodyFile: r.body}); err != nil {
						t.Fatal(err)
					}
				}
				err := k.done()
				if tt.wantErr != "" && bodies {
					if err == nil || err.Error() != tt.wantErr {
						t.Errorf("done = %v, want %q", err, tt.wantErr)
					}
					continue
				}
				if err != nil {
					t.Fatalf("bodies %v: done = %v", bodies, err)
				}
				if tt.want == nil {
					continue
				}
				k.numberBodies(inputs)
				runner.NumberBodies(inputs)
				for i, in := range inputs {
					if in.BodyNo != tt.want[i] {
						t.Errorf("%s: BodyNo %d, want %d", in.Name, in.BodyNo, tt.want[i])
					}
				}
			}
		})
	}
}
