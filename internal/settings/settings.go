// Package settings resolves fetchctl's run settings: each one's flag, its
// FETCHCTL_* variable, its key in the config file and its preset value, with
// the precedence flag > environment > config file > preset > default, into
// one typed [Settings] that remembers where every value came from.
//
// It reads and checks what the user wrote; turning the values into a run
// (proxies, headers, transport and runner options) is package batch's.
package settings

import (
	"slices"
	"strings"
	"time"

	"github.com/fetchctl/fetchctl/internal/presets"
	"github.com/fetchctl/fetchctl/internal/secret"
)

// Size is a byte count written with units: 10MiB, 512KB, 1048576.
type Size int64

// Source is where a setting's value came from.
type Source string

// Sources, from weakest to strongest.
const (
	FromDefault Source = "default"
	FromPreset  Source = "preset"
	FromConfig  Source = "config"
	FromEnv     Source = "env"
	FromFlag    Source = "flag"
)

// Settings are the run settings of the contract, resolved.
type Settings struct {
	Pool            string
	Limit           int
	PerHost         int
	PerProxy        int
	KeepAlive       time.Duration
	MaxIdle         int
	HTTP2           bool
	Timeout         time.Duration
	ConnectTimeout  time.Duration
	Retries         int
	RetryOn         string
	Backoff         time.Duration
	BackoffMax      time.Duration
	Rate            float64
	Adaptive        bool
	Proxy           string
	ProxyFile       string
	RotateOn        string
	BlockPattern    string
	Budget          Size
	Session         string
	SessionTTL      time.Duration
	DNSTTL          time.Duration
	MaxConnRequests int
	Method          string
	Header          []string
	Data            string
	UserAgent       string
	Insecure        bool
	CACert          string
	MaxRedirects    int
	LocationTrusted bool
	MaxBody         Size
	MaxHeaderSize   Size
	Hash            bool
	SaveBodies      string
	OKStatus        string
	Output          string
	Summary         string
	MinSuccess      float64
	Resume          bool
	Overwrite       bool
	Shard           string
	Progress        string
	Quiet           bool
	Verbose         bool

	// PostForData says Method is POST because --data was given without
	// --method, as curl does.
	PostForData bool

	// ConfigFile is the config file read, "" for none.
	ConfigFile string

	sources   map[string]Source
	requested map[string]any
	// sizeTexts holds each size the user gave, as written (trimmed).
	sizeTexts map[string]string
}

// SizeText returns the size setting name (its flag name) as --dry-run
// and messages show it: exactly as the user wrote it (20GB, 512KiB, 1.5GB,
// 1024), or, for a built-in value, in the largest binary unit that
// divides it.
func (s *Settings) SizeText(name string) string {
	if t, ok := s.sizeTexts[name]; ok {
		return t
	}
	for _, f := range s.fields("") {
		if f.name == name {
			if n, ok := get(f.ptr).(Size); ok {
				return FormatSize(int64(n))
			}
		}
	}
	return ""
}

// field is one setting: its flag is --name, its variable FETCHCTL_NAME and
// its config key name with - as _.
type field struct {
	name, short, usage string
	// ptr points at the field of Settings that holds the value: *string,
	// *int, *float64, *bool, *time.Duration, *Size or *[]string.
	ptr any
	// def is the built-in default, nil when the preset sets the value.
	def    any
	preset func(presets.Preset) any
	// mask shows the value as --dry-run prints it: its secrets hidden, or
	// an empty value by what it means.
	mask func(any) any
	// nullEmpty reads the config key written with no value (YAML null) as
	// an empty value, which means something for this setting, rather than
	// as not set.
	nullEmpty bool
}

func (f field) envName() string {
	return "FETCHCTL_" + strings.ToUpper(strings.ReplaceAll(f.name, "-", "_"))
}

func (f field) key() string { return strings.ReplaceAll(f.name, "-", "_") }

