package main

import (
	"io"
	"os"

	"golang.org/x/term"
)

// IOStreams is the command's view of its standard streams. Nothing below
// cmd/fetchctl sees a terminal.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	stdinTTY  bool
	stdoutTTY bool
	stderrTTY bool
	// sameTerminal: stdout and stderr are one terminal, so records written
	// to stdout would scroll through a progress bar on stderr.
	sameTerminal bool
	// width returns the terminal's columns; nil is 80.
	width func() int
}

// IsStdoutTTY reports whether Out is a terminal.
func (s *IOStreams) IsStdoutTTY() bool { return s.stdoutTTY }

// IsStderrTTY reports whether ErrOut is a terminal.
func (s *IOStreams) IsStderrTTY() bool { return s.stderrTTY }

// IsStdinTTY reports whether In is a terminal.
func (s *IOStreams) IsStdinTTY() bool { return s.stdinTTY }

// TerminalWidth returns the columns of the terminal on ErrOut, 80 when that
// is not known.
func (s *IOStreams) TerminalWidth() int {
	if s.width != nil {
		if w := s.width(); w > 0 {
			return w
		}
	}
	return 80
}

// SetStdoutTTY overrides terminal detection for Out (tests).
func (s *IOStreams) SetStdoutTTY(v bool) { s.stdoutTTY = v }

// SetStderrTTY overrides terminal detection for ErrOut (tests).
func (s *IOStreams) SetStderrTTY(v bool) { s.stderrTTY = v }

func systemStreams() *IOStreams {
	s := &IOStreams{
		In:        os.Stdin,
		Out:       os.Stdout,
		ErrOut:    os.Stderr,
		stdinTTY:  term.IsTerminal(int(os.Stdin.Fd())),
		stdoutTTY: term.IsTerminal(int(os.Stdout.Fd())),
		stderrTTY: term.IsTerminal(int(os.Stderr.Fd())),
		width: func() int {
			w, _, err := term.GetSize(int(os.Stderr.Fd()))
			if err != nil {
				return 0
			}
			return w
		},
	}
	if s.stdoutTTY && s.stderrTTY {
		out, err1 := os.Stdout.Stat()
		errOut, err2 := os.Stderr.Stat()
		s.sameTerminal = err1 == nil && err2 == nil && os.SameFile(out, errOut)
	}
	return s
}
