package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/fetchctl/fetchctl/internal/presets"
	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/runner"
	"github.com/fetchctl/fetchctl/internal/transport"
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
	return cmd
}

// settingsFor resolves the run settings of cmd with their sources.
func settingsFor(c *cobra.Command, d *deps) (resolved, presets.Set, error) {
	cfgPath, _ := c.Flags().GetString("config")
	v, _, err := loadConfig(cfgPath, d.getenv)
	if err != nil {
		return nil, nil, usageErrorf("%v", err)
	}
	extra, err := configPresets(v)
	if err != nil {
		return nil, nil, usageErrorf("%v", err)
	}
	set := presets.Merge(extra)
	r, _, err := resolve(c.Flags(), runSettings(), v, set, d.getenv)
	if err != nil {
		return nil, nil, err
	}
	return r, set, nil
}

func runRun(ctx context.Context, opts *runOptions) error {
	d := opts.deps
	r, _, err := settingsFor(opts.cmd, d)
	if err != nil {
		return err
	}
	cfg, err := buildConfig(r, d.getenv)
	if err != nil {
		return err
	}
	inputs, closeInputs, err := openInputs(opts.files, d.io.In)
	if err != nil {
		return err
	}
	defer closeInputs()
	if opts.dryRun {
		return dryRun(ctx, d, r, cfg, inputs)
	}

	if dir := cfg.Runner.SaveDir; dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return usageErrorf("--save-bodies: cannot create the folder: %v", unwrapPathErr(err))
		}
	}
	routes, err := buildRoutes(cfg)
	if err != nil {
		return usageErrorf("%v", err)
	}
	cfg.Runner.Routes = routes
	if lowered, notice := fitOpenFiles(openFileLimit(), cfg.Runner.Limit, len(routes), cfg.Transport.MaxIdle); notice != "" {
		fmt.Fprintf(d.io.ErrOut, "fetchctl: %s\n", notice)
		cfg.Runner.Limit = lowered
	}
	cfg.Runner.MultiInput = len(inputs) > 1

	summary := report.NewSummary()
	var skip *lineSet
	out := d.io.Out
	if cfg.Output != "" {
		f, kept, err := openOutput(cfg, summary)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
		skip = kept
	}
	writer := report.NewWriter(out, time.Second)

	var logMu sync.Mutex
	logf := func(format string, args ...any) {
		msg := report.RedactText(fmt.Sprintf(format, args...), cfg.Runner.Secrets...)
		logMu.Lock()
		fmt.Fprintf(d.io.ErrOut, "fetchctl: %s\n", msg)
		logMu.Unlock()
	}
	if cfg.Verbose {
		cfg.Runner.Logf = logf
	}
	if cfg.Runner.Adaptive {
		cfg.Runner.OnHostLimit = summary.SetHostLimit
	}

	bar := newProgress(d, cfg, inputs, skip)

	jobs := make(chan runner.Job, 1024)
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	readErr := make(chan error, 1)
	go func() {
		defer close(jobs)
		ro := runner.ReadOptions{Shard: cfg.Shard}
		if skip != nil {
			multi := cfg.Runner.MultiInput
			ro.Skip = func(input string, line int64) bool {
				if !multi {
					// Records of a single-input run carry no input name.
					input = ""
				}
				return skip.has(input, line)
			}
		}
		readErr <- runner.ReadJobs(readCtx, inputs, ro, jobs)
	}()

	start := time.Now()
	var ok, failed int64
	emit := func(rec *report.Record) error {
		if err := writer.Write(rec); err != nil {
			return err
		}
		summary.Add(rec)
		if rec.OK {
			ok++
		} else {
			failed++
		}
		bar.tick(ok, failed)
		return nil
	}
	runErr := runner.Run(ctx, cfg.Runner, jobs, emit)
	stopReading()
	if rerr := <-readErr; rerr != nil && !errors.Is(rerr, context.Canceled) && runErr == nil {
		runErr = rerr
	}
	flushErr := writer.Close()
	bar.finish()
	interrupted := ctx.Err() != nil
	res := summary.Result(time.Since(start), interrupted)

	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		// A run that could not go on (output lost, every proxy down) still
		// reports what it did.
		writeSummaries(d, cfg, res, logf)
		return fmt.Errorf("run stopped: %w", runErr)
	}
	if flushErr != nil {
		writeSummaries(d, cfg, res, logf)
		return flushErr
	}
	if err := writeSummaries(d, cfg, res, logf); err != nil {
		return err
	}
	if interrupted {
		return &exitError{code: exitInterrupted}
	}
	if res.SuccessRatio < cfg.MinSuccess {
		return &exitError{code: exitBelowMin}
	}
	return nil
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