// fields is the contract's settings table, in its order; the pool comes
// first, as the preset settings take their values from it.
func (s *Settings) fields(version string) []field {
	return []field{
		{name: "pool", ptr: &s.Pool, def: presets.Default, usage: "proxy-pool preset: datacenter, residential, mobile, static, or one from the config file"},
		{name: "limit", short: "c", ptr: &s.Limit, preset: func(p presets.Preset) any { return p.Limit }, usage: "requests in flight in total (default from --pool)"},
		{name: "per-host", ptr: &s.PerHost, preset: func(p presets.Preset) any { return p.PerHost }, usage: "requests in flight per host, over all proxies (default from --pool)"},
		{name: "per-proxy", ptr: &s.PerProxy, preset: func(p presets.Preset) any { return p.PerProxy }, usage: "requests in flight through one proxy; 0 lets one take all of --limit (default from --pool)"},
		{name: "keepalive", ptr: &s.KeepAlive, preset: func(p presets.Preset) any { return p.KeepAlive }, usage: "how long an idle connection is kept; 0 turns keep-alive off (default from --pool)"},
		{name: "max-idle", ptr: &s.MaxIdle, preset: func(p presets.Preset) any { return p.MaxIdle }, usage: "idle connections kept in total (default from --pool)"},
		{name: "http2", ptr: &s.HTTP2, preset: func(p presets.Preset) any { return p.HTTP2 }, usage: "try HTTP/2 on TLS connections; --http2=false forces HTTP/1.1 (default from --pool)"},
		{name: "timeout", ptr: &s.Timeout, preset: func(p presets.Preset) any { return p.Timeout }, usage: "limit on one attempt, from dial to the last body byte (default from --pool)"},
		{name: "connect-timeout", ptr: &s.ConnectTimeout, def: 10 * time.Second, usage: "limit on dial plus TLS handshake"},
		{name: "retries", ptr: &s.Retries, preset: func(p presets.Preset) any { return p.Retries }, usage: "further attempts after a retryable failure (default from --pool)"},
		{name: "retry-on", ptr: &s.RetryOn, def: "429,5xx,timeout,reset,connect", usage: "retryable failures: statuses, classes (5xx), timeout, reset, connect, dns, tls, proxy"},
		{name: "backoff", ptr: &s.Backoff, def: 250 * time.Millisecond, usage: "base of exponential backoff with full jitter"},
		{name: "backoff-max", ptr: &s.BackoffMax, def: 30 * time.Second, usage: "cap on one backoff wait and on Retry-After"},
		{name: "rate", ptr: &s.Rate, def: 0.0, usage: "requests per second per host, evenly spaced; 0 is no limit"},
		{name: "adaptive", ptr: &s.Adaptive, def: false, usage: "adapt per-host concurrency: cut on 429/503 and timeouts, grow on success, never above --per-host"},
		{name: "proxy", ptr: &s.Proxy, def: "", mask: maskProxy, usage: "http://, https:// or socks5:// proxy, with user:pass@ if needed"},
		{name: "proxy-file", ptr: &s.ProxyFile, def: "", usage: "file of proxies, one a line; requests are spread over them"},
		{name: "rotate-on", ptr: &s.RotateOn, def: "403,429", mask: showNone, nullEmpty: true, usage: "statuses by which a target blocks a proxy's exit: the proxy or session cools down for the host and the URL is retried through another; none turns this off"},
		{name: "block-pattern", ptr: &s.BlockPattern, def: "", usage: "regular expression whose match in the first 64KiB of a body, through a proxy, is a block like --rotate-on"},
		{name: "budget", ptr: &s.Budget, def: Size(0), usage: "stop the run (resumable) once this many bytes went through proxies on the wire; 0 is no limit"},
		{name: "session", ptr: &s.Session, def: "", usage: "renew the {session} of a proxy URL's user name: host (one per target host), url (one per request) or N (every N requests)"},
		{name: "session-ttl", ptr: &s.SessionTTL, def: 5 * time.Minute, usage: "longest life of a proxy session; 0 is no limit"},
		{name: "dns-ttl", ptr: &s.DNSTTL, def: 5 * time.Minute, usage: "how long a DNS answer is cached; 0 turns the cache off"},
		{name: "max-conn-requests", ptr: &s.MaxConnRequests, def: 0, usage: "requests per connection before it is closed; 0 is no limit"},
		{name: "method", short: "X", ptr: &s.Method, def: "GET", usage: "request method"},
		{name: "header", short: "H", ptr: &s.Header, def: []string{}, mask: maskHeaders, usage: "extra header 'Name: value', repeatable; 'Host: name' sets the request's Host"},
		{name: "data", short: "d", ptr: &s.Data, def: "", usage: "request body; @FILE reads it from a file"},
		{name: "user-agent", short: "A", ptr: &s.UserAgent, def: "fetchctl/" + version, usage: "User-Agent; empty sends none"},
		{name: "insecure", short: "k", ptr: &s.Insecure, def: false, usage: "skip TLS certificate checks"},
		{name: "cacert", ptr: &s.CACert, def: "", usage: "also trust the CA certificates in this PEM file"},
		{name: "max-redirects", ptr: &s.MaxRedirects, def: 10, usage: "redirects followed; 0 follows none"},
		{name: "location-trusted", ptr: &s.LocationTrusted, def: false, usage: "send Authorization, Cookie and Proxy-Authorization on redirects to other origins too"},
		{name: "max-body", ptr: &s.MaxBody, def: Size(10 << 20), usage: "body bytes read; more is body_too_large (10MiB-style units; 0 for no limit)"},
		{name: "max-header-size", ptr: &s.MaxHeaderSize, def: Size(1 << 20), usage: "response head bytes (status line and headers) read; more is protocol"},
		{name: "hash", ptr: &s.Hash, def: false, usage: "add the sha256 of each body"},
		{name: "save-bodies", ptr: &s.SaveBodies, def: "", usage: "write each body to a file under this folder"},
		{name: "ok-status", ptr: &s.OKStatus, def: "200-299", usage: "statuses that count as ok, e.g. 200-399,404"},
		{name: "output", short: "o", ptr: &s.Output, def: "", usage: "write records to this file instead of stdout"},
		{name: "summary", ptr: &s.Summary, def: "", usage: "also write the summary as JSON to this file (- for stdout)"},
		{name: "min-success", ptr: &s.MinSuccess, def: 0.0, usage: "exit 1 below this success ratio (0 to 1)"},
		{name: "resume", ptr: &s.Resume, def: false, usage: "with -o: keep the records in the file, fetch only the lines without one, append"},
		{name: "overwrite", ptr: &s.Overwrite, def: false, usage: "replace a file that already holds results: -o starts again, --summary writes over it"},
		{name: "shard", ptr: &s.Shard, def: "", usage: "K/N: fetch only the hosts in shard K (from 0) of N"},
		{name: "progress", ptr: &s.Progress, def: "auto", usage: "progress bar on stderr: auto, always or never"},
		{name: "quiet", short: "q", ptr: &s.Quiet, def: false, usage: "no summary on stderr"},
		{name: "verbose", short: "v", ptr: &s.Verbose, def: false, usage: "a stderr line for each retry and each failure"},
	}
}

