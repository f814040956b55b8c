package runner

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestSaveBodyNeverThroughALink checks that a link planted where a body file
// goes is replaced, not followed: its target keeps its content.
func TestSaveBodyNeverThroughALink(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, 0, nil)
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, "1.body")); err != nil {
		t.Fatal(err)
	}
	recs, err := runJobs(t, context.Background(), Options{Limit: 1, PerHost: 1, SaveDir: dir}, []string{srv.URL + "/a"})
	if err != nil || len(recs) != 1 || !recs[0].OK {
		t.Fatalf("run: %v, %d records", err, len(recs))
	}
	if got, _ := os.ReadFile(victim); string(got) != "precious" {
		t.Errorf("the link's target now holds %q", got)
	}
	fi, err := os.Lstat(filepath.Join(dir, "1.body"))
	if err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("1.body: %v, mode %v; want a regular file", err, fi.Mode())
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "1.body")); string(got) != "hello" {
		t.Errorf("1.body holds %q, want hello", got)
	}
}

// TestSaveBodyHoldsExactlyBytes checks that each record's body file holds
// exactly its bytes: a body over --max-body keeps the bytes counted, and a
// failed last attempt leaves no file from an earlier one.
func TestSaveBodyHoldsExactlyBytes(t *testing.T) {
	t.Parallel()
	var calls int
	srv := newTestServer(t, 0, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			fmt.Fprint(w, strings.Repeat("x", 100))
		case "/flaky":
			// A 503 with a body, then a cut connection.
			calls++
			if calls == 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprint(w, "busy")
				return
			}
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusOK)
			fmt.Fprint(w, "short")
			w.(http.Flusher).Flush()
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		}
	})
	dir := t.TempDir()
	opts := Options{Limit: 1, PerHost: 1, SaveDir: dir, MaxBody: 10, Retries: 1, RetryOn: mustRetryOn(t, "503"), Backoff: 1}
	recs, err := runJobs(t, context.Background(), opts, []string{srv.URL + "/big", srv.URL + "/flaky"})
	if err != nil || len(recs) != 2 {
		t.Fatalf("run: %v, %d records", err, len(recs))
	}
	for _, rec := range recs {
		if rec.BodyFile == "" {
			if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("%d.body", rec.Line))); err == nil {
				t.Errorf("line %d (%s): no body_file, but a file from an earlier attempt is left", rec.Line, rec.Error.Kind)
			}
			continue
		}
		fi, err := os.Stat(rec.BodyFile)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != rec.Bytes {
			t.Errorf("line %d: body_file holds %d bytes, the record says %d", rec.Line, fi.Size(), rec.Bytes)
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range left {
		if !strings.HasSuffix(f, ".body") {
			t.Errorf("left behind: %s", f)
		}
	}
}

// TestBodyFileNamesUnique checks that two inputs with one base name, or one
// file named twice, give every record its own body file.
func TestBodyFileNamesUnique(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, j := range []Job{
		{Input: "d1/u.txt", Line: 1, index: 1},
		{Input: "d2/u.txt", Line: 1, index: 2},
		{Input: "d1/u.txt", Line: 1, index: 3},
		{Input: "-", Line: 1, index: 4},
	} {
		name := bodyFileName(j, true)
		if seen[name] {
			t.Errorf("%s line %d (input %d): name %q given twice", j.Input, j.Line, j.index, name)
		}
		seen[name] = true
		if strings.ContainsAny(name, "/\\") {
			t.Errorf("name %q holds a separator", name)
		}
	}
	if got := bodyFileName(Job{Input: "u.txt", Line: 7, index: 1}, false); got != "7.body" {
		t.Errorf("single input: %q, want 7.body", got)
	}
}

// TestIsBodyFileName checks that IsBodyFileName knows every name a body of
// the inputs is given, and no other.
func TestIsBodyFileName(t *testing.T) {
	t.Parallel()
	one := []string{"d1/u.txt"}
	several := []string{"d1/u.txt", "d2/u.txt", "-", "a-b"}
	for _, tt := range []struct {
		name   string
		inputs []string
		want   bool
	}{
		{"7.body", one, true},
		{"123456789.body", one, true},
		{"0.body", one, false},
		{"07.body", one, false},
		{"-7.body", one, false},
		{"7.body.tmp", one, false},
		{"x.body", one, false},
		{"out.ndjson", one, false},
		{"1-u.txt-7.body", one, false},
		{"7.body", several, false},
		{"1-u.txt-7.body", several, true},
		{"2-u.txt-7.body", several, true},
		{"3-stdin-1.body", several, true},
		{"4-a-b-12.body", several, true},
		// A resumed run numbers an input as the run that wrote the
		// records did: any number may be an input's.
		{"5-u.txt-7.body", several, true},
		{"3-u.txt-7.body", several, true},
		{"5-v.txt-7.body", several, false},
		{"0-u.txt-7.body", several, false},
		{"01-u.txt-7.body", several, false},
		{"1-u.txt-x.body", several, false},
	} {
		if got := IsBodyFileName(tt.name, tt.inputs); got != tt.want {
			t.Errorf("IsBodyFileName(%q, %d inputs) = %v, want %v", tt.name, len(tt.inputs), got, tt.want)
		}
	}
	for i, in := range several {
		j := Job{Input: in, Line: 42, index: i + 1}
		if name := bodyFileName(j, true); !IsBodyFileName(name, several) {
			t.Errorf("IsBodyFileName(%q) = false for a body of input %d", name, i+1)
		}
	}
	if name := bodyFileName(Job{Input: one[0], Line: 42, index: 1}, false); !IsBodyFileName(name, one) {
		t.Errorf("IsBodyFileName(%q) = false for a body of the one input", name)
	}
}

