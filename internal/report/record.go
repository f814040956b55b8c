// Package report owns what run, summarize and --resume share: the NDJSON record
// type and its encoding, the line-atomic writer, the streaming summary and the
// reader of result files.
//
// It imports no internal package but secret, and knows nothing of flags,
// terminals or the network.
package report

import (
	"time"
	"unicode/utf8"
)

// Error kinds, as the contract names them.
const (
	KindInvalidURL = "invalid_url"
	KindDNS        = "dns"
	KindConnect    = "connect"
	KindTLS        = "tls"
	KindTimeout    = "timeout"
	KindReset      = "reset"
	KindProxy      = "proxy"
	// KindBlocked is an answer, through a proxy, by which the target said
	// it blocked the exit (--rotate-on, --block-pattern).
	KindBlocked      = "blocked"
	KindRedirect     = "redirect"
	KindBodyTooLarge = "body_too_large"
	KindStatus       = "status"
	KindProtocol     = "protocol" // a malformed or oversized response head, an HTTP/2 stream reset
	KindOther        = "other"
)

// MaxServerText bounds, in bytes, a string that comes from a server (a
// content type, a location, an error quoting the server's bytes) in
// records, messages and log lines.
const MaxServerText = 1 << 10

// Clip returns s cut to at most [MaxServerText] bytes, without splitting a
// UTF-8 sequence, with "..." after a cut. Anything a server sent goes
// through it before a record, message or log line holds it.
func Clip(s string) string {
	if len(s) <= MaxServerText {
		return s
	}
	n := MaxServerText
	for n > 0 && n > MaxServerText-utf8.UTFMax && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// Record is the outcome of one input URL: one NDJSON line. Field names and
// presence rules are the contract's. The zero value encodes as a record with
// ok false and no optional fields.
type Record struct {
	URL         string `json:"url"`
	Line        int64  `json:"line"`
	Input       string `json:"input,omitempty"`
	OK          bool   `json:"ok"`
	Status      int    `json:"status,omitempty"`
	FinalURL    string `json:"final_url,omitempty"`
	Proto       string `json:"proto,omitempty"`
	Bytes       int64  `json:"bytes"`
	ContentType string `json:"content_type,omitempty"`
	// ContentEncoding is the response's Content-Encoding when the body was
	// kept as received, not decoded: Bytes, SHA256 and BodyFile are then
	// of the encoded body.
	ContentEncoding string    `json:"content_encoding,omitempty"`
	Attempts        int       `json:"attempts"`
	DurationMS      float64   `json:"duration_ms"`
	Timings         *Timings  `json:"timings,omitempty"`
	Error           *Error    `json:"error,omitempty"`
	History         []Attempt `json:"history,omitempty"`
	SHA256          string    `json:"sha256,omitempty"`
	BodyFile        string    `json:"body_file,omitempty"`
	Proxy           string    `json:"proxy,omitempty"`
	// Blocked: the last attempt was blocked by the target (KindBlocked).
	Blocked bool `json:"blocked,omitempty"`
	// BytesOut and BytesIn are the bytes on the wire of every attempt made
	// through a proxy, TLS and the proxy's own exchange (CONNECT, SOCKS5)
	// included: what the pool bills. Over an HTTP/2 connection that
	// several requests share, each attempt takes the bytes the connection
	// carried since the last one took them: the records' sum is exact, a
	// record's own figure a share.
	BytesOut int64     `json:"bytes_out,omitempty"`
	BytesIn  int64     `json:"bytes_in,omitempty"`
	Time     time.Time `json:"time"`

	// What follows travels with a record from the dispatcher to the
	// summary and is not written: a record read back has the zero values.

	// HostKey is the URL's [HostKey] as the dispatcher computed it, ""
	// when not known; the summary computes it from URL then.
	HostKey string `json:"-"`
	// HostLimit is the host's adaptive concurrency limit when the record
	// was made, 0 when the limit is not adaptive.
	HostLimit int `json:"-"`
}

// Timings are the phases of the last attempt, from net/http/httptrace. A nil
// pointer field was not measured (a reused connection has no dial, say).
type Timings struct {
	DNSMS     *float64 `json:"dns_ms,omitempty"`
	ConnectMS *float64 `json:"connect_ms,omitempty"`
	TLSMS     *float64 `json:"tls_ms,omitempty"`
	TTFBMS    *float64 `json:"ttfb_ms,omitempty"`
	Reused    bool     `json:"reused"`
}

// Error says why a record is not ok.
type Error struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// Attempt is one entry of a record's history.
type Attempt struct {
	Status int     `json:"status,omitempty"`
	Error  string  `json:"error,omitempty"`
	MS     float64 `json:"ms"`
	// WaitMS is the wait before the next attempt, 0 included; nil on the
	// last attempt. RetryAfter is the Retry-After the server sent, in
	// seconds, 0 included; nil when it sent none. Records written before
	// these could be 0 leave out a 0 wait; they read as nil.
	WaitMS     *float64 `json:"wait_ms,omitempty"`
	RetryAfter *float64 `json:"retry_after,omitempty"`
	// Proxy names the proxy that carried the attempt, "" for none.
	Proxy    string `json:"proxy,omitempty"`
	Blocked  bool   `json:"blocked,omitempty"`
	BytesOut int64  `json:"bytes_out,omitempty"`
	BytesIn  int64  `json:"bytes_in,omitempty"`
}
