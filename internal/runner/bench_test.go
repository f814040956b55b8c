package runner

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/target"
)

// instantDoer answers every request at once with a canned 200 and a small
// body, without any network, so that a benchmark sees only the runner's own
// cost per URL.
type instantDoer struct {
	body  []byte
	hdr   http.Header
	calls atomic.Int64
}

func newInstantDoer(size int) *instantDoer {
	return &instantDoer{
		body: bytes.Repeat([]byte("x"), size),
		hdr:  http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
	}
}

func (d *instantDoer) Do(req *http.Request) (*http.Response, error) {
	d.calls.Add(1)
	return &http.Response{
		Status:        "200 OK",
		StatusCode:    http.StatusOK,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        d.hdr,
		Body:          io.NopCloser(bytes.NewReader(d.body)),
		ContentLength: int64(len(d.body)),
		Request:       req,
	}, nil
}

// benchJobs parses n URLs spread round-robin over hosts hosts.
func benchJobs(tb testing.TB, n, hosts int) []Job {
	tb.Helper()
	jobs := make([]Job, n)
	for i := range jobs {
		line := fmt.Sprintf("http://127.0.0.1:%d/?key=%d\n", 20000+i%hosts, i)
		job, ok, _ := makeJob("-", int64(i+1), line, 0, ReadOptions{})
		if !ok || job.Err != nil {
			tb.Fatalf("makeJob(%q) = %v, %v", line, job.Err, ok)
		}
		jobs[i] = job
	}
	return jobs
}

// BenchmarkDispatch runs b.N URLs through one Run against an instant Doer:
// the cost per URL of dispatch, the attempt and the record, and with
// emit=writer also of encoding and writing the line.
func BenchmarkDispatch(b *testing.B) {
	cases := []struct {
		name           string
		hosts          int
		limit, perHost int
		writer         bool
	}{
		// S1's shape: 50 hosts, limit 100, per-host 20.
		{name: "hosts=50,per-host=20,emit=noop", hosts: 50, limit: 100, perHost: 20},
		{name: "hosts=50,per-host=20,emit=writer", hosts: 50, limit: 100, perHost: 20, writer: true},
		// S2's: 60 hosts, limit 100, per-host 4.
		{name: "hosts=60,per-host=4,emit=noop", hosts: 60, limit: 100, perHost: 4},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			pool := benchJobs(b, 10000, tc.hosts)
			doer := newInstantDoer(1024)
			opts := Options{Limit: tc.limit, PerHost: tc.perHost, Routes: []Route{{Client: doer}}}
			var w *report.Writer
			if tc.writer {
				w = report.NewWriter(io.Discard, 0)
			}
			var records int
			emit := func(r *report.Record) error {
				records++
				if w != nil {
					return w.Write(r)
				}
				return nil
			}
			jobs := make(chan Job, 1024)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			go func() {
				defer close(jobs)
				for i := 0; i < b.N; i++ {
					jobs <- pool[i%len(pool)]
				}
			}()
			if err := Run(ctx, opts, jobs, emit); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if w != nil {
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
			if records != b.N || doer.calls.Load() != int64(b.N) {
				b.Fatalf("got %d records and %d requests, want %d of each", records, doer.calls.Load(), b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "urls/s")
		})
	}
}

// BenchmarkParseLine is the reader's cost per input line: parsing the URL
// and deriving its host key.
func BenchmarkParseLine(b *testing.B) {
	lines := []struct{ name, line string }{
		{name: "http", line: "http://127.0.0.1:34567/?key=123456\n"},
		{name: "no-scheme", line: "  www.example.com/some/path/page.html?utm_source=x&id=42  \n"},
	}
	for _, tc := range lines {
		b.Run("ParseLine/"+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, _, err := ParseLine(tc.line); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("makeJob/"+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if job, ok, _ := makeJob("-", 1, tc.line, 0, ReadOptions{}); !ok || job.Err != nil {
					b.Fatal(job.Err)
				}
			}
		})
	}
}

// BenchmarkReadJobs is the reading goroutine's cost per line of a list,
// from bytes to a Job on the channel.
func BenchmarkReadJobs(b *testing.B) {
	var sb strings.Builder
	const n = 10000
	for i := 0; i < n; i++ {
		fmt.Fprintf(&sb, "http://127.0.0.1:%d/?key=%d\n", 20000+i%50, i)
	}
	list := sb.String()
	b.ReportAllocs()
	b.SetBytes(int64(len(list)))
	for b.Loop() {
		out := make(chan Job, 1024)
		done := make(chan int)
		go func() {
			c := 0
			for range out {
				c++
			}
			done <- c
		}()
		err := ReadJobs(context.Background(), []Input{{Name: "-", R: strings.NewReader(list)}}, ReadOptions{}, out)
		close(out)
		if got := <-done; err != nil || got != n {
			b.Fatalf("ReadJobs sent %d jobs, err %v; want %d", got, err, n)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkAdaptiveThroughput runs the same list fixed and adaptive against
// hosts that never push back, one after the other, and reports the adaptive
// run's throughput as a share of the fixed one's: the adaptive window must
// open up to PerHost quickly enough to lose little (about 0.9 or more).
func BenchmarkAdaptiveThroughput(b *testing.B) {
	srv, err := target.Start(target.Options{Hosts: 2, Latency: 20 * time.Millisecond, BodySize: 64})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	const n = 300
	var fixed, adaptive time.Duration
	for b.Loop() {
		for i, took := range []*time.Duration{&fixed, &adaptive} {
			run, err := runAgainst(b, srv, n, Options{Limit: 100, PerHost: 4, Adaptive: i == 1})
			if err != nil {
				b.Fatal(err)
			}
			if run.ok != n {
				b.Fatalf("adaptive=%v: %d/%d ok", i == 1, run.ok, n)
			}
			*took += run.elapsed
		}
	}
	b.ReportMetric(fixed.Seconds()/adaptive.Seconds(), "adaptive/fixed")
}
