package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/fetchctl/fetchctl/internal/batch"
	"github.com/fetchctl/fetchctl/internal/secret"
	"github.com/fetchctl/fetchctl/internal/settings"
	"github.com/spf13/cobra"
)

// Exit codes, as the contract defines them.
const (
	exitOK          = 0   // finished at or above --min-success
	exitBelowMin    = 1   // finished below --min-success, or failed while running
	exitUsage       = 2   // usage, configuration or input error, before anything was fetched
	exitInterrupted = 130 // SIGINT
	exitTerminated  = 143 // SIGTERM

	// exitInternal is a panic on the command's goroutine: a bug, reported on
	// stderr with its stack and secrets masked. It is 1, "failed while
	// running", to stay within the contract's codes.
	exitInternal = 1
)

// usageError marks an error found before anything was fetched: exit 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// exitError carries an exit code without a message of its own (the command
// has already reported what happened, e.g. in the summary).
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// deps are what commands take from the process: streams and environment.
type deps struct {
	io     *IOStreams
	getenv func(string) string
	// environ lists the environment, to warn of FETCHCTL_* variables
	// that are no setting; nil checks none.
	environ func() []string
	// signal is set to the signal that cancelled the context, if any.
	signal *atomic.Value
	// started is set once a command's own code runs: an error before it
	// (bad flag, bad argument count, unknown command) is a usage error.
	started bool
	// redact masks secrets in every message written outside the records.
	redact *secret.Set
	// prep says whether the run is still being prepared; see preparing.
	prep *prepState
}

// prepState is what a signal needs to know while the run command reads its
// settings and the files they name. Those reads (a FIFO no one writes to,
// /dev/stdin from a terminal) block where no context reaches them, so a
// signal then ends the process itself rather than cancel a context that
// nothing checks yet.
type prepState struct {
	mu        sync.Mutex
	preparing bool
	// exit ends the process with a code; nil (in-process tests) leaves a
	// signal to cancel the context alone.
	exit func(int)
}

