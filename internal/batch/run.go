package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/routes"
	"github.com/fetchctl/fetchctl/internal/runner"
	"github.com/fetchctl/fetchctl/internal/settings"
)

// Outcome is what a run did.
type Outcome struct {
	Result report.Result
	// Interrupted: the context was cancelled (a signal) before the end.
	Interrupted bool
}

// BelowMinError is a finished run whose success ratio is under
// --min-success, or one with no record to judge.
type BelowMinError struct{ Msg string }

func (e *BelowMinError) Error() string { return e.Msg }

// prepared is a run's inputs and routes, ready to go.
type prepared struct {
	inputs      []runner.Input
	closeInputs func()
	plan        *routes.Plan
}

// prepare opens the inputs, checks the outputs and builds the routes,
// lowering --limit to fit the open-file limit; nothing is written yet.
func prepare(ctx context.Context, cfg *Config, env Env) (*prepared, error) {
	s := cfg.settings
	env.Secrets.Add(s.Secrets(env.Getenv)...)
	env.Secrets.Add(cfg.Runner.Secrets...)
	cfg.Runner.Secrets = env.Secrets.List()
	inputs, closeInputs, err := openInputs(ctx, cfg.Inputs, env.Stdin)
	if err != nil {
		return nil, err
	}
	p := &prepared{inputs: inputs, closeInputs: closeInputs}
	if err := checkOutputs(cfg, inputs, env.Stdout); err != nil {
		closeInputs()
		return nil, err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(env.Stderr, "fetchctl: warning: %s\n", w)
	}
	if readsStdin(inputs) && env.StdinHint != "" {
		fmt.Fprintln(env.Stderr, env.StdinHint)
	}
	plan, err := routes.Build(routes.Options{
		Proxies:    cfg.Proxies,
		Transport:  cfg.Transport,
		Limit:      cfg.Runner.Limit,
		PerProxy:   cfg.Runner.PerProxy,
		Getenv:     env.Getenv,
		OpenFiles:  env.OpenFiles,
		Session:    cfg.Session,
		SessionTTL: cfg.SessionTTL,
	})
	if err != nil {
		closeInputs()
		return nil, setupErrorf("%v", err)
	}
	if plan.Notice != "" {
		fmt.Fprintf(env.Stderr, "fetchctl: %s\n", plan.Notice)
	}
	if plan.Limit != cfg.Runner.Limit {
		s.Lowered("limit", s.Limit)
		s.Limit = plan.Limit
		cfg.Runner.Limit = plan.Limit
	}
	if plan.MaxIdle != cfg.Transport.MaxIdle {
		s.Lowered("max-idle", s.MaxIdle)
		s.MaxIdle = plan.MaxIdle
		cfg.Transport.MaxIdle = plan.MaxIdle
	}
	// Only a --per-host the user set is theirs to lower: a preset's own,
	// above a --limit they lowered, is no mistake.
	if src := s.Source("per-host"); cfg.Runner.PerHost > cfg.Runner.Limit &&
		(src == settings.FromFlag || src == settings.FromEnv || src == settings.FromConfig) {
		requests := "requests"
		if cfg.Runner.Limit == 1 {
			requests = "request"
		}
		fmt.Fprintf(env.Stderr, "fetchctl: warning: --per-host %d is above --limit %d: no host gets more than %d %s at once\n",
			cfg.Runner.PerHost, cfg.Runner.Limit, cfg.Runner.Limit, requests)
	}
	env.Secrets.Add(plan.Secrets...)
	cfg.Runner.Secrets = env.Secrets.List()
	cfg.Runner.Routes = plan.Routes
	cfg.Runner.Settle = plan.Settle
	cfg.Runner.PerProxy = plan.PerRoute
	cfg.Runner.MultiInput = len(inputs) > 1
	p.plan = plan
	return p, nil
}

// writeInterval is the longest a finished record waits in the writer's
// buffer, besides the wait for a slow reader.
const writeInterval = 50 * time.Millisecond