// buildRoutes makes one client per proxy, or one direct client.
func buildRoutes(cfg *Config) ([]runner.Route, error) {
	if len(cfg.Proxies) == 0 {
		c, err := transport.New(cfg.Transport)
		if err != nil {
			return nil, err
		}
		return []runner.Route{{Client: c}}, nil
	}
	clients, err := transport.NewForProxies(cfg.Transport, cfg.Proxies)
	if err != nil {
		return nil, err
	}
	routes := make([]runner.Route, len(clients))
	for i, c := range clients {
		routes[i] = runner.Route{Proxy: transport.Redact(cfg.Proxies[i]), Client: c}
	}
	return routes, nil
}

// openInputs opens the named files, or stdin when there are none or for "-".
// Every file is opened before anything is fetched, so a missing one is a
// usage error.
func openInputs(files []string, stdin io.Reader) ([]runner.Input, func(), error) {
	if len(files) == 0 {
		files = []string{"-"}
	}
	var inputs []runner.Input
	var closers []io.Closer
	closeAll := func() {
		for _, c := range closers {
			c.Close()
		}
	}
	stdinUsed := false
	for _, name := range files {
		if name == "-" {
			if stdinUsed {
				closeAll()
				return nil, nil, usageErrorf("stdin (-) is named more than once")
			}
			stdinUsed = true
			inputs = append(inputs, runner.Input{Name: "-", R: stdin})
			continue
		}
		f, err := os.Open(name)
		if err != nil {
			closeAll()
			return nil, nil, usageErrorf("input %s: %v", name, unwrapPathErr(err))
		}
		if st, err := f.Stat(); err == nil && st.IsDir() {
			f.Close()
			closeAll()
			return nil, nil, usageErrorf("input %s is a directory, not a URL list", name)
		}
		closers = append(closers, f)
		inputs = append(inputs, runner.Input{Name: name, R: f})
	}
	return inputs, closeAll, nil
}

// lineSet remembers which input lines already have a record (--resume), one
// bit per line, so a million lines take about 128 KiB.
type lineSet struct {
	bits  map[string][]uint64
	count int64
}

func (s *lineSet) add(input string, line int64) {
	if line < 1 {
		return
	}
	b := s.bits[input]
	i := int(line / 64)
	if i >= len(b) {
		nb := make([]uint64, max(i+1, 2*len(b)))
		copy(nb, b)
		b = nb
		s.bits[input] = b
	}
	if b[i]&(1<<(line%64)) == 0 {
		b[i] |= 1 << (line % 64)
		s.count++
	}
}

func (s *lineSet) has(input string, line int64) bool {
	b := s.bits[input]
	i := int(line / 64)
	return i < len(b) && b[i]&(1<<(line%64)) != 0
}

// openOutput opens -o FILE. With --resume it keeps the whole records already
// there (adding them to the summary), cuts a torn last line, and returns the
// set of lines that need no fetch.
func openOutput(cfg *Config, summary *report.Summary) (*os.File, *lineSet, error) {
	if !cfg.Resume {
		f, err := os.Create(cfg.Output)
		if err != nil {
			return nil, nil, usageErrorf("output %s: %v", cfg.Output, unwrapPathErr(err))
		}
		return f, nil, nil
	}
	f, err := os.OpenFile(cfg.Output, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, usageErrorf("output %s: %v", cfg.Output, unwrapPathErr(err))
	}
	kept := &lineSet{bits: map[string][]uint64{}}
	stats, err := report.ReadRecords(bufio.NewReaderSize(f, 256<<10), func(rec *report.Record) error {
		kept.add(rec.Input, rec.Line)
		summary.AddOld(rec)
		return nil
	})
	if err != nil {
		f.Close()
		return nil, nil, usageErrorf("--resume: %s: %v", cfg.Output, err)
	}
	if stats.TornBytes > 0 {
		if err := f.Truncate(stats.GoodSize); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("--resume: cut the torn last line of %s: %w", cfg.Output, err)
		}
	}
	if _, err := f.Seek(stats.GoodSize, io.SeekStart); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("--resume: %w", err)
	}
	return f, kept, nil
}
