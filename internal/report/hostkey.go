package report

import (
	"net"
	"net/url"
	"strings"
)

// HostKey returns the key that per-host limits and the summary group by: the
// lower-case host and port of an http or https URL, with the scheme's default
// port (80, 443) when the URL names none and an IPv6 address in brackets, as
// in "example.com:443" or "[::1]:8080". It returns "" when rawURL is not an
// http or https URL with a host. Safe for concurrent use.
func HostKey(rawURL string) string {
	var buf [64]byte
	key, ok := appendHostKey(buf[:0], rawURL)
	if !ok {
		return ""
	}
	return string(key)
}

// appendHostKey appends the host key of raw to dst. The common shape (a plain
// ASCII host name or IP address) is scanned by hand without allocating;
// anything else (percent escapes, non-ASCII names, zones) goes through
// url.Parse, whose result the fast path matches.
func appendHostKey(dst []byte, raw string) ([]byte, bool) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return dst, false
	}
	var port string
	switch {
	case strings.EqualFold(scheme, "https"):
		port = "443"
	case strings.EqualFold(scheme, "http"):
		port = "80"
	default:
		return dst, false
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:]
	}
	host, explicit, fast := splitHostPortFast(rest)
	if !fast {
		return appendHostKeySlow(dst, raw)
	}
	if host == "" {
		return dst, false
	}
	if explicit != "" {
		port = explicit
	}
	start := len(dst)
	dst = append(dst, host...)
	for i := start; i < len(dst); i++ {
		if c := dst[i]; 'A' <= c && c <= 'Z' {
			dst[i] = c + ('a' - 'A')
		}
	}
	dst = append(dst, ':')
	return append(dst, port...), true
}

// splitHostPortFast splits an authority without user info into host (with
// brackets for IPv6) and port. It reports false when the authority holds
// anything it does not handle, leaving the decision to url.Parse.
func splitHostPortFast(a string) (host, port string, ok bool) {
	end := len(a)
	if i := strings.LastIndexByte(a, ':'); i >= 0 && (a[0] != '[' || i > strings.LastIndexByte(a, ']')) {
		port, end = a[i+1:], i
		for j := 0; j < len(port); j++ {
			if port[j] < '0' || port[j] > '9' {
				return "", "", false
			}
		}
	}
	host = a[:end]
	if strings.HasPrefix(host, "[") {
		if len(host) < 3 || host[len(host)-1] != ']' {
			return "", "", false
		}
		for j := 1; j < len(host)-1; j++ {
			c := host[j]
			if !isHex(c) && c != ':' && c != '.' {
				return "", "", false
			}
		}
		return host, port, true
	}
	for j := 0; j < len(host); j++ {
		c := host[j]
		if !(isHex(c) || 'g' <= c && c <= 'z' || 'G' <= c && c <= 'Z' || c == '.' || c == '-' || c == '_' || c == '~') {
			return "", "", false
		}
	}
	return host, port, true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func appendHostKeySlow(dst []byte, raw string) ([]byte, bool) {
	u, err := url.Parse(raw)
	if err != nil {
		return dst, false
	}
	key := URLHostKey(u)
	if key == "" {
		return dst, false
	}
	return append(dst, key...), true
}

// URLHostKey is [HostKey] of a parsed URL: the key the dispatcher's
// per-host slots and shards use, and the one the summary groups records
// by. The scheme is compared as url.Parse leaves it, in lower case.
func URLHostKey(u *url.URL) string {
	host := strings.ToLower(u.Hostname())
	if host == "" || u.Scheme != "http" && u.Scheme != "https" {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return net.JoinHostPort(host, port)
}
