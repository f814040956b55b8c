package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/net/http/httpproxy"

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
	if cfg.Runner.Adaptive {
		cfg.Runner.OnHostLimit = summary.SetHostLimit
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

// buildRoutes makes one client per proxy, or one direct client.
func buildRoutes(cfg *Config) ([]runner.Route, error) {
	if len(cfg.Proxies) == 0 {
		c, err := transport.New(cfg.Transport)
		if err != nil {
			return nil, err
		}
		return []runner.Route{{Client: c}}, nil
	}
	clients, err := transport.NewForProxies(proxiedTransport(cfg.Transport, cfg.Runner.Limit), cfg.Proxies)
	if err != nil {
		return nil, err
	}
	routes := make([]runner.Route, len(clients))
	for i, c := range clients {
		name := transport.Redact(cfg.Proxies[i])
		routes[i] = runner.Route{
			Proxy:  name,
			Client: proxyAuthCheck{next: c, proxyFor: func(*url.URL) string { return name }},
		}
	}
	return routes, nil
}

// proxiedTransport adapts transport options to a client whose requests go
// through a proxy. Plain-http requests through an HTTP proxy share the
// connections to the proxy whatever their target, and net/http counts those
// as one host: its per-host cap must be the route's whole limit, or a
// proxy would carry only --per-host requests at once. The dispatcher still
// holds --per-host for each target.
func proxiedTransport(o transport.Options, limit int) transport.Options {
	o.PerHost = max(o.PerHost, limit)
	return o
}

// proxyAuthCheck makes a proxy's refusal of a forwarded plain-http request a
// proxy failure, as a refused CONNECT already is: a 407, or a 401 that
// carries a Proxy-Authenticate challenge. A 401 with only WWW-Authenticate
// is the target's answer (or, indistinguishably, that of a proxy that gets
// the status wrong, as tinyproxy 1.11 does) and stays a response.
type proxyAuthCheck struct {
	next runner.Doer
	// proxyFor names the proxy (redacted) that carries a request for the
	// URL, "" for none.
	proxyFor func(*url.URL) string
}

func (c proxyAuthCheck) Do(req *http.Request) (*http.Response, error) {
	resp, err := c.next.Do(req)
	if err != nil {
		return resp, err
	}
	refused := resp.StatusCode == http.StatusProxyAuthRequired ||
		resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("Proxy-Authenticate") != ""
	if !refused {
		return resp, nil
	}
	u := req.URL
	if resp.Request != nil && resp.Request.URL != nil {
		u = resp.Request.URL
	}
	name := c.proxyFor(u)
	if name == "" {
		return resp, nil
	}
	resp.Body.Close()
	return nil, &transport.ProxyError{Proxy: name, Err: fmt.Errorf("answered %s", resp.Status)}
}

// envHasProxy reports whether the environment names a proxy for http or
// https targets.
func envHasProxy(getenv func(string) string) bool {
	for _, name := range [...]string{"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"} {
		if getenv(name) != "" {
			return true
		}
	}
	return false
}

// envProxy returns which proxy, by HTTPS_PROXY, HTTP_PROXY and NO_PROXY (as
// the transport reads them), carries a request for a URL, redacted.
func envProxy(getenv func(string) string) func(*url.URL) string {
	// The lower-case name wins, as in httpproxy.FromEnvironment.
	either := func(lower, upper string) string {
		if v := getenv(lower); v != "" {
			return v
		}
		return getenv(upper)
	}
	pf := (&httpproxy.Config{
		HTTPProxy:  either("http_proxy", "HTTP_PROXY"),
		HTTPSProxy: either("https_proxy", "HTTPS_PROXY"),
		NoProxy:    either("no_proxy", "NO_PROXY"),
		CGI:        getenv("REQUEST_METHOD") != "",
	}).ProxyFunc()
	return func(u *url.URL) string {
		p, err := pf(u)
		if err != nil || p == nil {
			return ""
		}
		return transport.Redact(p)
	}
}

// settingSecrets returns the secrets that the raw settings hold, read
// loosely so that a malformed value is covered too: the password of
// --proxy and of the proxy variables, and the values of -H Authorization,
// Proxy-Authorization and Cookie, however the header line is punctuated.
func settingSecrets(r resolved, getenv func(string) string) []string {
	var out []string
	addPassword := func(raw string) {
		pw := loosePassword(raw)
		if pw == "" {
			return
		}
		out = append(out, pw)
		if un, err := url.PathUnescape(pw); err == nil && un != pw {
			out = append(out, un)
		}
	}
	addPassword(r.str("proxy"))
	for _, name := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"} {
		addPassword(getenv(name))
	}
	for _, line := range r.strings("header") {
		line = strings.TrimSpace(line)
		end := strings.IndexAny(line, ": \t=")
		if end < 0 {
			continue
		}
		if report.RedactHeader(line[:end], "x") != report.Redacted {
			continue
		}
		if v := strings.TrimLeft(line[end:], ": \t="); v != "" {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// loosePassword returns the password of a URL, or when it does not parse,
// what sits between the first ':' and the last '@' after its scheme.
func loosePassword(raw string) string {
	rest := strings.TrimSpace(raw)
	if u, err := url.Parse(rest); err == nil && strings.Contains(rest, "://") {
		pw, _ := u.User.Password()
		return pw
	}
	if i := strings.Index(rest, "://"); i >= 0 {
		rest = rest[i+3:]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	_, pw, ok := strings.Cut(rest[:at], ":")
	if !ok {
		return ""
	}
	return pw
}

func readsStdin(inputs []runner.Input) bool {
	for _, in := range inputs {
		if in.Name == "-" {
			return true
		}
	}
	return false
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

// checkOutputs refuses, before anything is touched, an -o or --summary
// that would destroy an input or earlier results: -o or --summary naming an
// input (by the file itself, so links count too), --summary naming the
// output, and -o naming a regular file that holds something, unless
// --resume or --overwrite says what to do with it. Files that are not
// regular (/dev/null, a FIFO, a terminal) are never refused.
func checkOutputs(cfg *Config, inputs []runner.Input) error {
	type named struct {
		name string
		fi   os.FileInfo
	}
	var ins []named
	for _, in := range inputs {
		f, ok := in.R.(*os.File)
		if !ok {
			continue
		}
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			name := in.Name
			if name == "-" {
				name = "stdin"
			}
			ins = append(ins, named{name, fi})
		}
	}
	regular := func(path string) os.FileInfo {
		fi, err := os.Stat(path)
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		return fi
	}
	isInput := func(flag, path string) error {
		fi := regular(path)
		if fi == nil {
			return nil
		}
		for _, in := range ins {
			if os.SameFile(fi, in.fi) {
				return usageErrorf("%s %s is the input %s: writing it would destroy the list; name another file", flag, path, in.name)
			}
		}
		return nil
	}
	if cfg.Output != "" {
		if err := isInput("-o", cfg.Output); err != nil {
			return err
		}
		outFI := regular(cfg.Output)
		if outFI != nil && outFI.Size() > 0 && !cfg.Resume && !cfg.Overwrite {
			return usageErrorf("-o %s already holds results: add --resume to go on with them, or --overwrite to start again", cfg.Output)
		}
	}
	if cfg.SummaryOut != "" {
		if err := isInput("--summary", cfg.SummaryOut); err != nil {
			return err
		}
		if cfg.Output != "" {
			sumFI, sumErr := os.Stat(cfg.SummaryOut)
			outFI, outErr := os.Stat(cfg.Output)
			same := false
			switch {
			case sumErr == nil && outErr == nil:
				same = os.SameFile(sumFI, outFI) && outFI.Mode().IsRegular()
			case errors.Is(sumErr, fs.ErrNotExist) && errors.Is(outErr, fs.ErrNotExist):
				// Neither is there yet: the same name is the same file.
				a, err1 := filepath.Abs(cfg.SummaryOut)
				b, err2 := filepath.Abs(cfg.Output)
				same = err1 == nil && err2 == nil && a == b
			}
			if same {
				return usageErrorf("--summary %s is the output -o %s: name another file", cfg.SummaryOut, cfg.Output)
			}
		}
	}
	return nil
}

// openOutput opens -o FILE. With --resume it reads the records already
// there (adding them to the summary) and checks them against the inputs
// that are regular files, which it reads once and rewinds; only then, when
// they all match, does it cut a torn last line. It returns the records to
// keep and whether every input was checked, none being a stream.
func openOutput(ctx context.Context, cfg *Config, summary *report.Summary, inputs []runner.Input) (*os.File, *keptRecords, bool, error) {
	if !cfg.Resume {
		f, err := os.Create(cfg.Output)
		if err != nil {
			return nil, nil, false, usageErrorf("output %s: %v", cfg.Output, unwrapPathErr(err))
		}
		return f, nil, false, nil
	}
	f, err := os.OpenFile(cfg.Output, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, false, usageErrorf("output %s: %v", cfg.Output, unwrapPathErr(err))
	}
	fail := func(err error) (*os.File, *keptRecords, bool, error) {
		f.Close()
		return nil, nil, false, err
	}
	kept := newKeptRecords(cfg.Output, inputs)
	stats, err := report.ReadNumbered(bufio.NewReaderSize(f, 256<<10), func(n int64, rec *report.Record) error {
		if err := kept.add(n, rec); err != nil {
			return err
		}
		summary.AddOld(rec)
		return nil
	})
	var ue *usageError
	if errors.As(err, &ue) {
		return fail(err)
	}
	if err != nil {
		return fail(usageErrorf("--resume: %s: %v", cfg.Output, err))
	}
	if err := kept.done(); err != nil {
		return fail(err)
	}
	all, err := precheck(ctx, kept, inputs)
	if err != nil {
		return fail(err)
	}
	if stats.TornBytes > 0 {
		if err := f.Truncate(stats.GoodSize); err != nil {
			return fail(fmt.Errorf("--resume: cut the torn last line of %s: %w", cfg.Output, err))
		}
	}
	if _, err := f.Seek(stats.GoodSize, io.SeekStart); err != nil {
		return fail(fmt.Errorf("--resume: %w", err))
	}
	return f, kept, all, nil
}

// precheck compares the inputs that are regular files with the kept
// records before anything is fetched, reading each once and putting it back
// where it was. A stream (stdin as a pipe) cannot be read twice: its lines
// are checked as the run reads them. It reports whether every input was
// checked here, and when so, also refuses records of lines that no input
// has.
func precheck(ctx context.Context, kept *keptRecords, inputs []runner.Input) (bool, error) {
	if kept.count == 0 {
		return true, nil
	}
	all := true
	var files []runner.Input
	var offsets []int64
	for _, in := range inputs {
		f, ok := in.R.(*os.File)
		if !ok {
			all = false
			continue
		}
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			all = false
			continue
		}
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			all = false
			continue
		}
		files = append(files, in)
		offsets = append(offsets, off)
	}
	jobs := make(chan runner.Job, 256)
	drained := make(chan struct{})
	go func() {
		for range jobs {
		}
		close(drained)
	}()
	err := runner.ReadJobs(ctx, files, runner.ReadOptions{Recorded: kept.check}, jobs)
	close(jobs)
	<-drained
	for i, in := range files {
		if _, serr := in.R.(*os.File).Seek(offsets[i], io.SeekStart); serr != nil && err == nil {
			err = usageErrorf("input %s: %v", in.Name, serr)
		}
	}
	if err == nil && all {
		err = kept.unseen()
	}
	return all, err
}
