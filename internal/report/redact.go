package report

import (
	"cmp"
	"net/url"
	"slices"
	"strings"
)

// Redacted is what a secret reads as in every record, message and summary.
const Redacted = "***"

// RedactURL returns raw with the password of its user info replaced by
// [Redacted], keeping the user name: "http://bob:pw@proxy:8080" reads
// "http://bob:***@proxy:8080". A URL without a password is returned as is.
//
// It scans the string rather than parsing it, so it also works on text that
// is not a valid URL. When the user info cannot be told apart from the rest
// (a password holding an unescaped "/", say) it errs towards hiding too much.
// A string without "://" is read as starting with the user info, as proxy
// settings sometimes are. Safe for concurrent use.
func RedactURL(raw string) string {
	start := 0
	if i := strings.Index(raw, "://"); i >= 0 {
		start = i + len("://")
	}
	rest := raw[start:]
	auth := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		auth = rest[:i]
	}
	at := strings.LastIndexByte(auth, '@')
	if at < 0 {
		// The authority holds no user info, unless an unescaped "/", "?" or
		// "#" in the password cut it short; a URL that parses was read right.
		at = strings.LastIndexByte(rest, '@')
		if at < 0 {
			return raw
		}
		if _, err := url.Parse(raw); err == nil {
			return raw
		}
	}
	colon := strings.IndexByte(rest[:at], ':')
	if colon < 0 || rest[colon+1:at] == Redacted {
		return raw
	}
	return raw[:start+colon+1] + Redacted + raw[start+at:]
}

// RedactHeader returns value, or [Redacted] when name (in any case) is
// Authorization, Proxy-Authorization, Cookie or Set-Cookie.
func RedactHeader(name, value string) string {
	for _, secret := range [...]string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie"} {
		if strings.EqualFold(name, secret) {
			return Redacted
		}
	}
	return value
}

// RedactText returns s with every occurrence of each non-empty secret, and
// of its percent-escaped forms as they appear in a URL's user info or query,
// replaced by [Redacted]. Longer secrets are replaced first, so a secret that
// contains another is hidden whole. It is meant for error messages that may
// echo a proxy URL or a header. Safe for concurrent use.
func RedactText(s string, secrets ...string) string {
	if s == "" {
		return s
	}
	var forms []string
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		forms = append(forms, secret)
		// url.UserPassword escapes as a URL's user info does; drop its ":".
		if e := url.UserPassword("", secret).String()[1:]; e != secret {
			forms = append(forms, e)
		}
		if e := url.QueryEscape(secret); e != secret {
			forms = append(forms, e)
		}
	}
	slices.SortFunc(forms, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	for _, f := range forms {
		s = strings.ReplaceAll(s, f, Redacted)
	}
	return s
}
