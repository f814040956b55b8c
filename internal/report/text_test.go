package report

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// textCases are the runs the golden human summaries are made from.
func textCases() []struct {
	name string
	res  Result
} {
	typical := NewSummary()
	for i := range 2000 {
		host := fmt.Sprintf("https://h%d.example/p%d", i%9, i)
		ms := 40 + float64(i%97)*4.5
		switch {
		case i%9 == 0 && i%4 == 0:
			typical.Add(rec(host, 0, KindTimeout, 4, 20000+ms))
		case i%9 == 1 && i%10 == 0:
			typical.Add(rec(host, 503, "", 4, ms*3))
		case i%9 == 2 && i/9%10 == 0:
			typical.Add(rec(host, 0, KindDNS, 1, 2))
		case i%9 == 3 && i/9%30 == 0:
			typical.Add(rec(host, 404, "", 1, ms))
		case i%9 == 4 && i/9%20 == 0:
			typical.Add(rec(host, 0, KindTLS, 1, 12))
		case i%9 == 5 && i/9%40 == 0:
			typical.Add(rec(host, 0, KindReset, 2, 50))
		case i%9 == 6 && i/9%60 == 0:
			typical.Add(rec(host, 0, KindConnect, 2, 50))
		case i%13 == 0:
			typical.Add(rec(host, 200, "", 2, ms))
		default:
			typical.Add(rec(host, 200, "", 1, ms))
		}
	}
	typical.Add(invalid(2001))

	clean := NewSummary()
	for i := range 500 {
		clean.Add(rec("http://127.0.0.1:8080/", 200, "", 1, 0.2+float64(i%7)*0.05))
	}

	interrupted := NewSummary()
	for i := range 300 {
		interrupted.AddOld(rec("https://a.example/", 200, "", 1, 90))
		if i < 40 {
			interrupted.Add(rec("https://a.example/", 429, "", 3, 1500))
		}
	}

	one := NewSummary()
	one.Add(rec("http://127.0.0.1:8080/", 200, "", 1, 3))

	allBad := NewSummary()
	for i := range 3 {
		allBad.Add(invalid(int64(i + 1)))
	}

	return []struct {
		name string
		res  Result
	}{
		{"typical run", typical.Result(12300*time.Millisecond, false)},
		{"clean loopback run", clean.Result(250*time.Millisecond, false)},
		{"interrupted resumed run", interrupted.Result(4*time.Second, true)},
		{"one URL", one.Result(4*time.Millisecond, false)},
		{"only invalid lines", allBad.Result(3*time.Millisecond, false)},
		{"empty input", NewSummary().Result(2*time.Millisecond, false)},
	}
}

func TestWriteText(t *testing.T) {
	t.Parallel()
	var got bytes.Buffer
	for _, c := range textCases() {
		fmt.Fprintf(&got, "-- %s --\n", c.name)
		if err := c.res.WriteText(&got); err != nil {
			t.Fatalf("%s: WriteText: %v", c.name, err)
		}
	}
	golden := filepath.Join("testdata", t.Name()+".golden")
	if *update {
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("WriteText output differs from %s (go test -update rewrites it):\n got:\n%s\nwant:\n%s", golden, got.Bytes(), want)
	}
}

func TestWriteTextLastLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		ok, all int
		elapsed time.Duration
		want    string
	}{
		{"contract example", 1982, 2000, 12300 * time.Millisecond, "fetchctl: 1982/2000 ok (99.10%) in 12.3s, 162.6/s"},
		{"all ok", 10, 10, time.Second, "fetchctl: 10/10 ok (100.00%) in 1.0s, 10.0/s"},
		{"one failure in many is not 100%", 99999, 100000, 100 * time.Second, "fetchctl: 99999/100000 ok (99.99%) in 100.0s, 1000.0/s"},
		{"one success in many is not 0%", 1, 100000, 100 * time.Second, "fetchctl: 1/100000 ok (0.01%) in 100.0s, 1000.0/s"},
		{"nothing ok", 0, 4, 500 * time.Millisecond, "fetchctl: 0/4 ok (0.00%) in 0.5s, 8.0/s"},
		{"no input", 0, 0, 0, "fetchctl: 0/0 ok (100.00%) in 0.0s, 0.0/s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := NewSummary()
			for i := range tt.all {
				if i < tt.ok {
					s.Add(rec("https://a.example/", 200, "", 1, 10))
				} else {
					s.Add(rec("https://a.example/", 500, "", 1, 10))
				}
			}
			var b strings.Builder
			if err := s.Result(tt.elapsed, false).WriteText(&b); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
			if got := lines[len(lines)-1]; got != tt.want {
				t.Errorf("last line = %q, want %q", got, tt.want)
			}
			warned := strings.Contains(b.String(), "fetchctl: warning: the input held no URL\n")
			if warned != (tt.all == 0) {
				t.Errorf("no-URL warning shown = %v, want %v:\n%s", warned, tt.all == 0, b.String())
			}
		})
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

