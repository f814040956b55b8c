package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/fetchctl/fetchctl/internal/presets"
)

// kind is how a setting's text is read.
type kind int

const (
	kindString kind = iota
	kindInt
	kindFloat
	kindBool
	kindDuration
	kindSize
	kindStrings
)

// Sources of a setting's value, from weakest to strongest.
const (
	srcDefault = "default"
	srcPreset  = "preset"
	srcConfig  = "config"
	srcEnv     = "env"
	srcFlag    = "flag"
)

// setting describes one contract setting: its flag, env variable and config
// key all derive from name.
type setting struct {
	name   string
	short  string
	kind   kind
	def    any                      // built-in default; nil when the preset sets it
	preset func(presets.Preset) any // the preset's value, if the preset sets it
	secret func(v any) any          // how --dry-run shows the value, when it may hold a secret
	usage  string
}

func (s setting) envName() string {
	return "FETCHCTL_" + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))
}

func (s setting) key() string { return strings.ReplaceAll(s.name, "-", "_") }

// runSettings is the contract's settings table, in its order.
func runSettings() []setting {
	return []setting{
		{name: "pool", kind: kindString, def: presets.Default, usage: "proxy-pool preset: datacenter, residential, mobile, static, or one from the config file"},
		{name: "limit", short: "c", kind: kindInt, preset: func(p presets.Preset) any { return p.Limit }, usage: "requests in flight in total (default from --pool)"},
		{name: "per-host", kind: kindInt, preset: func(p presets.Preset) any { return p.PerHost }, usage: "requests in flight per host (default from --pool)"},
		{name: "keepalive", kind: kindDuration, preset: func(p presets.Preset) any { return p.KeepAlive }, usage: "how long an idle connection is kept; 0 turns keep-alive off (default from --pool)"},
		{name: "max-idle", kind: kindInt, preset: func(p presets.Preset) any { return p.MaxIdle }, usage: "idle connections kept in total (default from --pool)"},
		{name: "http2", kind: kindBool, preset: func(p presets.Preset) any { return p.HTTP2 }, usage: "try HTTP/2 on TLS connections; --http2=false forces HTTP/1.1 (default from --pool)"},
		{name: "timeout", kind: kindDuration, preset: func(p presets.Preset) any { return p.Timeout }, usage: "limit on one attempt, from dial to the last body byte (default from --pool)"},
		{name: "connect-timeout", kind: kindDuration, def: 10 * time.Second, usage: "limit on dial plus TLS handshake"},
		{name: "retries", kind: kindInt, preset: func(p presets.Preset) any { return p.Retries }, usage: "further attempts after a retryable failure (default from --pool)"},
		{name: "retry-on", kind: kindString, def: "429,5xx,timeout,reset,connect", usage: "retryable failures: statuses, classes (5xx), timeout, reset, connect, dns, tls, proxy"},
		{name: "backoff", kind: kindDuration, def: 250 * time.Millisecond, usage: "base of exponential backoff with full jitter"},
		{name: "backoff-max", kind: kindDuration, def: 30 * time.Second, usage: "cap on one backoff wait and on Retry-After"},
		{name: "rate", kind: kindFloat, def: 0.0, usage: "requests per second per host, evenly spaced; 0 is no limit"},
		{name: "adaptive", kind: kindBool, def: false, usage: "adapt per-host concurrency: cut on 429/503 and timeouts, grow on success, never above --per-host"},
		{name: "proxy", kind: kindString, def: "", secret: maskProxy, usage: "http://, https:// or socks5:// proxy, with user:pass@ if needed"},
		{name: "proxy-file", kind: kindString, def: "", usage: "file of proxies, one a line; requests are spread over them"},
		{name: "dns-ttl", kind: kindDuration, def: 5 * time.Minute, usage: "how long a DNS answer is cached; 0 turns the cache off"},
		{name: "max-conn-requests", kind: kindInt, def: 0, usage: "requests per connection before it is closed; 0 is no limit"},
		{name: "method", short: "X", kind: kindString, def: "GET", usage: "request method"},
		{name: "header", short: "H", kind: kindStrings, def: []string{}, secret: maskHeaders, usage: "extra header 'Name: value', repeatable"},
		{name: "data", short: "d", kind: kindString, def: "", usage: "request body; @FILE reads it from a file"},
		{name: "user-agent", short: "A", kind: kindString, def: "fetchctl/" + version, usage: "User-Agent"},
		{name: "insecure", short: "k", kind: kindBool, def: false, usage: "skip TLS certificate checks"},
		{name: "cacert", kind: kindString, def: "", usage: "also trust the CA certificates in this PEM file"},
		{name: "max-redirects", kind: kindInt, def: 10, usage: "redirects followed; 0 follows none"},
		{name: "location-trusted", kind: kindBool, def: false, usage: "send Authorization, Cookie and Proxy-Authorization on redirects to other origins too"},
		{name: "max-body", kind: kindSize, def: int64(10 << 20), usage: "body bytes read; more is body_too_large (10MiB-style units)"},
		{name: "max-header-size", kind: kindSize, def: int64(1 << 20), usage: "response head bytes (status line and headers) read; more is protocol"},
		{name: "hash", kind: kindBool, def: false, usage: "add the sha256 of each body"},
		{name: "save-bodies", kind: kindString, def: "", usage: "write each body to a file under this folder"},
		{name: "ok-status", kind: kindString, def: "200-299", usage: "statuses that count as ok, e.g. 200-399,404"},
		{name: "output", short: "o", kind: kindString, def: "", usage: "write records to this file instead of stdout"},
		{name: "summary", kind: kindString, def: "", usage: "also write the summary as JSON to this file"},
		{name: "min-success", kind: kindFloat, def: 0.0, usage: "exit 1 below this success ratio (0 to 1)"},
		{name: "resume", kind: kindBool, def: false, usage: "with -o: keep the records in the file, fetch only the lines without one, append"},
		{name: "overwrite", kind: kindBool, def: false, usage: "with -o: start again over a file that already holds results"},
		{name: "shard", kind: kindString, def: "", usage: "K/N: fetch only the hosts in shard K (from 0) of N"},
		{name: "progress", kind: kindString, def: "auto", usage: "progress bar on stderr: auto, always or never"},
		{name: "quiet", short: "q", kind: kindBool, def: false, usage: "no summary on stderr"},
		{name: "verbose", short: "v", kind: kindBool, def: false, usage: "a stderr line for each retry and each failure"},
	}
}

