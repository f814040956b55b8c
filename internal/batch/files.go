package batch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/runner"
	"github.com/fetchctl/fetchctl/internal/settings"
)

// readsStdin reports whether one of the inputs is stdin.
func readsStdin(inputs []runner.Input) bool {
	for _, in := range inputs {
		if in.Name == "-" {
			return true
		}
	}
	return false
}

// openInputs opens the named files, or stdin when there are none or for "-".
// Every file is opened before anything is fetched, so a missing one is a
// usage error, and so is one file named twice (by any path to it, stdin
// read from it included) or stdin named twice. Opening a FIFO waits for its
// writer; ctx ends the wait.
func openInputs(ctx context.Context, files []string, stdin io.Reader) ([]runner.Input, func(), error) {
	if len(files) == 0 {
		files = []string{"-"}
	}
	var inputs []runner.Input
	var closers []io.Closer
	closeAll := func() {
		for _, c := range closers {
			c.Close()
		}
	}
	// The regular files read so far: one read twice would give records
	// that neither --resume nor anyone else could tell apart.
	var seen []namedFile
	once := func(name string, f *os.File) error {
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		for _, s := range seen {
			if !os.SameFile(fi, s.fi) {
				continue
			}
			switch {
			case name == s.name:
				return setupErrorf("input %s is named twice: name each input once", name)
			case name == "-":
				return setupErrorf("stdin is the same file as input %s: name each input once", s.name)
			case s.name == "-":
				return setupErrorf("input %s is the same file as stdin: name each input once", name)
			}
			return setupErrorf("input %s is the same file as input %s: name each input once", name, s.name)
		}
		seen = append(seen, namedFile{name, fi})
		return nil
	}
	stdinUsed := false
	for _, name := range files {
		if name == "-" {
			if stdinUsed {
				closeAll()
				return nil, nil, setupErrorf("stdin (-) is named more than once")
			}
			stdinUsed = true
			if f, ok := stdin.(*os.File); ok {
				if err := once("-", f); err != nil {
					closeAll()
					return nil, nil, err
				}
			}
			inputs = append(inputs, runner.Input{Name: "-", R: stdin})
			continue
		}
		f, err := openInput(ctx, name)
		if err != nil {
			closeAll()
			if ctx.Err() != nil {
				return nil, nil, err
			}
			return nil, nil, setupErrorf("input %s: %v", shownPath(name), settings.PathError(err))
		}
		if st, err := f.Stat(); err == nil && st.IsDir() {
			f.Close()
			closeAll()
			return nil, nil, setupErrorf("input %s is a directory, not a URL list", shownPath(name))
		}
		if err := once(name, f); err != nil {
			f.Close()
			closeAll()
			return nil, nil, err
		}
		closers = append(closers, f)
		inputs = append(inputs, runner.Input{Name: name, R: f})
	}
	return inputs, closeAll, nil
}

// shownPath is a file name as a message gives it: as written, or quoted
// when that would not show it (empty, white space at either end, a control
// character), so that the message stays one line.
func shownPath(name string) string {
	if name == "" || strings.TrimSpace(name) != name || strings.ContainsFunc(name, unicode.IsControl) {
		return strconv.Quote(name)
	}
	return name
}

// namedFile is an input that is a regular file, as a message names it and
// by the file itself, so that any path to it (a link, ../) is known.
type namedFile struct {
	name string
	fi   os.FileInfo
}

// regularFile is path's file when it is a regular one, else nil.
func regularFile(path string) os.FileInfo {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	return fi
}

// isInput refuses a flag's path that is one of ins; what names what
// writing it would destroy.
func isInput(flag, path, what string, ins []namedFile) error {
	fi := regularFile(path)
	if fi == nil {
		return nil
	}
	for _, in := range ins {
		if os.SameFile(fi, in.fi) {
			return setupErrorf("%s %s is the input %s: writing it would destroy the %s; name another file", flag, path, in.name, what)
		}
	}
	return nil
}

// checkWritable refuses a --summary that could not be written at the end:
// a folder, a file that cannot be opened for writing, or a new file in a
// folder that is not there or not writable. An existing file is opened
// without being cut; a new one is made and removed again. Files that are
// not regular are written as they are.
func checkWritable(flag, path string) error {
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return setupErrorf("%s %s is a directory, not a file", flag, path)
	case err == nil && fi.Mode().IsRegular():
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return setupErrorf("%s %s: %v", flag, path, settings.PathError(err))
		}
		f.Close()
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			// A link to nothing: writing makes what it points at.
			return nil
		}
		if err != nil {
			return setupErrorf("%s %s: %v", flag, path, settings.PathError(err))
		}
		f.Close()
		os.Remove(path)
	default:
		return setupErrorf("%s %s: %v", flag, path, settings.PathError(err))
	}
	return nil
}

