package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fetchctl/fetchctl/internal/manpage"
)

// TestManPages checks that make man's generator writes a page for the
// command and each subcommand.
func TestManPages(t *testing.T) {
	d := &deps{getenv: func(string) string { return "" }}
	dir := t.TempDir()
	if err := manpage.Write(newRootCmd(d), version, dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"fetchctl.1", "fetchctl-run.1", "fetchctl-summarize.1", "fetchctl-presets.1"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), ".TH") {
			t.Errorf("%s is not a man page", name)
		}
	}
	page, _ := os.ReadFile(filepath.Join(dir, "fetchctl-run.1"))
	if !strings.Contains(string(page), "min-success") {
		t.Error("fetchctl-run.1 does not document --min-success")
	}
}

// TestHelpAndREADMEAgree checks that --help lists the exit codes and that
// summarize's example is the README's.
func TestHelpAndREADMEAgree(t *testing.T) {
	streams, _, stdout, _ := testStreams()
	if code := mainWith([]string{"--help"}, streams, env(t, nil)); code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	for _, code := range []string{"0 ", "1 ", "2 ", "130", "143"} {
		if !strings.Contains(stdout.String(), "\n  "+code) && !strings.Contains(stdout.String(), "; "+code) {
			t.Errorf("--help does not list exit code %s:\n%s", code, stdout)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// Both list every way a run stops on a failure of its own (exit 1).
	help := strings.Join(strings.Fields(stdout.String()), " ")
	exits := strings.ReplaceAll(string(readme), "`", "")
	if i := strings.Index(exits, "### Exit codes"); i >= 0 {
		exits = exits[i:]
	}
	for _, reason := range []string{"not writable", "every proxy failing", "--budget spent", "internal error"} {
		if !strings.Contains(help, reason) {
			t.Errorf("--help's exit codes leave out %q:\n%s", reason, stdout)
		}
		if !strings.Contains(exits, reason) {
			t.Errorf("README's exit codes leave out %q", reason)
		}
	}
	d := &deps{getenv: func(string) string { return "" }}
	for _, c := range newRootCmd(d).Commands() {
		if c.Name() != "summarize" {
			continue
		}
		example := strings.Join(strings.Fields(c.Example), " ")
		if !strings.Contains(strings.Join(strings.Fields(string(readme)), " "), example) {
			t.Errorf("summarize's example %q is not the README's", example)
		}
	}
}

// TestBinaryLeavesOutTheManPageWriter: the man page writer, and the
// markdown renderer that cobra/doc brings, are not linked into fetchctl;
// their package initialisation would run at every start.
func TestBinaryLeavesOutTheManPageWriter(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list fetchctl's packages: %v", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "github.com/spf13/cobra/doc" || strings.HasSuffix(pkg, "/internal/manpage") {
			t.Errorf("fetchctl imports %s", pkg)
		}
	}
}