// addFlags registers settings as flags. Defaults shown in help are the
// built-in ones; a preset's value shows as "from --pool".
func addFlags(fs *pflag.FlagSet, list []setting) {
	for _, s := range list {
		switch s.kind {
		case kindString:
			fs.StringP(s.name, s.short, defOr(s.def, ""), s.usage)
		case kindInt:
			fs.IntP(s.name, s.short, defOr(s.def, 0), s.usage)
		case kindFloat:
			fs.Float64P(s.name, s.short, defOr(s.def, 0.0), s.usage)
		case kindBool:
			fs.BoolP(s.name, s.short, defOr(s.def, false), s.usage)
		case kindDuration:
			fs.DurationP(s.name, s.short, defOr(s.def, time.Duration(0)), s.usage)
		case kindSize:
			fs.StringP(s.name, s.short, formatSize(defOr(s.def, int64(0))), s.usage)
		case kindStrings:
			fs.StringArrayP(s.name, s.short, nil, s.usage)
		}
	}
}

func defOr[T any](v any, zero T) T {
	if t, ok := v.(T); ok {
		return t
	}
	return zero
}

// value is a resolved setting and where it came from.
type value struct {
	V      any    `json:"value"`
	Source string `json:"source"`
	// Requested is what the source asked for when the run lowered it
	// (--limit, to fit the open-file limit).
	Requested any `json:"requested,omitempty"`
}

// resolved maps a setting name to its value.
type resolved map[string]value

func (r resolved) str(name string) string        { return r[name].V.(string) }
func (r resolved) int(name string) int           { return r[name].V.(int) }
func (r resolved) float(name string) float64     { return r[name].V.(float64) }
func (r resolved) bool(name string) bool         { return r[name].V.(bool) }
func (r resolved) dur(name string) time.Duration { return r[name].V.(time.Duration) }
func (r resolved) size(name string) int64        { return r[name].V.(int64) }
func (r resolved) strings(name string) []string  { return r[name].V.([]string) }
func (r resolved) sourceOf(name string) string   { return r[name].Source }

// settingError is a usage or configuration error about one setting.
type settingError struct {
	Setting string
	Source  string
	Err     error
}

