package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/fetchctl/fetchctl/internal/presets"
	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/runner"
)

// runOptions are the run command's inputs once flags are parsed.
type runOptions struct {
	deps   *deps
	files  []string
	dryRun bool
	cmd    *cobra.Command
}

func newRunCmd(d *deps, runF func(context.Context, *runOptions) error) *cobra.Command {
	opts := &runOptions{deps: d}
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
			opts.cmd = c
			if runF != nil {
				return runF(c.Context(), opts)
			}
			return runRun(c.Context(), opts)
		},
	}
	addFlags(cmd.Flags(), runSettings())
	cmd.Flags().BoolVar(&opts.dryRun, "dry-run", false, "fetch nothing: print the effective settings and input counts as JSON")
	registerCompletions(cmd, d)
	return cmd
}

// registerCompletions offers the values of --pool (built-in presets and the
// config file's), --progress and the --retry-on kinds to shell completion.
func registerCompletions(cmd *cobra.Command, d *deps) {
	_ = cmd.RegisterFlagCompletionFunc("pool", func(c *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		set := presets.Merge(nil)
		cfgPath, _ := c.Flags().GetString("config")
		if v, _, err := loadConfig(cfgPath, d.getenv); err == nil {
			if extra, err := configPresets(v); err == nil {
				set = presets.Merge(extra)
			}
		}
		return set.Names(), cobra.ShellCompDirectiveNoFileComp
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

// settingsFor resolves the run settings of cmd with their sources.
// settingsFor resolves the run settings of cmd with their sources, and names
// the config file it read ("" for none).
func settingsFor(c *cobra.Command, d *deps) (resolved, string, error) {
	cfgPath, _ := c.Flags().GetString("config")
	v, file, err := loadConfig(cfgPath, d.getenv)
	if err != nil {
		return nil, "", usageErrorf("%v", err)
	}
	extra, err := configPresets(v)
	if err != nil {
		return nil, "", usageErrorf("%v", err)
	}
	set := presets.Merge(extra)
	r, _, err := resolve(c.Flags(), runSettings(), v, set, d.getenv)
	if err != nil {
		return nil, "", err
	}
	return r, file, nil
}

func runRun(ctx context.Context, opts *runOptions) error {
	d := opts.deps
	r, cfgFile, err := settingsFor(opts.cmd, d)
	if err != nil {
		return err
	}
	// Known before the settings are checked, so that an error about a
	// malformed one does not show the secret it holds.
	d.redact.add(settingSecrets(r, d.getenv)...)
	cfg, err := buildConfig(r)
	if err != nil {
		return err
	}
	d.redact.add(cfg.Runner.Secrets...)
	cfg.Runner.Secrets = d.redact.known()
	inputs, closeInputs, err := openInputs(opts.files, d.io.In)
	if err != nil {
		return err
	}
	defer closeInputs()
	if err := checkOutputs(cfg, inputs); err != nil {
		return err
	}
	if readsStdin(inputs) && d.io.IsStdinTTY() && d.io.IsStderrTTY() && !cfg.Quiet {
		// As cat users expect: a prompt-less wait would look like a hang.
		fmt.Fprintln(d.io.ErrOut, "fetchctl: reading URLs from stdin, one a line (Ctrl-D to end)")
	}
	nRoutes := max(1, len(cfg.Proxies))
	lowered, idleBudget, notice := fitOpenFiles(openFileLimit(), cfg.Runner.Limit, nRoutes, cfg.Transport.MaxIdle)
	if notice != "" {
		fmt.Fprintf(d.io.ErrOut, "fetchctl: %s\n", notice)
	}
	if lowered != cfg.Runner.Limit {
		// --dry-run shows the limit the run will have.
		lim := r["limit"]
		lim.Requested = lim.V
		lim.V = lowered
		r["limit"] = lim
	}
	cfg.Runner.Limit = lowered
	cfg.Transport.InFlight = lowered
	cfg.Transport.IdleBudget = idleBudget
	if cfg.Runner.PerHost > cfg.Runner.Limit {
		fmt.Fprintf(d.io.ErrOut, "fetchctl: warning: --per-host %d is above --limit %d: no host gets more than %d requests at once\n",
			cfg.Runner.PerHost, cfg.Runner.Limit, cfg.Runner.Limit)
	}
	if opts.dryRun {
		return dryRun(ctx, d, r, cfgFile, cfg, inputs)
	}

	if dir := cfg.Runner.SaveDir; dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return usageErrorf("--save-bodies: cannot create the folder: %v", unwrapPathErr(err))
		}
	}
	if len(cfg.Proxies) == 0 && cfg.Transport.ProxyFromEnv && (d.getenv("HTTP_PROXY") != "" || d.getenv("http_proxy") != "") {
		cfg.Transport = proxiedTransport(cfg.Transport, cfg.Runner.Limit)
	}
	routes, err := buildRoutes(cfg)
	if err != nil {
		return usageErrorf("%v", err)
	}
	if len(cfg.Proxies) == 0 && cfg.Transport.ProxyFromEnv && envHasProxy(d.getenv) {
		envFor := envProxy(d.getenv)
		routes[0].Client = proxyAuthCheck{next: routes[0].Client, proxyFor: envFor}
		routes[0].ProxyFor = envFor
	}
	cfg.Runner.Routes = routes
	cfg.Runner.MultiInput = len(inputs) > 1

	summary := report.NewSummary()
	var skip *keptRecords
	allChecked := true
	out := d.io.Out
	if cfg.Output != "" {
		f, kept, all, err := openOutput(ctx, cfg, summary, inputs)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
		skip, allChecked = kept, all
	}
	writer := report.NewWriter(out, time.Second)
	// The summary counts a record once its line is written out, so that a
	// run stopped by a write error counts exactly what the output holds.
	// The writer's flushing goroutine runs this too, out of reach of every
	// recover: a panic in it ends the run as one in emit does, masked.
	var countErr atomic.Pointer[error]
	writer.OnWritten(func(rec *report.Record) {
		defer func() {
			if v := recover(); v != nil {
				err := fmt.Errorf("internal error: %v\n%s", v, debug.Stack())
				countErr.CompareAndSwap(nil, &err)
			}
		}()
		summary.Add(rec)
	})

	bar := newProgress(d, cfg, inputs, skip)
	logf := func(format string, args ...any) {
		bar.println("fetchctl: " + d.redact.text(fmt.Sprintf(format, args...)))
	}
	if cfg.Verbose {
		cfg.Runner.Logf = logf
	}

	jobs := make(chan runner.Job, 1024)
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	readErr := make(chan error, 1)
	go func() {
		defer close(jobs)
		ro := runner.ReadOptions{Shard: cfg.Shard}
		if skip != nil && skip.count > 0 {
			ro.Recorded = skip.check
		}
		err := runner.ReadJobs(readCtx, inputs, ro, jobs)
		if err == nil && ro.Recorded != nil && !allChecked {
			// A stream was checked only now, as it was read.
			err = skip.unseen()
		}
		readErr <- err
	}()

	start := time.Now()
	emit := func(rec *report.Record) (err error) {
		// emit runs on the runner's goroutine, out of reach of Main's
		// recover: a panic here ends the run like a write error, and its
		// report is masked like every message.
		defer func() {
			if v := recover(); v != nil {
				err = fmt.Errorf("internal error: %v\n%s", v, debug.Stack())
			}
		}()
		if err := countErr.Load(); err != nil {
			return *err
		}
		if err := writer.Write(rec); err != nil {
			return err
		}
		bar.tick(rec.OK)
		return nil
	}
	runErr := runner.Run(ctx, cfg.Runner, jobs, emit)
	stopReading()
	if runErr == nil && ctx.Err() == nil {
		// The run took every job, so the reader has finished and said how.
		if rerr := <-readErr; rerr != nil && !errors.Is(rerr, context.Canceled) {
			runErr = rerr
		}
	}
	// Otherwise the run was interrupted or stopped: a reader blocked in Read
	// on a stdin that its producer keeps open cannot be woken, and must not
	// hold up the shutdown. It ends with the process.
	flushErr := writer.Close()
	bar.finish()
	interrupted := ctx.Err() != nil
	if interrupted && d.io.IsStderrTTY() && bar.stop == nil && !cfg.Quiet {
		// The terminal echoed ^C where the cursor was; the summary starts
		// on a line of its own. (A bar's line, ^C included, is cleared.)
		fmt.Fprintln(d.io.ErrOut)
	}
	res := summary.Result(time.Since(start), interrupted)

	if runErr == nil && flushErr != nil {
		runErr = flushErr
	}
	if err := countErr.Load(); runErr == nil && err != nil {
		runErr = *err
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		// A run that could not go on (output lost, every proxy down) still
		// reports what it did, and says why it stopped.
		// One line: an internal error's stack goes to stderr only.
		reason, _, _ := strings.Cut(runErr.Error(), "\n")
		res.MarkStopped(d.redact.text(reason))
		writeSummaries(d, cfg, res, logf)
		return fmt.Errorf("run stopped: %w", runErr)
	}
	if err := writeSummaries(d, cfg, res, logf); err != nil {
		return err
	}
	if interrupted {
		return &exitError{code: exitInterrupted}
	}
	return checkMinSuccess(res, cfg.MinSuccess)
}

func writeSummaries(d *deps, cfg *Config, res report.Result, logf func(string, ...any)) error {
	if !cfg.Quiet {
		_ = res.WriteText(d.io.ErrOut)
	}
	if cfg.SummaryOut == "" {
		return nil
	}
	data, err := json.Marshal(res)
	if err != nil {
		return err
	}
	if err := os.WriteFile(cfg.SummaryOut, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return nil
}