func TestWriteTextError(t *testing.T) {
	t.Parallel()
	want := errors.New("stderr closed")
	if err := NewSummary().Result(time.Second, false).WriteText(errWriter{want}); !errors.Is(err, want) {
		t.Errorf("WriteText = %v, want %v", err, want)
	}
}

// TestWriteTextStopped checks what a stopped run's summary says: why, no
// warning that the input held no URL, and no 100% for a run with no record.
func TestWriteTextStopped(t *testing.T) {
	t.Parallel()
	res := NewSummary().Result(time.Second, false)
	res.MarkStopped("every proxy is failing")
	if !res.Interrupted || res.Stopped != "every proxy is failing" || res.SuccessRatio != 0 {
		t.Fatalf("MarkStopped: interrupted %v, stopped %q, ratio %v; want true, the reason, 0", res.Interrupted, res.Stopped, res.SuccessRatio)
	}
	var b strings.Builder
	if err := res.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, want := range []string{"fetchctl: stopped: every proxy is failing", "fetchctl: 0/0 ok (0.00%)"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "held no URL") || strings.Contains(got, "100.00%") {
		t.Errorf("summary of a stopped run %q claims the input was empty or all ok", got)
	}
	if !strings.Contains(got, "these counts cover only the records written before it stopped") {
		t.Errorf("summary %q does not say that records may be missing", got)
	}
	// A run that stopped with every URL's record written says why alone.
	res.AllRecorded = true
	b.Reset()
	if err := res.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); !strings.Contains(got, "fetchctl: stopped: every proxy is failing\n") || strings.Contains(got, "cover only") {
		t.Errorf("summary with every record written = %q, want the reason alone", got)
	}
	if res := NewSummary().Result(time.Second, true); res.SuccessRatio != 0 {
		t.Errorf("interrupted with no record: ratio %v, want 0", res.SuccessRatio)
	}
}

// TestWriteTextNoRecordSaysWhatHeldNone: a finished run with no record
// warns in the words its caller gives (the input, a shard, result files).
func TestWriteTextNoRecordSaysWhatHeldNone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, noRecord, want string
	}{
		{"run", "", "fetchctl: warning: the input held no URL\n"},
		{"shard", "this shard got no URL of the list", "fetchctl: warning: this shard got no URL of the list\n"},
		{"summarize", "the results hold no record", "fetchctl: warning: the results hold no record\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := NewSummary().Result(0, false)
			res.NoRecord = tt.noRecord
			var b strings.Builder
			if err := res.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), tt.want) {
				t.Errorf("text %q lacks %q", b.String(), tt.want)
			}
			if got := strings.Count(b.String(), "warning"); got != 1 {
				t.Errorf("text %q has %d warnings, want 1", b.String(), got)
			}
		})
	}
}

// TestWriteTextProxiesWithoutRecord: a run through proxies that stopped
// or was interrupted before any record still has the proxies line with
// its bytes, 0 B included; a direct run has none.
func TestWriteTextProxiesWithoutRecord(t *testing.T) {
	t.Parallel()
	const gw = "http://u:***@127.0.0.1:1"
	tests := []struct {
		name      string
		res       func() Result
		want      string // "" for no proxies line
		wantAfter string // a line the proxies line comes before
	}{
		{name: "budget spent by attempts left without a record", res: func() Result {
			s := NewSummary()
			s.AddUnrecorded(Attempt{Proxy: gw, BytesOut: 1000, BytesIn: 2 << 20}, false)
			res := s.Result(time.Second, false)
			res.Proxied = true
			res.MarkStopped("--budget of 2MiB reached")
			return res
		}, want: "  proxies   2.0 MiB on the wire (1000 B out, 2.0 MiB in), 0 B of it on retries\n", wantAfter: "fetchctl: stopped:"},
		{name: "interrupted before a byte went", res: func() Result {
			res := NewSummary().Result(time.Second, true)
			res.Proxied = true
			return res
		}, want: "  proxies   0 B on the wire (0 B out, 0 B in), 0 B of it on retries\n", wantAfter: "fetchctl: interrupted"},
		{name: "finished with no URL", res: func() Result {
			res := NewSummary().Result(time.Second, false)
			res.Proxied = true
			return res
		}, want: "  proxies   0 B on the wire", wantAfter: "fetchctl: warning: the input held no URL"},
		{name: "direct run interrupted", res: func() Result { return NewSummary().Result(time.Second, true) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b strings.Builder
			if err := tt.res().WriteText(&b); err != nil {
				t.Fatal(err)
			}
			got := b.String()
			if tt.want == "" {
				if strings.Contains(got, "proxies") {
					t.Errorf("summary of a direct run has a proxies line:\n%s", got)
				}
				return
			}
			i, j := strings.Index(got, tt.want), strings.Index(got, tt.wantAfter)
			if i < 0 || j < 0 || i > j {
				t.Errorf("summary lacks %q before %q:\n%s", tt.want, tt.wantAfter, got)
			}
		})
	}
}
