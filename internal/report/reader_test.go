package report

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

const (
	line1 = `{"url":"https://a.example/","line":1,"ok":true,"status":200,"bytes":5,"attempts":1,"duration_ms":12.5,"time":"2025-11-25T20:46:01.5Z"}`
	line2 = `{"url":"https://b.example/","line":2,"ok":false,"bytes":0,"attempts":2,"duration_ms":30000,"error":{"kind":"timeout","message":"deadline"},"history":[{"error":"timeout","ms":15000,"wait_ms":250},{"error":"timeout","ms":14750}],"time":"2025-11-25T20:46:02Z"}`
)

func TestReadRecords(t *testing.T) {
	t.Parallel()
	long := `{"url":"https://c.example/","line":3,"ok":false,"bytes":0,"attempts":1,"duration_ms":1,"error":{"kind":"other","message":"` +
		strings.Repeat("x", 300<<10) + `"},"time":"2025-11-25T20:46:03Z"}`
	tests := []struct {
		name      string
		in        string
		wantLines []int64 // the line fields of the records passed to fn
		wantTorn  int64
		wantGood  int64 // -1: the whole input
		wantErr   string
	}{
		{name: "empty", in: "", wantGood: 0},
		{name: "one record", in: line1 + "\n", wantLines: []int64{1}, wantGood: -1},
		{name: "two records", in: line1 + "\n" + line2 + "\n", wantLines: []int64{1, 2}, wantGood: -1},
		{name: "CRLF", in: line1 + "\r\n" + line2 + "\r\n", wantLines: []int64{1, 2}, wantGood: -1},
		{name: "blank first line", in: "\n" + line1 + "\n", wantErr: "line 1: invalid record: blank line"},
		{name: "blank middle line", in: line1 + "\r\n  \r\n" + line2 + "\n", wantLines: []int64{1}, wantGood: int64(len(line1) + 2), wantErr: "line 2: invalid record: blank line"},
		{name: "blank last line", in: line1 + "\n" + line2 + "\n\n", wantLines: []int64{1, 2}, wantGood: int64(len(line1) + len(line2) + 2), wantErr: "line 3: invalid record: blank line"},
		{name: "blank torn last line", in: line1 + "\n  ", wantLines: []int64{1}, wantTorn: 2, wantGood: int64(len(line1) + 1)},
		{name: "longer than the read buffer", in: line1 + "\n" + long + "\n" + line2 + "\n", wantLines: []int64{1, 3, 2}, wantGood: -1},
		{name: "torn last line", in: line1 + "\n" + line2[:40], wantLines: []int64{1}, wantTorn: 40, wantGood: int64(len(line1) + 1)},
		{name: "torn long line", in: line1 + "\n" + long[:200<<10], wantLines: []int64{1}, wantTorn: 200 << 10, wantGood: int64(len(line1) + 1)},
		{name: "whole record without newline is torn", in: line1 + "\n" + line2, wantLines: []int64{1}, wantTorn: int64(len(line2)), wantGood: int64(len(line1) + 1)},
		{name: "invalid last line with newline is an error", in: line1 + "\n" + `{"url":"x",` + "\n", wantLines: []int64{1}, wantGood: int64(len(line1) + 1), wantErr: "line 2: invalid record"},
		{name: "null last line is an error", in: line1 + "\nnull\n", wantLines: []int64{1}, wantGood: int64(len(line1) + 1), wantErr: "line 2: invalid record: not a JSON object"},
		{name: "text last line is an error", in: line1 + "\nError: something\n", wantLines: []int64{1}, wantGood: int64(len(line1) + 1), wantErr: "line 2: invalid record"},
		{name: "only text", in: "hello\n", wantErr: "line 1: invalid record"},
		{name: "empty object", in: "{}\n", wantErr: `line 1: invalid record: no "url"`},
		{name: "object of other fields", in: `{"foo":1}` + "\n", wantErr: `line 1: invalid record: no "url"`},
		{name: "empty url", in: `{"url":"","line":1,"ok":true,"time":"2025-11-25T20:46:01Z"}` + "\n", wantErr: `line 1: invalid record: no "url"`},
		{name: "no line", in: `{"url":"https://a/","ok":true,"time":"2025-11-25T20:46:01Z"}` + "\n", wantErr: `line 1: invalid record: no "line" of 1 or more`},
		{name: "line 0", in: `{"url":"https://a/","line":0,"ok":true,"time":"2025-11-25T20:46:01Z"}` + "\n", wantErr: `line 1: invalid record: no "line" of 1 or more`},
		{name: "negative line", in: `{"url":"https://a/","line":-3,"ok":true,"time":"2025-11-25T20:46:01Z"}` + "\n", wantErr: `line 1: invalid record: no "line" of 1 or more`},
		{name: "fractional line", in: `{"url":"https://a/","line":1.5,"ok":true,"time":"2025-11-25T20:46:01Z"}` + "\n", wantErr: `line 1: invalid record`},
		{name: "line past int64", in: `{"url":"https://a/","line":9223372036854775808,"ok":true,"time":"2025-11-25T20:46:01Z"}` + "\n", wantErr: `line 1: invalid record`},
		{name: "largest line", in: `{"url":"https://a/","line":9223372036854775807,"ok":true,"time":"2025-11-25T20:46:01Z"}` + "\n", wantLines: []int64{9223372036854775807}, wantGood: -1},
		{name: "no ok", in: `{"url":"https://a/","line":1,"time":"2025-11-25T20:46:01Z"}` + "\n", wantErr: `line 1: invalid record: no "ok"`},
		{name: "null ok", in: `{"url":"https://a/","line":1,"ok":null,"time":"2025-11-25T20:46:01Z"}` + "\n", wantErr: `line 1: invalid record: no "ok"`},
		{name: "no time", in: `{"url":"https://a/","line":1,"ok":true}` + "\n", wantErr: `line 1: invalid record: no "time"`},
		{name: "bad time", in: `{"url":"https://a/","line":1,"ok":true,"time":"yesterday"}` + "\n", wantErr: `line 1: invalid record`},
		{name: "minimal record", in: `{"url":"https://a/","line":7,"ok":false,"time":"2025-11-25T20:46:01Z"}` + "\n", wantLines: []int64{7}, wantGood: -1},
		{name: "unknown fields are kept out", in: `{"url":"https://a/","line":7,"ok":false,"time":"2025-11-25T20:46:01Z","later":{"x":[1]}}` + "\n", wantLines: []int64{7}, wantGood: -1},
		{name: "error after the last good line", in: line1 + "\n" + line2 + "\n{}\n" + line1 + "\n", wantLines: []int64{1, 2}, wantGood: int64(len(line1) + len(line2) + 2), wantErr: "line 3: invalid record"},
		{name: "invalid middle line", in: line1 + "\n" + `{"url":` + "\n" + line2 + "\n", wantLines: []int64{1}, wantGood: int64(len(line1) + 1), wantErr: "line 2: invalid record"},
		{name: "array in the middle", in: "[1]\n" + line1 + "\n", wantErr: "line 1: invalid record: not a JSON object"},
		{name: "wrong field type in the middle", in: `{"url":1}` + "\n" + line1 + "\n", wantErr: `line 1: invalid record: "url" is a number, want a string`},
		{name: "ok a number", in: line1 + "\n" + `{"url":"https://a/","line":2,"ok":2,"time":"2025-11-25T20:46:01Z"}` + "\n", wantLines: []int64{1}, wantGood: int64(len(line1) + 1), wantErr: `line 2: invalid record: "ok" is a number, want true or false`},
		{name: "ok a string", in: `{"url":"https://a/","line":1,"ok":"yes","time":"2025-11-25T20:46:01Z"}` + "\n", wantErr: `line 1: invalid record: "ok" is a string, want true or false`},
		{name: "nested field", in: `{"url":"https://a/","line":1,"ok":false,"error":{"kind":3},"time":"2025-11-25T20:46:01Z"}` + "\n", wantErr: `line 1: invalid record: "error.kind" is a number, want a string`},
		{name: "object for a list", in: `{"url":"https://a/","line":1,"ok":false,"history":{},"time":"2025-11-25T20:46:01Z"}` + "\n", wantErr: `line 1: invalid record: "history" is an object, want a list`},
		{name: "fractional line named", in: `{"url":"https://a/","line":1.5,"ok":true,"time":"2025-11-25T20:46:01Z"}` + "\n", wantErr: `line 1: invalid record: "line" is 1.5, want a whole number`},
		{name: "time a number", in: `{"url":"https://a/","line":1,"ok":true,"time":5}` + "\n", wantErr: `line 1: invalid record: "time" is not a time such as "2025-11-25T20:46:01Z"`},
		{name: "time not RFC 3339", in: `{"url":"https://a/","line":1,"ok":true,"time":"yesterday"}` + "\n", wantErr: `line 1: invalid record: "time" is not a time such as "2025-11-25T20:46:01Z"`},
		{name: "garbage after the object", in: line1 + "x\n" + line1 + "\n", wantErr: "line 1: invalid record"},
		{name: "negative bytes", in: `{"url":"https://a/","line":1,"ok":true,"bytes":-10000000,"time":"2025-11-25T20:46:01Z"}` + "\n", wantErr: `line 1: invalid record: "bytes" is -10000000, want 0 or more`},
		{name: "negative attempts", in: `{"url":"https://a/","line":1,"ok":true,"attempts":-3,"time":"2025-11-25T20:46:01Z"}` + "\n", wantErr: `line 1: invalid record: "attempts" is -3, want 0 or more`},
		{name: "negative duration", in: `{"url":"https://a/","line":1,"ok":true,"duration_ms":-50,"time":"2025-11-25T20:46:01Z"}` + "\n", wantErr: `line 1: invalid record: "duration_ms" is -50, want 0 or more`},
		{name: "negative bytes_in", in: `{"url":"https://a/","line":1,"ok":true,"bytes_in":-1,"time":"2025-11-25T20:46:01Z"}` + "\n", wantErr: `line 1: invalid record: "bytes_in" is -1, want 0 or more`},
		{name: "negative bytes_out", in: `{"url":"https://a/","line":1,"ok":true,"bytes_out":-2,"time":"2025-11-25T20:46:01Z"}` + "\n", wantErr: `line 1: invalid record: "bytes_out" is -2, want 0 or more`},
		{name: "negative timing", in: `{"url":"https://a/","line":1,"ok":true,"timings":{"ttfb_ms":-1.5,"reused":false},"time":"2025-11-25T20:46:01Z"}` + "\n", wantErr: `line 1: invalid record: "timings.ttfb_ms" is -1.5, want 0 or more`},
		{name: "negative history ms", in: `{"url":"https://a/","line":1,"ok":true,"history":[{"ms":-4}],"time":"2025-11-25T20:46:01Z"}` + "\n", wantErr: `line 1: invalid record: "history.ms" is -4, want 0 or more`},
		{name: "negative history bytes", in: `{"url":"https://a/","line":1,"ok":true,"history":[{"ms":4,"bytes_in":-4}],"time":"2025-11-25T20:46:01Z"}` + "\n", wantErr: `line 1: invalid record: "history.bytes_in" is -4, want 0 or more`},
		{name: "negative history wait", in: `{"url":"https://a/","line":1,"ok":true,"history":[{"ms":4,"wait_ms":-1}],"time":"2025-11-25T20:46:01Z"}` + "\n", wantErr: `line 1: invalid record: "history.wait_ms" is -1, want 0 or more`},
		{name: "zero counts", in: `{"url":"https://a/","line":1,"ok":true,"bytes":0,"attempts":0,"duration_ms":0,"time":"2025-11-25T20:46:01Z"}` + "\n", wantLines: []int64{1}, wantGood: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var lines []int64
			st, err := ReadRecords(strings.NewReader(tt.in), func(r *Record) error {
				lines = append(lines, r.Line)
				return nil
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("error = %v", err)
			}
			if !reflect.DeepEqual(lines, tt.wantLines) {
				t.Errorf("records for lines %v, want %v", lines, tt.wantLines)
			}
			wantGood := tt.wantGood
			if wantGood < 0 {
				wantGood = int64(len(tt.in))
			}
			want := ReadStats{Records: int64(len(tt.wantLines)), TornBytes: tt.wantTorn, GoodSize: wantGood}
			if st != want {
				t.Errorf("stats = %+v, want %+v", st, want)
			}
		})
	}
}

