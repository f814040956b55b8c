package presets

import (
	"testing"
	"time"
)

func TestBuiltinMatchContract(t *testing.T) {
	t.Parallel()
	// The contract's preset table.
	want := []Preset{
		{Name: "datacenter", Limit: 100, PerHost: 20, PerProxy: 0, KeepAlive: 30 * time.Second, MaxIdle: 40, HTTP2: true, Timeout: 20 * time.Second, Retries: 3},
		{Name: "residential", Limit: 60, PerHost: 10, PerProxy: 0, KeepAlive: 30 * time.Second, MaxIdle: 30, HTTP2: true, Timeout: 30 * time.Second, Retries: 3},
		{Name: "mobile", Limit: 24, PerHost: 6, PerProxy: 0, KeepAlive: 60 * time.Second, MaxIdle: 16, HTTP2: true, Timeout: 45 * time.Second, Retries: 1},
		{Name: "static", Limit: 30, PerHost: 10, PerProxy: 20, KeepAlive: 90 * time.Second, MaxIdle: 30, HTTP2: true, Timeout: 20 * time.Second, Retries: 2},
	}
	got := Builtin()
	if len(got) != len(want) {
		t.Fatalf("%d presets, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		g.Description = ""
		if g != w {
			t.Errorf("preset %d = %+v, want %+v", i, g, w)
		}
		if err := got[i].Validate(); err != nil {
			t.Errorf("built-in %s invalid: %v", w.Name, err)
		}
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"datacenter", "Residential", "MOBILE", "static"} {
		if _, ok := Lookup(name); !ok {
			t.Errorf("Lookup(%q) found nothing", name)
		}
	}
	if _, ok := Lookup("satellite"); ok {
		t.Error("Lookup(satellite) found a preset")
	}
	if p, _ := Lookup(Default); p.Name != "datacenter" {
		t.Errorf("default preset = %q", p.Name)
	}
}

func TestMerge(t *testing.T) {
	t.Parallel()
	custom := Residential
	custom.Name = "gateway"
	custom.Limit = 7
	override := Mobile
	override.Retries = 0
	set := Merge([]Preset{custom, override})
	if got := set.Names(); len(got) != 5 || got[2] != "mobile" || got[4] != "gateway" {
		t.Fatalf("names = %v", got)
	}
	if p, _ := set.Lookup("mobile"); p.Retries != 0 {
		t.Errorf("config preset did not replace the built-in one: %+v", p)
	}
	if p, _ := set.Lookup("GATEWAY"); p.Limit != 7 {
		t.Errorf("gateway = %+v", p)
	}
	// The built-in table itself is untouched.
	if p, _ := Lookup("mobile"); p.Retries != 1 {
		t.Errorf("Merge changed the built-in preset: %+v", p)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*Preset)
	}{
		{"no name", func(p *Preset) { p.Name = "" }},
		{"zero limit", func(p *Preset) { p.Limit = 0 }},
		{"zero per-host", func(p *Preset) { p.PerHost = 0 }},
		{"negative per-proxy", func(p *Preset) { p.PerProxy = -1 }},
		{"negative keepalive", func(p *Preset) { p.KeepAlive = -time.Second }},
		{"negative max-idle", func(p *Preset) { p.MaxIdle = -1 }},
		{"zero timeout", func(p *Preset) { p.Timeout = 0 }},
		{"negative retries", func(p *Preset) { p.Retries = -1 }},
	}
	for _, tt := range tests {
		p := Datacenter
		tt.change(&p)
		if err := p.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", tt.name, p)
		}
	}
}
