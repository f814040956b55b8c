package report

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends r to dst as one JSON object, without a newline, and
// returns the extended slice. The bytes are those encoding/json produces for
// the struct tags of [Record] (same field order and omitempty rules, no HTML
// escaping), with three normalisations:
//
//   - durations (duration_ms and every *_ms, wait_ms and retry_after) are
//     rounded to 0.001; one held in a float64 with omitempty counts as
//     empty when it rounds to 0, one held in a pointer is written whenever
//     the pointer is set; NaN and infinities, which JSON cannot carry, are
//     written as 0;
//   - time is r.Time in UTC, RFC 3339 with nanoseconds; a time outside the
//     years 0 to 9999 is written as the zero time;
//   - strings are escaped as encoding/json does: invalid UTF-8 becomes
//     \ufffd, and <, > and & are left as they are.
//
// It does not allocate beyond growing dst, and is safe for concurrent use on
// distinct dst slices. A nil r is written as null.
func AppendJSON(dst []byte, r *Record) []byte {
	if r == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, `{"url":`...)
	dst = appendString(dst, r.URL)
	dst = append(dst, `,"line":`...)
	dst = strconv.AppendInt(dst, r.Line, 10)
	if r.Input != "" {
		dst = append(dst, `,"input":`...)
		dst = appendString(dst, r.Input)
	}
	if r.OK {
		dst = append(dst, `,"ok":true`...)
	} else {
		dst = append(dst, `,"ok":false`...)
	}
	if r.Status != 0 {
		dst = append(dst, `,"status":`...)
		dst = strconv.AppendInt(dst, int64(r.Status), 10)
	}
	if r.FinalURL != "" {
		dst = append(dst, `,"final_url":`...)
		dst = appendString(dst, r.FinalURL)
	}
	if r.Proto != "" {
		dst = append(dst, `,"proto":`...)
		dst = appendString(dst, r.Proto)
	}
	dst = append(dst, `,"bytes":`...)
	dst = strconv.AppendInt(dst, r.Bytes, 10)
	if r.ContentType != "" {
		dst = append(dst, `,"content_type":`...)
		dst = appendString(dst, r.ContentType)
	}
	if r.ContentEncoding != "" {
		dst = append(dst, `,"content_encoding":`...)
		dst = appendString(dst, r.ContentEncoding)
	}
	dst = append(dst, `,"attempts":`...)
	dst = strconv.AppendInt(dst, int64(r.Attempts), 10)
	dst = append(dst, `,"duration_ms":`...)
	dst = appendFloat(dst, roundMS(r.DurationMS))
	if t := r.Timings; t != nil {
		dst = appendTimings(dst, t)
	}
	if e := r.Error; e != nil {
		dst = append(dst, `,"error":{"kind":`...)
		dst = appendString(dst, e.Kind)
		dst = append(dst, `,"message":`...)
		dst = appendString(dst, e.Message)
		dst = append(dst, '}')
	}
	if len(r.History) > 0 {
		dst = append(dst, `,"history":[`...)
		for i := range r.History {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendAttempt(dst, &r.History[i])
		}
		dst = append(dst, ']')
	}
	if r.SHA256 != "" {
		dst = append(dst, `,"sha256":`...)
		dst = appendString(dst, r.SHA256)
	}
	if r.BodyFile != "" {
		dst = append(dst, `,"body_file":`...)
		dst = appendString(dst, r.BodyFile)
	}
	dst = appendProxyCost(dst, r.Proxy, r.Blocked, r.BytesOut, r.BytesIn)
	dst = append(dst, `,"time":"`...)
	dst = appendTime(dst, r.Time)
	return append(dst, `"}`...)
}

