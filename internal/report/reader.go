package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
)

// ReadStats says what [ReadRecords] read.
type ReadStats struct {
	// Records is the number of records decoded.
	Records int64
	// TornBytes is the length of a torn last line, 0 when there is none.
	TornBytes int64
	// GoodSize is the offset just past the last whole, valid line: the size
	// to truncate the file to before appending to it.
	GoodSize int64
}

// errNotObject is returned for a line that is valid JSON but not an object.
var errNotObject = errors.New("not a JSON object")

// errBlank is returned for a whole line that is empty or white space.
var errBlank = errors.New("blank line")

// ReadRecords reads an NDJSON result file from r and calls fn with each
// record, in file order. Lines may be of any length.
//
// Every line must be a record: a JSON object with at least "url" (a
// non-empty string), "line" (an integer of 1 or more), "ok" (a boolean) and
// "time" (an RFC 3339 time), as [Writer] always writes them. Fields it does
// not know are ignored. A line that is not a record, a blank one too, is an
// error naming its line number, wherever it is: results are never mistaken for something
// else, and a file that holds something else is never taken for results.
//
// A run that was killed may leave a torn last line: the bytes after the last
// newline. It is not an error: it is counted in [ReadStats.TornBytes] and
// left out of GoodSize. A whole last line, newline included, is read as any
// other. An error from fn stops the read and is returned as is.
//
// fn gets the same *Record each time, reset between lines: it must not keep
// the pointer, nor the History slice or the pointers within, past its
// return.
func ReadRecords(r io.Reader, fn func(rec *Record) error) (ReadStats, error) {
	return ReadNumbered(r, func(_ int64, rec *Record) error { return fn(rec) })
}

// ReadNumbered is [ReadRecords] that also passes fn the record's line
// number in the file, from 1.
func ReadNumbered(r io.Reader, fn func(line int64, rec *Record) error) (ReadStats, error) {
	var (
		st     ReadStats
		rec    Record
		long   []byte
		lineNo int64
	)
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Longer than the buffer: gather it in a slice of our own.
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil && err != io.EOF {
			return st, fmt.Errorf("read records: %w", err)
		}
		if len(line) == 0 {
			return st, nil
		}
		lineNo++
		if line[len(line)-1] != '\n' {
			// Only at EOF: the writer never got to end the line.
			st.TornBytes = int64(len(line))
			return st, nil
		}
		body := bytes.TrimSpace(line)
		if len(body) == 0 {
			// The writer never writes one: a blank line is not a record.
			return st, fmt.Errorf("line %d: invalid record: %w", lineNo, errBlank)
		}
		rec = Record{}
		if derr := decodeRecord(body, &rec); derr != nil {
			return st, fmt.Errorf("line %d: invalid record: %w", lineNo, derr)
		}
		st.Records++
		st.GoodSize += int64(len(line))
		if err := fn(lineNo, &rec); err != nil {
			return st, err
		}
	}
}

// recordIn decodes a record and tells which of its required fields were
// there: the outer fields shadow the embedded record's.
type recordIn struct {
	*Record
	OK   *bool           `json:"ok"`
	Time json.RawMessage `json:"time"`
}

// timeExample is the form of a record's time, for messages.
const timeExample = "2025-11-25T20:46:01Z"

func decodeRecord(body []byte, rec *Record) error {
	if body[0] != '{' {
		if !json.Valid(body) {
			return json.Unmarshal(body, rec) // for its syntax error
		}
		return errNotObject
	}
	in := recordIn{Record: rec}
	if err := json.Unmarshal(body, &in); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return typeError(te)
		}
		return err
	}
	switch {
	case rec.URL == "":
		return errors.New(`no "url"`)
	case rec.Line < 1:
		return errors.New(`no "line" of 1 or more`)
	case in.OK == nil:
		return errors.New(`no "ok"`)
	case in.Time == nil || string(in.Time) == "null":
		return errors.New(`no "time"`)
	}
	if err := rec.Time.UnmarshalJSON(in.Time); err != nil {
		return fmt.Errorf(`"time" is not a time such as %q`, timeExample)
	}
	rec.OK = *in.OK
	return negativeField(rec)
}

// negativeField refuses a count, size or duration below zero: no run
// writes one, and a summary would add it up as if it had.
func negativeField(rec *Record) error {
	neg := func(field string, v float64) error {
		if v < 0 {
			return fmt.Errorf("%q is %s, want 0 or more", field, strconv.FormatFloat(v, 'f', -1, 64))
		}
		return nil
	}
	ms := func(field string, v *float64) error {
		if v == nil {
			return nil
		}
		return neg(field, *v)
	}
	errs := []error{
		neg("bytes", float64(rec.Bytes)),
		neg("attempts", float64(rec.Attempts)),
		neg("duration_ms", rec.DurationMS),
		neg("bytes_out", float64(rec.BytesOut)),
		neg("bytes_in", float64(rec.BytesIn)),
	}
	if t := rec.Timings; t != nil {
		errs = append(errs, ms("timings.dns_ms", t.DNSMS), ms("timings.connect_ms", t.ConnectMS),
			ms("timings.tls_ms", t.TLSMS), ms("timings.ttfb_ms", t.TTFBMS))
	}
	for _, a := range rec.History {
		errs = append(errs, neg("history.ms", a.MS), ms("history.wait_ms", a.WaitMS),
			ms("history.retry_after", a.RetryAfter), neg("history.bytes_out", float64(a.BytesOut)),
			neg("history.bytes_in", float64(a.BytesIn)))
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// typeError words a field of the wrong JSON type in the record's own terms:
// `"ok" is a number, want true or false`.
func typeError(te *json.UnmarshalTypeError) error {
	field := strings.TrimPrefix(te.Field, "Record.")
	if field == "" {
		return errors.New("a field has the wrong type")
	}
	var want string
	switch te.Type.Kind() {
	case reflect.Bool:
		want = "true or false"
	case reflect.String:
		want = "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		want = "a whole number"
		if n, ok := strings.CutPrefix(te.Value, "number "); ok && !strings.ContainsAny(n, ".eE") {
			return fmt.Errorf("%q is %s, out of range", field, n)
		}
	case reflect.Float32, reflect.Float64:
		want = "a number"
	case reflect.Slice, reflect.Array:
		want = "a list"
	default:
		want = "an object"
	}
	got := te.Value
	switch {
	case got == "array":
		got = "a list"
	case got == "object":
		got = "an object"
	case got == "bool":
		got = "true or false"
	case strings.HasPrefix(got, "number "):
		got = strings.TrimPrefix(got, "number ")
	default:
		got = "a " + got // number, string
	}
	return fmt.Errorf("%q is %s, want %s", field, got, want)
}
