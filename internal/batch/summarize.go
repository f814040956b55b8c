package batch

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/settings"
)

// SummarizeSettings are the settings summarize uses, by flag name: it
// resolves them as run does, from the same config file.
var SummarizeSettings = []string{"summary", "overwrite", "min-success", "quiet"}

// SummarizeConfig is what summarize needs, resolved and validated.
type SummarizeConfig struct {
	// Files are the result files, in order; "-" is stdin.
	Files []string
	// JSON prints the summary as JSON on Stdout.
	JSON       bool
	SummaryOut string
	// Overwrite lets SummaryOut replace a file that holds something
	// other than a summary.
	Overwrite  bool
	MinSuccess float64
	Quiet      bool
	// configFile is the config file the settings came from, "" for none.
	configFile string
}

// SummarizeFromSettings checks the settings of [SummarizeSettings] as
// [FromSettings] checks them for a run. Its errors are *settings.Error
// values.
func SummarizeFromSettings(r *settings.Settings) (*SummarizeConfig, error) {
	if m := r.MinSuccess; m < 0 || m > 1 {
		return nil, r.Errorf("min-success", "must be a ratio from 0 to 1, got %s", decimal(m))
	}
	return &SummarizeConfig{SummaryOut: r.Summary, Overwrite: r.Overwrite, MinSuccess: r.MinSuccess, Quiet: r.Quiet, configFile: r.ConfigFile}, nil
}

// Summarize reads the result files as one run and reports their summary:
// the text on Stderr (unless Quiet), the JSON on Stdout (JSON) and to
// SummaryOut. Every file is opened, and the outputs checked, before one
// is read. Its error is a *SetupError for a file that cannot be read or
// holds a line that is no record, a *BelowMinError under MinSuccess.
func Summarize(cfg *SummarizeConfig, env Env) error {
	// Every file is opened first, so that a missing one is an error before
	// anything is read; stdin ("-") is read once at most.
	files := make([]*os.File, len(cfg.Files))
	readers := make([]io.Reader, len(cfg.Files))
	defer func() {
		for i, f := range files {
			if f != nil && cfg.Files[i] != "-" {
				f.Close()
			}
		}
	}()
	stdinUsed := false
	for i, name := range cfg.Files {
		if name == "-" {
			if stdinUsed {
				return setupErrorf("stdin (-) is named more than once")
			}
			stdinUsed = true
			readers[i] = env.Stdin
			files[i], _ = env.Stdin.(*os.File)
			continue
		}
		f, err := os.Open(name)
		if err != nil {
			return setupErrorf("summarize: %s: %v", name, settings.PathError(err))
		}
		files[i], readers[i] = f, f
	}
	if err := CheckSummarize(cfg.SummaryOut, cfg.Files, files); err != nil {
		return err
	}
	if out, ok := env.Stdout.(*os.File); ok && (cfg.JSON || cfg.SummaryOut == "-") {
		// The JSON would be written into the records being read, stdin's
		// file too.
		if ofi, err := out.Stat(); err == nil && ofi.Mode().IsRegular() {
			for i, f := range files {
				if f == nil {
					continue
				}
				if fi, err := f.Stat(); err == nil && os.SameFile(fi, ofi) {
					return setupErrorf("stdout is the results file %s: the summary would land in its records; give --summary FILE", resultsName(cfg.Files[i]))
				}
			}
		}
	}
	if cfg.SummaryOut != "" && cfg.SummaryOut != "-" {
		if cfg.configFile != "" {
			if err := isRead("--summary", cfg.SummaryOut, []readFile{{"--config " + cfg.configFile, cfg.configFile, "settings", "--config"}}); err != nil {
				return err
			}
		}
		if err := checkSummaryFile(cfg.SummaryOut, cfg.Overwrite, false); err != nil {
			return err
		}
	}
	s := report.NewSummary()
	var first, last time.Time
	for i, r := range readers {
		_, err := report.ReadRecords(bufio.NewReaderSize(r, 256<<10), func(rec *report.Record) error {
			s.Add(rec)
			if !rec.Time.IsZero() {
				end := rec.Time.Add(time.Duration(rec.DurationMS * float64(time.Millisecond)))
				if first.IsZero() || rec.Time.Before(first) {
					first = rec.Time
				}
				if end.After(last) {
					last = end
				}
			}
			return nil
		})
		if err != nil {
			return setupErrorf("summarize: %s: %v", resultsName(cfg.Files[i]), err)
		}
	}
	res := s.Result(last.Sub(first), false)
	res.NoRecord = "the results hold no record"
	if !cfg.Quiet {
		_ = res.WriteText(env.Stderr)
	}
	if cfg.JSON || cfg.SummaryOut != "" {
		data, err := json.Marshal(res)
		if err != nil {
			return err
		}
		data = append(data, '\n')
		// --summary - is stdout, as --json is: the JSON goes there once.
		if cfg.JSON || cfg.SummaryOut == "-" {
			if _, err := env.Stdout.Write(data); err != nil {
				return err
			}
		}
		if cfg.SummaryOut != "" && cfg.SummaryOut != "-" {
			if err := writeSummaryFile(cfg.SummaryOut, data, cfg.Overwrite); err != nil {
				return fmt.Errorf("write summary: %w", err)
			}
		}
	}
	return CheckMinSuccess(res, cfg.MinSuccess)
}
