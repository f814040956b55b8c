package batch

import (
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/runner"
)

// keptRecords are the records that --resume keeps, one entry each, sorted by
// input and line: 32 bytes a record, whatever the line numbers say. A record
// is kept only when the input, read now, has the URL it holds on its line;
// check compares them as the lines are read.
type keptRecords struct {
	file    string           // the results file, for messages
	shard   runner.Shard     // the run's --shard: a kept record must be of it
	multi   bool             // records carry the input's name
	inputs  map[string]int32 // input name as records give it -> index
	names   []string         // index -> input name
	opened  []runner.Input   // the run's inputs, to tell a file named another way
	entries []keptEntry
	seen    []uint64 // bit i: the input had entries[i]'s line, with its URL
	count   int64

	// With several inputs, the N of each input's body file names
	// (<N>-<input>-<line>.body) as its records give them, by index (0 for
	// none), and the input that has each N: a resumed run names the bodies
	// of an input as the run that wrote the records did, whatever the
	// order the inputs come in now.
	bodyNo  []int
	bodyOf  map[int]int32
	bodies  bool  // --save-bodies is on: bodyErr refuses the run
	bodyErr error // the first record whose number clashes
}

type keptEntry struct {
	line   int64  // the record's line in its input
	url    uint64 // urlHash of the record's URL
	fileNo int64  // the record's line in the results file
	in     int32  // index of the record's input
}

// urlHash hashes a URL as a record holds it once read back: the writer
// turns each byte that is not UTF-8 into U+FFFD, so a line's URL hashes the
// same as its record's.
func urlHash(s string) uint64 {
	h := fnv.New64a()
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && size == 1 {
			io.WriteString(h, "\uFFFD")
		} else {
			io.WriteString(h, s[:size])
		}
		s = s[size:]
	}
	return h.Sum64()
}

func newKeptRecords(file string, shard runner.Shard, inputs []runner.Input) *keptRecords {
	k := &keptRecords{file: file, shard: shard, multi: len(inputs) > 1, inputs: map[string]int32{}, opened: inputs}
	if !k.multi {
		// Records of a single-input run carry no input name.
		k.inputs[""] = 0
		k.names = []string{inputs[0].Name}
		return k
	}
	for i, in := range inputs {
		if _, dup := k.inputs[in.Name]; !dup {
			k.inputs[in.Name] = int32(i)
		}
		k.names = append(k.names, in.Name)
	}
	return k
}

// of names a record's input and line as the message of a mismatch gives it.
func of(input string, line int64) string {
	if input == "" {
		return "line " + strconv.FormatInt(line, 10)
	}
	return input + " line " + strconv.FormatInt(line, 10)
}

// inputName is an input's name in a message.
func inputName(name string) string {
	if name == "-" {
		return "stdin"
	}
	return name
}

// add keeps the record found on line fileNo of the results file, or says
// why it cannot belong to this run's input.
func (k *keptRecords) add(fileNo int64, rec *report.Record) error {
	in, ok := k.inputs[rec.Input]
	if !ok {
		why := "this run reads one input"
		if k.multi {
			why = "this run reads several inputs"
			if rec.Input != "" {
				why = "this run does not read " + rec.Input
			}
		}
		if other, ok := k.sameFile(rec.Input); ok {
			how := "names that file " + other
			if other == "-" {
				how = "reads that file from stdin"
			}
			return setupErrorf("--resume: %s line %d holds a record of %s, but this run %s: name each input as the run that wrote it did",
				k.file, fileNo, of(rec.Input, rec.Line), how)
		}
		return setupErrorf("--resume: %s line %d holds a record of %s, but %s: results of another run? Resume with the inputs it read, or start again with --overwrite",
			k.file, fileNo, of(rec.Input, rec.Line), why)
	}
	k.entries = append(k.entries, keptEntry{line: rec.Line, url: urlHash(rec.URL), fileNo: fileNo, in: in})
	if k.multi && rec.BodyFile != "" {
		k.addBody(fileNo, in, rec)
	}
	return nil
}

// addBody notes the number of a record's body file; a number that another
// input's bodies have, or one other than the input's earlier bodies have,
// is kept in bodyErr: bodies numbered so could not be told apart.
func (k *keptRecords) addBody(fileNo int64, in int32, rec *report.Record) {
	n, ok := runner.BodyNumber(rec.BodyFile, rec.Input, rec.Line)
	if !ok || k.bodyErr != nil {
		return
	}
	if k.bodyNo == nil {
		k.bodyNo = make([]int, len(k.names))
		k.bodyOf = map[int]int32{}
	}
	other, taken := k.bodyOf[n]
	switch {
	case taken && other != in:
		k.bodyErr = setupErrorf("--resume: %s line %d holds a record of %s whose body_file %s has the number of %s's bodies: start again with --overwrite",
			k.file, fileNo, of(rec.Input, rec.Line), rec.BodyFile, inputName(k.names[other]))
	case k.bodyNo[in] != 0 && k.bodyNo[in] != n:
		k.bodyErr = setupErrorf("--resume: %s line %d holds a record of %s whose body_file %s does not have the number %d of its other bodies: start again with --overwrite",
			k.file, fileNo, of(rec.Input, rec.Line), rec.BodyFile, k.bodyNo[in])
	default:
		k.bodyNo[in] = n
		k.bodyOf[n] = in
	}
}