// Run fetches every URL of the inputs and writes a record for each, then
// the summary. It returns what the run did; its error is a *SetupError
// when nothing was fetched, a *BelowMinError when the run finished under
// --min-success, or why the run stopped.
func Run(ctx context.Context, cfg *Config, env Env) (*Outcome, error) {
	p, err := prepare(ctx, cfg, env)
	if err != nil {
		return nil, err
	}
	defer p.closeInputs()
	if dir := cfg.Runner.SaveDir; dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			if fi, serr := os.Stat(dir); serr == nil && !fi.IsDir() {
				return nil, setupErrorf("--save-bodies %s is a file, not a folder", shownPath(dir))
			}
			return nil, setupErrorf("--save-bodies: cannot create the folder %s: %v", shownPath(dir), settings.PathError(err))
		}
	}
	summary := report.NewSummary()
	var skip *keptRecords
	allChecked := true
	out := env.Stdout
	if cfg.Output != "" {
		f, kept, all, err := openOutput(ctx, cfg, summary, p.inputs)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		out = f
		skip, allChecked = kept, all
	}
	if skip != nil {
		skip.numberBodies(p.inputs)
	}
	runner.NumberBodies(p.inputs)
	if dir := cfg.Runner.SaveDir; dir != "" {
		// With --resume or --overwrite, the run goes on from an earlier
		// one, which may have been killed while saving a body: its
		// temporary files go.
		sd, err := runner.OpenSaveDir(dir, cfg.Resume || cfg.Overwrite)
		if err != nil {
			return nil, setupErrorf("--save-bodies %s: %v", shownPath(dir), settings.PathError(err))
		}
		defer sd.Close()
	}
	var display Display = plainDisplay{env.Stderr}
	if env.NewDisplay != nil {
		if cfg.Shard.N > 1 {
			// A shard's count parses every line: not worth a wait.
			display = env.NewDisplay(-1)
			go func() { display.SetTotal(countTotal(ctx, cfg, p.inputs, skip)) }()
		} else {
			display = env.NewDisplay(countTotal(ctx, cfg, p.inputs, skip))
		}
	}

	// A record goes out at once when the output was idle for
	// writeInterval, else with the others of that interval: a slow run's
	// reader sees each record as its URL finishes, a busy run's output
	// still takes one write per batch.
	writer := report.NewWriter(out, writeInterval)
	// A write that fails in the writer's background flush stops the run at
	// once, as one that fails in emit does: fetching on would only make
	// records that cannot be written.
	runCtx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	writer.OnError(writeFailed(dieOfSIGPIPE, stopRun))
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
	if cfg.Verbose {
		cfg.Runner.Logf = func(format string, args ...any) {
			display.Println("fetchctl: " + env.Secrets.Mask(fmt.Sprintf(format, args...)))
		}
	}

	// What a reader of the output that goes away would lose: see
	// watchReader below.
	deliver := &delivery{die: dieOfSIGPIPE}
	jobs := make(chan runner.Job, 1024)
	readCtx, stopReading := context.WithCancel(runCtx)
	defer stopReading()
	readErr := make(chan error, 1)
	go func() {
		defer close(jobs)
		ro := runner.ReadOptions{Shard: cfg.Shard, Sending: deliver.take}
		if skip != nil && skip.count > 0 {
			ro.Recorded = skip.check
		}
		err := runner.ReadJobs(readCtx, p.inputs, ro, jobs)
		if err == nil && ro.Recorded != nil && !allChecked {
			// A stream was checked only now, as it was read.
			err = skip.unseen()
		}
		readErr <- err
	}()

	start := time.Now()
	emit := func(rec *report.Record) (err error) {
		// emit runs on the runner's goroutine, out of reach of the
		// command's recover: a panic here ends the run like a write error,
		// and its report is masked like every message.
		defer func() {
			if v := recover(); v != nil {
				err = fmt.Errorf("internal error: %v\n%s", v, debug.Stack())
			}
		}()
		if err := countErr.Load(); err != nil {
			return *err
		}
		deliver.hand()
		if err := writer.Write(rec); err != nil {
			return err
		}
		display.Tick(rec.OK)
		return nil
	}
	// Attempts of URLs the run leaves without a record (it stopped or was
	// interrupted) cost bytes through proxies all the same: the summary
	// counts them once the writer is done with it.
	type lostAttempt struct {
		a     report.Attempt
		retry bool
	}
	var lost []lostAttempt
	cfg.Runner.Unrecorded = func(a report.Attempt, retry bool) { lost = append(lost, lostAttempt{a, retry}) }
	// A reader of stdout, or of an -o FIFO, that goes away while records
	// are still to be written ends the run at once, as a write to the
	// closed pipe would (the process dies of SIGPIPE), not when the next
	// record is written. Once it has every record so far, it lost nothing:
	// the run ends by itself, or at the next line it reads.
	stopWatch := func() {}
	if f, ok := out.(*os.File); ok {
		stopWatch = watchReader(f, deliver.readerGone)
	}
	defer stopWatch()
	runErr := runner.Run(runCtx, cfg.Runner, jobs, emit)
	// Every URL of the input has its record when the reader had sent its
	// last job (the channel is closed and empty) and each job sent got its
	// record; a reader still at work may have more, and counts as having
	// them.
	inputDone := false
	select {
	case _, more := <-jobs:
		inputDone = !more
	default:
	}
	stopReading()
	allHanded := deliver.runEnded()
	if errors.Is(runErr, context.Canceled) && ctx.Err() == nil {
		// Stopped by the writer's failure, not by a signal.
		runErr = context.Cause(runCtx)
	}
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
	stopWatch()
	for _, l := range lost {
		summary.AddUnrecorded(l.a, l.retry)
	}
	display.Finish()
	o := &Outcome{Interrupted: ctx.Err() != nil}
	if o.Interrupted && env.EchoesInterrupt && !cfg.Quiet {
		// The terminal echoed ^C where the cursor was; the summary starts
		// on a line of its own.
		fmt.Fprintln(env.Stderr)
	}
	o.Result = summary.Result(time.Since(start), o.Interrupted)
	o.Result.Proxied = p.plan.Proxies > 0
	if cfg.Shard.N > 0 {
		// The list may hold URLs that all fell in other shards.
		o.Result.NoRecord = "this shard got no URL of the list"
	}
	if runErr == nil && flushErr != nil {
		runErr = flushErr
	}
	if err := countErr.Load(); runErr == nil && err != nil {
		runErr = *err
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		// A run that could not go on (output lost, every proxy down) still
		// reports what it did, and says why it stopped, in one line: an
		// internal error's stack goes to stderr only.
		reason, _, _ := strings.Cut(runErr.Error(), "\n")
		o.Result.MarkStopped(env.Secrets.Mask(reason))
		// Only the runner's own stops can leave no URL behind: a record
		// handed to a writer that failed may not be written.
		var be *runner.BudgetError
		ownStop := errors.Is(runErr, runner.ErrAllProxiesDown) || errors.As(runErr, &be)
		o.Result.AllRecorded = ownStop && inputDone && allHanded && flushErr == nil
		_ = writeSummaries(cfg, env, o.Result)
		return o, fmt.Errorf("run stopped: %w", runErr)
	}
	if err := writeSummaries(cfg, env, o.Result); err != nil {
		return o, err
	}
	if o.Interrupted {
		return o, nil
	}
	return o, CheckMinSuccess(o.Result, cfg.MinSuccess)
}

