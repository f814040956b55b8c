package main

import (
	"strings"
	"testing"
)

func TestCountRecords(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want answers
	}{
		{
			name: "each line once",
			in:   `{"line":1,"ok":true}` + "\n" + `{"line":2,"ok":false}` + "\n" + `{"line":3,"ok":true}` + "\n",
			want: answers{answered: 3, distinct: 3, ok: 2},
		},
		{
			name: "a line twice, blank lines, no final newline",
			in:   `{"line":7,"ok":true}` + "\n\n" + `{"line":7,"ok":true}` + "\n" + `{"line":200,"ok":true}`,
			want: answers{answered: 3, distinct: 2, ok: 3},
		},
		{name: "empty", in: "", want: answers{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := countRecords(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("countRecords = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCountRecordsRejectsATornLine(t *testing.T) {
	t.Parallel()
	if _, err := countRecords(strings.NewReader(`{"line":1,"ok":true}` + "\n" + `{"line":2,"o`)); err == nil {
		t.Error("countRecords accepted a torn last line")
	}
}

func TestCountCurl(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want answers
	}{
		{
			name: "ok, 404 and a failure",
			in:   "200 http://a/1\n404 http://a/2\n000 http://a/3\n",
			want: answers{answered: 2, distinct: 2, ok: 1},
		},
		{
			name: "a URL answered twice",
			in:   "200 http://a/1\n200 http://a/1\n",
			want: answers{answered: 2, distinct: 1, ok: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := countCurl(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("countCurl = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCountVegeta(t *testing.T) {
	t.Parallel()
	in := `{"code":200,"url":"https://a/1","error":""}
{"code":0,"url":"https://a/2","error":"dial tcp: refused, \"x\""}
{"code":503,"url":"https://a/3"}
{"code":200,"url":"https://a/1"}
`
	got, err := countVegeta(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if want := (answers{answered: 3, distinct: 2, ok: 2}); got != want {
		t.Errorf("countVegeta = %+v, want %+v", got, want)
	}
}

func TestMedian(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   []float64
		want float64
	}{
		{in: []float64{3, 1, 2}, want: 2},
		{in: []float64{4, 1, 3, 2}, want: 2.5},
		{in: []float64{5}, want: 5},
	}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// tsvRow builds a RUNS.tsv line with the given figures.
func tsvRow(sc, tool, run, urls, hosts, per, ideal, wall, rssKiB, requests, conns, peak, answered string) string {
	return strings.Join([]string{sc, tool, run, urls, hosts, per, ideal, wall, "0.5", "0.25", rssKiB,
		requests, conns, peak, answered, answered, answered, "0", "0.4", "-1", "-1"}, "\t")
}

func TestChecks(t *testing.T) {
	t.Parallel()
	runs := strings.Join([]string{
		strings.Join(runColumns, "\t"),
		tsvRow("S1", "fetchctl", "1", "100", "5", "2", "0", "1.0", "1024", "100", "10", "2", "100"),
		tsvRow("S1", "fetchctl", "2", "100", "5", "2", "0", "3.0", "1024", "100", "12", "2", "100"),
		tsvRow("S1", "fetchctl", "3", "100", "5", "2", "0", "0.7", "1024", "100", "9", "2", "100"),
		tsvRow("S1", "curl", "1", "100", "5", "2", "0", "1.0", "1024", "100", "50", "9", "100"),
		tsvRow("S2", "fetchctl", "1", "60", "6", "4", "3.0", "3.1", "1024", "61", "30", "5", "60"),
		tsvRow("S3", "fetchctl", "1", "1000", "5", "2", "0", "1", "20480", "1000", "10", "2", "1000"),
		tsvRow("S3", "fetchctl", "1", "10000", "5", "2", "0", "9", "30720", "10000", "10", "2", "10000"),
	}, "\n")
	rows, err := readRuns(strings.NewReader(runs))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := writeChecks(&b, rows); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, want := range []string{
		// Median wall 1.0 s against curl's 1.0 s.
		"S1 wall ≤ 0.8× curl's: 1.00 s vs 1.00 s = 1.00×: NOT met",
		"S1 conns dialled ≤ hosts × per-host: 10 ≤ 10: met",
		"S2 efficiency ≥ 0.95: 0.968 (3.10 s for an ideal 3.00 s): met",
		"S2 peak in flight per host = 4: 5: NOT met",
		"S2 conns dialled ≤ hosts × per-host: 30 ≤ 24: NOT met",
		"S3 peak RSS for 10,000 URLs ≤ 40 MiB: 30.0 MiB: met",
		"S3 peak RSS 10,000 URLs ≤ 1.3× 1,000 URLs: 30.0 / 20.0 MiB = 1.50×: NOT met",
		"S1 fetchctl (100 URLs) answered every URL exactly once: met",
		// 61 requests for 60 URLs: one was sent twice.
		"S2 fetchctl (60 URLs) answered every URL exactly once: NOT met",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("checks lack %q; got:\n%s", want, got)
		}
	}
}

func TestTableShowsMedians(t *testing.T) {
	t.Parallel()
	runs := strings.Join([]string{
		tsvRow("S2", "fetchctl", "1", "60", "6", "4", "3.0", "3.0", "2048", "60", "24", "4", "60"),
		tsvRow("S2", "fetchctl", "2", "60", "6", "4", "3.0", "6.0", "4096", "60", "30", "4", "60"),
		tsvRow("S2", "fetchctl", "3", "60", "6", "4", "3.0", "4.0", "3072", "60", "26", "4", "60"),
	}, "\n")
	rows, err := readRuns(strings.NewReader(runs))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := writeTable(&b, rows, "S2"); err != nil {
		t.Fatal(err)
	}
	// CPU 0.75 s for 60 URLs: 12.5 s per 1,000.
	want := "| fetchctl | 3 | 4.00 | 15 | 0.75 | 12.500 | 3.0 | 26 | 4 | 0.40 | 0.75 | yes |"
	if !strings.Contains(b.String(), want) {
		t.Errorf("table lacks %q; got:\n%s", want, b.String())
	}
}

func TestCountNginx(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		log  string
		want serverCounts
	}{
		{
			name: "TLS: two connections on one port, one resumed; two requests overlap",
			log: "8001 1 1 . 100.000 0.050 200\n" +
				"8001 2 1 r 100.020 0.050 200\n" +
				"8001 1 2 . 100.070 0.020 200\n" +
				"8002 3 1 r 100.070 0.001 200\n",
			want: serverCounts{requests: 4, conns: 3, peak: 2, full: 1, resumed: 2},
		},
		{
			// One request ends in the millisecond the next one starts.
			name: "plain HTTP: no handshakes, back to back is not in flight together",
			log:  "8001 1 1 - 100.050 0.050 200\n8001 1 2 - 100.100 0.050 200\n",
			want: serverCounts{requests: 2, conns: 1, peak: 1, full: -1, resumed: -1},
		},
		{name: "empty", log: "", want: serverCounts{full: -1, resumed: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := countNginx(strings.NewReader(tt.log))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("countNginx = %+v, want %+v", got, tt.want)
			}
		})
	}
	if _, err := countNginx(strings.NewReader("8001 1 1 . 100.0\n")); err == nil {
		t.Error("countNginx accepted a line of another format")
	}
}

func TestChecks15(t *testing.T) {
	t.Parallel()
	tls := func(sc, tool, wall, conns, full, resumed string) string {
		r := strings.Split(tsvRow(sc, tool, "1", "100", "5", "2", "0", wall, "1024", "100", conns, "2", "100"), "\t")
		r[19], r[20] = full, resumed
		if sc == "S2-TLS" {
			r[6] = "3.0"
		}
		return strings.Join(r, "\t")
	}
	runs := strings.Join([]string{
		tls("S1-TLS", "fetchctl", "0.72", "5", "5", "0"),
		tls("S1-TLS", "curl", "1.20", "5", "5", "0"),
		tls("S1-TLS", "gopool", "0.80", "5", "5", "0"),
		tls("S1-TLS", "aiohttp", "0.10", "5", "5", "0"),
		tls("S2-TLS", "fetchctl", "3.10", "10", "4", "6"),
		tsvRow("S1", "fetchctl", "1", "100", "5", "2", "0", "0.50", "1024", "100", "10", "2", "100"),
		tsvRow("S1", "vegeta", "1", "100", "5", "2", "0", "0.60", "1024", "100", "10", "2", "100"),
		tsvRow("S3", "fetchctl", "1", "1000000", "5", "2", "0", "9", "30720", "1000000", "10", "2", "1000000"),
	}, "\n")
	rows, err := readRuns(strings.NewReader(runs))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := writeChecks15(&b, rows); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, want := range []string{
		// aiohttp is faster but not among the tools compared.
		"S1-TLS wall ≤ 0.8× the best of curl, vegeta and a Go pool: 0.72 s vs gopool's 0.80 s = 0.90×: NOT met",
		"S2-TLS efficiency ≥ 0.95: 0.968 (3.10 s for an ideal 3.00 s): met",
		"S2-TLS conns dialled ≤ hosts × per-host: 10 ≤ 10: met",
		"S1 (plain HTTP/1.1) wall ahead of every peer: 0.50 s vs vegeta's 0.60 s: met",
		"S3 peak RSS for 1,000,000 URLs ≤ 28 MiB: 30.0 MiB for 1,000,000 URLs: NOT met",
		"S2-TLS fetchctl TLS handshakes: 4 full, 6 resumed, over 10 connections",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("checks lack %q; got:\n%s", want, got)
		}
	}
}
