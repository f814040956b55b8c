package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/fetchctl/fetchctl/internal/routes"
	"github.com/fetchctl/fetchctl/internal/runner"
	"github.com/fetchctl/fetchctl/internal/settings"
)

// inForce is what the caps come to with the run's proxies, for --dry-run;
// its text names the cap that binds: "5 proxies × per-proxy 20 = 100,
// capped by --limit 60", "1 proxy × per-proxy 20, under --limit 30".
type inForce struct {
	Proxies  int `json:"proxies"` // 0: direct
	PerProxy int `json:"per_proxy"`
	Limit    int `json:"limit"`
	PerHost  int `json:"per_host"`  // over all proxies
	InFlight int `json:"in_flight"` // the most in flight at once
	// KeptAlive is how many proxies keep idle connections between requests.
	KeptAlive int    `json:"kept_alive"`
	Text      string `json:"text"`
	// EnvProxies are the environment's proxies the run goes through, by
	// variable, passwords masked.
	EnvProxies map[string]string `json:"env_proxies,omitempty"`
}

func newInForce(p *routes.Plan, perHost int) inForce {
	f := inForce{Proxies: p.Proxies, PerProxy: p.PerRoute, Limit: p.Limit, PerHost: min(perHost, p.Limit), InFlight: p.Limit, KeptAlive: p.KeptAlive, EnvProxies: p.EnvProxies}
	if f.Proxies == 0 {
		f.Text = fmt.Sprintf("direct, --limit %d: up to %d in flight, %s", f.Limit, f.InFlight, perHostText(f, perHost, ""))
		return f
	}
	sum := p.Proxies * p.PerRoute
	if p.EnvProxies != nil {
		// The environment's proxies are one route: each URL goes through
		// the one its scheme names, all within one per-proxy cap.
		sum = p.PerRoute
	}
	f.InFlight = min(p.Limit, sum)
	noun := "proxies"
	if f.Proxies == 1 {
		noun = "proxy"
	}
	// Name the cap that binds: the proxies' sum below --limit, --limit
	// below it, or both the same.
	var caps string
	switch {
	case p.EnvProxies != nil && f.Proxies > 1:
		caps = fmt.Sprintf("%d proxies from the environment share per-proxy %d, under --limit %d", f.Proxies, f.PerProxy, f.Limit)
		if sum >= p.Limit {
			caps = fmt.Sprintf("%d proxies from the environment share per-proxy %d, as --limit %d", f.Proxies, f.PerProxy, f.Limit)
		}
	case sum < p.Limit:
		caps = fmt.Sprintf("%d %s × per-proxy %d, under --limit %d", f.Proxies, noun, f.PerProxy, f.Limit)
	case sum > p.Limit:
		caps = fmt.Sprintf("%d %s × per-proxy %d = %d, capped by --limit %d", f.Proxies, noun, f.PerProxy, sum, f.Limit)
	default:
		caps = fmt.Sprintf("%d %s × per-proxy %d = %d, as --limit %d", f.Proxies, noun, f.PerProxy, sum, f.Limit)
	}
	f.Text = fmt.Sprintf("%s: up to %d in flight, %s", caps, f.InFlight, perHostText(f, perHost, " over all proxies"))
	if f.KeptAlive < f.Proxies {
		f.Text += fmt.Sprintf("; the first %d keep idle connections, the others open one per request", f.KeptAlive)
	}
	return f
}

// perHostText says whether --per-host holds a host below the run's
// in-flight cap, or one host may take all of it.
func perHostText(f inForce, perHost int, over string) string {
	if f.PerHost < f.InFlight {
		return fmt.Sprintf("%d per host%s", f.PerHost, over)
	}
	return fmt.Sprintf("all of them on one host if need be (--per-host %d)", perHost)
}

type inputStats struct {
	URLs    int64 `json:"urls"`
	Invalid int64 `json:"invalid"`
	Hosts   int   `json:"hosts"`
}

// DryRun checks the settings and the input as a run would, then prints the
// effective settings with their sources (indented when indent is set), what
// the caps come to with the run's proxies, the input's counts and the
// config file read. It fetches nothing and writes no
// file.
func DryRun(ctx context.Context, cfg *Config, env Env, indent bool) error {
	cfg.dryRun = true
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
		InForce    inForce                   `json:"in_force"`
		Input      inputStats                `json:"input"`
		ConfigFile *string                   `json:"config_file"`
	}{cfg.settings.Shown(), newInForce(p.plan, cfg.Runner.PerHost), st, file})
}
