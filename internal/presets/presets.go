// Package presets holds the built-in proxy-pool presets: starting values for the
// concurrency, connection-pool, timeout and retry settings of a run.
//
// It is pure data: it performs no I/O and reads no environment. User presets from
// a config file are built by the caller and merged with [Merge].
package presets

import (
	"fmt"
	"strings"
	"time"
)

// Preset is one named set of starting values. The zero value is not a usable
// preset; every field of a built-in preset is set.
type Preset struct {
	Name        string        `json:"name"`
	Description string        `json:"-"`
	Limit       int           `json:"limit"`
	PerHost     int           `json:"per_host"`
	PerProxy    int           `json:"per_proxy"` // 0: one proxy may take all of Limit
	KeepAlive   time.Duration `json:"-"`
	MaxIdle     int           `json:"max_idle"`
	HTTP2       bool          `json:"http2"`
	Timeout     time.Duration `json:"-"`
	Retries     int           `json:"retries"`
}

// The built-in presets, from measured proxy-pool behaviour. Limit is the
// total in flight and PerHost the target's tolerance, both over every
// proxy. A rotating pool is one gateway endpoint that spreads connections
// over its exits, so it takes the whole limit (PerProxy 0); a fixed IP
// carries 20-50 requests at once, and the static preset takes the low end.
var (
	Datacenter = Preset{Name: "datacenter", Description: "rotating datacenter pool, typical P50 60-120 ms",
		Limit: 100, PerHost: 20, PerProxy: 0, KeepAlive: 30 * time.Second, MaxIdle: 40, HTTP2: true, Timeout: 20 * time.Second, Retries: 3}
	Residential = Preset{Name: "residential", Description: "rotating residential pool, typical P50 180-350 ms",
		Limit: 60, PerHost: 10, PerProxy: 0, KeepAlive: 30 * time.Second, MaxIdle: 30, HTTP2: true, Timeout: 30 * time.Second, Retries: 3}
	Mobile = Preset{Name: "mobile", Description: "mobile pool, typical P50 200-500 ms; bandwidth is paid for",
		Limit: 24, PerHost: 6, PerProxy: 0, KeepAlive: 60 * time.Second, MaxIdle: 16, HTTP2: true, Timeout: 45 * time.Second, Retries: 1}
	Static = Preset{Name: "static", Description: "datacenter proxy with a fixed IP; the target may rate-limit it",
		Limit: 30, PerHost: 10, PerProxy: 20, KeepAlive: 90 * time.Second, MaxIdle: 30, HTTP2: true, Timeout: 20 * time.Second, Retries: 2}
)

// Default is the name of the preset used when none is given.
const Default = "datacenter"

var builtin = []Preset{Datacenter, Residential, Mobile, Static}

// Builtin returns a copy of the built-in presets in their documented order.
func Builtin() []Preset {
	return append([]Preset(nil), builtin...)
}

// Names returns the names of the built-in presets in their documented order.
func Names() []string {
	names := make([]string, len(builtin))
	for i, p := range builtin {
		names[i] = p.Name
	}
	return names
}

// Lookup returns the built-in preset called name (case-insensitive).
func Lookup(name string) (Preset, bool) {
	return find(builtin, name)
}

// Set is an ordered list of presets: the built-in ones followed by user-defined
// ones. The zero value is empty; it is not safe for concurrent mutation.
type Set []Preset

// Merge returns the built-in presets with extra ones appended. An extra preset
// whose name matches a built-in one replaces it in place.
func Merge(extra []Preset) Set {
	out := Set(Builtin())
	for _, p := range extra {
		replaced := false
		for i := range out {
			if strings.EqualFold(out[i].Name, p.Name) {
				out[i] = p
				replaced = true
				break
			}
		}
		if !replaced {
			out = append(out, p)
		}
	}
	return out
}

// Lookup returns the preset called name (case-insensitive).
func (s Set) Lookup(name string) (Preset, bool) {
	return find(s, name)
}

// Names returns the preset names of s in order.
func (s Set) Names() []string {
	names := make([]string, len(s))
	for i, p := range s {
		names[i] = p.Name
	}
	return names
}

func find(list []Preset, name string) (Preset, bool) {
	for _, p := range list {
		if strings.EqualFold(p.Name, name) {
			return p, true
		}
	}
	return Preset{}, false
}

// Validate reports the first field of p that cannot be used.
func (p Preset) Validate() error {
	switch {
	case p.Name == "":
		return fmt.Errorf("preset has no name")
	case p.Limit < 1:
		return fmt.Errorf("preset %q: limit must be at least 1, got %d", p.Name, p.Limit)
	case p.PerHost < 1:
		return fmt.Errorf("preset %q: per_host must be at least 1, got %d", p.Name, p.PerHost)
	case p.PerProxy < 0:
		return fmt.Errorf("preset %q: per_proxy must not be negative, got %d", p.Name, p.PerProxy)
	case p.KeepAlive < 0:
		return fmt.Errorf("preset %q: keepalive must not be negative", p.Name)
	case p.MaxIdle < 0:
		return fmt.Errorf("preset %q: max_idle must not be negative", p.Name)
	case p.Timeout <= 0:
		return fmt.Errorf("preset %q: timeout must be positive", p.Name)
	case p.Retries < 0:
		return fmt.Errorf("preset %q: retries must not be negative", p.Name)
	}
	return nil
}
