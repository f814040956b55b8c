package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/viper"
)

// readConfig reads the config file at path into v and checks that it
// names known keys only.
func readConfig(v *viper.Viper, path string) error {
	v.SetConfigFile(path)
	if err := v.ReadInConfig(); err != nil {
		var pe viper.ConfigParseError
		if errors.As(err, &pe) {
			return fmt.Errorf("config file %s: %s", path, yamlMessage(path, pe.Unwrap()))
		}
		return fmt.Errorf("config file %s: %w", path, unwrapPathErr(err))
	}
	return checkConfigKeys(v, path)
}

// yamlMessage words a YAML syntax error without the library's prefixes:
// "line 3: mapping values are not allowed in this context". An indentation
// by tab, the commonest slip, is named at its own line.
func yamlMessage(path string, err error) string {
	if data, rerr := os.ReadFile(path); rerr == nil {
		for i, line := range strings.Split(string(data), "\n") {
			indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
			if strings.Contains(indent, "\t") && strings.TrimSpace(line) != "" {
				return fmt.Sprintf("line %d: indented with a tab; YAML takes spaces", i+1)
			}
		}
	}
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

// presetKeys are the keys a preset under presets: may set.
var presetKeys = []string{"base", "limit", "per_host", "keepalive", "max_idle", "http2", "timeout", "retries"}

// checkConfigKeys returns a usage error for the first key of the config
// file that is no setting (at the top level) or no preset field (under
// presets:), naming the nearest known key when one is close.
func checkConfigKeys(v *viper.Viper, path string) error {
	known := []string{"presets"}
	for _, s := range runSettings() {
		known = append(known, s.key())
	}
	keys := v.AllKeys()
	sort.Strings(keys)
	for _, key := range keys {
		top, rest, _ := strings.Cut(key, ".")
		if top != "presets" {
			if !slices.Contains(known, top) {
				return usageErrorf("config file %s: unknown key %q%s", path, top, didYouMean(top, known))
			}
			continue
		}
		_, field, ok := strings.Cut(rest, ".")
		if !ok {
			continue // a preset that is not a map: configPresets says so
		}
		field, _, _ = strings.Cut(field, ".")
		if !slices.Contains(presetKeys, field) {
			return usageErrorf("config file %s: unknown key %q%s", path, key, didYouMean(field, presetKeys))
		}
	}
	return nil
}

// didYouMean returns " (did you mean K?)" for the known key nearest to key,
// when it is within a couple of edits, else "".
func didYouMean(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return " (did you mean " + best + "?)"
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
