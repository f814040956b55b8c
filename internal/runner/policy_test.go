package runner

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseStatusSet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		yes, no []int
		wantErr bool
	}{
		{in: "200-299", yes: []int{200, 204, 299}, no: []int{199, 300, 404}},
		{in: "200-399,404", yes: []int{200, 301, 399, 404}, no: []int{400, 403, 500}},
		{in: " 418 , 500-503 ", yes: []int{418, 500, 503}, no: []int{417, 504}},
		{in: "", wantErr: true},
		{in: "abc", wantErr: true},
		{in: "300-200", wantErr: true},
		{in: "99", wantErr: true},
		{in: "200-600", wantErr: true},
		{in: "200-", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			s, err := ParseStatusSet(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseStatusSet(%q) err = %v, want error %v", tt.in, err, tt.wantErr)
			}
			for _, c := range tt.yes {
				if !s.Contains(c) {
					t.Errorf("%q does not contain %d", tt.in, c)
				}
			}
			for _, c := range tt.no {
				if s.Contains(c) {
					t.Errorf("%q contains %d", tt.in, c)
				}
			}
		})
	}
}

func TestParseRetryOn(t *testing.T) {
	t.Parallel()
	r, err := ParseRetryOn("429,5xx,timeout,reset,connect")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []int{429, 500, 503, 599} {
		if !r.Status(c) {
			t.Errorf("status %d not retried", c)
		}
	}
	for _, c := range []int{200, 404, 428, 600} {
		if r.Status(c) {
			t.Errorf("status %d retried", c)
		}
	}
	for _, k := range []string{"timeout", "reset", "connect"} {
		if !r.Kind(k) {
			t.Errorf("kind %s not retried", k)
		}
	}
	for _, k := range []string{"dns", "tls", "status", "body_too_large", "redirect", "protocol"} {
		if r.Kind(k) {
			t.Errorf("kind %s retried", k)
		}
	}
	if p, err := ParseRetryOn("protocol"); err != nil || !p.Kind("protocol") {
		t.Errorf("ParseRetryOn(protocol) = %v, %v; want protocol retried", p, err)
	}
	for _, bad := range []string{"6xx", "sometimes", "429,nope"} {
		if _, err := ParseRetryOn(bad); err == nil {
			t.Errorf("ParseRetryOn(%q) accepted", bad)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"2", 2 * time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"1000000000", 1e9 * time.Second, true},
		// Larger values, however written, are clipped to that: a wait is
		// capped at --backoff-max anyway.
		{"1000000001", 1e9 * time.Second, true},
		{"9999999999", 1e9 * time.Second, true},
		{"99999999999999999999", 1e9 * time.Second, true},
		{strings.Repeat("9", 400), 1e9 * time.Second, true},
		{"Fri, 31 Dec 9999 23:59:59 GMT", 1e9 * time.Second, true},
		{now.Add(1e9 * time.Second).Add(time.Hour).Format(http.TimeFormat), 1e9 * time.Second, true},
		{"-1", 0, false},
		{"-99999999999999999999", 0, false},
		{"1e5", 0, false},
		{"soon", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseRetryAfter(%q) = %s, %v; want %s, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestBackoffFullJitterCapped(t *testing.T) {
	t.Parallel()
	base, max := 100*time.Millisecond, time.Second
	for n := 1; n <= 8; n++ {
		ceil := base << (n - 1)
		if ceil > max {
			ceil = max
		}
		var hi time.Duration
		for i := 0; i < 2000; i++ {
			d := backoff(base, max, n)
			if d < 0 || d > ceil {
				t.Fatalf("backoff(retry %d) = %s, want within [0, %s]", n, d, ceil)
			}
			hi = maxDur(hi, d)
		}
		// Full jitter spreads over the whole range: 2000 draws reach its
		// top half.
		if hi < ceil/2 {
			t.Errorf("retry %d: largest of 2000 waits %s, want some above %s", n, hi, ceil/2)
		}
	}
}

func maxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

func TestIdempotent(t *testing.T) {
	t.Parallel()
	for m, want := range map[string]bool{"GET": true, "HEAD": true, "PUT": true, "DELETE": true, "POST": false, "PATCH": false} {
		if got := idempotent(m); got != want {
			t.Errorf("idempotent(%s) = %v, want %v", m, got, want)
		}
	}
}