func appendTimings(dst []byte, t *Timings) []byte {
	dst = append(dst, `,"timings":{`...)
	// Every member before "reused" is optional, so each one after the first
	// carries the comma.
	sep := false
	dst, sep = appendOptMS(dst, sep, `"dns_ms":`, t.DNSMS)
	dst, sep = appendOptMS(dst, sep, `"connect_ms":`, t.ConnectMS)
	dst, sep = appendOptMS(dst, sep, `"tls_ms":`, t.TLSMS)
	dst, sep = appendOptMS(dst, sep, `"ttfb_ms":`, t.TTFBMS)
	if sep {
		dst = append(dst, ',')
	}
	if t.Reused {
		dst = append(dst, `"reused":true}`...)
	} else {
		dst = append(dst, `"reused":false}`...)
	}
	return dst
}

// appendOptMS writes the member name and *v when v is not nil, preceded by a
// comma when sep says a member came before. It reports whether one has now.
func appendOptMS(dst []byte, sep bool, name string, v *float64) ([]byte, bool) {
	if v == nil {
		return dst, sep
	}
	if sep {
		dst = append(dst, ',')
	}
	dst = append(dst, name...)
	return appendFloat(dst, roundMS(*v)), true
}

func appendAttempt(dst []byte, a *Attempt) []byte {
	dst = append(dst, '{')
	if a.Status != 0 {
		dst = append(dst, `"status":`...)
		dst = strconv.AppendInt(dst, int64(a.Status), 10)
		dst = append(dst, ',')
	}
	if a.Error != "" {
		dst = append(dst, `"error":`...)
		dst = appendString(dst, a.Error)
		dst = append(dst, ',')
	}
	dst = append(dst, `"ms":`...)
	dst = appendFloat(dst, roundMS(a.MS))
	dst, _ = appendOptMS(dst, true, `"wait_ms":`, a.WaitMS)
	dst, _ = appendOptMS(dst, true, `"retry_after":`, a.RetryAfter)
	dst = appendProxyCost(dst, a.Proxy, a.Blocked, a.BytesOut, a.BytesIn)
	return append(dst, '}')
}

// appendProxyCost writes the proxy members that a record and an attempt
// share, each preceded by a comma, those that are empty left out.
func appendProxyCost(dst []byte, proxy string, blocked bool, out, in int64) []byte {
	if proxy != "" {
		dst = append(dst, `,"proxy":`...)
		dst = appendString(dst, proxy)
	}
	if blocked {
		dst = append(dst, `,"blocked":true`...)
	}
	if out != 0 {
		dst = append(dst, `,"bytes_out":`...)
		dst = strconv.AppendInt(dst, out, 10)
	}
	if in != 0 {
		dst = append(dst, `,"bytes_in":`...)
		dst = strconv.AppendInt(dst, in, 10)
	}
	return dst
}

// roundMS rounds a duration in milliseconds to 0.001 (a microsecond), maps
// NaN and infinities to 0 and negative zero to zero. Past 1e12 ms (about 31
// years) a float64 no longer holds three exact decimals, so the value is kept.
func roundMS(v float64) float64 {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return 0
	case math.Abs(v) < 1e12:
		v = math.Round(v*1000) / 1000
	}
	if v == 0 {
		return 0 // drops the sign of -0
	}
	return v
}

// appendFloat writes v as encoding/json does: like strconv's shortest 'f'
// form, switching to an exponent only for very large or very small values.
// Dividing an integer count of microseconds by 1000 yields the float64
// nearest to a three-decimal number, so the shortest form has at most three
// decimals.
func appendFloat(dst []byte, v float64) []byte {
	abs := math.Abs(v)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		dst = strconv.AppendFloat(dst, v, 'e', -1, 64)
		// encoding/json writes e-7, not e-07.
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
		return dst
	}
	return strconv.AppendFloat(dst, v, 'f', -1, 64)
}

// appendTime writes t in UTC as RFC 3339 with nanoseconds. encoding/json
// refuses years outside 0 to 9999, and so does the decoder, so such a time is
// written as the zero time rather than as text no reader would accept.
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		t = time.Time{}
	}
	return t.AppendFormat(dst, time.RFC3339Nano)
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a quoted JSON string, escaping exactly what
// encoding/json escapes when HTML escaping is off.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		// U+2028 and U+2029 are valid in JSON but end a line in JavaScript;
		// encoding/json always escapes them, and so do we.
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
