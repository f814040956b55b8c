package settings

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/fetchctl/fetchctl/internal/presets"
)

// readFile reads the config file at path into v and checks that it
// names known keys only. The file is read once, and its checks and
// messages look at what was read, so that a pipe (<(...), a FIFO) gives
// the same result as a regular file.
func readFile(v *viper.Viper, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, PathError(err))
	}
	// Set as the file used, which messages name.
	v.SetConfigFile(path)
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		var pe viper.ConfigParseError
		if errors.As(err, &pe) {
			if kind := notMapping(data); kind != "" {
				return fmt.Errorf("config file %s: must be a mapping of settings (such as \"limit: 50\"), not %s", path, kind)
			}
			return fmt.Errorf("config file %s: %s", path, yamlMessage(data, pe.Unwrap()))
		}
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if msg := caseTwin(data); msg != "" {
		return fmt.Errorf("config file %s: %s", path, msg)
	}
	return checkConfigKeys(v, path)
}

// caseTwin returns a message naming the first key of the YAML document
// data that one mapping holds twice in different cases ("limit" and
// "LIMIT"), else "". Keys ignore case, so the second would silently win,
// as a key set twice in one case would, which the YAML library refuses.
func caseTwin(data []byte) string {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil {
		return ""
	}
	return caseTwinIn(&doc)
}

func caseTwinIn(n *yaml.Node) string {
	if n.Kind == yaml.MappingNode {
		seen := make(map[string]*yaml.Node, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
				continue
			}
			lower := strings.ToLower(k.Value)
			if first, ok := seen[lower]; ok {
				return fmt.Sprintf("key %q is set twice, at line %d and at line %d (as %q: keys ignore case)", first.Value, first.Line, k.Line, k.Value)
			}
			seen[lower] = k
		}
	}
	if n.Kind == yaml.AliasNode {
		return ""
	}
	for _, c := range n.Content {
		if msg := caseTwinIn(c); msg != "" {
			return msg
		}
	}
	return ""
}

// notMapping returns what the YAML document data holds at its top level
// ("a list", "a single value") when that is not a mapping, else "".
func notMapping(data []byte) string {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return ""
	}
	switch doc.Content[0].Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a single value"
	}
	return ""
}

// yamlMessage words a YAML syntax error without the library's prefixes:
// "line 3: mapping values are not allowed in this context". An indentation
// by tab, the commonest slip, is named at its own line.
func yamlMessage(data []byte, err error) string {
	for i, line := range strings.Split(string(data), "\n") {
		indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
		if strings.Contains(indent, "\t") && strings.TrimSpace(line) != "" {
			return fmt.Sprintf("line %d: indented with a tab; YAML takes spaces", i+1)
		}
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := duplicateKey.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("key %q is set twice, at line %s and at line %s", m[2], m[3], m[1])
	}
	if strings.Contains(msg, "\n") {
		// Other unmarshal errors come each on an indented line of its
		// own: one line here.
		return strings.Join(strings.Fields(msg), " ")
	}
	return msg
}

// duplicateKey matches the YAML library's message for a key set twice in
// one mapping.
var duplicateKey = regexp.MustCompile(`line (\d+): mapping key "(.*)" already defined at line (\d+)`)

// presetKeys are the keys a preset under presets: may set.
var presetKeys = []string{"base", "limit", "per_host", "per_proxy", "keepalive", "max_idle", "http2", "timeout", "retries"}

// checkConfigKeys returns a usage error for the first key of the config
// file that is no setting (at the top level) or no preset field (under
// presets:), naming the nearest known key when one is close.
func checkConfigKeys(v *viper.Viper, path string) error {
	known := []string{"presets"}
	var s Settings
	for _, f := range s.fields("") {
		known = append(known, f.key())
	}
	switch v.Get("presets").(type) {
	case nil, map[string]any:
		// presets: with no value is as if it were not there, as is any
		// other key with no value: no presets of the file's own.
	case []any:
		return fmt.Errorf("config file %s: key presets: must be a mapping of preset names (such as \"mine:\" with settings under it), not a list", path)
	default:
		return fmt.Errorf("config file %s: key presets: must be a mapping of preset names (such as \"mine:\" with settings under it), not a single value", path)
	}
	keys := v.AllKeys()
	sort.Strings(keys)
	for _, key := range keys {
		top, rest, _ := strings.Cut(key, ".")
		if top != "presets" {
			if !slices.Contains(known, top) {
				return fmt.Errorf("config file %s: unknown key %q%s", path, top, didYouMean(top, known))
			}
			continue
		}
		_, field, ok := strings.Cut(rest, ".")
		if !ok {
			continue // a preset that is not a map: configPresets says so
		}
		field, _, _ = strings.Cut(field, ".")
		if !slices.Contains(presetKeys, field) {
			return fmt.Errorf("config file %s: unknown key %q%s", path, key, didYouMean(field, presetKeys))
		}
	}
	return nil
}

// didYouMean returns " (did you mean K?)" for the known key nearest to key,
// when it is within a couple of edits, else "".
func didYouMean(key string, known []string) string {
	best := nearest(key, known)
	if best == "" {
		return ""
	}
	return " (did you mean " + best + "?)"
}

// nearest returns the known name nearest to name when it is within a
// couple of edits, else "".
func nearest(name string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(name, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
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
			return nil, fmt.Errorf("config file %s: key presets.%s: want a map of settings", v.ConfigFileUsed(), name)
		}
		baseName := presets.Default
		if sub.IsSet("base") {
			baseName = sub.GetString("base")
		}
		base, ok := presets.Lookup(baseName)
		if !ok {
			return nil, fmt.Errorf("config file %s: key presets.%s.base: %q is not a built-in preset (%s)", v.ConfigFileUsed(), name, baseName, strings.Join(presets.Names(), ", "))
		}
		p := base
		p.Name = name
		p.Description = "from the config file, based on " + base.Name
		for _, f := range []struct {
			key string
			ptr any
		}{
			{"limit", &p.Limit},
			{"per_host", &p.PerHost},
			{"per_proxy", &p.PerProxy},
			{"keepalive", &p.KeepAlive},
			{"max_idle", &p.MaxIdle},
			{"http2", &p.HTTP2},
			{"timeout", &p.Timeout},
			{"retries", &p.Retries},
		} {
			if !sub.IsSet(f.key) {
				continue
			}
			val, err := parse(f.ptr, configText(sub.Get(f.key)))
			if err != nil {
				return nil, fmt.Errorf("config file %s: key presets.%s.%s: %v", v.ConfigFileUsed(), name, f.key, err)
			}
			set1(f.ptr, val)
		}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("config file %s: %w", v.ConfigFileUsed(), err)
		}
		out = append(out, p)
	}
	return out, nil
}
