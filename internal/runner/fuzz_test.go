package runner

import (
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/secret"
)

// FuzzParseLine checks that any line either is skipped, or is an invalid_url
// with a reason, or is an http(s) URL with a host that re-parses the same
// way; it never panics.
func FuzzParseLine(f *testing.F) {
	for _, seed := range []string{
		"https://example.com/a?b=c#d", "example.com", "  # comment", "", "\x00\xff",
		"http://[::1]:8080/x", "HTTP://EXAMPLE.COM", "ftp://x/", "https://user:pw@host/",
		"http://%zz/", "http://exa mple.com/", "https://" + strings.Repeat("a", 9000),
		"http://host:99999/", "//no-scheme/path", "mailto:a@b", "http://h/\u2028",
		"http://bob:Usec/ret1@host/", "\ufeffhttp://h/", "http://h/a b", `"http://h/"`,
		"http://h:0/", "http://h:65536/", "http://h/a\u00a0b", "u:p@h:1/",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		u, raw, skip, err := ParseLine(line)
		trimmed := strings.TrimSpace(line)
		switch {
		case skip:
			if trimmed != "" && trimmed[0] != '#' {
				t.Fatalf("skipped a line that is neither blank nor a comment: %q", line)
			}
		case err != nil:
			if u != nil {
				t.Fatalf("invalid line with a URL: %q", line)
			}
			if err.Error() == "" {
				t.Fatalf("invalid line without a reason: %q", line)
			}
			// Whatever the parser quotes, the reason never shows a password:
			// the masked form of the line is all it may draw from.
			masked := secret.URL(raw)
			if masked != raw {
				if i := strings.Index(masked, secret.Mask); i >= 0 {
					start := i
					end := len(raw) - (len(masked) - i - len(secret.Mask))
					if pw := raw[start:end]; len(pw) >= 4 && strings.Contains(err.Error(), pw) {
						t.Fatalf("reason %q shows the password %q of %q", err, pw, line)
					}
				}
			}
		default:
			if u.Scheme != "http" && u.Scheme != "https" {
				t.Fatalf("scheme %q accepted for %q", u.Scheme, line)
			}
			if u.Hostname() == "" {
				t.Fatalf("no host for %q", line)
			}
			if len(raw) > MaxURLLength+len("https://") || !utf8.ValidString(raw) {
				t.Fatalf("accepted an over-long or invalid UTF-8 line: %q", line)
			}
			for _, r := range raw {
				if unicode.IsSpace(r) {
					t.Fatalf("accepted a line holding white space: %q", line)
				}
			}
			if p := u.Port(); p != "" {
				if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
					t.Fatalf("accepted port %q in %q", p, line)
				}
			}
			if report.URLHostKey(u) == "" {
				t.Fatalf("empty host key for %q", line)
			}
		}
	})
}
