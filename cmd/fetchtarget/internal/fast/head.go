package fast

import (
	"bufio"
	"bytes"

	"golang.org/x/net/http/httpguts"
)

// maxHead bounds the request head the responder reads; a longer one is
// handed to net/http, which applies its own limit.
const maxHead = 4096

// readHead reads the next request head into r's buffer without
// consuming it. It returns the head's length when the responder serves the
// request, or 0 when net/http must. An error means the connection is done:
// the client closed it, or sent nothing in time.
func readHead(r *bufio.Reader) (n int, head, closeAfter bool, err error) {
	if _, err := r.Peek(1); err != nil {
		return 0, false, false, err
	}
	for {
		b, _ := r.Peek(r.Buffered())
		if !startsHead(b) {
			// Not a request the responder serves, perhaps not HTTP at all
			// (a TLS handshake): net/http answers at once.
			return 0, false, false, nil
		}
		if i := bytes.Index(b, crlf2); i >= 0 {
			head, closeAfter, ok := parseHead(b[:i+2])
			if !ok {
				return 0, false, false, nil
			}
			return i + 4, head, closeAfter, nil
		}
		if len(b) >= maxHead {
			return 0, false, false, nil
		}
		if _, err := r.Peek(len(b) + 1); err != nil {
			if len(b) > 0 && err != bufio.ErrBufferFull {
				// A partial head and then EOF or a timeout: net/http
				// would close without an answer too.
				return 0, false, false, err
			}
			return 0, false, false, nil
		}
	}
}

var crlf2 = []byte("\r\n\r\n")

// startsHead reports whether b could begin a request the responder serves,
// so that the wait for the rest of the head is not in vain.
func startsHead(b []byte) bool {
	for _, m := range [...]string{"GET /", "HEAD /"} {
		n := min(len(b), len(m))
		if string(b[:n]) == m[:n] {
			return true
		}
	}
	return false
}

// parseHead reports whether the responder serves the request whose head
// is b (each line ending in CRLF, the blank line excluded): a GET or HEAD of
// the default answer (see defaultTarget) in HTTP/1.1, with a Host header and
// without a body, an Expect or an Upgrade.
func parseHead(b []byte) (head, closeAfter, ok bool) {
	line, rest, found := bytes.Cut(b, crlf)
	if !found {
		return false, false, false
	}
	method, line, _ := bytes.Cut(line, space)
	target, proto, _ := bytes.Cut(line, space)
	switch {
	case string(method) == "GET":
	case string(method) == "HEAD":
		head = true
	default:
		return false, false, false
	}
	if string(proto) != "HTTP/1.1" || !defaultTarget(target) {
		return false, false, false
	}
	host := false
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, crlf)
		name, value, found := bytes.Cut(line, colon)
		value = bytes.Trim(value, " \t")
		// net/http's own rules for names and values; it answers 400 to
		// what they refuse.
		if !found || !httpguts.ValidHeaderFieldName(string(name)) || !httpguts.ValidHeaderFieldValue(string(value)) {
			return false, false, false
		}
		switch {
		case equalFold(name, "host"):
			if host || len(value) == 0 || !httpguts.ValidHostHeader(string(value)) {
				return false, false, false
			}
			host = true
		case equalFold(name, "connection"):
			for _, tok := range bytes.Split(value, comma) {
				tok = bytes.Trim(tok, " \t")
				if equalFold(tok, "close") {
					closeAfter = true
				} else if !equalFold(tok, "keep-alive") {
					// An Upgrade or a hop-by-hop header: net/http's to handle.
					return false, false, false
				}
			}
		case equalFold(name, "content-length"), equalFold(name, "transfer-encoding"),
			equalFold(name, "expect"), equalFold(name, "upgrade"):
			return false, false, false
		}
	}
	return head, closeAfter, host
}

var (
	crlf  = []byte("\r\n")
	colon = []byte(":")
	comma = []byte(",")
	space = []byte(" ")
)

// defaultTarget reports whether the request target is "/" with a query
// that leaves the default answer as it is: none of the default path's
// parameters (latency, size, status), and no escapes that could spell one.
// The benchmark's lists add key=N to every URL, which the default path
// ignores.
func defaultTarget(t []byte) bool {
	path, query, _ := bytes.Cut(t, []byte("?"))
	if string(path) != "/" {
		return false
	}
	for _, c := range query {
		if c <= ' ' || c >= 0x7f || c == '%' || c == '+' || c == '#' {
			return false
		}
	}
	for len(query) > 0 {
		var pair []byte
		pair, query, _ = bytes.Cut(query, []byte("&"))
		key, _, _ := bytes.Cut(pair, []byte("="))
		switch string(key) {
		case "latency", "size", "status":
			return false
		}
	}
	return true
}

// equalFold reports whether b is s, lower case, in ASCII case folding, as
// HTTP's tokens are compared (bytes.EqualFold also folds Unicode: "ſ" would
// match "s").
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
