package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// ReadRecords reads an NDJSON result file from r and calls fn with each
// record, in file order. Lines may be of any length; blank lines are skipped.
//
// A run that was killed may leave a torn last line: the bytes after the last
// newline, or a last line that is not a valid record. It is not an error: it
// is counted in [ReadStats.TornBytes] and left out of GoodSize. An invalid
// line anywhere else is an error naming its line number. An error from fn
// stops the read and is returned as is.
//
// fn gets the same *Record each time, reset between lines: it must not keep
// the pointer, nor the History slice or the pointers within, past its
// return.
func ReadRecords(r io.Reader, fn func(rec *Record) error) (ReadStats, error) {
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
			st.GoodSize += int64(len(line))
			continue
		}
		rec = Record{}
		if derr := decodeRecord(body, &rec); derr != nil {
			// body is not used past here: Peek may move the buffer.
			_, perr := br.Peek(1)
			if perr == io.EOF {
				st.TornBytes = int64(len(line))
				return st, nil
			}
			if perr != nil {
				return st, fmt.Errorf("read records: %w", perr)
			}
			return st, fmt.Errorf("line %d: invalid record: %w", lineNo, derr)
		}
		st.Records++
		st.GoodSize += int64(len(line))
		if err := fn(&rec); err != nil {
			return st, err
		}
	}
}

func decodeRecord(body []byte, rec *Record) error {
	if body[0] != '{' {
		if !json.Valid(body) {
			return json.Unmarshal(body, rec) // for its syntax error
		}
		return errNotObject
	}
	return json.Unmarshal(body, rec)
}
