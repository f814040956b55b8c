package main

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/fetchctl/fetchctl/internal/runner"
)

type inputStats struct {
	URLs    int64 `json:"urls"`
	Invalid int64 `json:"invalid"`
	Hosts   int   `json:"hosts"`
}

// dryRun validates the input and prints the effective settings with their
// sources (indented when stdout is a terminal) and the config file read; it
// fetches nothing and writes no file.
func dryRun(ctx context.Context, d *deps, r resolved, cfgFile string, cfg *Config, inputs []runner.Input) error {
	if _, err := buildRoutes(cfg); err != nil {
		return usageErrorf("%v", err)
	}
	jobs := make(chan runner.Job, 256)
	errc := make(chan error, 1)
	go func() {
		defer close(jobs)
		errc <- runner.ReadJobs(ctx, inputs, runner.ReadOptions{Shard: cfg.Shard}, jobs)
	}()
	var st inputStats
	hosts := map[string]struct{}{}
	for j := range jobs {
		if j.Err != nil {
			st.Invalid++
			continue
		}
		st.URLs++
		hosts[j.Host()] = struct{}{}
	}
	if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
		return usageErrorf("%v", err)
	}
	st.Hosts = len(hosts)
	enc := json.NewEncoder(d.io.Out)
	enc.SetEscapeHTML(false)
	if d.io.IsStdoutTTY() {
		enc.SetIndent("", "  ")
	}
	var file *string // null: no config file was read
	if cfgFile != "" {
		file = &cfgFile
	}
	return enc.Encode(struct {
		Settings   map[string]value `json:"settings"`
		Input      inputStats       `json:"input"`
		ConfigFile *string          `json:"config_file"`
	}{settingsJSON(r, runSettings()), st, file})
}
