package batch

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/fetchctl/fetchctl/internal/runner"
	"github.com/fetchctl/fetchctl/internal/settings"
)

// The checks that refuse an output (-o, --summary) before anything is
// written: one that would destroy an input, a file the run reads, a body
// --save-bodies may write, or the other output.

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

// isBodyFile refuses a flag's path that a body saved under --save-bodies
// dir could replace: one with a name a body file of the inputs could take
// (see [runner.IsBodyFileName]) in that folder, by any path (through a
// linked folder, ../), a link to one (even to nothing yet: writing makes
// it), or a link under such a name in the folder, which the body would
// replace at the end.
func isBodyFile(flag, path, dir string, inputs []string) error {
	if couldBeBody(path, dir, inputs) {
		return setupErrorf("%s %s could be a body file of --save-bodies %s: a saved body would replace it; name another file", flag, path, dir)
	}
	return nil
}

// couldBeBody reports whether a body saved under --save-bodies dir could
// replace path: see [isBodyFile].
func couldBeBody(path, dir string, inputs []string) bool {
	if dir == "" {
		return false
	}
	p := path
	for range 40 {
		folder, name := filepath.Split(p)
		if runner.IsBodyFileName(name, inputs) && sameFolder(folder, dir) {
			return true
		}
		target, err := os.Readlink(p)
		if err != nil {
			return false
		}
		if !filepath.IsAbs(target) {
			// Relative to the link's folder, left as written: the system
			// resolves its links and .. in the order they come.
			target = folder + target
		}
		p = target
	}
	return false
}

// checkBodies refuses a --save-bodies folder where a saved body could
// replace a file the run reads: an input or a file of [readFiles], by any
// path to it as for -o (see [isBodyFile]), or stdin's file when it is
// there under a body's name.
func checkBodies(cfg *Config, inputs []runner.Input, names []string, reads []readFile) error {
	dir := cfg.Runner.SaveDir
	if dir == "" {
		return nil
	}
	refuse := func(what string) error {
		return setupErrorf("%s could be a body file of --save-bodies %s: a saved body would replace it; give --save-bodies another folder", what, dir)
	}
	for _, in := range inputs {
		if in.Name != "-" {
			if couldBeBody(in.Name, dir, names) {
				return refuse("input " + in.Name)
			}
			continue
		}
		f, ok := in.R.(*os.File)
		if !ok {
			continue
		}
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			if name := bodyNamed(dir, names, fi); name != "" {
				return refuse("stdin, the file " + filepath.Join(dir, name) + ",")
			}
		}
	}
	for _, rf := range reads {
		if couldBeBody(rf.path, dir, names) {
			return refuse(rf.flag)
		}
	}
	return nil
}

// bodyNamed is the name in dir, one a body could take, of the file fi,
// or "" when it has none there.
func bodyNamed(dir string, inputs []string, fi os.FileInfo) string {
	d, err := os.Open(dir)
	if err != nil {
		return ""
	}
	defer d.Close()
	for {
		names, err := d.Readdirnames(1024)
		for _, name := range names {
			if !runner.IsBodyFileName(name, inputs) {
				continue
			}
			if bfi, err := os.Lstat(filepath.Join(dir, name)); err == nil && os.SameFile(bfi, fi) {
				return name
			}
		}
		if err != nil {
			return ""
		}
	}
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
// --resume or --overwrite says what to do with it; a --summary that
// another run holds as its -o, or that holds something other than a
// summary unless --overwrite (see [checkSummaryFile]); -o, --summary, an
// input or another file the run reads that a saved body could replace; and
// a --summary that could not be written at the end. Files that are not
// regular (/dev/null, a FIFO, a terminal) are never refused for what they
// hold. --summary - is stdout: FromSettings refuses it when the records go
// there too.
func checkOutputs(cfg *Config, inputs []runner.Input, stdout io.Writer) error {
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
	if err := stdoutIsInput(cfg, ins, stdout); err != nil {
		return err
	}
	reads := readFiles(cfg)
	if err := checkBodies(cfg, inputs, names, reads); err != nil {
		return err
	}
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
			if lockedByOther(cfg.Output) {
				return inUse(cfg.Output)
			}
			return setupErrorf("-o %s already holds results: add --resume to go on with them, or --overwrite to start again", cfg.Output)
		}
	}
	if cfg.SummaryOut == "-" && cfg.Output != "" && onStdout(cfg.Output, stdout) {
		return setupErrorf("--summary - is stdout, which is the output -o %s: the summary would land in the records; give --summary FILE", cfg.Output)
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
		if cfg.Output == "" && onStdout(cfg.SummaryOut, stdout) {
			return setupErrorf("--summary %s is stdout, which gets the records too: give -o FILE, or --summary another file", cfg.SummaryOut)
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
		if err := checkSummaryFile(cfg.SummaryOut, cfg.Overwrite, cfg.Resume); err != nil {
			return err
		}
		if err := checkWritable("--summary", cfg.SummaryOut); err != nil {
			return err
		}
	}
	return nil
}

// isDevNull reports whether fi is the null device.
func isDevNull(fi os.FileInfo) bool {
	null, err := os.Stat(os.DevNull)
	return err == nil && os.SameFile(fi, null)
}

// onStdout reports whether path names the file stdout writes to (by
// /dev/stdout, a link, or a shell's redirection to that file), /dev/null
// aside.
func onStdout(path string, stdout io.Writer) bool {
	f, ok := stdout.(*os.File)
	if !ok {
		return false
	}
	outFI, err := f.Stat()
	if err != nil {
		return false
	}
	fi, err := os.Stat(path)
	return err == nil && os.SameFile(fi, outFI) && !isDevNull(fi)
}

// stdoutIsInput refuses a stdout that is a regular file the run reads as
// an input (named, or as stdin), appended to or not, when the run writes
// there: the records (no -o) would be read back as lines of the list, one
// run's records feeding the next forever; the --dry-run report or the
// --summary - JSON would land in the list.
func stdoutIsInput(cfg *Config, ins []namedFile, stdout io.Writer) error {
	if !cfg.dryRun && cfg.Output != "" && cfg.SummaryOut != "-" {
		return nil
	}
	f, ok := stdout.(*os.File)
	if !ok {
		return nil
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	for _, in := range ins {
		if !os.SameFile(fi, in.fi) {
			continue
		}
		switch {
		case cfg.dryRun:
			return setupErrorf("stdout is the input %s: the --dry-run report would land in the list; give another stdout", in.name)
		case cfg.Output == "":
			return setupErrorf("stdout is the input %s: the records would be read back as its lines; give -o FILE", in.name)
		}
		return setupErrorf("--summary - is stdout, which is the input %s: writing it would destroy the list; give --summary FILE", in.name)
	}
	return nil
}