// CheckSummarize refuses, before summarize reads anything, one result
// file named twice (by any path to it: its records would count twice),
// and a --summary that is one of the result files it reads (by the file
// itself, so links count too) or that could not be written. files[i] is
// the open file of names[i], nil when it is no file (stdin from a pipe);
// "-" names stdin.
func CheckSummarize(summary string, names []string, files []*os.File) error {
	var ins []namedFile
	for i, f := range files {
		if f == nil {
			continue
		}
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		name := resultsName(names[i])
		for _, in := range ins {
			if !os.SameFile(fi, in.fi) {
				continue
			}
			switch {
			case name == in.name:
				return setupErrorf("results file %s is named twice: name each file once", in.name)
			case names[i] == "-":
				return setupErrorf("stdin is the same file as results file %s: name each file once", in.name)
			}
			return setupErrorf("results file %s is the same file as %s: name each file once", name, in.name)
		}
		ins = append(ins, namedFile{name, fi})
	}
	if summary == "" || summary == "-" {
		return nil
	}
	if err := isInput("--summary", summary, "records", ins); err != nil {
		return err
	}
	return checkWritable("--summary", summary)
}

// resultsName is a result file as messages name it: stdin for "-".
func resultsName(name string) string {
	if name == "-" {
		return "stdin"
	}
	return name
}

// readFile is a file the run reads besides its inputs, as the flag that
// names it shows it, and what writing over it would destroy.
type readFile struct {
	flag, path, what string
}

// readFiles are the files the run reads besides its inputs: the config
// file, the proxy file, the request body file and the CA file.
func readFiles(cfg *Config) []readFile {
	r := cfg.settings
	if r == nil {
		return nil
	}
	var reads []readFile
	if r.ConfigFile != "" {
		reads = append(reads, readFile{"--config " + r.ConfigFile, r.ConfigFile, "settings"})
	}
	if r.ProxyFile != "" {
		reads = append(reads, readFile{"--proxy-file " + r.ProxyFile, r.ProxyFile, "proxies"})
	}
	if strings.HasPrefix(r.Data, "@") {
		reads = append(reads, readFile{"--data " + r.Data, r.Data[1:], "request body"})
	}
	if r.CACert != "" {
		reads = append(reads, readFile{"--cacert " + r.CACert, r.CACert, "CA certificates"})
	}
	return reads
}

// isRead refuses a flag's path that is one of the files the run reads.
func isRead(flag, path string, reads []readFile) error {
	fi := regularFile(path)
	if fi == nil {
		return nil
	}
	for _, rf := range reads {
		if other := regularFile(rf.path); other != nil && os.SameFile(fi, other) {
			return setupErrorf("%s %s is the %s: writing it would destroy the %s; name another file", flag, path, rf.flag, rf.what)
		}
	}
	return nil
}

// isBodyFile refuses a flag's path that a body saved under --save-bodies
// dir could replace: one with a name a body file of the inputs could take
// (see [runner.IsBodyFileName]) in that folder, by any path (through a
// linked folder, ../), a link to one (even to nothing yet: writing makes
// it), or a link under such a name in the folder, which the body would
// replace at the end.
func isBodyFile(flag, path, dir string, inputs []string) error {
	if dir == "" {
		return nil
	}
	p := path
	for range 40 {
		folder, name := filepath.Split(p)
		if runner.IsBodyFileName(name, inputs) && sameFolder(folder, dir) {
			return setupErrorf("%s %s could be a body file of --save-bodies %s: a saved body would replace it; name another file", flag, path, dir)
		}
		target, err := os.Readlink(p)
		if err != nil {
			return nil
		}
		if !filepath.IsAbs(target) {
			// Relative to the link's folder, left as written: the system
			// resolves its links and .. in the order they come.
			target = folder + target
		}
		p = target
	}
	return nil
}

// sameFolder reports whether a and b name one folder: by the folder itself
// when both are there, else (the --save-bodies folder is made when the run
// starts) by their paths, with the links of the part that is there
// resolved.
func sameFolder(a, b string) bool {
	if a == "" {
		a = "."
	}
	ai, aerr := os.Stat(a)
	bi, berr := os.Stat(b)
	switch {
	case aerr == nil && berr == nil:
		return os.SameFile(ai, bi)
	case aerr == nil || berr == nil:
		return false
	}
	return resolvedPath(a) == resolvedPath(b)
}

