package report

import (
	"io"
	"strconv"
	"testing"
	"time"
)

// typicalRecords are the two records a benchmark run writes most: a 200 on
// a reused connection, and a failure after a fresh dial.
func typicalRecords() map[string]*Record {
	ttfb, connect := 0.412, 0.087
	start := time.Date(2025, 11, 25, 20, 46, 1, 123456789, time.UTC)
	return map[string]*Record{
		"ok-reused": {
			URL: "http://127.0.0.1:34567/?key=123456", Line: 123457, OK: true, Status: 200,
			Proto: "HTTP/1.1", Bytes: 1024, ContentType: "text/plain; charset=utf-8", Attempts: 1,
			DurationMS: 0.734, Timings: &Timings{TTFBMS: &ttfb, Reused: true}, Time: start,
		},
		"failed-dialled": {
			URL: "http://127.0.0.1:34567/status/503?key=9", Line: 10, Status: 503, Proto: "HTTP/1.1",
			Bytes: 24, ContentType: "text/plain; charset=utf-8", Attempts: 1, DurationMS: 1.5,
			Timings: &Timings{ConnectMS: &connect, TTFBMS: &ttfb},
			Error:   &Error{Kind: KindStatus, Message: "status 503 is not in --ok-status 200-299"},
			Time:    start,
		},
	}
}

// BenchmarkAppendJSONTypical encodes the records of a plain run; it must
// not allocate once the buffer has grown.
func BenchmarkAppendJSONTypical(b *testing.B) {
	for name, r := range typicalRecords() {
		b.Run(name, func(b *testing.B) {
			buf := make([]byte, 0, 1024)
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendJSON(buf[:0], r)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

// BenchmarkWriterTypical is the single writer's cost per line of a plain
// run, with the flushing goroutine on.
func BenchmarkWriterTypical(b *testing.B) {
	r := typicalRecords()["ok-reused"]
	w := NewWriter(io.Discard, time.Second)
	defer w.Close()
	b.ReportAllocs()
	for b.Loop() {
		if err := w.Write(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSummaryAddHosts adds records over few hosts (the benchmark
// scenarios) and over more hosts than the summary keeps, where it has to
// evict.
func BenchmarkSummaryAddHosts(b *testing.B) {
	for _, hosts := range []int{50, 50000} {
		b.Run("hosts="+strconv.Itoa(hosts), func(b *testing.B) {
			base := typicalRecords()["ok-reused"]
			recs := make([]*Record, hosts)
			for i := range recs {
				r := *base
				r.URL = "http://h" + strconv.Itoa(i) + ".example:8080/?key=" + strconv.Itoa(i)
				recs[i] = &r
			}
			s := NewSummary()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				s.Add(recs[i%len(recs)])
				i++
			}
		})
	}
}
