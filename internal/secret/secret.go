// Package secret owns what fetchctl treats as a secret and how it reads once
// masked: the password of a URL's user info (proxies above all), the values
// of the Authorization, Proxy-Authorization, Cookie and Set-Cookie headers,
// and any string a caller registers in a [Set]. Every record, message, log
// line and summary goes through these functions; nothing else masks.
//
// Free text is masked in two passes (see [Text]). The structured pass masks
// a secret where it stands as one, whatever its length: the password of
// every URL's user info, a known secret between ":" and "@" (user info
// without a scheme, or a URL too malformed to read), and the value of a
// secret header ("Cookie: v"). The substring pass masks a known secret of
// 6 bytes or more anywhere else, but only as a token of its own: not where
// it is part of a longer word or number. A short or common password ("1",
// "p", "proxy", "8000") is thus hidden in the user info that holds it
// without garbling addresses, ports, words, user names or other proxies'
// names.
//
// It imports no other package of fetchctl.
package secret

import (
	"cmp"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// Mask is what a secret reads as wherever fetchctl shows it.
const Mask = "***"

// IsHeader reports whether a header of this name (in any case) carries a
// secret: Authorization, Proxy-Authorization, Cookie or Set-Cookie.
func IsHeader(name string) bool {
	for _, s := range [...]string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie"} {
		if strings.EqualFold(name, s) {
			return true
		}
	}
	return false
}

// Header returns value, or [Mask] when the header name carries a secret.
func Header(name, value string) string {
	if IsHeader(name) {
		return Mask
	}
	return value
}

// HeaderLine masks the value of a "Name: value" line whose name carries a
// secret. A line without a colon is returned as is.
func HeaderLine(line string) string {
	name, val, ok := strings.Cut(line, ":")
	if !ok {
		return line
	}
	return name + ": " + Header(strings.TrimSpace(name), strings.TrimSpace(val))
}

// HeaderLineValue returns the value of a header line that carries a secret,
// read loosely ("Name: v", "Name v", "Name=v") so that a malformed line is
// covered too; "" when the line carries none.
func HeaderLineValue(line string) string {
	line = strings.TrimSpace(line)
	end := strings.IndexAny(line, ": \t=")
	if end < 0 || !IsHeader(line[:end]) {
		return ""
	}
	return strings.TrimSpace(strings.TrimLeft(line[end:], ": \t="))
}

// HeadersIn hides the value of every header in text that carries a secret
// (see [IsHeader]) where it is written as in a request or response head:
// the name, a colon, then the value up to the end of its line. The line
// ends at a CR or LF, at a "\r" or "\n" as Go quotes them, at a double
// quote (the end of a quoted head), or at the end of text. It is for text
// that quotes the bytes of a connection, as net/http's log lines do: a
// value there may be one no [Set] knows (a server's Set-Cookie), or cut
// short. Safe for concurrent use.
func HeadersIn(s string) string {
	var b strings.Builder
	done := 0 // s[:done] is in b
	for i := 0; i < len(s); i++ {
		if s[i] != ':' {
			continue
		}
		k := i
		for k > 0 && (isWordByte(s[k-1]) || s[k-1] == '-') {
			k--
		}
		name := s[k:i]
		if k > 0 && s[k-1] == '\\' && len(name) > 1 && (name[0] == 'n' || name[0] == 'r') {
			// "\r\nCookie:": the n is the quoted line break's.
			name = name[1:]
		}
		if !IsHeader(name) {
			continue
		}
		start := i + 1
		for start < len(s) && (s[start] == ' ' || s[start] == '\t') {
			start++
		}
		end := start
		for end < len(s) && s[end] != '\r' && s[end] != '\n' && s[end] != '"' &&
			!(s[end] == '\\' && end+1 < len(s) && (s[end+1] == 'r' || s[end+1] == 'n')) {
			end++
		}
		if v := s[start:end]; v == "" || v == Mask {
			continue
		}
		b.WriteString(s[done:start])
		b.WriteString(Mask)
		done = end
		i = end - 1
	}
	if done == 0 {
		return s
	}
	b.WriteString(s[done:])
	return b.String()
}

// minBare is the length from which a secret is also masked where it
// stands alone in text, not only where it stands as a secret.
const minBare = 6

