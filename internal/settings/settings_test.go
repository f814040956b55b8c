package settings

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/fetchctl/fetchctl/internal/presets"
)

// load parses args as the run command's flags and resolves them with env.
func load(t *testing.T, env map[string]string, args ...string) (*Settings, error) {
	t.Helper()
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	fs.String("config", "", "")
	AddFlags(fs, "test")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if env == nil {
		env = map[string]string{}
	}
	if _, ok := env["HOME"]; !ok {
		env["HOME"] = t.TempDir() // no user config file
	}
	return Load(fs, func(k string) string { return env[k] }, "test")
}

func TestLoadPrecedenceAndSources(t *testing.T) {
	t.Chdir(t.TempDir())
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte("limit: 7\nper_host: 3\nretries: 4\nheader: ['X-A: 1']\nmax_body: 1KiB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"FETCHCTL_PER_HOST": "5", "FETCHCTL_RETRIES": "6", "FETCHCTL_CONFIG": cfg}
	s, err := load(t, env, "--retries", "9", "--pool", "mobile")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		got  any
		want any
		src  Source
	}{
		{"pool", s.Pool, "mobile", FromFlag},
		{"retries", s.Retries, 9, FromFlag},
		{"per-host", s.PerHost, 5, FromEnv},
		{"limit", s.Limit, 7, FromConfig},
		{"header", strings.Join(s.Header, "|"), "X-A: 1", FromConfig},
		{"max-body", s.MaxBody, Size(1024), FromConfig},
		{"keepalive", s.KeepAlive > 0, true, FromPreset},
		{"connect-timeout", s.ConnectTimeout, 10 * time.Second, FromDefault},
		{"user-agent", s.UserAgent, "fetchctl/test", FromDefault},
	}
	for _, c := range checks {
		if c.got != c.want || s.Source(c.name) != c.src {
			t.Errorf("%s = %v from %s, want %v from %s", c.name, c.got, s.Source(c.name), c.want, c.src)
		}
	}
	if s.ConfigFile != cfg {
		t.Errorf("ConfigFile = %q, want %q", s.ConfigFile, cfg)
	}
}

func TestLoadErrorsNameTheSource(t *testing.T) {
	t.Chdir(t.TempDir())
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"flag", nil, []string{"--max-body", "ten"}, `--max-body: "ten" is not a size`},
		{"env", map[string]string{"FETCHCTL_TIMEOUT": "5"}, nil, `FETCHCTL_TIMEOUT: "5" is not a duration`},
		{"pool", nil, []string{"--pool", "nope"}, `--pool: unknown preset "nope": want one of datacenter`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.env, tt.args...)
			var se *Error
			if !errors.As(err, &se) || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("err = %v, want a *settings.Error starting %q", err, tt.want)
			}
		})
	}
}

func TestLoadConfigFileErrors(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, tt := range []struct{ name, yaml, want string }{
		{"unknown key", "limt: 3\n", `unknown key "limt" (did you mean limit?)`},
		{"unknown preset key", "presets:\n  x:\n    limt: 3\n", `unknown key "presets.x.limt" (did you mean limit?)`},
		{"tab", "limit: 3\npresets:\n\tx: 1\n", "line 3: indented with a tab"},
		{"bad value", "limit: many\n", `c.yaml: key limit: "many" is not a whole number`},
		{"bad preset value", "presets:\n  x:\n    retries: lots\n", `c.yaml: key presets.x.retries: "lots" is not a whole number`},
		{"list", "- limit: 3\n", `c.yaml: must be a mapping of settings (such as "limit: 50"), not a list`},
		{"duplicate key", "limit: 3\nlimit: 4\n", `c.yaml: key "limit" is set twice, at line 1 and at line 2`},
		{"duplicate preset key", "presets:\n  x:\n    retries: 1\n    retries: 2\n", `c.yaml: key "retries" is set twice, at line 3 and at line 4`},
		{"key in two cases", "limit: 6\nLIMIT: 5\n", `c.yaml: key "limit" is set twice, at line 1 and at line 2 (as "LIMIT": keys ignore case)`},
		{"key in two cases apart", "Per_Host: 2\nlimit: 6\nper_host: 3\n", `c.yaml: key "Per_Host" is set twice, at line 1 and at line 3 (as "per_host": keys ignore case)`},
		{"preset name in two cases", "presets:\n  foo:\n    limit: 3\n  FOO:\n    limit: 9\n", `c.yaml: key "foo" is set twice, at line 2 and at line 4 (as "FOO": keys ignore case)`},
		{"preset key in two cases", "presets:\n  x:\n    retries: 1\n    Retries: 2\n", `c.yaml: key "retries" is set twice, at line 3 and at line 4 (as "Retries": keys ignore case)`},
		{"presets a number", "presets: 5\n", `c.yaml: key presets: must be a mapping of preset names (such as "mine:" with settings under it), not a single value`},
		{"presets a string", "presets: \"x\"\n", `c.yaml: key presets: must be a mapping of preset names (such as "mine:" with settings under it), not a single value`},
		{"presets a list", "presets:\n  - limit: 3\n", `c.yaml: key presets: must be a mapping of preset names (such as "mine:" with settings under it), not a list`},
		{"preset a number", "presets:\n  mine: 5\n", `key presets.mine: want a map of settings`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := load(t, nil, "--config", path)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("err = %v, want one line saying %q", err, tt.want)
			}
		})
		// A pipe gives its bytes once: the checks and messages come from
		// what was read, as with a regular file.
		t.Run(tt.name+", from a pipe", func(t *testing.T) {
			if runtime.GOOS != "linux" {
				t.Skip("/dev/fd/N names a pipe's end on Linux")
			}
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			go func() {
				io.WriteString(w, tt.yaml)
				w.Close()
			}()
			path := fmt.Sprintf("/dev/fd/%d", r.Fd())
			want := strings.TrimPrefix(tt.want, "c.yaml: ")
			_, err = load(t, nil, "--config", path)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("err = %v, want one line saying %q", err, want)
			}
		})
	}
}

