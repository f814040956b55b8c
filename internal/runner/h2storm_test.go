package runner

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/target"
	"github.com/fetchctl/fetchctl/internal/testnet"
	"github.com/fetchctl/fetchctl/internal/transport"
)

// loopbackCert is a self-signed certificate for 127.0.0.1.
func loopbackCert(t *testing.T) tls.Certificate {
	t.Helper()
	cert, err := target.LoopbackCert()
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// h2Listener listens on 127.0.0.1 for TLS connections that agree on
// HTTP/2, with a loopback certificate, for a server of frames.
func h2Listener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{loopbackCert(t)},
		NextProtos:   []string{"h2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// resettingH2Server speaks HTTP/2 on 127.0.0.1 at the frame level: it
// answers the client's preface and SETTINGS, and resets every stream with
// PROTOCOL_ERROR as soon as its HEADERS arrive, as nginx does for
// `return 444` on an http2 listener. It counts the HEADERS frames.
type resettingH2Server struct {
	code    http2.ErrCode
	url     string
	headers atomic.Int64
	conns   atomic.Int64
}

func startResettingH2Server(t *testing.T, code http2.ErrCode) *resettingH2Server {
	t.Helper()
	ln := h2Listener(t)
	s := &resettingH2Server{code: code, url: "https://" + ln.Addr().String() + "/"}
	testnet.Serve(t, ln, func(c net.Conn) {
		s.conns.Add(1)
		s.serve(c)
	})
	return s
}

func (s *resettingH2Server) serve(c net.Conn) {
	fr := testnet.H2Framer(c)
	if fr == nil {
		return
	}
	for {
		f, err := testnet.ReadH2Frame(fr)
		if err != nil {
			return
		}
		if f, ok := f.(*http2.HeadersFrame); ok {
			s.headers.Add(1)
			if err := fr.WriteRSTStream(f.StreamID, s.code); err != nil {
				return
			}
		}
	}
}

// TestH2StreamResetsAreNotAStorm: a server that resets every HTTP/2 stream
// with PROTOCOL_ERROR sees a handful of requests per attempt, not the
// endless redials of golang/go#52459, and the attempt ends at once with
// kind protocol instead of running into --timeout.
func TestH2StreamResetsAreNotAStorm(t *testing.T) {
	t.Parallel()
	srv := startResettingH2Server(t, http2.ErrCodeProtocol)
	c, err := transport.New(transport.Options{HTTP2: true, Insecure: true, KeepAlive: 30 * time.Second, PerHost: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	const timeout = 20 * time.Second
	ok, _ := ParseStatusSet("200-299")
	opts := Options{
		Limit: 1, PerHost: 1, Routes: []Route{{Client: c}},
		Timeout: timeout, OKStatus: ok, RetryOn: mustRetryOn(t, "429,5xx,timeout,reset,connect"), Retries: 1,
		Backoff: time.Millisecond, KeepAlive: true,
	}
	recs, err := runJobs(t, context.Background(), opts, []string{srv.url})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	r := recs[0]
	if r.Error == nil || r.Error.Kind != report.KindProtocol {
		t.Errorf("error %+v, want kind protocol", r.Error)
	} else if !strings.Contains(r.Error.Message, "PROTOCOL_ERROR") {
		// A direct client's own HTTP/2 connections do not send a
		// reset request again: the message is the reset.
		t.Errorf("message %q, want it to name the reset (PROTOCOL_ERROR)", r.Error.Message)
	}
	if r.Attempts != 1 {
		t.Errorf("%d attempts, want 1: protocol is not retried by default", r.Attempts)
	}
	t.Logf("%d requests on %d connections: %s", srv.headers.Load(), srv.conns.Load(), fmt.Sprint(r.Error))
	if n := srv.headers.Load(); n > 5 {
		t.Errorf("the server saw %d requests (on %d connections) in one attempt, want at most 5", n, srv.conns.Load())
	}
	if r.DurationMS >= float64(timeout/time.Millisecond)/2 {
		t.Errorf("the attempt took %.0fms, near --timeout %s", r.DurationMS, timeout)
	}
}

// TestClassifyH2StreamReset: a stream reset by the server, which net/http
// reports with its unexported stream error type, is kind protocol.
func TestClassifyH2StreamReset(t *testing.T) {
	t.Parallel()
	// net/http retries PROTOCOL_ERROR and REFUSED_STREAM resets itself;
	// others come back at once.
	srv := startResettingH2Server(t, http2.ErrCodeInternal)
	c, err := transport.New(transport.Options{HTTP2: true, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	resp, err := c.Get(srv.url)
	if err == nil {
		resp.Body.Close()
		t.Fatal("a reset stream gave a response")
	}
	kind, msg := Classify(err)
	if kind != report.KindProtocol || !strings.Contains(msg, "INTERNAL_ERROR") {
		t.Errorf("Classify(%v) = %s, %q; want protocol naming the code", err, kind, msg)
	}
}
