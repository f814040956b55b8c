//go:build unix

package runner

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOpenSaveDirRemovesLeftovers checks that opening a --save-bodies folder
// to clean it removes the temporary body files a killed run left, by the
// exact form of their names, and nothing else.
func TestOpenSaveDirRemovesLeftovers(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		removed bool
	}{
		{".fetchctl-3k9x2a.tmp", true},
		{".fetchctl-0.tmp", true},
		{".fetchctl-3w5e11264sgsf.tmp", true}, // the largest uint64 in base 36
		{".fetchctl-3w5e11264sgsg.tmp", false},
		{".fetchctl-3k9x2a00000000.tmp", false}, // above the largest uint64
		{".fetchctl-03k9.tmp", false},
		{".fetchctl-3K9X.tmp", false},
		{".fetchctl-.tmp", false},
		{".fetchctl-ab_c.tmp", false},
		{".fetchctl-abc.tmp.keep", false},
		{"fetchctl-abc.tmp", false},
		{"x.fetchctl-abc.tmp", false},
		{".fetchctl-abc.TMP", false},
		{"1.body", false},
		{"notes.txt", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, tt.name)
			if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, clean := range []bool{false, true} {
				sd, err := OpenSaveDir(dir, clean)
				if err != nil {
					t.Fatal(err)
				}
				sd.Close()
				_, err = os.Lstat(path)
				if gone := err != nil; gone != (clean && tt.removed) {
					t.Errorf("clean %v: removed %v, want %v", clean, gone, clean && tt.removed)
				}
			}
		})
	}
	t.Run("not a file", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		sub := filepath.Join(dir, ".fetchctl-abc.tmp")
		link := filepath.Join(dir, ".fetchctl-def.tmp")
		victim := filepath.Join(t.TempDir(), "victim")
		if err := os.WriteFile(victim, []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(victim, link); err != nil {
			t.Fatal(err)
		}
		sd, err := OpenSaveDir(dir, true)
		if err != nil {
			t.Fatal(err)
		}
		sd.Close()
		for _, p := range []string{sub, link, victim} {
			if _, err := os.Lstat(p); err != nil {
				t.Errorf("%s: %v, want it left", filepath.Base(p), err)
			}
		}
	})
}

// TestOpenSaveDirSparesARunningRun checks that a folder another run holds
// open is not cleaned: the temporary files there may be bodies that run is
// writing. Once it is closed, the next run cleans.
func TestOpenSaveDirSparesARunningRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	running, err := OpenSaveDir(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	f, err := createTemp(dir, tempPattern)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	sd, err := OpenSaveDir(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	sd.Close()
	if _, err := os.Stat(f.Name()); err != nil {
		t.Fatalf("the running run's body file was removed: %v", err)
	}
	running.Close()
	sd, err = OpenSaveDir(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	if _, err := os.Stat(f.Name()); err == nil {
		t.Errorf("%s is left once no run holds the folder", filepath.Base(f.Name()))
	}
}
