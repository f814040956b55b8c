package main

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fetchctl/fetchctl/internal/batch"
	"github.com/fetchctl/fetchctl/internal/progress"
	"github.com/fetchctl/fetchctl/internal/routes"
	"github.com/fetchctl/fetchctl/internal/runner"
	"github.com/fetchctl/fetchctl/internal/settings"
)

// runOptions are the run command's inputs once flags are parsed.
type runOptions struct {
	files  []string
	dryRun bool
}

func newRunCmd(d *deps) *cobra.Command {
	opts := &runOptions{}
	cmd := &cobra.Command{
		Use:   "run [FILE...]",
		Short: "Fetch every URL in the files (or stdin) and write NDJSON records",
		Long: `Fetch every URL in the files, in the order given; no file, or -, reads stdin.
One NDJSON record per URL goes to stdout (or -o FILE) as each finishes; the
summary goes to stderr. Settings come from flags, FETCHCTL_* variables, the
config file and the --pool preset, in that order of precedence.`,
		Example: `  fetchctl run urls.txt --pool residential -o results.ndjson
  cat urls.txt | fetchctl run - | jq -c 'select(.ok | not)'
  fetchctl run urls.txt --min-success 0.98 --summary summary.json`,
		RunE: func(c *cobra.Command, args []string) error {
			opts.files = args
			// Until the batch starts, reads of the files the settings
			// name may block where no context reaches (see prepState).
			if !d.preparing(true) {
				return context.Canceled
			}
			defer d.preparing(false)
			warnEnv(d)
			cfgFile, cfgSource := settings.ExplicitConfigFile(c.Flags(), d.getenv)
			if err := batch.CheckStdinNotRead(args, d.io.In, [2]string{cfgSource, cfgFile}); err != nil {
				return err
			}
			s, err := settings.Load(c.Flags(), d.getenv, version)
			if err != nil {
				return &usageError{err}
			}
			if err := batch.CheckStdinNotRead(args, d.io.In, batch.StdinReads(s)...); err != nil {
				return err
			}
			return runRun(c.Context(), d, opts, s)
		},
	}
	settings.AddFlags(cmd.Flags(), version)
	cmd.Flags().BoolVar(&opts.dryRun, "dry-run", false, "fetch nothing: print the effective settings and input counts as JSON")
	registerCompletions(cmd, d)
	return cmd
}

// registerCompletions offers the values of --pool (built-in presets and the
// config file's), --progress and the --retry-on kinds to shell completion.
func registerCompletions(cmd *cobra.Command, d *deps) {
	_ = cmd.RegisterFlagCompletionFunc("pool", func(c *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		return settings.PresetNames(c.Flags(), d.getenv), cobra.ShellCompDirectiveNoFileComp
	})
	_ = cmd.RegisterFlagCompletionFunc("progress", cobra.FixedCompletions([]string{"auto", "always", "never"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("retry-on", func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		// A comma-separated list: complete its last element.
		done := ""
		if i := strings.LastIndexByte(toComplete, ','); i >= 0 {
			done = toComplete[:i+1]
		}
		var out []string
		for _, k := range append(runner.RetryKinds(), "429", "5xx") {
			out = append(out, done+k)
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	})
}

// runRun runs (or with --dry-run, checks) a batch with resolved settings
// and the command's streams, and maps what it did to an exit code.
func runRun(ctx context.Context, d *deps, opts *runOptions, s *settings.Settings) error {
	// Known before the settings are checked, so that an error about a
	// malformed one does not show the secret it holds.
	d.redact.Add(s.Secrets(d.getenv)...)
	// net/http logs through the standard logger (bytes a server sent past
	// its response, say), quoting what went over the connection.
	stdlog := routeStdLog(d.io.ErrOut, d.redact, s.Quiet)
	cfg, err := batch.FromSettings(s)
	if err != nil {
		return err
	}
	cfg.Inputs = opts.files
	env := batch.Env{
		Stdin:     d.io.In,
		Stdout:    d.io.Out,
		Stderr:    d.io.ErrOut,
		Getenv:    d.getenv,
		Secrets:   d.redact,
		OpenFiles: routes.RaiseOpenFileLimit(),
	}
	if d.io.IsStdinTTY() && d.io.IsStderrTTY() && !s.Quiet {
		// As cat users expect: a prompt-less wait would look like a hang.
		env.StdinHint = "fetchctl: reading URLs from stdin, one a line (Ctrl-D to end)"
	}
	// The batch opens its inputs and output minding ctx: a signal from
	// here on cancels it, and it stops as interrupted.
	if !d.preparing(false) {
		return context.Canceled
	}
	if opts.dryRun {
		return batch.DryRun(ctx, cfg, env, d.io.IsStdoutTTY())
	}
	if showProgress(d, s.Progress, cfg.Output == "") {
		env.NewDisplay = func(total int64) batch.Display {
			bar := progress.New(d.io.ErrOut, total, d.io.TerminalWidth)
			stdlog.around(bar)
			return bar
		}
	} else {
		env.EchoesInterrupt = d.io.IsStderrTTY()
	}
	if stop := tuneGC(d.getenv); stop != nil {
		defer stop()
	}
	o, err := batch.Run(ctx, cfg, env)
	if o != nil && o.Interrupted && err == nil {
		return &exitError{code: exitInterrupted}
	}
	return err
}

// showProgress applies --progress: auto shows the bar only when stderr is a
// terminal, the records do not go to that terminal as well (they would
// scroll the bar away: stdout is that terminal and there is no -o) and CI is
// unset.
func showProgress(d *deps, mode string, recordsToStdout bool) bool {
	switch mode {
	case "always":
		return true
	case "never":
		return false
	}
	if recordsToStdout && d.io.sameTerminal {
		return false
	}
	return d.io.IsStderrTTY() && d.getenv("CI") == ""
}