// Source returns where the setting named by its flag came from.
func (s *Settings) Source(name string) Source { return s.sources[name] }

// Lowered records that the run lowered a setting below what its source
// asked for (--limit, to fit the open-file limit), so that --dry-run shows
// both.
func (s *Settings) Lowered(name string, requested any) {
	if s.requested == nil {
		s.requested = map[string]any{}
	}
	if _, ok := s.requested[name]; !ok {
		s.requested[name] = requested
	}
}

// Secrets returns the secrets the settings hold, read loosely so that a
// malformed value is covered too: the password of --proxy and of the proxy
// variables, and the values of -H Authorization, Proxy-Authorization and
// Cookie however the header line is punctuated, with what a Basic
// credential decodes to (see [secret.Basic]).
func (s *Settings) Secrets(getenv func(string) string) []string {
	var set secret.Set
	set.AddPassword(s.Proxy)
	for _, name := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"} {
		set.AddPassword(getenv(name))
	}
	for _, line := range s.Header {
		v := secret.HeaderLineValue(line)
		set.Add(v)
		line = strings.TrimSpace(line)
		if n := strings.IndexAny(line, ": \t="); n > 0 && strings.HasSuffix(strings.ToLower(line[:n]), "authorization") {
			// A Basic credential is secret decoded too, as in a URL.
			set.Add(secret.Basic(v)...)
		}
	}
	// A password of session placeholders alone is no secret as written
	// (see [secret.PlaceholdersOnly]).
	return slices.DeleteFunc(set.List(), secret.PlaceholdersOnly)
}

