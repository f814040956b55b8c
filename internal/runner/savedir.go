package runner

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A body is written to a new file named tempPattern, its "*" a random
// number in base 36 (see createTemp), and renamed into place once whole. A
// run killed meanwhile leaves that file behind.
const (
	tempPrefix  = ".fetchctl-"
	tempSuffix  = ".tmp"
	tempPattern = tempPrefix + "*" + tempSuffix
)

// isTempName reports whether name is one that createTemp gives a body
// being written: tempPrefix, a uint64 in base 36 as
// strconv.FormatUint writes it, tempSuffix.
func isTempName(name string) bool {
	mid, ok := strings.CutPrefix(name, tempPrefix)
	if !ok {
		return false
	}
	if mid, ok = strings.CutSuffix(mid, tempSuffix); !ok || mid == "" {
		return false
	}
	n, err := strconv.ParseUint(mid, 36, 64)
	return err == nil && strconv.FormatUint(n, 36) == mid
}

// SaveDir is a --save-bodies folder that a run holds while it saves bodies
// there: no other run removes the temporary files of its bodies meanwhile.
// Close lets it go.
type SaveDir struct{ f *os.File }

// OpenSaveDir holds the folder dir, which must be there, for a run. With
// clean, it first removes the temporary body files that runs killed while
// saving left in it (regular files named as [Options.SaveDir]'s bodies are
// while written, and no others), provided no other run holds the folder;
// where the system offers no lock on a folder, it removes nothing. A file
// that cannot be removed is left. The error is the folder's, when it cannot
// be opened.
func OpenSaveDir(dir string, clean bool) (*SaveDir, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if clean && lockDir(f, true) == nil {
		removeLeftovers(f, dir)
	}
	// Shared with the other runs saving here: the one that cleans waits
	// for none of them to hold it. Where there is no lock, the run goes
	// on without one.
	_ = lockDir(f, false)
	return &SaveDir{f: f}, nil
}

// Close lets the folder go; it is safe to call more than once.
func (s *SaveDir) Close() error {
	if s == nil || s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// removeLeftovers removes the temporary body files in dir, read through f.
func removeLeftovers(f *os.File, dir string) {
	for {
		names, err := f.Readdirnames(1024)
		for _, name := range names {
			if !isTempName(name) {
				continue
			}
			path := filepath.Join(dir, name)
			if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() {
				os.Remove(path)
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			break
		}
	}
	// The run reads nothing more through f; rewound, it is as opened.
	_, _ = f.Seek(0, io.SeekStart)
}