// resolvedPath is p made absolute, with the links of its longest part that
// is there resolved.
func resolvedPath(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	rest := ""
	for cur := abs; ; {
		if real, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(real, rest)
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// checkOutputs refuses, before anything is touched, an -o or --summary
// that would destroy an input or earlier results: -o or --summary naming an
// input (by the file itself, so links count too), --summary naming the
// output, and -o naming a regular file that holds something, unless
// --resume or --overwrite says what to do with it; -o or --summary that a
// saved body could replace; and a --summary that could not be written at
// the end. Files that are not regular (/dev/null, a FIFO, a terminal) are
// never refused for what they hold. --summary - is stdout: FromSettings
// refuses it when the records go there too.
func checkOutputs(cfg *Config, inputs []runner.Input) error {
	names := make([]string, len(inputs))
	for i, in := range inputs {
		names[i] = in.Name
	}
	var ins []namedFile
	for _, in := range inputs {
		f, ok := in.R.(*os.File)
		if !ok {
			continue
		}
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			name := in.Name
			if name == "-" {
				name = "stdin"
			}
			ins = append(ins, namedFile{name, fi})
		}
	}
	reads := readFiles(cfg)
	if cfg.Output != "" {
		if err := isInput("-o", cfg.Output, "list", ins); err != nil {
			return err
		}
		if err := isRead("-o", cfg.Output, reads); err != nil {
			return err
		}
		if err := isBodyFile("-o", cfg.Output, cfg.Runner.SaveDir, names); err != nil {
			return err
		}
		outFI := regularFile(cfg.Output)
		if outFI != nil && outFI.Size() > 0 && !cfg.Resume && !cfg.Overwrite {
			return setupErrorf("-o %s already holds results: add --resume to go on with them, or --overwrite to start again", cfg.Output)
		}
	}
	if cfg.SummaryOut != "" && cfg.SummaryOut != "-" {
		if err := isInput("--summary", cfg.SummaryOut, "list", ins); err != nil {
			return err
		}
		if err := isRead("--summary", cfg.SummaryOut, reads); err != nil {
			return err
		}
		if err := isBodyFile("--summary", cfg.SummaryOut, cfg.Runner.SaveDir, names); err != nil {
			return err
		}
		if cfg.Output != "" {
			sumFI, sumErr := os.Stat(cfg.SummaryOut)
			outFI, outErr := os.Stat(cfg.Output)
			same := false
			switch {
			case sumErr == nil && outErr == nil:
				// A file that is not regular (a FIFO) too: records and
				// summary would be one stream. /dev/null keeps nothing
				// to mix.
				same = os.SameFile(sumFI, outFI) && !isDevNull(outFI)
			case errors.Is(sumErr, fs.ErrNotExist) && errors.Is(outErr, fs.ErrNotExist):
				// Neither is there yet: the same name is the same file.
				a, err1 := filepath.Abs(cfg.SummaryOut)
				b, err2 := filepath.Abs(cfg.Output)
				same = err1 == nil && err2 == nil && a == b
			}
			if same {
				return setupErrorf("--summary %s is the output -o %s: name another file", cfg.SummaryOut, cfg.Output)
			}
		}
		if err := checkWritable("--summary", cfg.SummaryOut); err != nil {
			return err
		}
	}
	return nil
}

// openOutput opens -o FILE. With --resume it reads the records already
// there (adding them to the summary) and checks them against the inputs
// that are regular files, which it reads once and rewinds; only then, when
// they all match, does it cut a torn last line. It returns the records to
// keep and whether every input was checked, none being a stream. A file
// that is not regular is opened write-only (see openSpecial), with or
// without --resume: there are no records to read back from it.
func openOutput(ctx context.Context, cfg *Config, summary *report.Summary, inputs []runner.Input) (*os.File, *keptRecords, bool, error) {
	if fi, err := os.Stat(cfg.Output); err == nil && !fi.Mode().IsRegular() {
		f, err := openSpecial(ctx, cfg.Output)
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, false, err
			}
			return nil, nil, false, setupErrorf("output %s: %v", cfg.Output, settings.PathError(err))
		}
		return f, nil, false, nil
	}
	if !cfg.Resume {
		f, err := os.OpenFile(cfg.Output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o666)
		if err != nil {
			return nil, nil, false, setupErrorf("output %s: %v", cfg.Output, settings.PathError(err))
		}
		return f, nil, false, nil
	}
	f, err := os.OpenFile(cfg.Output, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, false, setupErrorf("output %s: %v", cfg.Output, settings.PathError(err))
	}
	fail := func(err error) (*os.File, *keptRecords, bool, error) {
		f.Close()
		return nil, nil, false, err
	}
	kept := newKeptRecords(cfg.Output, cfg.Shard, inputs)
	stats, err := report.ReadNumbered(bufio.NewReaderSize(f, 256<<10), func(n int64, rec *report.Record) error {
		if err := kept.add(n, rec); err != nil {
			return err
		}
		summary.AddOld(rec)
		return nil
	})
	var ue *SetupError
	if errors.As(err, &ue) {
		return fail(err)
	}
	if err != nil {
		return fail(setupErrorf("--resume: %s: %v", cfg.Output, err))
	}
	if err := kept.done(); err != nil {
		return fail(err)
	}
	all, err := precheck(ctx, kept, inputs)
	if err != nil {
		return fail(err)
	}
	if stats.TornBytes > 0 {
		if err := f.Truncate(stats.GoodSize); err != nil {
			return fail(fmt.Errorf("--resume: cut the torn last line of %s: %w", cfg.Output, err))
		}
	}
	if _, err := f.Seek(stats.GoodSize, io.SeekStart); err != nil {
		return fail(fmt.Errorf("--resume: %w", err))
	}
	return f, kept, all, nil
}

