package runner

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fetchctl/fetchctl/internal/report"
)

// StatusSet is a set of HTTP status codes, parsed from a list such as
// "200-299,404". The zero value holds no status.
type StatusSet struct {
	ranges [][2]int
}

// ParseStatusSet parses a comma-separated list of statuses and inclusive
// ranges, each from 100 to 599.
func ParseStatusSet(s string) (StatusSet, error) {
	var set StatusSet
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(strings.TrimSpace(lo))
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(strings.TrimSpace(hi))
		}
		if err1 != nil || err2 != nil || a < 100 || b > 599 || a > b {
			return StatusSet{}, fmt.Errorf("bad status or range %q: want a code from 100 to 599 or a range like 200-299", part)
		}
		set.ranges = append(set.ranges, [2]int{a, b})
	}
	if len(set.ranges) == 0 {
		return StatusSet{}, fmt.Errorf("empty status list")
	}
	return set, nil
}

// Contains reports whether code is in s.
func (s StatusSet) Contains(code int) bool {
	for _, r := range s.ranges {
		if r[0] <= code && code <= r[1] {
			return true
		}
	}
	return false
}

// String returns s in the form ParseStatusSet reads.
func (s StatusSet) String() string {
	parts := make([]string, len(s.ranges))
	for i, r := range s.ranges {
		if r[0] == r[1] {
			parts[i] = strconv.Itoa(r[0])
		} else {
			parts[i] = fmt.Sprintf("%d-%d", r[0], r[1])
		}
	}
	return strings.Join(parts, ",")
}

// RetryOn says which failures are retried: statuses, status classes (5xx)
// and error kinds. The zero value retries nothing.
type RetryOn struct {
	statuses StatusSet
	kinds    map[string]bool
}

var retryableKinds = map[string]bool{
	report.KindTimeout: true, report.KindReset: true, report.KindConnect: true, report.KindDNS: true,
	report.KindTLS: true, report.KindProxy: true, report.KindProtocol: true,
}

// RetryKinds returns the error kinds --retry-on may name, sorted.
func RetryKinds() []string {
	kinds := make([]string, 0, len(retryableKinds))
	for k := range retryableKinds {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	return kinds
}

// ParseRetryOn parses a list such as "429,5xx,timeout,reset,connect".
func ParseRetryOn(s string) (RetryOn, error) {
	r := RetryOn{kinds: map[string]bool{}}
	for _, part := range strings.Split(s, ",") {
		part = strings.ToLower(strings.TrimSpace(part))
		switch {
		case part == "":
		case retryableKinds[part]:
			r.kinds[part] = true
		case len(part) == 3 && part[1:] == "xx" && part[0] >= '1' && part[0] <= '5':
			base := int(part[0]-'0') * 100
			r.statuses.ranges = append(r.statuses.ranges, [2]int{base, base + 99})
		default:
			set, err := ParseStatusSet(part)
			if err != nil {
				return RetryOn{}, fmt.Errorf("bad retry condition %q: want a status (429), a class (5xx), a range, or one of timeout, reset, connect, dns, tls, proxy, protocol", part)
			}
			r.statuses.ranges = append(r.statuses.ranges, set.ranges...)
		}
	}
	return r, nil
}

// Status reports whether a response with this status is retried.
func (r RetryOn) Status(code int) bool { return r.statuses.Contains(code) }

// Kind reports whether a failure of this error kind is retried.
func (r RetryOn) Kind(kind string) bool { return r.kinds[kind] }

// idempotent reports whether a request with this method may be sent twice.
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// maxRetryAfter is the largest Retry-After kept: a larger value, or a date
// further off, reads as this. A wait is capped at --backoff-max anyway; the
// record shows what the server asked for, up to this.
const maxRetryAfter = 1e9 * time.Second

// parseRetryAfter reads a Retry-After value: delay seconds or an HTTP date,
// clipped to [0, maxRetryAfter]. Seconds too many for an int64 are still a
// delay, the longest.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		// Sub saturates at the largest Duration, far beyond the clip.
		return min(max(t.Sub(now), 0), maxRetryAfter), true
	}
	return 0, false
}

// backoff returns the wait before retry number n (1 for the first retry):
// full jitter over base·2^(n-1), capped at max.
func backoff(base, max time.Duration, n int) time.Duration {
	if base <= 0 {
		return 0
	}
	ceil := base
	for i := 1; i < n && ceil < max; i++ {
		ceil *= 2
	}
	if max > 0 && ceil > max {
		ceil = max
	}
	return time.Duration(rand.Int64N(int64(ceil) + 1))
}
