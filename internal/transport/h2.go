package transport

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
)

// Values of trackedConn.proto: what ALPN negotiated on the TLS connection
// net/http made over it.
const (
	protoUnknown int32 = iota
	protoOther
	protoH2
)

// IsHTTP2 reports whether c, the connection of an httptrace GotConn hook,
// speaks HTTP/2 as ALPN negotiated it. A connection this package dialled
// keeps the answer, so asking for every request does not copy the TLS
// state each time. Safe for concurrent use.
func IsHTTP2(c net.Conn) bool {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return false
	}
	under := trackedOf(c)
	if under != nil {
		switch under.proto.Load() {
		case protoH2:
			return true
		case protoOther:
			return false
		}
	}
	cs := tc.ConnectionState()
	h2 := cs.NegotiatedProtocol == "h2"
	if under != nil && cs.HandshakeComplete {
		p := protoOther
		if h2 {
			p = protoH2
		}
		under.proto.Store(p)
	}
	return h2
}

// ResendsBounded reports whether c, the connection of an httptrace
// GotConn hook, is one of the HTTP/2 connections that a direct client keeps
// itself: a request is sent again on such connections only when the server
// did not process it, within bounds, and not by net/http on its own.
func ResendsBounded(c net.Conn) bool {
	under := trackedOf(c)
	return under != nil && under.pooled.Load()
}

// HeadError is a response head over Options.MaxHeaderBytes (HTTP/1 or
// HTTP/2), or an HTTP/2 head that net/http refused, as a connection or
// stream error whose code alone says little: a header list over
// h2HeadLimit, a single field longer than that (a COMPRESSION_ERROR, since
// HPACK decoding stops at the limit), a frame of the head far beyond it (a
// PROTOCOL_ERROR), or a head that does not decode. net/http keeps the cause
// of a COMPRESSION_ERROR or PROTOCOL_ERROR to itself, so the message gives
// both the limit and the other cause. The message names the limit as
// Options.MaxHeaderText does. Its ErrorKind method returns "protocol".
type HeadError struct {
	Limit int64 // the header limit in force
	Err   error // net/http's error
	msg   string
}

func (e *HeadError) Error() string     { return e.msg }
func (e *HeadError) Unwrap() error     { return e.Err }
func (e *HeadError) ErrorKind() string { return "protocol" }

// defaultMaxHeaderBytes is net/http's bound on a response head, over
// HTTP/1 and HTTP/2, when MaxResponseHeaderBytes is 0.
const defaultMaxHeaderBytes = 10 << 20

// limitName is how a message names the header limit: text (see
// Options.MaxHeaderText), or the limit in bytes when text is "".
func limitName(limit int64, text string) string {
	if text != "" {
		return text
	}
	return fmt.Sprintf("the limit of %d bytes", limit)
}

// headError returns err as a *HeadError when it is net/http refusing a
// response head for its size, or an HTTP/2 head it could not take, else
// nil; text names the limit (see [limitName]). Its text is fixed in
// net/http: over HTTP/1 a head over the limit reads "server response
// headers exceeded N bytes; aborted" (transport.go); in h2_bundle.go the
// connection errors print as "connection error: CODE", and a header list
// over the limit is a stream error whose cause reads "http2: response
// header list larger than advertised limit".
func headError(err error, limit int64, text string) *HeadError {
	if limit <= 0 {
		limit = defaultMaxHeaderBytes
	}
	name := limitName(limit, text)
	var msg string
	switch text := err.Error(); {
	case strings.Contains(text, "server response headers exceeded "):
		msg = "response head over " + name
	case strings.Contains(text, "response header list larger than advertised limit"):
		msg = "HTTP/2 response header list over " + name
	case strings.HasSuffix(text, "connection error: COMPRESSION_ERROR"):
		msg = fmt.Sprintf("HTTP/2 response head does not decode (COMPRESSION_ERROR): a header field over %s, or broken header compression", name)
	case strings.HasSuffix(text, "connection error: PROTOCOL_ERROR"):
		msg = fmt.Sprintf("HTTP/2 connection error: PROTOCOL_ERROR (a response head frame far over %s, or frames that break the protocol)", name)
	default:
		return nil
	}
	return &HeadError{Limit: limit, Err: err, msg: msg}
}

// h2HeadLimit is the bound net/http gets on an HTTP/2 header list (and
// each HPACK string in it) when a response head may hold limit bytes: four
// times as much, at least 64 KiB, so that a field over limit is decoded and
// the response refused alone rather than with its connection. A head
// between limit and this bound is decoded, then refused.
func h2HeadLimit(limit int64) int64 {
	if limit <= 0 {
		limit = defaultMaxHeaderBytes
	}
	return max(4*limit, 64<<10)
}

