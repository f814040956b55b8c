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

// URL returns raw with the password of its user info replaced by [Mask],
// keeping the user name: "http://bob:pw@proxy:8080" reads
// "http://bob:***@proxy:8080". A URL inside it (in its query, say:
// "?next=http://u:pw@h/") has its password masked too, as [URLsIn] and
// [Text] mask it in a line, so that a record and a message about it show
// the URL alike. So has a URL inside it that is percent-encoded, once or
// more, as a query value usually is, the encoding around the password
// kept: "?next=http%3A%2F%2Fu%3Apw%40h%2F" reads
// "?next=http%3A%2F%2Fu%3A***%40h%2F". A URL without a password is
// returned as is.
//
// It scans the string rather than parsing it, so it also works on text that
// is not a valid URL. When the user info cannot be told apart from the rest
// (a password holding an unescaped "/", say) it errs towards hiding too much.
// A string without "://" is read as starting with the user info, as proxy
// settings sometimes are. A session placeholder in the user name,
// {session:N}, is kept whole. Safe for concurrent use.
func URL(raw string) string {
	return userInfo(inner(raw, strings.Index(raw, "://")))
}

// inner masks the password of every URL inside s: one that starts at a
// "://" of s other than the one at index outer (-1 for none), or at a
// percent-encoded "://" (see [encodedUserInfo]).
func inner(s string, outer int) string {
	// Right to left, so that an inner URL is masked before the one around
	// it is read.
	for i := len(s) - 1; i >= 0; i-- {
		switch s[i] {
		case ':':
			if !strings.HasPrefix(s[i:], "://") {
				s = encodedUserInfo(s, i)
			} else if i != outer {
				s = s[:i] + userInfo("x" + s[i:])[1:]
			}
		case '%':
			s = encodedUserInfo(s, i)
		}
	}
	return s
}

// userInfo is [URL] for the URL that raw starts with alone.
func userInfo(raw string) string {
	start := 0
	if i := strings.Index(raw, "://"); i >= 0 {
		start = i + len("://")
	} else {
		start = oneSlash(raw)
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
	colon := userColon(rest[:at])
	if colon < 0 || rest[colon+1:at] == Mask {
		return raw
	}
	return raw[:start+colon+1] + Mask + raw[start+at:]
}

// encodedUserInfo masks the password of a percent-encoded URL whose "://"
// starts at s[i:], and returns s with it masked, or as is when no such URL
// with a password starts there. Such a URL is one inside another, encoded
// as a query value ("http%3A%2F%2Fu%3Apw%40h%2F"), the hex digits in
// either case, or encoded twice or more ("http%253A%252F%252F..."); its
// ":" of its "://" sets how many times. The user info's ":" and "@", the
// slashes after the scheme and the "/", "?" or "#" that ends the authority
// are read encoded as many times or fewer (Python's quote leaves "/" as it
// is: "http%3A//u%3Apw%40h/"); a character encoded more times belongs to
// the user name or password. The URL ends where the value that holds it
// does: at "&", "#", white space or a quote encoded fewer times. As in
// [userInfo], a password that holds an unencoded "/", "?" or "#" is masked
// up to the last "@" (encoded as many times as the ":") when the URL does
// not parse otherwise.
func encodedUserInfo(s string, i int) string {
	c, level, n := unit(s, i)
	if c != ':' || level == 0 {
		return s // a plain "://" is userInfo's
	}
	j := i + n
	for range 2 {
		if j >= len(s) {
			return s
		}
		// A "/" encoded more times than the ":" is not this URL's, but
		// that of a password after a user name: "u%3A%252F%252Fpw".
		c, l, n := unit(s, j)
		if c != '/' || l > level {
			return s
		}
		j += n
	}
	start := j
	end, auth := len(s), -1
	for k := start; k < len(s); {
		c, l, n := unit(s, k)
		if l < level && strings.IndexByte("&#\"'<> \t\r\n", c) >= 0 {
			end = k
			break
		}
		if auth < 0 && l <= level && (c == '/' || c == '?' || c == '#') {
			auth = k
		}
		k += n
	}
	if auth < 0 {
		auth = end
	}
	at, _ := find(s, start, auth, level, '@', true)
	if at < 0 {
		// No user info, unless an unencoded "/", "?" or "#" in the
		// password cut the authority short; a URL that parses was read
		// right.
		// That "@" is encoded as many times as the "://": one encoded
		// fewer times belongs to the URL around this one.
		if at, _ = find(s, auth, end, level, '@', true); at < 0 {
			return s
		}
		if _, l, _ := unit(s, at); l != level {
			return s
		}
		d := s[i:end]
		var err error
		for range level {
			if d, err = url.PathUnescape(d); err != nil {
				break
			}
		}
		if err == nil {
			if _, err = url.Parse("x" + d); err == nil {
				return s
			}
		}
	}
	colon, n := find(s, start, at, level, ':', false)
	if colon < 0 || s[colon+n:at] == Mask {
		return s
	}
	return s[:colon+n] + Mask + s[at:]
}

// find returns the index in s[from:to] of the first (or the last) c
// encoded level times or fewer, and the length of its encoding; -1 for
// none.
func find(s string, from, to, level int, c byte, last bool) (at, n int) {
	at = -1
	for k := from; k < to; {
		d, l, m := unit(s, k)
		if d == c && l <= level {
			at, n = k, m
			if !last {
				break
			}
		}
		k += m
	}
	return at, n
}

// unit reads the character that s[i:] starts with and how many times it is
// percent-encoded: "a" is 'a' encoded 0 times, "%3A" and "%3a" are ':'
// once, "%253A" ':' twice, and so on. n is the length of the encoding. A
// "%" without two hex digits after it is itself, encoded 0 times.
func unit(s string, i int) (c byte, level, n int) {
	if s[i] != '%' {
		return s[i], 0, 1
	}
	c = '%'
	for j := i + 1; j+1 < len(s) && isHex(s[j]) && isHex(s[j+1]); j += 2 {
		c = unhex(s[j])<<4 | unhex(s[j+1])
		level++
		n = j + 2 - i
		if c != '%' {
			break
		}
	}
	if level == 0 {
		return '%', 0, 1
	}
	return c, level, n
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// oneSlash returns where the user info would start in s when s starts with
// a scheme and a colon and one slash ("https:/user:pw@host/", a link cut
// short), else 0. Such a string parses as a URL whose path holds the user
// info, so it would not be masked as one.
func oneSlash(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		case c == ':' && i > 0:
			if strings.HasPrefix(s[i+1:], "/") {
				return i + 2
			}
			return 0
		default:
			return 0
		}
	}
	return 0
}

// URLOf is [URL] for a parsed URL; it returns "" for nil. A password that is
// present but empty is masked too.
func URLOf(u *url.URL) string {
	if u == nil {
		return ""
	}
	return URL(u.String())
}

// URLsIn hides the password of every URL in free text. A URL runs from its
// scheme's "://" to the next white space or quote; a URL inside another (in
// its query, say), percent-encoded or not, is masked as well (see [URL]).
func URLsIn(s string) string {
	if !strings.Contains(s, "://") && !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		end := strings.IndexAny(s, " \t\r\n\"'`")
		if end < 0 {
			end = len(s)
		}
		b.WriteString(inner(s[:end], -1))
		if end < len(s) {
			b.WriteByte(s[end])
			end++
		}
		s = s[end:]
	}
	return b.String()
}

// Password returns the password of a URL, or, when raw does not parse, what
// sits between the first ':' and the last '@' after its scheme: a malformed
// proxy setting still has its secret found. It returns "" for none.
func Password(raw string) string {
	rest := strings.TrimSpace(raw)
	if u, err := url.Parse(rest); err == nil && strings.Contains(rest, "://") {
		pw, _ := u.User.Password()
		return pw
	}
	if i := strings.Index(rest, "://"); i >= 0 {
		rest = rest[i+3:]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	colon := userColon(rest[:at])
	if colon < 0 {
		return ""
	}
	return rest[:at][colon+1:]
}

// userColon returns the index of the ':' that ends the user name of user
// info, or -1. The colon of a session placeholder written in the user name,
// {session:N} with N digits, is not that one.
func userColon(userinfo string) int {
	const open = "{session:"
	for i := 0; i < len(userinfo); i++ {
		if userinfo[i] != ':' {
			continue
		}
		if start := i + 1 - len(open); start >= 0 && userinfo[start:i+1] == open {
			j := i + 1
			for j < len(userinfo) && '0' <= userinfo[j] && userinfo[j] <= '9' {
				j++
			}
			if j > i+1 && j < len(userinfo) && userinfo[j] == '}' {
				i = j
				continue
			}
		}
		return i
	}
	return -1
}

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
