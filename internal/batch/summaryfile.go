package batch

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// A --summary FILE replaces an earlier summary, so that a run can be run
// again with the same --summary, and nothing else: a file that holds
// records (or anything else that is not one summary) is refused unless
// --overwrite says to replace it, and so is a file another run holds as
// its -o, whatever it holds. Both are checked before anything is fetched
// or read, and again, under the file's lock, when the summary is written.

// maxSummarySize is the largest file read as an earlier summary: one with
// by_proxy for many thousands of proxies is far smaller.
const maxSummarySize = 64 << 20

// checkSummaryFile refuses a --summary path that is a regular file another
// run holds the lock of (its -o), or that holds something other than one
// earlier summary, unless overwrite. With resume, which --overwrite cannot
// go with, the message does not suggest it. Files that are not regular are
// never refused for what they hold.
func checkSummaryFile(path string, overwrite, resume bool) error {
	fi := regularFile(path)
	if fi == nil {
		return nil
	}
	if lockedByOther(path) {
		return setupErrorf("--summary %s is in use by another run: wait for it to end, or name another file", path)
	}
	if overwrite || fi.Size() == 0 || isSummary(path) {
		return nil
	}
	if resume {
		return setupErrorf("--summary %s already holds results, not a summary: name another file", path)
	}
	return setupErrorf("--summary %s already holds results, not a summary: add --overwrite to replace them, or name another file", path)
}

// isSummary reports whether the file at path holds one JSON object with a
// summary's total and no record's url, and after it nothing but white
// space: a summary as --summary writes it, or pretty-printed.
func isSummary(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() > maxSummarySize {
		return false
	}
	dec := json.NewDecoder(io.LimitReader(f, maxSummarySize))
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return false
	}
	if _, ok := obj["total"]; !ok {
		return false
	}
	if _, ok := obj["url"]; ok {
		return false
	}
	_, err = dec.Token()
	return errors.Is(err, io.EOF)
}

// writeSummaryFile writes the summary JSON data to path. A regular file,
// or a new one, is written under its lock, once checked again as
// [checkSummaryFile] checks it: another run may have taken it as its -o,
// or written results to it, since this one started. It is cut only then.
// A file that is not regular is written as it is. The errors are not
// *SetupError values: the run is over.
func writeSummaryFile(path string, data []byte, overwrite bool) error {
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return os.WriteFile(path, data, 0o644)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if !tryLock(f) {
		return fmt.Errorf("--summary %s is in use by another run: it is left as it is", path)
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !overwrite && fi.Size() > 0 && !isSummary(path) {
		return fmt.Errorf("--summary %s now holds results, not a summary: it is left as it is", path)
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Close()
}
