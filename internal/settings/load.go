package settings

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/fetchctl/fetchctl/internal/presets"
)

// Error is a setting whose value is wrong, named as the user wrote it: the
// flag, the variable or the config key.
type Error struct {
	Setting string
	Source  Source
	Err     error
	// File is the config file the value came from, when Source is
	// FromConfig.
	File string
}

func (e *Error) Error() string {
	where := "--" + e.Setting
	switch e.Source {
	case FromEnv:
		where = "FETCHCTL_" + strings.ToUpper(strings.ReplaceAll(e.Setting, "-", "_"))
	case FromConfig:
		where = "config key " + strings.ReplaceAll(e.Setting, "-", "_")
		if e.File != "" {
			where = "config file " + e.File + ": key " + strings.ReplaceAll(e.Setting, "-", "_")
		}
	case FromPreset:
		where = "preset value of " + e.Setting
	}
	return fmt.Sprintf("%s: %v", where, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an [Error] about the setting named by its flag, from the
// source its value came from.
func (s *Settings) Errorf(name, format string, args ...any) error {
	e := &Error{Setting: name, Source: s.sources[name], Err: fmt.Errorf(format, args...)}
	if e.Source == FromConfig {
		e.File = s.ConfigFile
	}
	return e
}

// AddFlags registers the settings named by their flags (every one when
// none is named) as flags. Help shows the built-in defaults; a preset's
// value shows as "from --pool".
func AddFlags(fs *pflag.FlagSet, version string, only ...string) {
	var s Settings
	for _, f := range pick(s.fields(version), only) {
		switch p := f.ptr.(type) {
		case *string:
			fs.StringP(f.name, f.short, defOr(f.def, ""), f.usage)
		case *int:
			fs.IntP(f.name, f.short, defOr(f.def, 0), f.usage)
		case *float64:
			fs.Float64P(f.name, f.short, defOr(f.def, 0.0), f.usage)
		case *bool:
			fs.BoolP(f.name, f.short, defOr(f.def, false), f.usage)
		case *time.Duration:
			fs.DurationP(f.name, f.short, defOr(f.def, time.Duration(0)), f.usage)
		case *Size:
			fs.StringP(f.name, f.short, FormatSize(int64(defOr(f.def, Size(0)))), f.usage)
		case *[]string:
			fs.StringArrayP(f.name, f.short, nil, f.usage)
		default:
			panic(fmt.Sprintf("setting %s: unsupported type %T", f.name, p))
		}
	}
}

func defOr[T any](v any, zero T) T {
	if t, ok := v.(T); ok {
		return t
	}
	return zero
}

// Load resolves the settings from the flags of fs (registered by
// [AddFlags]), the variables getenv returns and the config file:
// --config's, else FETCHCTL_CONFIG's, else ./fetchctl.yaml, else
// $XDG_CONFIG_HOME/fetchctl/config.yaml. Every error is the user's to fix.
//
// With names (flag names), only those settings are resolved, --pool with
// them when one takes its value from the preset, and the others keep their
// zero values: a command that uses a few settings is not refused for a
// value that only another one uses. The config file is checked as a whole
// all the same, as every command shares it.
func Load(fs *pflag.FlagSet, getenv func(string) string, version string, only ...string) (*Settings, error) {
	cfgPath, _ := fs.GetString("config")
	v, file, err := loadFile(cfgPath, getenv)
	if err != nil {
		return nil, err
	}
	set, err := Presets(v)
	if err != nil {
		return nil, err
	}
	s := &Settings{ConfigFile: file, sources: map[string]Source{}, sizeTexts: map[string]string{}}
	if err := s.resolve(fs, v, set, getenv, version, only); err != nil {
		return nil, err
	}
	if s.Data != "" && s.sources["method"] == FromDefault {
		// As with curl, a body without -X makes a POST.
		s.Method = "POST"
		s.sources["method"] = s.sources["data"]
		s.PostForData = true
	}
	return s, nil
}

// Presets returns the built-in presets and those of the config file read
// into v (nil for none).
func Presets(v *viper.Viper) (presets.Set, error) {
	if v == nil {
		return presets.Merge(nil), nil
	}
	extra, err := configPresets(v)
	if err != nil {
		return nil, err
	}
	return presets.Merge(extra), nil
}

// PresetNames returns the presets that --pool takes, config file included
// when it reads; for shell completion.
func PresetNames(fs *pflag.FlagSet, getenv func(string) string) []string {
	cfgPath, _ := fs.GetString("config")
	v, _, err := loadFile(cfgPath, getenv)
	if err != nil {
		v = nil
	}
	set, err := Presets(v)
	if err != nil {
		set = presets.Merge(nil)
	}
	return set.Names()
}

// LoadPresets returns the presets with those of the config file named by
// explicit (or found as [Load] finds it).
func LoadPresets(explicit string, getenv func(string) string) (presets.Set, error) {
	v, _, err := loadFile(explicit, getenv)
	if err != nil {
		return nil, err
	}
	return Presets(v)
}

// resolve sets every field with the precedence flag > env > config file >
// preset > built-in default, keeping the source of each.
func (s *Settings) resolve(fs *pflag.FlagSet, v *viper.Viper, set presets.Set, getenv func(string) string, version string, only []string) error {
	var pool presets.Preset
	for _, f := range pick(s.fields(version), only) {
		text, src, ok := "", FromDefault, false
		var val any
		_, list := f.ptr.(*[]string)
		switch fl := fs.Lookup(f.name); {
		case fl != nil && fl.Changed:
			src, ok = FromFlag, true
			if list {
				val, _ = fs.GetStringArray(f.name)
			} else {
				text = fl.Value.String()
			}
		case getenv(f.envName()) != "":
			src, ok = FromEnv, true
			if list {
				val = splitEnvList(getenv(f.envName()))
			} else {
				text = getenv(f.envName())
			}
		case v != nil && f.nullEmpty && v.Get(f.key()) == nil && slices.Contains(v.AllKeys(), f.key()):
			// Written with no value: as empty.
			src, ok = FromConfig, true
		case v != nil && v.IsSet(f.key()):
			src, ok = FromConfig, true
			if list {
				l, err := configStrings(v.Get(f.key()))
				if err != nil {
					return &Error{Setting: f.name, Source: FromConfig, Err: err, File: v.ConfigFileUsed()}
				}
				val = l
			} else {
				text = configText(v.Get(f.key()))
			}
		}
		switch {
		case ok && val == nil:
			parsed, err := parse(f.ptr, text)
			if err != nil {
				e := &Error{Setting: f.name, Source: src, Err: err}
				if src == FromConfig {
					e.File = v.ConfigFileUsed()
				}
				return e
			}
			val = parsed
			if _, isSize := parsed.(Size); isSize {
				s.sizeTexts[f.name] = strings.TrimSpace(text)
			}
		case !ok && f.preset != nil:
			src, val = FromPreset, f.preset(pool)
		case !ok:
			val = f.def
		}
		set1(f.ptr, val)
		s.sources[f.name] = src
		if f.name == "pool" {
			p, found := set.Lookup(s.Pool)
			if !found {
				e := &Error{Setting: "pool", Source: src, Err: fmt.Errorf("unknown preset %q: want one of %s", s.Pool, strings.Join(set.Names(), ", "))}
				if src == FromConfig {
					e.File = v.ConfigFileUsed()
				}
				return e
			}
			pool = p
		}
	}
	return nil
}

// pick returns the fields named in only, in the table's order, with the
// pool when one of them takes its value from the preset; all of them when
// only is empty. A name that is no setting is a bug of the caller.
func pick(list []field, only []string) []field {
	if len(only) == 0 {
		return list
	}
	want := map[string]bool{}
	for _, name := range only {
		want[name] = true
	}
	for _, f := range list {
		if want[f.name] && f.preset != nil {
			want["pool"] = true
		}
	}
	var out []field
	for _, f := range list {
		if want[f.name] {
			out = append(out, f)
			delete(want, f.name)
		}
	}
	for name := range want {
		panic(fmt.Sprintf("settings: no setting %q", name))
	}
	return out
}

// ExplicitConfigFile returns the config file that fs's --config or
// FETCHCTL_CONFIG names, and which of the two named it; "" when neither
// does (a file found in its usual places is then read, if any).
func ExplicitConfigFile(fs *pflag.FlagSet, getenv func(string) string) (path, source string) {
	if p, _ := fs.GetString("config"); p != "" {
		return p, "--config"
	}
	if p := getenv("FETCHCTL_CONFIG"); p != "" {
		return p, "FETCHCTL_CONFIG"
	}
	return "", ""
}

// loadFile reads the config file, explicit or found; a file named
// explicitly must exist, the others are optional. It returns a viper with
// no file when none is found.
func loadFile(explicit string, getenv func(string) string) (*viper.Viper, string, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	if explicit == "" {
		explicit = getenv("FETCHCTL_CONFIG")
	}
	if explicit != "" {
		if err := readFile(v, explicit); err != nil {
			return nil, "", err
		}
		return v, explicit, nil
	}
	candidates := []string{"fetchctl.yaml"}
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
		if err := readFile(v, c); err != nil {
			return nil, "", err
		}
		return v, c, nil
	}
	return v, "", nil
}

// PathError returns the reason of a *os.PathError without the path and
// operation, which the caller words better.
func PathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