func TestDataMakesAPost(t *testing.T) {
	t.Chdir(t.TempDir())
	s, err := load(t, nil, "-d", "a=1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Method != "POST" || s.Source("method") != FromFlag {
		t.Errorf("method = %s from %s, want POST from flag", s.Method, s.Source("method"))
	}
	s, err = load(t, nil, "-d", "a=1", "-X", "PUT")
	if err != nil {
		t.Fatal(err)
	}
	if s.Method != "PUT" {
		t.Errorf("method = %s, want PUT", s.Method)
	}
}

func TestShownMasksSecretsAndKeepsRequested(t *testing.T) {
	t.Chdir(t.TempDir())
	s, err := load(t, nil, "--proxy", "http://bob:pw@p:1", "-H", "Cookie: c=1", "-H", "X-A: 2", "--limit", "900")
	if err != nil {
		t.Fatal(err)
	}
	s.Lowered("limit", 900)
	s.Limit = 100
	shown := s.Shown()
	if got := shown["proxy"].V; got != "http://bob:***@p:1" {
		t.Errorf("proxy shown as %v", got)
	}
	if got := shown["header"].V.([]string); strings.Join(got, "|") != "Cookie: ***|X-A: 2" {
		t.Errorf("header shown as %q", got)
	}
	if got := shown["limit"]; got.V != 100 || got.Requested != 900 || got.Source != FromFlag {
		t.Errorf("limit shown as %+v", got)
	}
	if got := shown["max_body"].V; got != "10MiB" {
		t.Errorf("max_body shown as %v", got)
	}
	if got := s.Secrets(func(string) string { return "" }); strings.Join(got, "|") != "pw|c=1" {
		t.Errorf("Secrets() = %q", got)
	}
}

