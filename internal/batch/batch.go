// Package batch runs one fetchctl job end to end: it opens the inputs and
// the output, checks that nothing the user holds would be destroyed, keeps
// the records a --resume run already has, builds the routes, streams the
// lines through the runner to the record writer and the summary, and
// reports what the run did. The command parses flags and maps what Run
// returns to an exit code; it knows nothing else of a run.
//
// The flow is one way: lines -> jobs (runner.ReadJobs) -> the dispatcher ->
// records -> the writer, whose every written record reaches the summary and
// the progress display.
package batch

import (
	"fmt"
	"io"

	"github.com/fetchctl/fetchctl/internal/secret"
)

// SetupError is a problem found before anything was fetched: an input that
// cannot be read, an output that would destroy an input or earlier
// results, a results file of another run. The command exits 2.
type SetupError struct{ Err error }

func (e *SetupError) Error() string { return e.Err.Error() }
func (e *SetupError) Unwrap() error { return e.Err }

func setupErrorf(format string, args ...any) error {
	return &SetupError{fmt.Errorf(format, args...)}
}

// Display shows the run's progress and its own stderr lines; a progress
// bar is one.
type Display interface {
	// SetTotal says how many URLs the run will finish, once known.
	SetTotal(n int64)
	// Tick counts one finished URL.
	Tick(ok bool)
	// Println writes one line of the run's own (a -v line, a warning).
	Println(line string)
	// Finish stops the display and clears what it drew.
	Finish()
}

// Env is what a run takes from the process.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer // records, without -o; --dry-run's report
	Stderr io.Writer // the summary
	// NewDisplay, when set, makes the display of the run's progress and
	// lines once the run is ready to start, with the URLs it will finish
	// (-1 when not known yet); without one, lines go to Stderr.
	NewDisplay func(total int64) Display
	// Getenv reads the proxy variables.
	Getenv func(string) string
	// Secrets masks every message; the run adds what it learns.
	Secrets *secret.Set
	// StdinHint, when not "", is written to Stderr once the inputs are open
	// if one of them is stdin.
	StdinHint string
	// EchoesInterrupt: Stderr is a terminal that shows ^C where the cursor
	// is, with no display to clear it; the summary of an interrupted run
	// then starts on a new line.
	EchoesInterrupt bool
	// OpenFiles is the open-file limit, 0 when unknown.
	OpenFiles uint64
}

// plainDisplay writes lines to a stream and shows no progress.
type plainDisplay struct{ w io.Writer }

func (plainDisplay) SetTotal(int64)        {}
func (plainDisplay) Tick(bool)             {}
func (p plainDisplay) Println(line string) { io.WriteString(p.w, line+"\n") }
func (plainDisplay) Finish()               {}