func (e *settingError) Error() string {
	where := "--" + e.Setting
	switch e.Source {
	case srcEnv:
		where = "FETCHCTL_" + strings.ToUpper(strings.ReplaceAll(e.Setting, "-", "_"))
	case srcConfig:
		where = "config key " + strings.ReplaceAll(e.Setting, "-", "_")
	case srcPreset:
		where = "preset value of " + e.Setting
	}
	return fmt.Sprintf("%s: %v", where, e.Err)
}

func (e *settingError) Unwrap() error { return e.Err }

// loadConfig reads the config file: --config, else ./fetchctl.yaml, else
// $XDG_CONFIG_HOME/fetchctl/config.yaml (~/.config/...). A file named
// explicitly must exist; the others are optional. It returns a viper with no
// file when none is found.
func loadConfig(explicit string, getenv func(string) string) (*viper.Viper, string, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	candidates := []string{}
	if explicit == "" {
		explicit = getenv("FETCHCTL_CONFIG")
	}
	if explicit != "" {
		if err := readConfig(v, explicit); err != nil {
			return nil, "", err
		}
		return v, explicit, nil
	}
	candidates = append(candidates, "fetchctl.yaml")
	xdg := getenv("XDG_CONFIG_HOME")
	if xdg == "" {
		if home := getenv("HOME"); home != "" {
			xdg = filepath.Join(home, ".config")
		}
	}
	if xdg != "" {
		candidates = append(candidates, filepath.Join(xdg, "fetchctl", "config.yaml"))
	}
	for _, c := range candidates {
		if _, err := os.Stat(c); err != nil {
			continue
		}
		if err := readConfig(v, c); err != nil {
			return nil, "", err
		}
		return v, c, nil
	}
	return v, "", nil
}