// Value is a setting as --dry-run shows it.
type Value struct {
	V      any    `json:"value"`
	Source Source `json:"source"`
	// Requested is what the source asked for when the run lowered it.
	Requested any `json:"requested,omitempty"`
}

// Shown returns every setting under its config key, secrets masked,
// durations and sizes as text, with its source: what --dry-run prints.
func (s *Settings) Shown() map[string]Value {
	list := s.fields("")
	out := make(map[string]Value, len(list))
	for _, f := range list {
		v := Value{V: get(f.ptr), Source: s.sources[f.name], Requested: s.requested[f.name]}
		switch t := v.V.(type) {
		case time.Duration:
			v.V = t.String()
		case Size:
			v.V = FormatSize(int64(t))
			if text, ok := s.sizeTexts[f.name]; ok {
				v.V = text
			}
		}
		if f.mask != nil {
			v.V = f.mask(v.V)
		}
		out[f.key()] = v
	}
	return out
}

// showNone shows an empty --rotate-on as what it does, and none in any
// case, as none.
func showNone(v any) any {
	if s, ok := v.(string); ok && (strings.TrimSpace(s) == "" || strings.EqualFold(strings.TrimSpace(s), "none")) {
		return "none"
	}
	return v
}

func maskProxy(v any) any {
	if s, ok := v.(string); ok && s != "" {
		return secret.URL(s)
	}
	return v
}

func maskHeaders(v any) any {
	list, _ := v.([]string)
	out := make([]string, len(list))
	for i, line := range list {
		out[i] = secret.HeaderLine(line)
	}
	return out
}

// Keys returns the config file's top-level keys for the settings, in the
// contract's order.
func Keys() []string {
	var s Settings
	var out []string
	for _, f := range s.fields("") {
		out = append(out, f.key())
	}
	return out
}

// otherEnv are FETCHCTL_* variables read outside the settings table, which
// are no setting and no mistake: the benchmark's profiling build reads
// FETCHCTL_CPUPROFILE (scripts/bench).
var otherEnv = []string{"FETCHCTL_CPUPROFILE"}

// UnknownEnv returns a warning for each FETCHCTL_* variable of environ
// ("NAME=value" strings, as os.Environ returns them) that fetchctl does not
// read, sorted, naming the setting's variable that differs from it only by
// case, else the nearest one when one is close:
// "FETCHCTL_LIMT is not a setting; did you mean FETCHCTL_LIMIT?". An empty
// variable is as unset, as for the settings, and says nothing.
func UnknownEnv(environ []string) []string {
	known := EnvNames()
	var out []string
	for _, kv := range environ {
		name, val, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "FETCHCTL_") || val == "" || slices.Contains(known, name) || slices.Contains(otherEnv, name) {
			continue
		}
		msg := name + " is not a setting"
		// A setting's variable in another case first: it may be nearer
		// to another name by the letters, not by what was meant.
		near := ""
		if i := slices.IndexFunc(known, func(k string) bool { return strings.EqualFold(k, name) }); i >= 0 {
			near = known[i]
		} else {
			near = nearest(name, known)
		}
		if near != "" {
			msg += "; did you mean " + near + "?"
		}
		out = append(out, msg)
	}
	slices.Sort(out)
	return out
}

// EnvNames returns the FETCHCTL_* variables, FETCHCTL_CONFIG included.
func EnvNames() []string {
	var s Settings
	out := []string{"FETCHCTL_CONFIG"}
	for _, f := range s.fields("") {
		out = append(out, f.envName())
	}
	return out
}
