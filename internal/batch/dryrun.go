package batch

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/fetchctl/fetchctl/internal/runner"
	"github.com/fetchctl/fetchctl/internal/settings"
)

type inputStats struct {
	URLs    int64 `json:"urls"`
	Invalid int64 `json:"invalid"`
	Hosts   int   `json:"hosts"`
}

// DryRun checks the settings and the input as a run would, then prints the
// effective settings with their sources (indented when indent is set), the
// input's counts and the config file read. It fetches nothing and writes no
// file.
func DryRun(ctx context.Context, cfg *Config, env Env, indent bool) error {
	p, err := prepare(ctx, cfg, env)
	if err != nil {
		return err
	}
	defer p.closeInputs()
	jobs := make(chan runner.Job, 256)
	errc := make(chan error, 1)
	go func() {
		defer close(jobs)
		errc <- runner.ReadJobs(ctx, p.inputs, runner.ReadOptions{Shard: cfg.Shard}, jobs)
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
		return setupErrorf("%v", err)
	}
	st.Hosts = len(hosts)
	enc := json.NewEncoder(env.Stdout)
	enc.SetEscapeHTML(false)
	if indent {
		enc.SetIndent("", "  ")
	}
	var file *string // null: no config file was read
	if f := cfg.settings.ConfigFile; f != "" {
		file = &f
	}
	return enc.Encode(struct {
		Settings   map[string]settings.Value `json:"settings"`
		Input      inputStats                `json:"input"`
		ConfigFile *string                   `json:"config_file"`
	}{cfg.settings.Shown(), st, file})
}
