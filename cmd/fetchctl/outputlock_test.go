//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// lockHeld reports whether another open file of path holds its advisory
// lock: one more taking it would have to wait.
func lockHeld(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err != nil && !errors.Is(err, unix.EWOULDBLOCK) {
		t.Fatalf("flock %s: %v", path, err)
	}
	return err != nil
}

// holdLock takes path's advisory lock, as a run writing it holds it, until
// the test ends.
func holdLock(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
}

// TestOutputInUse: an -o file that another run holds is exit 2 in every
// mode, one line naming it, before it is cut or written.
func TestOutputInUse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		keep string // what out.ndjson holds
		args []string
	}{
		{"new", "", nil},
		{"new onto records", recordLine, nil},
		{"resume", recordLine, []string{"--resume"}},
		{"overwrite", recordLine, []string{"--overwrite"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "urls.txt"), []byte("http://127.0.0.1:9/\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out.ndjson")
			if err := os.WriteFile(out, []byte(tt.keep), 0o644); err != nil {
				t.Fatal(err)
			}
			holdLock(t, out)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := fetchctlCmd(t, ctx, dir, append([]string{"run", "-q", "urls.txt", "-o", "out.ndjson"}, tt.args...)...)
			cmd.Dir = dir
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("fetchctl ended with %v, want exit 2; stderr: %s", err, stderr.String())
			}
			if want := "fetchctl: -o out.ndjson is in use by another run: wait for it to end, or name another file\n"; stderr.String() != want {
				t.Errorf("stderr %q, want %q", stderr.String(), want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
			if b, err := os.ReadFile(out); err != nil || string(b) != tt.keep {
				t.Errorf("out.ndjson holds %q (%v), want %q untouched", b, err, tt.keep)
			}
		})
	}
}

// TestOutputLockedWhileRunning: a run holds its -o file's lock from before
// its first record to its end, so a second run onto it is refused; the lock
// goes with the process, so a run killed with SIGKILL leaves none behind.
func TestOutputLockedWhileRunning(t *testing.T) {
	t.Parallel()
	dir, list := slowList(t, 1)
	out := filepath.Join(dir, "out.ndjson")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first := fetchctlCmd(t, ctx, dir, "run", "-q", list, "-o", out)
	var stderr strings.Builder
	first.Stderr = &stderr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(10 * time.Second); !lockHeld(t, out); <-tick.C {
		if time.Now().After(deadline) {
			first.Process.Kill()
			first.Wait()
			t.Fatalf("the run holds no lock on its -o file after 10s; stderr: %s", stderr.String())
		}
	}
	for _, mode := range []string{"--resume", "--overwrite"} {
		second := fetchctlCmd(t, ctx, dir, "run", "-q", list, "-o", out, mode)
		msg, err := second.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(msg), "-o "+out+" is in use by another run") {
			t.Errorf("a second run %s ended with %v, %q; want exit 2, in use", mode, err, msg)
		}
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	if lockHeld(t, out) {
		t.Error("the lock of a killed run is still held")
	}
}

// TestOutputSpecialNotLocked: an -o that is not a regular file (a FIFO
// here) takes no lock: several writers of one FIFO are the user's choice.
func TestOutputSpecialNotLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "urls.txt"), []byte("not a url\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "out.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Open for reading and writing, the FIFO has its reader at once; the
	// one record fits its buffer.
	holdLock(t, fifo)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := fetchctlCmd(t, ctx, dir, "run", "-q", "urls.txt", "-o", "out.fifo")
	cmd.Dir = dir
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fetchctl ended with %v, want exit 0: %s", err, msg)
	}
}