func TestExampleConfigNamesOnlyKnownSettings(t *testing.T) {
	v := viper.New()
	v.SetConfigFile("../../configs/fetchctl.yaml")
	if err := v.ReadInConfig(); err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{"presets": true}
	for _, k := range Keys() {
		known[k] = true
	}
	for _, key := range v.AllKeys() {
		top, _, _ := strings.Cut(key, ".")
		if !known[top] {
			t.Errorf("configs/fetchctl.yaml has key %q, which is no setting", key)
		}
	}
	// It documents every setting.
	for _, k := range Keys() {
		if !v.InConfig(k) {
			t.Errorf("configs/fetchctl.yaml does not document %s", k)
		}
	}
	extra, err := configPresets(v)
	if err != nil {
		t.Fatal(err)
	}
	if len(extra) != 3 || extra[0].Name != "gateway-eu" || extra[0].Limit != 120 || extra[0].KeepAlive.String() != "30s" ||
		extra[2].Name != "ten-ips" || extra[2].PerProxy != 25 || extra[2].PerHost != 10 {
		t.Errorf("config presets = %+v", extra)
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
		bad  bool
	}{
		{"10MiB", 10 << 20, false},
		{"512KiB", 512 << 10, false},
		{"1GB", 1e9, false},
		{"2048", 2048, false},
		{"1.5MiB", 3 << 19, false},
		{"10mib", 10 << 20, false},
		{"ten", 0, true},
		{"-1KiB", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

// TestShownSizesKeepTheUnitsWritten: a size shows as the user wrote it
// (20GB stays 20GB, not 19531250KiB; 1024 stays 1024, not 1KiB), and the
// bytes behind it are exact.
func TestShownSizesKeepTheUnitsWritten(t *testing.T) {
	t.Chdir(t.TempDir())
	tests := []struct {
		name, flag, in, key, want string
		bytes                     int64
	}{
		{"decimal GB", "--budget", "20GB", "budget", "20GB", 20e9},
		{"decimal KB", "--budget", "100KB", "budget", "100KB", 100e3},
		{"lower case", "--budget", "100kb", "budget", "100kb", 100e3},
		{"decimal fraction", "--budget", "1.5GB", "budget", "1.5GB", 1500e6},
		{"decimal half", "--budget", "0.5GB", "budget", "0.5GB", 500e6},
		{"binary", "--budget", "2GiB", "budget", "2GiB", 2 << 30},
		{"binary fraction", "--budget", "1.5MiB", "budget", "1.5MiB", 3 << 19},
		{"binary fraction to bytes", "--budget", "1.25KiB", "budget", "1.25KiB", 1280},
		{"bytes", "--budget", "100000", "budget", "100000", 100000},
		{"bytes a binary unit divides", "--budget", "1024", "budget", "1024", 1024},
		{"spaces trimmed", "--budget", " 20GB ", "budget", "20GB", 20e9},
		{"max-body decimal", "--max-body", "10MB", "max_body", "10MB", 10e6},
		{"max-body binary", "--max-body", "512KiB", "max_body", "512KiB", 512 << 10},
		{"max-body fraction", "--max-body", "1.5MiB", "max_body", "1.5MiB", 3 << 19},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := load(t, nil, tt.flag, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Shown()[tt.key].V; got != tt.want {
				t.Errorf("%s %s shown as %v, want %s", tt.flag, tt.in, got, tt.want)
			}
			if got := s.SizeText(strings.TrimPrefix(tt.flag, "--")); got != tt.want {
				t.Errorf("SizeText(%s) = %q, want %q", tt.flag, got, tt.want)
			}
			n := map[string]Size{"budget": s.Budget, "max_body": s.MaxBody}[tt.key]
			if int64(n) != tt.bytes {
				t.Errorf("%s %s = %d bytes, want %d", tt.flag, tt.in, n, tt.bytes)
			}
		})
	}
}

// TestConfigSizesKeepTheTextWritten: a size from the config file shows as
// written there too, a bare number included.
func TestConfigSizesKeepTheTextWritten(t *testing.T) {
	t.Chdir(t.TempDir())
	tests := []struct{ name, yaml, key, want string }{
		{"bare number", "budget: 1024\n", "budget", "1024"},
		{"fraction", "budget: 1.5GB\n", "budget", "1.5GB"},
		{"max_body binary fraction", "max_body: 1.5MiB\n", "max_body", "1.5MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "fetchctl.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := load(t, nil, "--config", path)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Shown()[tt.key].V; got != tt.want {
				t.Errorf("%s shown as %v, want %s", strings.TrimSpace(tt.yaml), got, tt.want)
			}
			if got := s.SizeText(strings.ReplaceAll(tt.key, "_", "-")); got != tt.want {
				t.Errorf("SizeText(%s) = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
}

// TestRotateOnOff: none, an empty value and a key with no value in the
// config file all turn rotation off, and --dry-run shows it as none.
func TestRotateOnOff(t *testing.T) {
	t.Chdir(t.TempDir())
	tests := []struct {
		name, yaml string
		args       []string
		src        Source
	}{
		{"flag NONE", "", []string{"--rotate-on", "NONE"}, FromFlag},
		{"flag empty", "", []string{"--rotate-on", ""}, FromFlag},
		{"config empty", "rotate_on: \"\"\n", nil, FromConfig},
		{"config null", "rotate_on:\n", nil, FromConfig},
		{"config tilde", "rotate_on: ~\n", nil, FromConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.yaml != "" {
				path := filepath.Join(t.TempDir(), "fetchctl.yaml")
				if err := os.WriteFile(path, []byte(tt.yaml), 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", path)
			}
			s, err := load(t, nil, args...)
			if err != nil {
				t.Fatal(err)
			}
			if v := strings.TrimSpace(s.RotateOn); v != "" && !strings.EqualFold(v, "none") {
				t.Errorf("rotate-on = %q, want rotation off", s.RotateOn)
			}
			shown := s.Shown()["rotate_on"]
			if shown.V != "none" || shown.Source != tt.src {
				t.Errorf("rotate_on shown as %v from %v, want none from %v", shown.V, shown.Source, tt.src)
			}
		})
	}
}

// TestConfigKeyWithNoValueIsUnset: a key of the config file written with
// no value (YAML null) is as if it were not there, presets: included: no
// presets of the file's own, and --pool takes the built-in ones only.
// rotate_on is the one exception (see TestRotateOnOff).
func TestConfigKeyWithNoValueIsUnset(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, tt := range []struct{ name, yaml string }{
		{"limit", "limit:\n"},
		{"limit tilde", "limit: ~\n"},
		{"presets", "presets:\n"},
		{"presets tilde", "presets: ~\n"},
		{"presets with comments only", "presets:\n  # mine:\n  #   limit: 3\nretries: 2\n"},
		{"preset field", "presets:\n  mine:\n    limit:\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := load(t, nil, "--config", path)
			if err != nil {
				t.Fatalf("err = %v, want none", err)
			}
			if s.Source("limit") == FromConfig {
				t.Errorf("limit from %s, want it unset in the config file", s.Source("limit"))
			}
			set, err := LoadPresets(path, func(string) string { return "" })
			if err != nil {
				t.Fatal(err)
			}
			got, builtin := strings.Join(set.Names(), ","), strings.Join(presets.Names(), ",")
			if strings.HasPrefix(tt.name, "preset field") {
				builtin += ",mine"
			}
			if got != builtin {
				t.Errorf("presets = %s, want %s", got, builtin)
			}
		})
	}
}

// TestLoadOnlyNamed resolves a few settings, as summarize does: with the
// same precedence and config file, a value only the others use is no
// error, and the file is still checked as a whole.
func TestLoadOnlyNamed(t *testing.T) {
	t.Chdir(t.TempDir())
	only := []string{"summary", "min-success", "quiet"}
	loadOnly := func(t *testing.T, file string, env map[string]string, args ...string) (*Settings, error) {
		t.Helper()
		fs := pflag.NewFlagSet("summarize", pflag.ContinueOnError)
		fs.String("config", "", "")
		AddFlags(fs, "test", only...)
		if fs.Lookup("limit") != nil || fs.Lookup("min-success") == nil {
			t.Fatal("AddFlags registered other flags than those named")
		}
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(cfg, []byte(file), 0o644); err != nil {
			t.Fatal(err)
		}
		env["HOME"] = t.TempDir()
		env["FETCHCTL_CONFIG"] = cfg
		return Load(fs, func(k string) string { return env[k] }, "test", only...)
	}

	t.Run("precedence", func(t *testing.T) {
		s, err := loadOnly(t, "min_success: 0.9\nsummary: cfg.json\nlimit: x\npool: nosuch\n",
			map[string]string{"FETCHCTL_SUMMARY": "env.json", "FETCHCTL_LIMIT": "many"}, "-q")
		if err != nil {
			t.Fatalf("got %v, want no error for settings not named", err)
		}
		checks := []struct {
			name      string
			got, want any
			src       Source
		}{
			{"min-success", s.MinSuccess, 0.9, FromConfig},
			{"summary", s.Summary, "env.json", FromEnv},
			{"quiet", s.Quiet, true, FromFlag},
			{"limit", s.Limit, 0, ""},
		}
		for _, c := range checks {
			if c.got != c.want || s.Source(c.name) != c.src {
				t.Errorf("%s = %v from %q, want %v from %q", c.name, c.got, s.Source(c.name), c.want, c.src)
			}
		}
	})
	for _, tt := range []struct{ name, file, want string }{
		{"unknown key", "min_sucess: 0.9\n", `unknown key "min_sucess" (did you mean min_success?)`},
		{"bad value", "min_success: half\n", "key min_success: "},
		{"presets not a mapping", "presets: [a]\n", "key presets: must be a mapping"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadOnly(t, tt.file, map[string]string{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestPickAddsThePoolForPresetValues(t *testing.T) {
	var s Settings
	var names []string
	for _, f := range pick(s.fields(""), []string{"limit", "quiet"}) {
		names = append(names, f.name)
	}
	if got, want := strings.Join(names, ","), "pool,limit,quiet"; got != want {
		t.Errorf("picked %s, want %s", got, want)
	}
}

func TestUnknownEnv(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		want    []string
	}{
		{"settings and config", []string{"FETCHCTL_LIMIT=9", "FETCHCTL_CONFIG=c.yaml", "FETCHCTL_PER_HOST=2", "PATH=/bin"}, nil},
		{"read elsewhere", []string{"FETCHCTL_CPUPROFILE=cpu.prof"}, nil},
		{"empty", []string{"FETCHCTL_LIMT="}, nil},
		{"not the prefix", []string{"fetchctl_limt=9", "XFETCHCTL_LIMT=9"}, nil},
		{"near a setting", []string{"FETCHCTL_LIMT=9"}, []string{"FETCHCTL_LIMT is not a setting; did you mean FETCHCTL_LIMIT?"}},
		{"near the config", []string{"FETCHCTL_CONFG=c.yaml"}, []string{"FETCHCTL_CONFG is not a setting; did you mean FETCHCTL_CONFIG?"}},
		{"case only", []string{"FETCHCTL_limit=3"}, []string{"FETCHCTL_limit is not a setting; did you mean FETCHCTL_LIMIT?"}},
		{"case only, mixed", []string{"FETCHCTL_Per_Host=3"}, []string{"FETCHCTL_Per_Host is not a setting; did you mean FETCHCTL_PER_HOST?"}},
		{"case only, the config", []string{"FETCHCTL_config=c.yaml"}, []string{"FETCHCTL_config is not a setting; did you mean FETCHCTL_CONFIG?"}},
		{"case only, another", []string{"FETCHCTL_retries=1"}, []string{"FETCHCTL_retries is not a setting; did you mean FETCHCTL_RETRIES?"}},
		{"near nothing", []string{"FETCHCTL_COLOUR=blue"}, []string{"FETCHCTL_COLOUR is not a setting"}},
		{"bare prefix", []string{"FETCHCTL_=1"}, []string{"FETCHCTL_ is not a setting"}},
		{"several, sorted", []string{"FETCHCTL_ZZZ=1", "FETCHCTL_RETRYS=1"}, []string{
			"FETCHCTL_RETRYS is not a setting; did you mean FETCHCTL_RETRIES?",
			"FETCHCTL_ZZZ is not a setting",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := UnknownEnv(tt.environ)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("UnknownEnv(%q) = %q, want %q", tt.environ, got, tt.want)
			}
		})
	}
}

// TestSecretsOfBasicHeader: a Basic credential given with -H is sent as
// it is in a URL: its token, the user:password it decodes to and the
// password are all secrets, as those of a URL's user info are.
func TestSecretsOfBasicHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, header string
		want         []string
	}{
		{name: "Authorization", header: "Authorization: Basic YXU6YXV0aHNlY3JldDc=",
			want: []string{"Basic YXU6YXV0aHNlY3JldDc=", "YXU6YXV0aHNlY3JldDc=", "au:authsecret7", "authsecret7"}},
		{name: "Proxy-Authorization, any case", header: "proxy-authorization: basic aHU6aGRyc2VjcmV0OQ==",
			want: []string{"basic aHU6aGRyc2VjcmV0OQ==", "aHU6aGRyc2VjcmV0OQ==", "hu:hdrsecret9", "hdrsecret9"}},
		{name: "not Basic", header: "Authorization: Bearer abcdefsecrettoken", want: []string{"Bearer abcdefsecrettoken"}},
		{name: "not base64", header: "Authorization: Basic !!!", want: []string{"Basic !!!"}},
		{name: "Cookie is not decoded", header: "Cookie: Basic YXU6YXV0aHNlY3JldDc=", want: []string{"Basic YXU6YXV0aHNlY3JldDc="}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Settings{Header: []string{tt.header}}
			if got := s.Secrets(func(string) string { return "" }); !slices.Equal(got, tt.want) {
				t.Errorf("Secrets() = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestSecretsOfSessionPassword: a proxy password of session placeholders
// alone is no secret as written (the filled one is), so that messages can
// quote it; one with fixed parts is.
func TestSecretsOfSessionPassword(t *testing.T) {
	t.Parallel()
	tests := []struct {
		proxy string
		want  []string
	}{
		{proxy: "http://c:{session:0}@gw:1", want: []string{}},
		{proxy: "http://c:{session}{session:12}@gw:1", want: []string{}},
		{proxy: "http://c:pw{session:99}@gw:1", want: []string{"pw{session:99}"}},
	}
	for _, tt := range tests {
		t.Run(tt.proxy, func(t *testing.T) {
			s := &Settings{Proxy: tt.proxy}
			if got := s.Secrets(func(string) string { return "" }); !slices.Equal(got, tt.want) {
				t.Errorf("Secrets() = %q, want %q", got, tt.want)
			}
		})
	}
}