// checkH2Head refuses an HTTP/2 response whose head is over the header
// limit, counted as HTTP/2 counts a header list: each field's name and
// value and 32 bytes, the :status pseudo-header included. It closes the
// body of a response it refuses.
func (rt *roundTripper) checkH2Head(resp *http.Response) error {
	if rt.h2 == nil || resp.ProtoMajor != 2 {
		return nil
	}
	limit := rt.maxHeaderBytes
	if limit <= 0 {
		limit = defaultMaxHeaderBytes
	}
	const perField = 32
	size := int64(len(":status") + 3 + perField)
	for name, values := range resp.Header {
		for _, v := range values {
			size += int64(len(name)+len(v)) + perField
		}
	}
	if size <= limit {
		return nil
	}
	resp.Body.Close()
	return &HeadError{Limit: limit, Err: errH2HeadOverLimit,
		msg: "HTTP/2 response header list over " + limitName(limit, rt.maxHeaderText)}
}

// errH2HeadOverLimit is what a *HeadError from checkH2Head wraps.
var errH2HeadOverLimit = errors.New("http2: response header list over the limit")

// configureHTTP2 sets tr up to speak HTTP/2 on TLS connections whose ALPN
// agrees, and returns the transport that runs those connections.
//
// net/http bounds an HTTP/2 header list, and each HPACK string in it, by
// MaxResponseHeaderBytes, and a string over that bound is a
// COMPRESSION_ERROR that ends every stream on the connection, the other
// requests' included. So the HTTP/2 connections are run by a copy of tr
// whose bound is h2HeadLimit, and RoundTrip holds each HTTP/2 head to
// limit (see checkH2Head): only the response over it fails. tr hands a new
// HTTP/2 connection to the copy, which gives it write-behind before its
// first frame, and sends a request over the copy's connections when one
// of them can take it, as net/http does with its own HTTP/2 client.
//
// With pooled set, tr's HTTP/2 connections are left to the caller, which
// sets tr.TLSNextProto["h2"] (see h2Pool): the copy makes no connection of
// its own, and is not asked first.
func configureHTTP2(tr *http.Transport, limit int64, pooled bool) *http.Transport {
	tc := tr.TLSClientConfig.Clone()
	if tc == nil {
		tc = new(tls.Config)
	}
	tc.NextProtos = []string{"h2", "http/1.1"}
	tr.TLSClientConfig = tc
	var up func(string, *tls.Conn) http.RoundTripper
	alt := new(h2Alt)
	// With an "h2" entry of its own, tr does not set up net/http's HTTP/2
	// client, which Clone would otherwise do.
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{
		"h2": func(authority string, c *tls.Conn) http.RoundTripper {
			if tc := trackedOf(c); tc != nil {
				tc.writeBehind()
			}
			rt := up(authority, c)
			alt.set(rt)
			return rt
		},
	}
	h2tr := tr.Clone()
	h2tr.TLSNextProto = nil
	h2tr.MaxResponseHeaderBytes = h2HeadLimit(limit)
	// net/http installs its HTTP/2 client on first use.
	h2tr.CloseIdleConnections()
	up = h2tr.TLSNextProto["h2"]
	if up == nil {
		// HTTP/2 is off in net/http (GODEBUG=http2client=0).
		tc.NextProtos = nil
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		return nil
	}
	if !pooled {
		tr.RegisterProtocol("https", alt)
	}
	return h2tr
}

// h2Alt sends an https request over an HTTP/2 connection that can take
// it, if there is one; otherwise net/http goes on as for HTTP/1, and
// dials when it needs to.
type h2Alt struct {
	rt atomic.Pointer[h2Client]
}

// h2Client is net/http's HTTP/2 client of the HTTP/2 transport.
type h2Client struct{ http.RoundTripper }

// set keeps rt, what net/http's HTTP/2 client returned for a new
// connection: the client itself, or an error when the connection could
// not be set up.
func (a *h2Alt) set(rt http.RoundTripper) {
	if _, failed := rt.(interface{ RoundTripErr() error }); failed || a.rt.Load() != nil {
		return
	}
	a.rt.CompareAndSwap(nil, &h2Client{rt})
}

func (a *h2Alt) RoundTrip(req *http.Request) (*http.Response, error) {
	c := a.rt.Load()
	if c == nil {
		return nil, http.ErrSkipAltProtocol
	}
	resp, err := c.RoundTrip(req)
	if _, none := err.(interface{ IsHTTP2NoCachedConnError() }); none {
		return nil, http.ErrSkipAltProtocol
	}
	return resp, err
}