// numberBodies gives each input the number its kept records' body files
// have, when they have one; [runner.NumberBodies] numbers the others.
func (k *keptRecords) numberBodies(inputs []runner.Input) {
	if k.bodyNo == nil {
		return
	}
	for i, in := range inputs {
		if idx, ok := k.inputs[in.Name]; ok {
			inputs[i].BodyNo = k.bodyNo[idx]
		}
	}
}

// sameFile returns the name of this run's input that is the file a
// record's input names, by another name, when one is: inputs match by
// name as written, and a message says so rather than that the file is not
// read. The record's name is taken from where this run is.
func (k *keptRecords) sameFile(name string) (string, bool) {
	if !k.multi || name == "" || name == "-" {
		return "", false
	}
	fi := regularFile(name)
	if fi == nil {
		return "", false
	}
	for _, in := range k.opened {
		f, ok := in.R.(*os.File)
		if !ok {
			continue
		}
		if st, err := f.Stat(); err == nil && os.SameFile(fi, st) {
			return in.Name, true
		}
	}
	return "", false
}

// done sorts the entries and refuses two records of one line, and with
// --save-bodies, records whose body files two inputs could share.
func (k *keptRecords) done() error {
	if k.bodies && k.bodyErr != nil {
		return k.bodyErr
	}
	slices.SortFunc(k.entries, func(a, b keptEntry) int {
		return cmp.Or(cmp.Compare(a.in, b.in), cmp.Compare(a.line, b.line), cmp.Compare(a.fileNo, b.fileNo))
	})
	for i := 1; i < len(k.entries); i++ {
		a, b := k.entries[i-1], k.entries[i]
		if a.in == b.in && a.line == b.line {
			return setupErrorf("--resume: %s line %d holds a second record of %s (the first is on line %d)",
				k.file, b.fileNo, of(k.recordInput(b.in), b.line), a.fileNo)
		}
	}
	k.count = int64(len(k.entries))
	k.seen = make([]uint64, (len(k.entries)+63)/64)
	return nil
}

// recordInput is the input name that records of input i carry.
func (k *keptRecords) recordInput(i int32) string {
	if !k.multi {
		return ""
	}
	return k.names[i]
}

func (k *keptRecords) find(in int32, line int64) (int, bool) {
	return slices.BinarySearchFunc(k.entries, keptEntry{in: in, line: line}, func(e, t keptEntry) int {
		return cmp.Or(cmp.Compare(e.in, t.in), cmp.Compare(e.line, t.line))
	})
}

// check is [runner.ReadOptions.Recorded]: true for a line with a kept
// record, an error when that record holds another URL or, with --shard, a
// URL of another shard. The line's host decides, by the reader's own rule,
// so an invalid line's record belongs to shard 0.
func (k *keptRecords) check(j *runner.Job) (bool, error) {
	name := ""
	if k.multi {
		name = j.Input
	}
	in, ok := k.inputs[name]
	if !ok {
		return false, nil
	}
	i, ok := k.find(in, j.Line)
	if !ok {
		return false, nil
	}
	e := k.entries[i]
	url := j.RecordURL()
	if urlHash(url) != e.url {
		return false, setupErrorf("--resume: %s line %d holds a record of %s for %s, but %s line %d reads %s: results of another list? Resume with the list they came from, or start again with --overwrite",
			k.file, e.fileNo, of(name, e.line), k.recordURL(e.fileNo), inputName(j.Input), j.Line, url)
	}
	if !k.shard.Keeps(j.Host()) {
		what := fmt.Sprintf("an invalid line, which shard 0/%d records", k.shard.N)
		if j.Host() != "" {
			what = fmt.Sprintf("a URL of shard %d/%d", runner.ShardOf(j.Host(), k.shard.N), k.shard.N)
		}
		return false, setupErrorf("--resume: %s line %d holds a record of %s for %s, %s, not %d/%d: results of another shard? Resume each shard with its own file",
			k.file, e.fileNo, of(name, e.line), url, what, k.shard.K, k.shard.N)
	}
	k.seen[i/64] |= 1 << (i % 64)
	return true, nil
}

// unseen returns an error naming the first kept record (in the results
// file) whose line the inputs, read to the end, did not have.
func (k *keptRecords) unseen() error {
	first := -1
	for i, e := range k.entries {
		if k.seen[i/64]&(1<<(i%64)) == 0 && (first < 0 || e.fileNo < k.entries[first].fileNo) {
			first = i
		}
	}
	if first < 0 {
		return nil
	}
	e := k.entries[first]
	return setupErrorf("--resume: %s line %d holds a record of %s for %s, but %s has no URL on that line: results of another list? Resume with the list they came from, or start again with --overwrite",
		k.file, e.fileNo, of(k.recordInput(e.in), e.line), k.recordURL(e.fileNo), inputName(k.names[e.in]))
}

// recordURL reads again the URL of the record on line fileNo of the results
// file, for a message; "" when it cannot.
func (k *keptRecords) recordURL(fileNo int64) string {
	f, err := os.Open(k.file)
	if err != nil {
		return "?"
	}
	defer f.Close()
	errFound := errors.New("found")
	url := "?"
	_, _ = report.ReadNumbered(f, func(n int64, rec *report.Record) error {
		if n == fileNo {
			url = rec.URL
			return errFound
		}
		return nil
	})
	return url
}
