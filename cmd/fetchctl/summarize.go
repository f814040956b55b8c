package main

import (
	"github.com/spf13/cobra"

	"github.com/fetchctl/fetchctl/internal/batch"
	"github.com/fetchctl/fetchctl/internal/settings"
)

func newSummarizeCmd(d *deps) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "summarize FILE...",
		Short: "Summarize one or more NDJSON result files (the shards of one run, say)",
		Long: `Summarize one or more NDJSON result files as one run: the human summary on
stderr, --json for the JSON on stdout, --summary FILE to write it, and the exit
codes of run, so a final CI step can gate on the merged result. - reads
records from stdin (once). Files are
streamed: memory stays flat however many records they hold. elapsed_ms spans
the earliest record's start to the latest record's end. --summary FILE
replaces an earlier summary; a file that holds anything else (records, say) is
exit 2 unless --overwrite, and so is the -o file of a run still writing it.
--summary, --overwrite, --min-success and --quiet come from flags, FETCHCTL_*
variables and the config file as run's do.`,
		Example: `  fetchctl summarize shard-0.ndjson shard-1.ndjson shard-2.ndjson shard-3.ndjson \
    --min-success 0.98 --summary summary.json`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("summarize needs at least one result file (- for stdin)")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			warnEnv(d)
			s, err := settings.Load(c.Flags(), d.getenv, version, batch.SummarizeSettings...)
			if err != nil {
				return &usageError{err}
			}
			cfg, err := batch.SummarizeFromSettings(s)
			if err != nil {
				return err
			}
			cfg.Files = args
			cfg.JSON = asJSON
			return batch.Summarize(cfg, batch.Env{Stdin: d.io.In, Stdout: d.io.Out, Stderr: d.io.ErrOut})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON on stdout")
	settings.AddFlags(cmd.Flags(), version, batch.SummarizeSettings...)
	return cmd
}
