package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
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
	OK   *bool      `json:"ok"`
	Time *time.Time `json:"time"`
}

func decodeRecord(body []byte, rec *Record) error {
	if body[0] != '{' {
		if !json.Valid(body) {
			return json.Unmarshal(body, rec) // for its syntax error
		}
		return errNotObject
	}
	in := recordIn{Record: rec}
	if err := json.Unmarshal(body, &in); err != nil {
		return err
	}
	switch {
	case rec.URL == "":
		return errors.New(`no "url"`)
	case rec.Line < 1:
		return errors.New(`no "line" of 1 or more`)
	case in.OK == nil:
		return errors.New(`no "ok"`)
	case in.Time == nil:
		return errors.New(`no "time"`)
	}
	rec.OK = *in.OK
	rec.Time = *in.Time
	return nil
}
