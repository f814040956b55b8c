//go:build unix

package main

import (
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestWriteFileToAFIFO checks that a path that is no regular file (a FIFO
// here; /dev/null in use) is written to, not replaced by a regular file.
func TestWriteFileToAFIFO(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("no FIFO here: %v", err)
	}
	// A reader opened without waiting for a writer; once the writer is
	// gone it reads what was written, then the end.
	r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := writeFile(path, nil, func(w io.Writer) error {
		_, err := io.WriteString(w, "list")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(r); string(b) != "list" {
		t.Errorf("the FIFO's reader got %q (%v), want %q", b, err, "list")
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Type() != os.ModeNamedPipe {
		t.Fatalf("after the write, %s is %v (%v), want the FIFO still", path, fi.Mode(), err)
	}
}

// TestHelpListsPaths checks that -help names the paths the target serves.
