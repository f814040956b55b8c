package runner

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/transport"
)

// kinder is implemented by errors that know their contract kind: invalid
// lines here, proxy failures and too many redirects in the transport.
type kinder interface {
	ErrorKind() string
}

// bodyTooLargeError is the failure of a body longer than --max-body; text
// is the limit as the user wrote it, "" to give it in bytes.
type bodyTooLargeError struct {
	limit int64
	text  string
}

func (e *bodyTooLargeError) Error() string {
	if e.text == "" {
		return fmt.Sprintf("body is larger than --max-body %d bytes", e.limit)
	}
	return "body is larger than --max-body " + e.text
}

func (e *bodyTooLargeError) ErrorKind() string { return report.KindBodyTooLarge }

// Classify maps a failed attempt's error to one of the contract's error kinds
// and a message a person can act on. The message may quote what the server
// sent, so it is cut to [report.MaxServerText].
//
// A header line of name characters alone without a colon is taken for a
// head cut off by a broken connection (kind reset); use [ClassifyHead] when
// it is known whether the connection's read side ended.
func Classify(err error) (kind, message string) {
	return ClassifyHead(err, true)
}

// ClassifyHead is [Classify] for an attempt whose connection's read side
// had ended (the peer closed or broke it) or not. A header line without a
// colon on a connection still open was sent whole, and is a malformed head
// (kind protocol) whatever it holds.
func ClassifyHead(err error, readEnded bool) (kind, message string) {
	kind = classifyKind(err, readEnded)
	message = causeText(err)
	if kind == report.KindReset && message == io.EOF.Error() && errors.Is(err, io.EOF) {
		// net/http passes on a bare io.EOF when the server closed the
		// connection before a byte of its answer (or of the TLS handshake).
		message = "the server closed the connection without answering"
	}
	if kind == report.KindProtocol {
		// net/http says "transport connection broken" of a head it
		// refused, since it then drops the connection: the head is what
		// went wrong, and the message says that alone.
		message = strings.TrimPrefix(message, "net/http: HTTP/1.x transport connection broken: ")
		message = strings.TrimPrefix(message, "net/http: ")
		message = strings.TrimPrefix(message, "http: ")
	}
	return kind, report.Clip(message)
}

func classifyKind(err error, readEnded bool) string {
	var k kinder
	if errors.As(err, &k) {
		return k.ErrorKind()
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return report.KindDNS
	}
	if isTLS(err) {
		return report.KindTLS
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		switch opErr.Op {
		case "proxyconnect", "socks connect":
			return report.KindProxy
		case "dial":
			return report.KindConnect
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return report.KindTimeout
	}
	if isProtocol(err, readEnded) {
		return report.KindProtocol
	}
	if isReset(err) {
		return report.KindReset
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return report.KindTimeout
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return report.KindConnect
	}
	return report.KindOther
}

func isTLS(err error) bool {
	var (
		recErr   tls.RecordHeaderError
		alertErr tls.AlertError
		verErr   *tls.CertificateVerificationError
		unkErr   x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		certErr  x509.CertificateInvalidError
	)
	if errors.As(err, &recErr) || errors.As(err, &alertErr) || errors.As(err, &verErr) ||
		errors.As(err, &unkErr) || errors.As(err, &hostErr) || errors.As(err, &certErr) {
		return true
	}
	// A plain-http server's answer to the handshake: net/http (and the
	// transport's HTTP/1.1 path, which mirrors it) reports the record
	// header that starts with "HTTP/" as ErrSchemeMismatch.
	if errors.Is(err, http.ErrSchemeMismatch) || remoteAlert(err) {
		return true
	}
	// net/http reports a handshake that overran TLSHandshakeTimeout with an
	// unexported type whose text is fixed (net/http transport.go).
	return strings.Contains(err.Error(), "TLS handshake timeout")
}

// remoteAlert reports an alert the peer sent to end the TLS connection (a
// client certificate required, no protocol version or cipher suite in
// common): crypto/tls returns it as a *net.OpError whose Op is "remote
// error", wrapping its unexported alert type, whose text starts "tls: "
// (crypto/tls conn.go and alert.go).
func remoteAlert(err error) bool {
	for err != nil {
		var oe *net.OpError
		if !errors.As(err, &oe) {
			return false
		}
		if oe.Op == "remote error" && oe.Err != nil && strings.HasPrefix(oe.Err.Error(), "tls: ") {
			return true
		}
		err = oe.Err
	}
	return false
}

// isProtocol reports a response head that net/http refused (malformed, or
// longer than the transport's MaxResponseHeaderBytes over HTTP/1 or as an
// HTTP/2 header list) and an HTTP/2 stream that the server reset. A line
// that may be a head cut off (see cutInName) is one only when readEnded.
func isProtocol(err error, readEnded bool) bool {
	var pe textproto.ProtocolError
	if errors.As(err, &pe) {
		return !readEnded || !cutInName(string(pe))
	}
	if _, ok := transport.StreamErrorCode(err); ok {
		return true
	}
	msg := err.Error()
	for _, m := range malformedHead {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

// malformedHead holds the fixed text of the errors, of unexported types or
// made with fmt.Errorf, by which net/http refuses a response head. Over
// HTTP/1 they come wrapped in "transport connection broken", as a broken
// connection does, since net/http then drops the connection.
var malformedHead = []string{
	"server response headers exceeded", // transport.go
	"malformed HTTP ",                  // response.go: response, status code, version
	// transfer.go: the head's Content-Length, Transfer-Encoding and
	// Trailer, which say where the body ends.
	"bad Content-Length ",
	"invalid empty Content-Length ",
	"message cannot contain multiple Content-Length headers",
	"unsupported transfer encoding: ",
	"too many transfer encodings: ",
	"bad trailer key ",
	"response header list larger", // h2_bundle.go
}

// cutInName reports a textproto "missing colon" error on a short line of
// header-name characters alone: what a head cut off inside a header name
// leaves (bufio hands over the bytes before the peer's FIN or RST without
// an error), so the connection broke rather than the server sending a
// malformed line.
func cutInName(msg string) bool {
	const prefix = "malformed MIME header: missing colon: "
	q, ok := strings.CutPrefix(msg, prefix)
	if !ok || len(q) > 256 {
		return false
	}
	line, err := strconv.Unquote(q)
	if err != nil {
		return false
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func isReset(err error) bool {
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	// net/http reports a peer that hung up before answering, HTTP/2
	// stream resets, and an HTTP/2 connection that ended under a request
	// (closed after a failed write, lost, or closed after a GOAWAY) with
	// unexported error types whose text is fixed (net/http transport.go
	// and h2_bundle.go).
	msg := err.Error()
	return strings.Contains(msg, "server closed") || strings.Contains(msg, "connection reset") ||
		strings.Contains(msg, "transport connection broken") ||
		strings.Contains(msg, "stream error") || strings.Contains(msg, "unexpected EOF") ||
		transport.HTTP2ConnEnded(err)
}

// causeText is err's text without the *url.Error wrapper, whose method and
// URL the record already shows: the cause alone.
func causeText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}
