package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// callRecorder keeps each Write call apart, so tests can check that no line
// is split across calls.
type callRecorder struct {
	mu    sync.Mutex
	calls [][]byte
	wrote chan struct{} // if not nil, signalled after each call
}

func (c *callRecorder) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.calls = append(c.calls, bytes.Clone(p))
	c.mu.Unlock()
	if c.wrote != nil {
		select {
		case c.wrote <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

func (c *callRecorder) snapshot() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calls)
}

// checkWholeLines fails unless every call ends a line and every line decodes
// as a record; it returns the lines.
func checkWholeLines(t *testing.T, calls [][]byte) []Record {
	t.Helper()
	var recs []Record
	for i, call := range calls {
		if len(call) == 0 || call[len(call)-1] != '\n' {
			t.Fatalf("write call %d does not end a line: %q", i, call)
		}
		for _, line := range bytes.SplitAfter(call, []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			var r Record
			if err := json.Unmarshal(line, &r); err != nil {
				t.Fatalf("write call %d holds a bad line %q: %v", i, line, err)
			}
			recs = append(recs, r)
		}
	}
	return recs
}

func TestWriterBatchesWholeLines(t *testing.T) {
	t.Parallel()
	var rec callRecorder
	w := NewWriter(&rec, 0)
	r := sampleRecord()
	const n = 1000 // about 700 KiB: several batches
	for i := range n {
		r.Line = int64(i + 1)
		if err := w.Write(r); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	if got := len(rec.snapshot()); got >= n/10 {
		t.Errorf("%d records took %d write calls, want them batched", n, got)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	calls := rec.snapshot()
	for i, call := range calls {
		if len(call) > bufSize {
			t.Errorf("write call %d is %d bytes, more than the %d buffer", i, len(call), bufSize)
		}
	}
	recs := checkWholeLines(t, calls)
	if len(recs) != n {
		t.Fatalf("got %d records, want %d", len(recs), n)
	}
	for i, got := range recs {
		if got.Line != int64(i+1) {
			t.Fatalf("record %d has line %d, want %d", i, got.Line, i+1)
		}
	}
}

func TestWriterOversizedLine(t *testing.T) {
	t.Parallel()
	var rec callRecorder
	w := NewWriter(&rec, 0)
	small := &Record{URL: "https://small.example/"}
	big := &Record{URL: "https://big.example/", Error: &Error{Kind: KindOther, Message: strings.Repeat("x", 2*bufSize)}}
	for _, r := range []*Record{small, big, small} {
		if err := w.Write(r); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	calls := rec.snapshot()
	checkWholeLines(t, calls)
	want := []string{small.URL, big.URL, small.URL}
	if len(calls) != len(want) {
		t.Fatalf("got %d write calls, want %d (flush, the big line alone, the rest)", len(calls), len(want))
	}
	for i, call := range calls {
		var r Record
		if err := json.Unmarshal(call, &r); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if r.URL != want[i] {
			t.Errorf("call %d holds %q, want %q", i, r.URL, want[i])
		}
	}
}

func TestWriterConcurrent(t *testing.T) {
	t.Parallel()
	var rec callRecorder
	w := NewWriter(&rec, time.Millisecond)
	const workers, each = 8, 300
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			r := sampleRecord()
			for i := range each {
				r.Line = int64(g*each + i)
				if err := w.Write(r); err != nil {
					t.Errorf("Write: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	recs := checkWholeLines(t, rec.snapshot())
	seen := make(map[int64]bool)
	for _, r := range recs {
		if seen[r.Line] {
			t.Fatalf("line %d written twice", r.Line)
		}
		seen[r.Line] = true
	}
	if len(seen) != workers*each {
		t.Errorf("got %d distinct records, want %d", len(seen), workers*each)
	}
}

func TestWriterFlushesInBackground(t *testing.T) {
	t.Parallel()
	rec := callRecorder{wrote: make(chan struct{}, 1)}
	w := NewWriter(&rec, time.Millisecond)
	defer w.Close()
	if err := w.Write(sampleRecord()); err != nil {
		t.Fatalf("Write: %v", err)
	}
	select {
	case <-rec.wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("buffered record not written out by the flushing goroutine")
	}
	checkWholeLines(t, rec.snapshot())
}

func TestWriterNoTickerWithoutFlushEvery(t *testing.T) {
	t.Parallel()
	var rec callRecorder
	w := NewWriter(&rec, 0)
	if err := w.Write(sampleRecord()); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if got := len(rec.snapshot()); got != 0 {
		t.Fatalf("got %d write calls before Flush, want 0", got)
	}
	if err := w.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if err := w.Flush(); err != nil {
		t.Fatalf("second Flush: %v", err)
	}
	if got := len(rec.snapshot()); got != 1 {
		t.Fatalf("got %d write calls after two Flush calls, want 1 (an empty buffer is not written)", got)
	}
}

// failingWriter accepts limit bytes, then fails every call.
type failingWriter struct {
	limit int
	err   error
	calls int
	short bool // fail by a short count without error
}

func (f *failingWriter) Write(p []byte) (int, error) {
	f.calls++
	if len(p) <= f.limit {
		f.limit -= len(p)
		return len(p), nil
	}
	if f.short {
		return f.limit, nil
	}
	return 0, f.err
}

func TestWriterStickyError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		target *failingWriter
		want   error
	}{
		{"broken pipe", &failingWriter{err: syscall.EPIPE}, syscall.EPIPE},
		{"disk full after some output", &failingWriter{limit: 3 * bufSize, err: syscall.ENOSPC}, syscall.ENOSPC},
		{"short write", &failingWriter{short: true}, io.ErrShortWrite},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := NewWriter(tt.target, 0)
			r := sampleRecord()
			var first error
			for range 10000 {
				if first = w.Write(r); first != nil {
					break
				}
			}
			if first == nil {
				first = w.Flush()
			}
			if !errors.Is(first, tt.want) {
				t.Fatalf("first error = %v, want one wrapping %v", first, tt.want)
			}
			if !strings.HasPrefix(first.Error(), "write output: ") {
				t.Errorf("error %q does not start with %q", first, "write output: ")
			}
			calls := tt.target.calls
			for name, err := range map[string]error{"Write": w.Write(r), "Flush": w.Flush(), "Close": w.Close(), "second Close": w.Close()} {
				if err != first {
					t.Errorf("%s after the failure = %v, want the first error %v", name, err, first)
				}
			}
			if tt.target.calls != calls {
				t.Errorf("underlying writer called %d more times after failing, want 0", tt.target.calls-calls)
			}
		})
	}
}

func TestWriterWriteAfterClose(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := NewWriter(&buf, time.Hour)
	if err := w.Write(&Record{URL: "https://a/"}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if buf.Len() == 0 {
		t.Fatal("Close did not write out the buffered record")
	}
	if err := w.Write(&Record{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}

func BenchmarkWriter(b *testing.B) {
	w := NewWriter(io.Discard, 100*time.Millisecond)
	defer w.Close()
	r := sampleRecord()
	b.ReportAllocs()
	for b.Loop() {
		if err := w.Write(r); err != nil {
			b.Fatal(err)
		}
	}
}

// TestWriterOnWritten checks that OnWritten sees exactly the records whose
// lines reached the underlying writer: none of a batch lost to an error, and
// an oversized line once it is written.
func TestWriterOnWritten(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		target *failingWriter
	}{
		{"all written", &failingWriter{limit: 1 << 30}},
		{"nothing written", &failingWriter{err: syscall.ENOSPC}},
		{"some written", &failingWriter{limit: 2 * bufSize, err: syscall.ENOSPC}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			sink := &failingWriter{limit: tt.target.limit, err: tt.target.err}
			w := NewWriter(io.MultiWriter(sink, &out), 0)
			var seen []int64
			w.OnWritten(func(r *Record) { seen = append(seen, r.Line) })
			big := sampleRecord()
			big.URL = strings.Repeat("u", 2*bufSize)
			for i := int64(1); i <= 2000; i++ {
				r := sampleRecord()
				if i == 700 {
					r = big
				}
				r.Line = i
				if w.Write(r) != nil {
					break
				}
			}
			_ = w.Close()
			var written []int64
			for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
				if line == "" {
					continue
				}
				var r Record
				if err := json.Unmarshal([]byte(line), &r); err != nil {
					t.Fatalf("output line %q: %v", line, err)
				}
				written = append(written, r.Line)
			}
			if !slices.Equal(seen, written) {
				t.Errorf("OnWritten saw %d records (%v...), the output holds %d (%v...)", len(seen), head(seen), len(written), head(written))
			}
		})
	}
}

func head(s []int64) []int64 { return s[:min(len(s), 5)] }

// TestWriterWritesAtOnceWhenIdle checks that a record reaches the underlying
// writer without waiting out the batching interval when nothing was written
// for that long: a slow run's records go out as each finishes.
func TestWriterWritesAtOnceWhenIdle(t *testing.T) {
	t.Parallel()
	rec := callRecorder{wrote: make(chan struct{}, 1)}
	w := NewWriter(&rec, time.Hour)
	defer w.Close()
	if err := w.Write(sampleRecord()); err != nil {
		t.Fatalf("Write: %v", err)
	}
	select {
	case <-rec.wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("the first record was not written out while the writer was idle")
	}
	checkWholeLines(t, rec.snapshot())
}

// TestWriterBatchesWithinInterval checks that records buffered soon after a
// write wait for the interval to pass (or Close) and then go out together,
// so a busy run keeps its batches.
func TestWriterBatchesWithinInterval(t *testing.T) {
	t.Parallel()
	rec := callRecorder{wrote: make(chan struct{}, 1)}
	w := NewWriter(&rec, time.Hour)
	r := sampleRecord()
	r.Line = 1
	if err := w.Write(r); err != nil {
		t.Fatalf("Write: %v", err)
	}
	select {
	case <-rec.wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("the first record was not written out")
	}
	for _, line := range []int64{2, 3} {
		r.Line = line
		if err := w.Write(r); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	calls := rec.snapshot()
	checkWholeLines(t, calls)
	if len(calls) != 2 {
		t.Fatalf("got %d write calls, want 2 (the first record alone, then the two written within the interval)", len(calls))
	}
	if n := bytes.Count(calls[1], []byte("\n")); n != 2 {
		t.Errorf("second write call holds %d lines, want 2", n)
	}
}

// TestWriterOnError checks that OnError learns of the first failed write at
// once, also when the flushing goroutine made it and no Write came after,
// and only once, with the error every later call returns.
func TestWriterOnError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		interval time.Duration // 0: the Write that fills the buffer fails
		target   *failingWriter
		want     error
	}{
		{"background write, broken pipe", time.Millisecond, &failingWriter{err: syscall.EPIPE}, syscall.EPIPE},
		{"background write, disk full", time.Millisecond, &failingWriter{err: syscall.ENOSPC}, syscall.ENOSPC},
		{"background write, short", time.Millisecond, &failingWriter{short: true}, io.ErrShortWrite},
		{"foreground write, disk full", 0, &failingWriter{limit: bufSize, err: syscall.ENOSPC}, syscall.ENOSPC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := NewWriter(tt.target, tt.interval)
			failed := make(chan error, 10)
			w.OnError(func(err error) { failed <- err })
			r := sampleRecord()
			if tt.interval > 0 {
				// One record, buffered: only the flushing goroutine writes.
				if err := w.Write(r); err != nil {
					t.Fatalf("Write = %v, want nil: the line is only buffered", err)
				}
			} else {
				for range 10000 {
					if w.Write(r) != nil {
						break
					}
				}
			}
			var got error
			select {
			case got = <-failed:
			case <-time.After(10 * time.Second):
				t.Fatal("OnError not called 10s after the write failed")
			}
			if !errors.Is(got, tt.want) || !strings.HasPrefix(got.Error(), "write output: ") {
				t.Fatalf("OnError got %v, want \"write output: \" wrapping %v", got, tt.want)
			}
			if err := w.Write(r); err != got {
				t.Errorf("Write after the failure = %v, want the error OnError got, %v", err, got)
			}
			if err := w.Close(); err != got {
				t.Errorf("Close after the failure = %v, want %v", err, got)
			}
			if n := len(failed); n != 0 {
				t.Errorf("OnError called %d more times, want once", n)
			}
		})
	}
}