// writeFailed is what a run does when a write of its records fails: when
// the reader of a pipe or FIFO went away it dies, as a write to stdout's
// closed pipe ends the process, and otherwise it stops with err.
func writeFailed(die func(), stop context.CancelCauseFunc) func(error) {
	return func(err error) {
		if errors.Is(err, syscall.EPIPE) {
			die()
		}
		stop(err)
	}
}

// countTotal returns how many URLs the run will finish, by the reader's
// own rule, when the inputs are files that can be read twice; else -1.
func countTotal(ctx context.Context, cfg *Config, inputs []runner.Input, skip *keptRecords) int64 {
	names := make([]string, len(inputs))
	for i, in := range inputs {
		names[i] = in.Name
	}
	n := runner.CountJobs(ctx, names, cfg.Shard)
	if n >= 0 && skip != nil {
		n -= skip.count
	}
	return n
}

func writeSummaries(cfg *Config, env Env, res report.Result) error {
	if !cfg.Quiet {
		_ = res.WriteText(env.Stderr)
	}
	if cfg.SummaryOut == "" {
		return nil
	}
	data, err := json.Marshal(res)
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if cfg.SummaryOut == "-" {
		// The records went to -o FILE: stdout is the summary's alone.
		if _, err := env.Stdout.Write(data); err != nil {
			return fmt.Errorf("write summary: %w", err)
		}
		return nil
	}
	if err := writeSummaryFile(cfg.SummaryOut, data, cfg.Overwrite); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return nil
}

// checkMinSuccess returns a *BelowMinError when res is under min.
func CheckMinSuccess(res report.Result, min float64) error {
	if min <= 0 {
		return nil
	}
	if res.Total == 0 {
		return &BelowMinError{fmt.Sprintf("no record: --min-success %s needs at least one", decimal(min))}
	}
	if res.SuccessRatio < min {
		return &BelowMinError{fmt.Sprintf("success ratio %s is below --min-success %s", ratioBelow(res.SuccessRatio, min), decimal(min))}
	}
	return nil
}

// decimal writes v as a user writes a ratio: plain decimals, as few as
// read back as v, never an exponent (0.0000001, not 1e-07).
func decimal(v float64) string {
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// ratioBelow formats ratio, which is below min, with 4 decimals, or with
// as many more as it takes to read below min as [decimal] writes it: 2/3
// under 0.6667 is 0.66667, not 0.6667; 0.99999 under 1 is not 1.0000.
func ratioBelow(ratio, min float64) string {
	for prec := 4; ; prec++ {
		s := strconv.FormatFloat(ratio, 'f', prec, 64)
		if v, err := strconv.ParseFloat(s, 64); err == nil && v < min || prec >= 20 {
			return s
		}
	}
}
