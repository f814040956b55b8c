package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/fetchctl/fetchctl/internal/batch"
	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/settings"
)

type summarizeOptions struct {
	deps       *deps
	files      []string
	json       bool
	summary    string
	minSuccess float64
	quiet      bool
}

func newSummarizeCmd(d *deps) *cobra.Command {
	opts := &summarizeOptions{deps: d}
	cmd := &cobra.Command{
		Use:   "summarize FILE...",
		Short: "Summarize one or more NDJSON result files (the shards of one run, say)",
		Long: `Summarize one or more NDJSON result files as one run: the human summary on
stderr, --json for the JSON on stdout, --summary FILE to write it, and the exit
codes of run, so a final CI step can gate on the merged result. Files are
streamed: memory stays flat however many records they hold. elapsed_ms spans
the earliest record's start to the latest record's end.`,
		Example: `  fetchctl summarize shard-0.ndjson shard-1.ndjson shard-2.ndjson shard-3.ndjson \
    --min-success 0.98 --summary summary.json`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("summarize needs at least one result file")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			opts.files = args
			if opts.minSuccess < 0 || opts.minSuccess > 1 {
				return usageErrorf("--min-success: must be a ratio from 0 to 1, got %g", opts.minSuccess)
			}
			return runSummarize(opts)
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print the summary as JSON on stdout")
	cmd.Flags().StringVar(&opts.summary, "summary", "", "also write the summary as JSON to this file")
	cmd.Flags().Float64Var(&opts.minSuccess, "min-success", 0, "exit 1 below this success ratio (0 to 1)")
	cmd.Flags().BoolVarP(&opts.quiet, "quiet", "q", false, "no summary on stderr")
	return cmd
}

func runSummarize(opts *summarizeOptions) error {
	// Every file is opened first, so that a missing one is a usage error.
	files := make([]*os.File, 0, len(opts.files))
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, name := range opts.files {
		f, err := os.Open(name)
		if err != nil {
			return usageErrorf("summarize: %s: %v", name, settings.PathError(err))
		}
		files = append(files, f)
	}
	if err := batch.CheckSummarize(opts.summary, opts.files, files); err != nil {
		return err
	}
	s := report.NewSummary()
	var first, last time.Time
	for i, f := range files {
		_, err := report.ReadRecords(bufio.NewReaderSize(f, 256<<10), func(rec *report.Record) error {
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
			return usageErrorf("summarize: %s: %v", opts.files[i], err)
		}
	}
	res := s.Result(last.Sub(first), false)
	res.NoRecord = "the results hold no record"
	if !opts.quiet {
		_ = res.WriteText(opts.deps.io.ErrOut)
	}
	if opts.json || opts.summary != "" {
		data, err := json.Marshal(res)
		if err != nil {
			return err
		}
		data = append(data, '\n')
		if opts.json {
			if _, err := opts.deps.io.Out.Write(data); err != nil {
				return err
			}
		}
		if opts.summary != "" {
			if err := os.WriteFile(opts.summary, data, 0o644); err != nil {
				return fmt.Errorf("write summary: %w", err)
			}
		}
	}
	return batch.CheckMinSuccess(res, opts.minSuccess)
}