func TestReadRecordsResetsBetweenLines(t *testing.T) {
	t.Parallel()
	var got []Record
	in := line2 + "\n" + line1 + "\n"
	_, err := ReadRecords(strings.NewReader(in), func(r *Record) error {
		c := *r
		c.History = append([]Attempt(nil), r.History...)
		got = append(got, c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Record{
		{URL: "https://b.example/", Line: 2, Attempts: 2, DurationMS: 30000,
			Error:   &Error{Kind: KindTimeout, Message: "deadline"},
			History: []Attempt{{Error: KindTimeout, MS: 15000, WaitMS: ptr(250.0)}, {Error: KindTimeout, MS: 14750}},
			Time:    time.Date(2025, 11, 25, 20, 46, 2, 0, time.UTC)},
		{URL: "https://a.example/", Line: 1, OK: true, Status: 200, Bytes: 5, Attempts: 1, DurationMS: 12.5,
			Time: time.Date(2025, 11, 25, 20, 46, 1, 5e8, time.UTC)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("records:\n got %+v\nwant %+v", got, want)
	}
}

func TestReadNumbered(t *testing.T) {
	t.Parallel()
	var got [][2]int64
	_, err := ReadNumbered(strings.NewReader(line2+"\n"+line1+"\n"), func(n int64, r *Record) error {
		got = append(got, [2]int64{n, r.Line})
		return nil
	})
	if want := [][2]int64{{1, 2}, {2, 1}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("file lines and record lines %v, %v; want %v", got, err, want)
	}
}

func TestReadRecordsStopsOnCallbackError(t *testing.T) {
	t.Parallel()
	stop := errors.New("stop")
	calls := 0
	st, err := ReadRecords(strings.NewReader(line1+"\n"+line2+"\n"), func(*Record) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 || st.Records != 1 {
		t.Errorf("got err %v after %d calls, %d records; want the callback's error after 1", err, calls, st.Records)
	}
}

func TestReadRecordsReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("disk gone")
	r := io.MultiReader(strings.NewReader(line1+"\n"), iotest.ErrReader(boom))
	st, err := ReadRecords(r, func(*Record) error { return nil })
	if !errors.Is(err, boom) || st.Records != 1 {
		t.Errorf("got %+v, %v; want 1 record and the read error", st, err)
	}
}

// TestReadRecordsRoundTrip reads back what a Writer wrote.
func TestReadRecordsRoundTrip(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := NewWriter(&buf, 0)
	want := []*Record{sampleRecord(), {URL: "https://x/", Line: 9, Error: &Error{Kind: KindInvalidURL, Message: "bad"}}}
	for _, r := range want {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	i := 0
	st, err := ReadRecords(&buf, func(r *Record) error {
		if got, want := AppendJSON(nil, r), AppendJSON(nil, want[i]); !bytes.Equal(got, want) {
			t.Errorf("record %d read back as\n%s\nwant\n%s", i, got, want)
		}
		i++
		return nil
	})
	if err != nil || st.Records != int64(len(want)) || st.TornBytes != 0 {
		t.Errorf("got %+v, %v", st, err)
	}
}

// FuzzReadRecords checks that the reader accepts only records, names the
// line of anything else, and that what it keeps reads back the same.
func FuzzReadRecords(f *testing.F) {
	f.Add([]byte(line1 + "\n" + line2 + "\n"))
	f.Add([]byte(line1 + "\n" + line2[:17]))
	f.Add([]byte(`{"url":"https://a/","line":9223372036854775807,"ok":true,"time":"2025-11-25T20:46:01Z"}` + "\n"))
	f.Add([]byte("{}\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var recs [][]byte
		st, err := ReadRecords(bytes.NewReader(in), func(r *Record) error {
			if r.URL == "" || r.Line < 1 {
				t.Fatalf("record without url or line: %+v", r)
			}
			recs = append(recs, AppendJSON(nil, r))
			return nil
		})
		if st.GoodSize < 0 || st.GoodSize > int64(len(in)) || st.TornBytes < 0 || st.Records < 0 {
			t.Fatalf("stats %+v out of range for %d bytes", st, len(in))
		}
		if st.Records != int64(len(recs)) {
			t.Fatalf("stats say %d records, fn got %d", st.Records, len(recs))
		}
		if st.GoodSize > 0 && in[st.GoodSize-1] != '\n' {
			t.Fatalf("good part of %d bytes does not end a line", st.GoodSize)
		}
		if err != nil {
			// The line named is the one after the good part.
			want := fmt.Sprintf("line %d: invalid record", bytes.Count(in[:st.GoodSize], []byte("\n"))+1)
			if !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("error %q, want one starting %q", err, want)
			}
			if st.TornBytes != 0 {
				t.Fatalf("error %v with %d torn bytes", err, st.TornBytes)
			}
		} else {
			if st.GoodSize+st.TornBytes != int64(len(in)) {
				t.Fatalf("good %d + torn %d bytes != input %d", st.GoodSize, st.TornBytes, len(in))
			}
			if bytes.IndexByte(in[st.GoodSize:], '\n') >= 0 {
				t.Fatalf("torn part %q holds a newline", in[st.GoodSize:])
			}
		}
		// The good part reads again, with the same records, and what the
		// writer makes of them reads back as itself.
		var again [][]byte
		st2, err := ReadRecords(bytes.NewReader(in[:st.GoodSize]), func(r *Record) error {
			again = append(again, AppendJSON(nil, r))
			return nil
		})
		if err != nil {
			t.Fatalf("reading the good part again: %v", err)
		}
		if st2.TornBytes != 0 || st2.GoodSize != st.GoodSize || !reflect.DeepEqual(again, recs) {
			t.Fatalf("good part read again gives %+v, want %d records, no torn bytes, size %d", st2, st.Records, st.GoodSize)
		}
		written := bytes.Join(append(recs, nil), []byte("\n"))
		var back [][]byte
		if _, err := ReadRecords(bytes.NewReader(written), func(r *Record) error {
			back = append(back, AppendJSON(nil, r))
			return nil
		}); err != nil {
			t.Fatalf("records as written do not read back: %v\n%s", err, written)
		}
		if !reflect.DeepEqual(back, recs) {
			t.Fatalf("records as written read back as\n%s\nwant\n%s", bytes.Join(back, []byte("\n")), written)
		}
	})
}

// TestReadRecordsWaits: a history's wait_ms and retry_after read back as
// written, 0 included, and as nil when left out, as records written before
// a 0 was kept leave them.
func TestReadRecordsWaits(t *testing.T) {
	t.Parallel()
	const (
		zeros = `{"url":"https://a/","line":1,"ok":true,"attempts":2,"history":[{"status":429,"ms":6.263,"wait_ms":0,"retry_after":0},{"status":200,"ms":0.271}],"time":"2025-11-25T20:46:01Z"}`
		old   = `{"url":"https://a/","line":2,"ok":true,"attempts":2,"history":[{"status":429,"ms":6.263},{"status":200,"ms":0.271}],"time":"2025-11-25T20:46:01Z"}`
	)
	var got [][]Attempt
	_, err := ReadRecords(strings.NewReader(zeros+"\n"+old+"\n"), func(r *Record) error {
		got = append(got, append([]Attempt(nil), r.History...))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]Attempt{
		{{Status: 429, MS: 6.263, WaitMS: ptr(0.0), RetryAfter: ptr(0.0)}, {Status: 200, MS: 0.271}},
		{{Status: 429, MS: 6.263}, {Status: 200, MS: 0.271}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("histories:\n got %+v\nwant %+v", got, want)
	}
	var back []byte
	for i, h := range got {
		back = AppendJSON(back[:0], &Record{History: h})
		if w := []string{`"wait_ms":0,"retry_after":0}`, `{"status":429,"ms":6.263}`}[i]; !bytes.Contains(back, []byte(w)) {
			t.Errorf("record %d writes back as %s, want it to hold %s", i+1, back, w)
		}
	}
}
