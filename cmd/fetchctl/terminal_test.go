package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// TestTerminalScreen runs fetchctl in a real pseudo-terminal (a tmux pane of
// 80 and of 40 columns) and reads the screen and its scrollback: the bar
// never shares a line with a record or a -v line, no frame is left behind,
// and the summary starts on a line of its own, after a Ctrl-C too.
func TestTerminalScreen(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tmux is missing (apt-get install tmux)")
		}
		t.Skip("tmux is missing: the pseudo-terminal test needs it (apt-get install tmux)")
	}
	if _, err := exec.LookPath("fetchctl"); err != nil {
		t.Fatalf("fetchctl not in PATH: %v", err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Latency, so that the bar draws several frames.
		d, _ := time.ParseDuration(r.URL.Query().Get("latency"))
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
		if strings.HasPrefix(r.URL.Path, "/missing") {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	writeList := func(name string, n int, latency string) {
		var b strings.Builder
		for i := 0; i < n; i++ {
			path := "/ok"
			if i%10 == 3 {
				path = "/missing"
			}
			fmt.Fprintf(&b, "%s%s/%d?latency=%s\n", srv.URL, path, i, latency)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeList("few.txt", 40, "1ms")
	writeList("urls.txt", 400, "10ms")
	writeList("slow.txt", 200, "300ms")

	runs := 0
	run := func(t *testing.T, width int, command string, interrupt bool) []string {
		t.Helper()
		// A server of its own for each run: one that is shutting down does
		// not take the next session.
		runs++
		sock := filepath.Join(dir, fmt.Sprintf("tmux-%d.sock", runs))
		tm := func(args ...string) string {
			cmd := exec.Command(tmux, append([]string{"-S", sock, "-f", "/dev/null"}, args...)...)
			cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "CI=", "TERM=xterm")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("tmux %v: %v: %s", args, err, out)
			}
			return string(out)
		}
		// The shell outlives a Ctrl-C (a trap, not an ignored signal, which
		// fetchctl would inherit) to print the exit code and keep the pane.
		shell := fmt.Sprintf("trap 'true' INT; cd %s && unset CI && %s; echo EXIT=$?; exec cat", dir, command)
		tm("new-session", "-d", "-x", fmt.Sprint(width), "-y", "30", "-s", "t", shell)
		t.Cleanup(func() { exec.Command(tmux, "-S", sock, "kill-server").Run() })
		screen := func() string { return tm("capture-pane", "-p", "-t", "t", "-S", "-3000") }
		wait := func(what string, shows func(string) bool) string {
			deadline := time.Now().Add(30 * time.Second)
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				s := screen()
				if shows(s) {
					return s
				}
				if time.Now().After(deadline) {
					t.Fatalf("the screen never showed %s:\n%s", what, s)
				}
				<-tick.C
			}
		}
		if interrupt {
			// A frame that has counted something: it adds up and fits.
			s := wait("a frame counting a URL", func(s string) bool {
				for _, l := range strings.Split(s, "\n") {
					if m := frameRE.FindStringSubmatch(l); m != nil && m[3] != "0" {
						return true
					}
				}
				return false
			})
			for _, l := range strings.Split(s, "\n") {
				m := frameRE.FindStringSubmatch(l)
				if m == nil {
					continue
				}
				ok, _ := strconv.Atoi(m[1])
				failed, _ := strconv.Atoi(m[2])
				done, _ := strconv.Atoi(m[3])
				if ok+failed != done {
					t.Errorf("frame %q: ok %d + failed %d is not %d", l, ok, failed, done)
				}
				if n := utf8.RuneCountInString(strings.TrimRight(l, " ")); n >= width {
					t.Errorf("frame %q is %d columns in a %d-column pane", l, n, width)
				}
			}
			tm("send-keys", "-t", "t", "C-c")
		}
		s := wait("the exit code", func(s string) bool { return strings.Contains(s, "EXIT=") })
		tm("kill-server")
		var lines []string
		for _, l := range strings.Split(s, "\n") {
			if l = strings.TrimRight(l, " "); l != "" {
				lines = append(lines, l)
			}
		}
		return lines
	}
	for _, width := range []int{80, 40} {
		t.Run(fmt.Sprintf("%dcols", width), func(t *testing.T) {
			t.Run("records on the terminal", func(t *testing.T) {
				lines := run(t, width, "fetchctl run few.txt", false)
				assertScreen(t, lines, "EXIT=0")
				if !strings.Contains(strings.Join(lines, ""), `{"url":`) {
					t.Errorf("no record on the screen:\n%s", strings.Join(lines, "\n"))
				}
			})
			t.Run("bar and -v lines", func(t *testing.T) {
				lines := run(t, width, "fetchctl run -v --overwrite -o out.ndjson urls.txt", false)
				assertScreen(t, lines, "EXIT=0")
				fails := 0
				for _, l := range lines {
					if strings.Contains(l, "fail ") {
						fails++
						if !strings.HasPrefix(l, "fetchctl: fail ") {
							t.Errorf("a -v line shares its line: %q", l)
						}
					}
				}
				if fails == 0 {
					t.Error("no -v line on the screen")
				}
			})
			t.Run("interrupted", func(t *testing.T) {
				// --progress auto: stdout is the terminal, but the records
				// go to a file, so the bar shows.
				lines := run(t, width, "fetchctl run --overwrite --limit 2 -o slow.ndjson slow.txt", true)
				assertScreen(t, lines, "EXIT=130")
				for _, l := range lines {
					if i := strings.Index(l, "^C"); i >= 0 && strings.TrimSpace(l[i+2:]) != "" {
						t.Errorf("the echoed ^C shares a line: %q", l)
					}
				}
			})
		})
	}
}

// frameRE matches a frame of the bar: its counts and its done count.
var frameRE = regexp.MustCompile(`ok (\d+) failed (\d+) · (\d+)`)

// assertScreen checks what every run must leave: no frame of the bar, a
// summary whose last line starts at the first column, and the exit code.
func assertScreen(t *testing.T, lines []string, exit string) {
	t.Helper()
	text := strings.Join(lines, "\n")
	for _, l := range lines {
		if strings.Contains(l, " · ") || strings.Contains(l, "█") || strings.Contains(l, "░") {
			t.Errorf("a frame of the bar is left on the screen: %q\n%s", l, text)
		}
	}
	found := false
	for _, l := range lines {
		if strings.HasPrefix(l, "fetchctl: ") && strings.Contains(l, " ok (") {
			found = true
		}
	}
	if lines[len(lines)-1] != exit {
		t.Errorf("last line %q, want %q\n%s", lines[len(lines)-1], exit, text)
	}
	if !found {
		t.Errorf("no summary line at the start of a line:\n%s", text)
	}
}