// unknownPreset is the error for a preset name that is neither built in nor
// in the config file, listing those that are.
func unknownPreset(name string, set presets.Set) error {
	return fmt.Errorf("unknown preset %q: want one of %s", name, strings.Join(set.Names(), ", "))
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// configPresets reads the presets: section of the config file. Each user
// preset starts from the built-in one named by its "base" key (datacenter by
// default) and overrides what it names.
func configPresets(v *viper.Viper) ([]presets.Preset, error) {
	raw := v.GetStringMap("presets")
	names := make([]string, 0, len(raw))
	for name := range raw {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []presets.Preset
	for _, name := range names {
		sub := v.Sub("presets." + name)
		if sub == nil {
			return nil, fmt.Errorf("config presets.%s: want a map of settings", name)
		}
		baseName := presets.Default
		if sub.IsSet("base") {
			baseName = sub.GetString("base")
		}
		base, ok := presets.Lookup(baseName)
		if !ok {
			return nil, fmt.Errorf("config presets.%s: base %q is not a built-in preset (%s)", name, baseName, strings.Join(presets.Names(), ", "))
		}
		p := base
		p.Name = name
		p.Description = "from the config file, based on " + base.Name
		for _, f := range []struct {
			key string
			set func(string) error
		}{
			{"limit", func(s string) (err error) { p.Limit, err = strconv.Atoi(s); return }},
			{"per_host", func(s string) (err error) { p.PerHost, err = strconv.Atoi(s); return }},
			{"keepalive", func(s string) (err error) { p.KeepAlive, err = time.ParseDuration(s); return }},
			{"max_idle", func(s string) (err error) { p.MaxIdle, err = strconv.Atoi(s); return }},
			{"http2", func(s string) (err error) { p.HTTP2, err = strconv.ParseBool(s); return }},
			{"timeout", func(s string) (err error) { p.Timeout, err = time.ParseDuration(s); return }},
			{"retries", func(s string) (err error) { p.Retries, err = strconv.Atoi(s); return }},
		} {
			if !sub.IsSet(f.key) {
				continue
			}
			if err := f.set(fmt.Sprint(sub.Get(f.key))); err != nil {
				return nil, fmt.Errorf("config presets.%s.%s: %v", name, f.key, err)
			}
		}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		out = append(out, p)
	}
	return out, nil
}

// resolve computes every setting with the precedence flag > env > config
// file > preset > built-in default, keeping the source of each.
func resolve(fs *pflag.FlagSet, list []setting, v *viper.Viper, set presets.Set, getenv func(string) string) (resolved, presets.Preset, error) {
	out := resolved{}
	// list starts with the pool, which the later settings may take their
	// values from.
	var pool presets.Preset
	for _, s := range list {
		text, src, ok := "", srcDefault, false
		if f := fs.Lookup(s.name); f != nil && f.Changed {
			if s.kind == kindStrings {
				vals, _ := fs.GetStringArray(s.name)
				out[s.name] = value{V: vals, Source: srcFlag}
				continue
			}
			text, src, ok = f.Value.String(), srcFlag, true
		} else if e := getenv(s.envName()); e != "" {
			text, src, ok = e, srcEnv, true
			if s.kind == kindStrings {
				out[s.name] = value{V: splitEnvList(e), Source: srcEnv}
				continue
			}
		} else if v != nil && v.IsSet(s.key()) {
			src, ok = srcConfig, true
			if s.kind == kindStrings {
				vals, err := configStrings(v.Get(s.key()))
				if err != nil {
					return nil, pool, &settingError{s.name, srcConfig, err}
				}
				out[s.name] = value{V: vals, Source: srcConfig}
				continue
			}
			text = configText(v.Get(s.key()))
		}
		if ok {
			val, err := parseKind(s.kind, text)
			if err != nil {
				return nil, pool, &settingError{s.name, src, err}
			}
			out[s.name] = value{V: val, Source: src}
		} else if s.preset != nil {
			if pool.Name == "" {
				return nil, pool, fmt.Errorf("internal: pool unresolved before %s", s.name)
			}
			out[s.name] = value{V: s.preset(pool), Source: srcPreset}
		} else {
			out[s.name] = value{V: s.def, Source: srcDefault}
		}
		if s.name == "pool" {
			name := out.str("pool")
			p, found := set.Lookup(name)
			if !found {
				return nil, pool, &settingError{"pool", out.sourceOf("pool"), unknownPreset(name, set)}
			}
			pool = p
		}
	}
	return out, pool, nil
}

func splitEnvList(s string) []string {
	// Several headers in one variable are separated by newlines.
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

func configStrings(v any) ([]string, error) {
	switch t := v.(type) {
	case string:
		return []string{t}, nil
	case []any:
		out := make([]string, len(t))
		for i, e := range t {
			out[i] = fmt.Sprint(e)
		}
		return out, nil
	case []string:
		return t, nil
	}
	return nil, fmt.Errorf("want a list of strings")
}

func configText(v any) string {
	switch t := v.(type) {
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1e15 {
			return strconv.FormatInt(int64(t), 10)
		}
	}
	return fmt.Sprint(v)
}

func parseKind(k kind, text string) (any, error) {
	text = strings.TrimSpace(text)
	switch k {
	case kindString:
		return text, nil
	case kindInt:
		n, err := strconv.Atoi(text)
		if err != nil {
			return nil, fmt.Errorf("%q is not a whole number", text)
		}
		return n, nil
	case kindFloat:
		f, err := strconv.ParseFloat(text, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%q is not a number", text)
		}
		return f, nil
	case kindBool:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return nil, fmt.Errorf("%q is not true or false", text)
		}
		return b, nil
	case kindDuration:
		d, err := time.ParseDuration(text)
		if err != nil {
			if n, nerr := strconv.Atoi(text); nerr == nil && n == 0 {
				return time.Duration(0), nil
			}
			return nil, fmt.Errorf("%q is not a duration: use Go syntax such as 30s or 1m30s", text)
		}
		return d, nil
	case kindSize:
		return parseSize(text)
	}
	return nil, fmt.Errorf("unknown kind")
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"TB", 1000 * 1000 * 1000 * 1000},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
}

// parseSize reads a byte count such as 10MiB, 512KB or 1048576.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if len(t) > len(u.suffix) && strings.EqualFold(t[len(t)-len(u.suffix):], u.suffix) {
			mult = u.mult
			t = strings.TrimSpace(t[:len(t)-len(u.suffix)])
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || math.IsNaN(f) || f*float64(mult) > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is not a size: use a byte count or units such as 512KiB, 10MiB, 1GB", s)
	}
	return int64(f * float64(mult)), nil
}

// formatSize writes n in the largest binary unit that divides it.
func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// settingsJSON is what --dry-run prints under "settings": every setting under
// its flag name with - as _, secrets redacted, durations and sizes as text.
func settingsJSON(r resolved, list []setting) map[string]value {
	out := make(map[string]value, len(list))
	for _, s := range list {
		val := r[s.name]
		switch t := val.V.(type) {
		case time.Duration:
			val.V = t.String()
		case int64:
			if s.kind == kindSize {
				val.V = formatSize(t)
			}
		}
		if s.secret != nil {
			val.V = s.secret(val.V)
		}
		out[s.key()] = val
	}
	return out
}