// openSpecial opens an output that is not a regular file (a FIFO, a
// terminal, /dev/null) write-only. Opened for reading too, the run would
// be a reader of its own FIFO: a reader that goes away would never be
// noticed, and a full FIFO would block the run for good. Opening a FIFO
// waits for its reader, as a shell's > does; ctx ends the wait.
func openSpecial(ctx context.Context, path string) (*os.File, error) {
	return openWaiting(ctx, path, os.O_WRONLY)
}

// openInput opens an input for reading. One that is not a regular file (a
// FIFO) may wait in the open for its writer, as a shell's < does; ctx ends
// the wait.
func openInput(ctx context.Context, path string) (*os.File, error) {
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() && !fi.IsDir() {
		return openWaiting(ctx, path, os.O_RDONLY)
	}
	return os.Open(path)
}

// openWaiting opens path with flag in a goroutine of its own, so that an
// open that waits (a FIFO's, for its other end) ends when ctx does.
func openWaiting(ctx context.Context, path string, flag int) (*os.File, error) {
	type opened struct {
		f   *os.File
		err error
	}
	done := make(chan opened, 1)
	go func() {
		f, err := os.OpenFile(path, flag, 0)
		done <- opened{f, err}
	}()
	select {
	case o := <-done:
		return o.f, o.err
	case <-ctx.Done():
		// The open cannot be called off: the other end that comes later
		// gets the file closed at once.
		go func() {
			if o := <-done; o.f != nil {
				o.f.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// precheck compares the inputs that are regular files with the kept
// records before anything is fetched, reading each once and putting it back
// where it was. A stream (stdin as a pipe) cannot be read twice: its lines
// are checked as the run reads them. It reports whether every input was
// checked here, and when so, also refuses records of lines that no input
// has.
func precheck(ctx context.Context, kept *keptRecords, inputs []runner.Input) (bool, error) {
	if kept.count == 0 {
		return true, nil
	}
	all := true
	var files []runner.Input
	var offsets []int64
	for _, in := range inputs {
		f, ok := in.R.(*os.File)
		if !ok {
			all = false
			continue
		}
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			all = false
			continue
		}
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			all = false
			continue
		}
		files = append(files, in)
		offsets = append(offsets, off)
	}
	jobs := make(chan runner.Job, 256)
	drained := make(chan struct{})
	go func() {
		for range jobs {
		}
		close(drained)
	}()
	err := runner.ReadJobs(ctx, files, runner.ReadOptions{Recorded: kept.check}, jobs)
	close(jobs)
	<-drained
	for i, in := range files {
		if _, serr := in.R.(*os.File).Seek(offsets[i], io.SeekStart); serr != nil && err == nil {
			err = setupErrorf("input %s: %v", in.Name, serr)
		}
	}
	if err == nil && all {
		err = kept.unseen()
	}
	return all, err
}

// isDevNull reports whether fi is the null device.
func isDevNull(fi os.FileInfo) bool {
	null, err := os.Stat(os.DevNull)
	return err == nil && os.SameFile(fi, null)
}