// TestSaveBodyFailureStopsTheRun checks that a body that cannot be kept (a
// full disk) ends the run with an error of its own: the URL gets no record,
// no partial file is left, and the error is not blamed on the target.
func TestSaveBodyFailureStopsTheRun(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, 0, nil)
	dir := t.TempDir()
	opts := Options{Limit: 1, PerHost: 1, SaveDir: dir}
	opts.saveFile = func(dir, pattern string) (bodyFile, error) {
		f, err := os.CreateTemp(dir, pattern)
		return fullFile{f}, err
	}
	var lines []string
	for i := 0; i < 20; i++ {
		lines = append(lines, fmt.Sprintf("%s/%d", srv.URL, i))
	}
	recs, err := runJobs(t, context.Background(), opts, lines)
	var se *SaveError
	if !errors.As(err, &se) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Run = %v, want a *SaveError wrapping ENOSPC", err)
	}
	for _, rec := range recs {
		t.Errorf("a record for a body that was not kept: %+v", rec)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q does not name the folder", err)
	}
}

// fullFile is a body file on a full disk.
type fullFile struct{ *os.File }

func (f fullFile) Write([]byte) (int, error) {
	return 0, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
}

// TestSaveBodyMode checks that a body file gets the mode any new file gets
// under the user's umask (0644 under the usual 022), as before bodies were
// written through a temporary file, not the 0600 of os.CreateTemp.
func TestSaveBodyMode(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, 0, nil)
	dir := t.TempDir()
	recs, err := runJobs(t, context.Background(), Options{Limit: 1, PerHost: 1, SaveDir: dir}, []string{srv.URL + "/a"})
	if err != nil || len(recs) != 1 || recs[0].BodyFile == "" {
		t.Fatalf("run: %v, %d records", err, len(recs))
	}
	ref, err := os.Create(filepath.Join(t.TempDir(), "ref"))
	if err != nil {
		t.Fatal(err)
	}
	ref.Close()
	want, _ := os.Stat(ref.Name())
	got, err := os.Stat(recs[0].BodyFile)
	if err != nil {
		t.Fatal(err)
	}
	if got.Mode().Perm() != want.Mode().Perm() {
		t.Errorf("body file mode %v, want %v as os.Create gives", got.Mode().Perm(), want.Mode().Perm())
	}
}

// TestNumberBodies checks the number each input's body file names get: the
// one a resumed run found for it, else its position, else the first number
// no other input has.
func TestNumberBodies(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		known []int // BodyNo before, 0 for none
		want  []int
	}{
		{"first run", []int{0, 0, 0}, []int{1, 2, 3}},
		{"same order", []int{1, 2}, []int{1, 2}},
		{"reordered", []int{2, 1}, []int{2, 1}},
		{"one added before", []int{0, 1, 2}, []int{3, 1, 2}},
		{"one added after", []int{1, 2, 0}, []int{1, 2, 3}},
		{"position free", []int{0, 2, 0}, []int{1, 2, 3}},
		{"two added, positions taken", []int{0, 0, 1, 2}, []int{3, 4, 1, 2}},
		{"first free below", []int{0, 3, 0}, []int{1, 3, 2}},
		{"known above the count", []int{5, 0}, []int{5, 2}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inputs := make([]Input, len(tt.known))
			for i, n := range tt.known {
				inputs[i] = Input{Name: fmt.Sprintf("in%d", i), BodyNo: n}
			}
			NumberBodies(inputs)
			for i, in := range inputs {
				if in.BodyNo != tt.want[i] {
					t.Errorf("input %d: BodyNo %d, want %d", i+1, in.BodyNo, tt.want[i])
				}
			}
		})
	}
}

// TestBodyNumber checks that the number is read back from the names
// bodyFileName gives, and from no other.
func TestBodyNumber(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		file, input string
		line        int64
		want        int
		ok          bool
	}{
		{"b/3-u.txt-7.body", "d/u.txt", 7, 3, true},
		{"3-u.txt-7.body", "u.txt", 7, 3, true},
		{"/abs/b/12-stdin-1.body", "-", 1, 12, true},
		{"b/2-a-b-4.body", "x/a-b", 4, 2, true},
		{"b/3-u.txt-7.body", "u.txt", 8, 0, false},
		{"b/3-v.txt-7.body", "u.txt", 7, 0, false},
		{"b/7.body", "u.txt", 7, 0, false},
		{"b/03-u.txt-7.body", "u.txt", 7, 0, false},
		{"b/0-u.txt-7.body", "u.txt", 7, 0, false},
		{"b/x-u.txt-7.body", "u.txt", 7, 0, false},
		{"b/3-u.txt-7.body.tmp", "u.txt", 7, 0, false},
	} {
		got, ok := BodyNumber(tt.file, tt.input, tt.line)
		if got != tt.want || ok != tt.ok {
			t.Errorf("BodyNumber(%q, %q, %d) = %d, %v; want %d, %v", tt.file, tt.input, tt.line, got, ok, tt.want, tt.ok)
		}
	}
	// Every name a body gets reads back as its number.
	for _, j := range []Job{{Input: "d/u.txt", Line: 9, index: 4}, {Input: "-", Line: 1, index: 1}} {
		if n, ok := BodyNumber(bodyFileName(j, true), j.Input, j.Line); !ok || n != j.index {
			t.Errorf("BodyNumber(%q) = %d, %v; want %d", bodyFileName(j, true), n, ok, j.index)
		}
	}
}