// preparing marks the start (true) and end (false) of the run command's
// preparation. It reports false when a signal came before: the command
// then stops as interrupted.
func (d *deps) preparing(on bool) bool {
	p := d.prep
	if p == nil || d.signal == nil {
		return true // deps of a test: no signal handling
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.preparing = on
	_, signalled := d.signal.Load().(os.Signal)
	return !signalled
}

// interrupted ends the process at once, as a signal s says, when it came
// while the run was being prepared; else it returns for the context to be
// cancelled. Nothing was fetched or written yet.
func (d *deps) interrupted(s os.Signal) {
	p := d.prep
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.preparing || p.exit == nil {
		return
	}
	fmt.Fprintf(d.io.ErrOut, "fetchctl: interrupted (%s) before the run started; nothing was fetched\n", signalName(s))
	p.exit(signalExit(s))
}

// signalExit is the exit code of a run that signal s stopped.
func signalExit(s os.Signal) int {
	if s == syscall.SIGTERM {
		return exitTerminated
	}
	return exitInterrupted
}

// signalName is how messages name a signal: SIGINT, SIGTERM.
func signalName(s os.Signal) string {
	if s == syscall.SIGTERM {
		return "SIGTERM"
	}
	return "SIGINT"
}

// Main runs fetchctl with the process's arguments and streams and returns the
// exit code.
func Main() int {
	return mainEnv(os.Args[1:], systemStreams(), os.Getenv, os.Environ, os.Exit)
}

// mainWith runs fetchctl with the variables getenv returns, and no check
// of the environment's FETCHCTL_* names.
func mainWith(args []string, streams *IOStreams, getenv func(string) string) int {
	return mainEnv(args, streams, getenv, nil, nil)
}

func mainEnv(args []string, streams *IOStreams, getenv func(string) string, environ func() []string, exit func(int)) (code int) {
	red := &secret.Set{}
	defer func() {
		// A panic is a bug; its report must not leak what the settings
		// hold, so it goes through the same redaction as every message.
		if v := recover(); v != nil {
			fmt.Fprintf(streams.ErrOut, "fetchctl: internal error: %s\n%s", red.Mask(fmt.Sprint(v)), red.Mask(string(debug.Stack())))
			code = exitInternal
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got atomic.Value
	d := &deps{io: streams, getenv: getenv, environ: environ, signal: &got, redact: red, prep: &prepState{exit: exit}}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case s := <-sigs:
			got.Store(s)
			// The next signal gets the default action: a second Ctrl-C
			// kills at once.
			signal.Stop(sigs)
			d.interrupted(s)
			cancel()
		case <-done:
			signal.Stop(sigs)
		}
	}()

	root := newRootCmd(d)
	root.SetArgs(args)
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	err := root.ExecuteContext(ctx)
	return exitCode(err, d, streams)
}

func exitCode(err error, d *deps, streams *IOStreams) int {
	if s, ok := d.signal.Load().(os.Signal); ok {
		if err != nil && !errors.Is(err, context.Canceled) {
			var ee *exitError
			if !errors.As(err, &ee) {
				fmt.Fprintf(streams.ErrOut, "fetchctl: %s\n", d.redact.Mask(err.Error()))
			}
		}
		return signalExit(s)
	}
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	msg := strings.TrimSpace(err.Error())
	fmt.Fprintf(streams.ErrOut, "fetchctl: %s\n", d.redact.Mask(msg))
	var ue *usageError
	var se *settings.Error
	var be *batch.SetupError
	if errors.As(err, &ue) || errors.As(err, &se) || errors.As(err, &be) || !d.started {
		return exitUsage
	}
	return exitBelowMin
}

// warnEnv writes a warning line for each FETCHCTL_* variable that is no
// setting, -q or not, as other warnings about settings are: a misspelt
// variable that is silently ignored looks like a setting that does not
// work.
func warnEnv(d *deps) {
	if d.environ == nil {
		return
	}
	for _, w := range settings.UnknownEnv(d.environ()) {
		fmt.Fprintf(d.io.ErrOut, "fetchctl: warning: %s\n", w)
	}
}

// extraCommands are added to the root by builds with extra tags (mangen).
var extraCommands []func(*deps) *cobra.Command

func newRootCmd(d *deps) *cobra.Command {
	root := &cobra.Command{
		Use:   "fetchctl",
		Short: "Fetch long URL lists through proxy pools, one NDJSON record per URL",
		Long: `fetchctl fetches every URL of a list through a bounded worker pool with per-host
limits, using a proxy-pool preset or explicit settings, and writes one NDJSON record
per URL to stdout plus a success-ratio summary to stderr.

Exit codes:
  0    the run finished at or above --min-success (default 0)
  1    below --min-success, no record with --min-success above 0, or the run
       stopped on a failure of its own (output or body not writable, every
       proxy failing, --budget spent, an internal error); the summary then
       says "stopped"
  2    usage, configuration or input-file error, before anything was fetched
  130  interrupted by SIGINT (Ctrl-C); 143 by SIGTERM`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.SetVersionTemplate("fetchctl {{.Version}}\n")
	// No -v shorthand for --version: -v is run's --verbose.
	root.Flags().Bool("version", false, "print the version")
	root.PersistentFlags().String("config", "", "config file (default ./fetchctl.yaml, then $XDG_CONFIG_HOME/fetchctl/config.yaml)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErrorf("%v (see '%s --help')", err, c.CommandPath())
	})
	root.AddCommand(newRunCmd(d), newPresetsCmd(d), newSummarizeCmd(d), newVersionCmd(d))
	for _, newCmd := range extraCommands {
		root.AddCommand(newCmd(d))
	}
	guardCompletion(root)
	// Unknown commands and bad arguments are usage errors too.
	root.Args = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageErrorf("unknown command %q (see 'fetchctl --help')", args[0])
		}
		return nil
	}
	root.RunE = func(c *cobra.Command, args []string) error {
		return c.Help()
	}
	root.PersistentPreRunE = func(c *cobra.Command, args []string) error {
		d.started = true
		return nil
	}
	return root
}

// guardCompletion makes `fetchctl completion SHELL` with a shell that cobra
// writes no script for a usage error, where cobra would print the help.
func guardCompletion(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		var shells []string
		for _, sub := range c.Commands() {
			shells = append(shells, sub.Name())
		}
		supported := strings.Join(shells[:len(shells)-1], ", ") + " and " + shells[len(shells)-1]
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return c.Help()
			}
			return usageErrorf("unsupported shell %q (completion supports %s)", args[0], supported)
		}
	}
}

func newVersionCmd(d *deps) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print version, commit and Go version",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			_, err := fmt.Fprintf(d.io.Out, "fetchctl %s\ncommit %s\n%s\n", version, commit, runtime.Version())
			return err
		},
	}
}
