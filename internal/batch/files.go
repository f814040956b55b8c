package batch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
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

// openOutput opens -o FILE, a regular one under its advisory lock held
// until the file is closed: a second run onto it, in any mode, is a
// *SetupError before it cuts or writes anything. With --resume it reads the records already
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
		// Cut only once the lock is held: another run may be writing it.
		f, err := os.OpenFile(cfg.Output, os.O_WRONLY|os.O_CREATE, 0o666)
		if err != nil {
			return nil, nil, false, setupErrorf("output %s: %v", cfg.Output, settings.PathError(err))
		}
		if !tryLock(f) {
			f.Close()
			return nil, nil, false, inUse(cfg.Output)
		}
		if err := f.Truncate(0); err != nil {
			f.Close()
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
	if !tryLock(f) {
		return fail(inUse(cfg.Output))
	}
	kept := newKeptRecords(cfg.Output, cfg.Shard, inputs)
	kept.bodies = cfg.Runner.SaveDir != ""
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

// inUse is the error for an -o file whose lock another run holds.
func inUse(path string) error {
	return setupErrorf("-o %s is in use by another run: wait for it to end, or name another file", path)
}

// lockedByOther reports whether another run holds path's lock, taking it
// for a moment.
func lockedByOther(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return !tryLock(f)
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