// Text returns s with the secrets masked, and every URL's password (see
// [URLsIn]). A secret, as given or percent-escaped as in a URL's user info
// or query, reads as [Mask]:
//
//   - where it stands as a secret, whatever its length: as the password of
//     user info (":secret@"), or as the value of an Authorization,
//     Proxy-Authorization, Cookie or Set-Cookie header ("Cookie: secret",
//     "Cookie=secret");
//   - anywhere else only when it is at least 6 bytes long and a token of
//     its own: the text next to it on either side is not a letter, digit
//     or "_" (unless the secret's own first or last byte is not one
//     either). A secret inside a longer word or number stays, so that a
//     short or common password does not garble ports, addresses, words
//     and other proxies' names.
//
// Longer secrets are replaced first, so a secret that contains another is
// hidden whole. Safe for concurrent use.
func Text(s string, secrets ...string) string {
	if s == "" {
		return s
	}
	type form struct {
		text string
		bare bool
	}
	var forms []form
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		bare := len(secret) >= minBare
		forms = append(forms, form{secret, bare})
		// url.UserPassword escapes as a URL's user info does; drop its ":".
		if e := url.UserPassword("", secret).String()[1:]; e != secret {
			forms = append(forms, form{e, bare})
		}
		if e := url.QueryEscape(secret); e != secret {
			forms = append(forms, form{e, bare})
		}
	}
	slices.SortStableFunc(forms, func(a, b form) int { return cmp.Compare(len(b.text), len(a.text)) })
	for _, f := range forms {
		s = maskForm(s, f.text, f.bare)
	}
	return URLsIn(s)
}

// maskForm replaces the occurrences of f in s that [Text] masks.
func maskForm(s, f string, bare bool) string {
	i := strings.Index(s, f)
	if i < 0 {
		return s
	}
	var b strings.Builder
	for i >= 0 {
		j := i + len(f)
		if standsAsSecret(s, i, j) || bare && tokenEdge(s, i, f[0], true) && tokenEdge(s, j, f[len(f)-1], false) {
			b.WriteString(s[:i])
			b.WriteString(Mask)
		} else {
			b.WriteString(s[:j])
		}
		s = s[j:]
		i = strings.Index(s, f)
	}
	b.WriteString(s)
	return b.String()
}

// standsAsSecret reports whether s[i:j] is the password of user info or
// the value of a header that carries a secret.
func standsAsSecret(s string, i, j int) bool {
	if i > 0 && s[i-1] == ':' && j < len(s) && s[j] == '@' {
		return true
	}
	before := strings.TrimRight(s[:i], " \t")
	if before == s[:i] && !strings.HasSuffix(before, "=") {
		// "Cookie=v" joins without a space; "Cookie: v" has one.
		return false
	}
	before = strings.TrimRight(before, " \t:=")
	k := len(before)
	for k > 0 && (isWordByte(before[k-1]) || before[k-1] == '-') {
		k--
	}
	return IsHeader(before[k:])
}

// tokenEdge reports whether position at of s is a token boundary for a
// secret whose byte next to it is inner: start says at is where the secret
// starts.
func tokenEdge(s string, at int, inner byte, start bool) bool {
	if !isWordByte(inner) {
		return true
	}
	if start {
		return at == 0 || !isWordByte(s[at-1])
	}
	return at == len(s) || !isWordByte(s[at])
}

// isWordByte reports whether c belongs to a word: an ASCII letter or digit,
// "_", or a byte of a multi-byte UTF-8 character.
func isWordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c >= 0x80
}

// Set is the secrets a run has learnt of (proxy passwords, header values),
// for masking free text: error messages, log lines and crash reports. The
// zero value is usable; it is safe for concurrent use.
type Set struct {
	mu   sync.Mutex
	list []string
}

// Add makes secrets known, and for a password, its unescaped form too;
// empty strings are ignored.
func (s *Set) Add(secrets ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range secrets {
		if v != "" && !slices.Contains(s.list, v) {
			s.list = append(s.list, v)
		}
	}
}

// AddPassword adds the password of a URL setting (see [Password]), as
// written and unescaped.
func (s *Set) AddPassword(raw string) {
	pw := Password(raw)
	if pw == "" {
		return
	}
	s.Add(pw)
	if un, err := url.PathUnescape(pw); err == nil {
		s.Add(un)
	}
}

// List returns the secrets added so far.
func (s *Set) List() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.list)
}

// Mask returns text with the known secrets and every URL's password as
// [Mask], by the rule of [Text].
func (s *Set) Mask(text string) string {
	return Text(text, s.List()...)
}
