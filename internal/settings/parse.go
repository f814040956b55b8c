package settings

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// parse reads text as the type ptr points at.
func parse(ptr any, text string) (any, error) {
	text = strings.TrimSpace(text)
	switch ptr.(type) {
	case *string:
		return text, nil
	case *int:
		n, err := strconv.Atoi(text)
		if err != nil {
			return nil, fmt.Errorf("%q is not a whole number", text)
		}
		return n, nil
	case *float64:
		f, err := strconv.ParseFloat(text, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%q is not a number", text)
		}
		return f, nil
	case *bool:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return nil, fmt.Errorf("%q is not true or false", text)
		}
		return b, nil
	case *time.Duration:
		d, err := time.ParseDuration(text)
		if err != nil {
			if n, nerr := strconv.Atoi(text); nerr == nil && n == 0 {
				return time.Duration(0), nil
			}
			return nil, fmt.Errorf("%q is not a duration: use Go syntax such as 30s or 1m30s", text)
		}
		return d, nil
	case *Size:
		n, err := ParseSize(text)
		return Size(n), err
	}
	return nil, fmt.Errorf("cannot read a %T", ptr)
}

// set1 stores v, of the type ptr points at, through ptr.
func set1(ptr, v any) {
	switch p := ptr.(type) {
	case *string:
		*p = v.(string)
	case *int:
		*p = v.(int)
	case *float64:
		*p = v.(float64)
	case *bool:
		*p = v.(bool)
	case *time.Duration:
		*p = v.(time.Duration)
	case *Size:
		*p = v.(Size)
	case *[]string:
		*p = v.([]string)
	default:
		panic(fmt.Sprintf("unsupported setting type %T", ptr))
	}
}

// get returns the value ptr points at.
func get(ptr any) any {
	switch p := ptr.(type) {
	case *string:
		return *p
	case *int:
		return *p
	case *float64:
		return *p
	case *bool:
		return *p
	case *time.Duration:
		return *p
	case *Size:
		return *p
	case *[]string:
		return *p
	}
	panic(fmt.Sprintf("unsupported setting type %T", ptr))
}

func splitEnvList(s string) []string {
	// Several headers in one variable are separated by newlines.
	out := []string{}
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
	if t, ok := v.(float64); ok && t == math.Trunc(t) && math.Abs(t) < 1e15 {
		return strconv.FormatInt(int64(t), 10)
	}
	return fmt.Sprint(v)
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"TB", 1000 * 1000 * 1000 * 1000},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
}

// ParseSize reads a byte count such as 10MiB, 512KB or 1048576.
func ParseSize(s string) (int64, error) {
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

// FormatSize writes n in the largest binary unit that divides it.
func FormatSize(n int64) string {
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
