package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fetchctl/fetchctl/internal/presets"
	"github.com/fetchctl/fetchctl/internal/settings"
)

type presetsOptions struct {
	deps *deps
	json bool
	name string
}

func newPresetsCmd(d *deps) *cobra.Command {
	opts := &presetsOptions{deps: d}
	cmd := &cobra.Command{
		Use:   "presets [NAME]",
		Short: "List the built-in and configured proxy-pool presets",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.name = args[0]
			}
			warnEnv(d)
			cfgPath, _ := c.Flags().GetString("config")
			set, err := settings.LoadPresets(cfgPath, d.getenv)
			if err != nil {
				return usageErrorf("%v", err)
			}
			return runPresets(opts, set)
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print a JSON array")
	return cmd
}

// presetJSON is one row of `presets --json`: durations as Go strings.
type presetJSON struct {
	Name      string `json:"name"`
	Limit     int    `json:"limit"`
	PerHost   int    `json:"per_host"`
	PerProxy  int    `json:"per_proxy"`
	KeepAlive string `json:"keepalive"`
	MaxIdle   int    `json:"max_idle"`
	HTTP2     bool   `json:"http2"`
	Timeout   string `json:"timeout"`
	Retries   int    `json:"retries"`
}

func runPresets(opts *presetsOptions, set presets.Set) error {
	list := []presets.Preset(set)
	if opts.name != "" {
		p, ok := set.Lookup(opts.name)
		if !ok {
			return usageErrorf("unknown preset %q: want one of %s", opts.name, strings.Join(set.Names(), ", "))
		}
		list = []presets.Preset{p}
	}
	out := opts.deps.io.Out
	if opts.json {
		rows := make([]presetJSON, len(list))
		for i, p := range list {
			rows[i] = presetJSON{p.Name, p.Limit, p.PerHost, p.PerProxy, p.KeepAlive.String(), p.MaxIdle, p.HTTP2, p.Timeout.String(), p.Retries}
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tLIMIT\tPER-HOST\tPER-PROXY\tKEEPALIVE\tMAX-IDLE\tHTTP2\tTIMEOUT\tRETRIES\tABOUT")
	for _, p := range list {
		h2 := "off"
		if p.HTTP2 {
			h2 = "on"
		}
		perProxy := "limit" // one proxy may take all of it
		if p.PerProxy > 0 {
			perProxy = strconv.Itoa(p.PerProxy)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%d\t%s\t%s\t%d\t%s\n", p.Name, p.Limit, p.PerHost, perProxy, p.KeepAlive, p.MaxIdle, h2, p.Timeout, p.Retries, p.Description)
	}
	return tw.Flush()
}
