package main

import (
	"fmt"
	"io"
	"log"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/fetchctl/fetchctl/internal/progress"
	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/secret"
)

// stdLog is where the standard library's log package writes during a run.
// net/http's Transport logs through it, and what it logs can quote the
// bytes of a connection: "Unsolicited response received on idle HTTP
// channel starting with ..." shows what a server sent past the end of its
// response, which may echo the request with its Authorization and Cookie.
// Each line is masked as every message is (the run's secrets and URL
// passwords) and so is the value of every secret header it quotes, known
// or not; it is cut to the 1 KiB a server's text gets, and written as
// fetchctl's other lines are: "fetchctl: " first, no timestamp, around the
// progress bar. Under -q nothing is written. Safe for concurrent use.
type stdLog struct {
	redact *secret.Set
	quiet  bool

	mu sync.Mutex // one line at a time on w
	w  io.Writer
	// bar, once the progress bar is drawn, takes the lines instead of w.
	bar atomic.Pointer[progress.Bar]
}

// routeStdLog sends the standard logger's lines to a stdLog writing on
// w, and returns it.
func routeStdLog(w io.Writer, redact *secret.Set, quiet bool) *stdLog {
	l := &stdLog{redact: redact, quiet: quiet, w: w}
	log.SetFlags(0)
	log.SetPrefix("")
	log.SetOutput(l)
	return l
}

// around makes lines go through the progress bar.
func (l *stdLog) around(bar *progress.Bar) { l.bar.Store(bar) }

// Write takes one log line (the log package writes each with one call).
func (l *stdLog) Write(p []byte) (int, error) {
	if l.quiet {
		return len(p), nil
	}
	msg := strings.TrimRight(string(p), "\n")
	msg = secret.HeadersIn(l.redact.Mask(msg))
	line := "fetchctl: " + report.Clip(oneLine(msg))
	if bar := l.bar.Load(); bar != nil {
		bar.Println(line)
		return len(p), nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintln(l.w, line)
	return len(p), nil
}

// oneLine writes the control characters of s (a line break, an escape
// sequence a server sent) as Go escapes, so that s stays one line and
// cannot drive the terminal.
func oneLine(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isControl(r) {
			fmt.Fprintf(&b, `\x%02x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isControl(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }
