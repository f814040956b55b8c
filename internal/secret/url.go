package secret

import (
	"net/url"
	"strings"
)

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
