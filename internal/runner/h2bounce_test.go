package runner

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/testnet"
	"github.com/fetchctl/fetchctl/internal/transport"
)

// startStreamLimitServer is net/http's HTTP/2 server on 127.0.0.1 that
// lets each connection carry two streams at once. The streams a client
// opens before it has read that limit are refused (REFUSED_STREAM), as
// nginx does with http2_max_concurrent_streams.
func startStreamLimitServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
	srv.EnableHTTP2 = true
	srv.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 2}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{loopbackCert(t)}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// goAwayServer speaks HTTP/2 at the frame level and ends each connection
// with a GOAWAY. With code NO_ERROR it rotates connections as nginx does
// with keepalive_requests: a connection answers its first perConn
// requests, sends GOAWAY with the last of them as its last stream after
// the perConn-th one arrives, and leaves the streams above it
// unprocessed, for the client to send again elsewhere. With perConn 0 the
// first HEADERS of a connection get a GOAWAY with code and last stream 0:
// nothing on the connection is processed. It counts connections and
// HEADERS frames.
type goAwayServer struct {
	perConn int
	code    http2.ErrCode
	// early sends the GOAWAY when the perConn-th request arrives, before
	// its answer, which comes delay later (as nginx does with
	// keepalive_requests).
	early    bool
	delay    time.Duration
	url      string
	answered atomic.Int64
	headers  atomic.Int64
	conns    atomic.Int64
}

func startGoAwayServer(t *testing.T, perConn int, code http2.ErrCode) *goAwayServer {
	t.Helper()
	ln := h2Listener(t)
	s := &goAwayServer{perConn: perConn, code: code, url: "https://" + ln.Addr().String() + "/"}
	testnet.Serve(t, ln, func(c net.Conn) {
		s.conns.Add(1)
		s.serve(c)
	})
	return s
}

func (s *goAwayServer) serve(c net.Conn) {
	fr := testnet.H2Framer(c)
	if fr == nil {
		return
	}
	var (
		head  bytes.Buffer
		enc   = hpack.NewEncoder(&head)
		n     int
		going bool // GOAWAY sent: later streams are never processed
	)
	for {
		f, err := testnet.ReadH2Frame(fr)
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.HeadersFrame:
			s.headers.Add(1)
			if going {
				continue
			}
			if s.perConn == 0 {
				going = true
				if fr.WriteGoAway(0, s.code, nil) != nil {
					return
				}
				continue
			}
			n++
			if s.early && n == s.perConn {
				going = true
				if fr.WriteGoAway(f.StreamID, s.code, nil) != nil {
					return
				}
				time.Sleep(s.delay) // the server's latency
			}
			head.Reset()
			_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
			if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, BlockFragment: head.Bytes(), EndHeaders: true}) != nil ||
				fr.WriteData(f.StreamID, true, []byte("ok")) != nil {
				return
			}
			s.answered.Add(1)
			if n == s.perConn && !s.early {
				going = true
				if fr.WriteGoAway(f.StreamID, s.code, nil) != nil {
					return
				}
			}
		}
	}
}

// h2Opts are the options of a run at perHost over HTTP/2 with the given
// timeout and one retry, on a client of its own.
func h2Opts(t *testing.T, perHost int, timeout time.Duration) Options {
	t.Helper()
	c, err := transport.New(transport.Options{HTTP2: true, Insecure: true, KeepAlive: 30 * time.Second, PerHost: perHost})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	ok, _ := ParseStatusSet("200-299")
	return Options{
		Limit: perHost, PerHost: perHost, Routes: []Route{{Client: c}},
		Timeout: timeout, OKStatus: ok, RetryOn: mustRetryOn(t, "429,5xx,timeout,reset,connect"), Retries: 1,
		Backoff: time.Millisecond, KeepAlive: true,
	}
}

// h2Lines are n URLs on base, each with a query of its own.
func h2Lines(base string, n int) []string {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("%s?i=%d", base, i)
	}
	return lines
}

// TestH2RefusedStreamsAreSentAgain: a server that refuses the streams it
// does not process, because they are over its limit of concurrent streams
// or above the last stream of its GOAWAY, loses no URL, at any --per-host.
// Such a request is sent again, as often as the server refuses it without
// processing it; those sends are not requests the server left unanswered,
// and do not stop the attempt as a server that resets every stream does
// (TestH2StreamResetsAreNotAStorm).
func TestH2RefusedStreamsAreSentAgain(t *testing.T) {
	t.Parallel()
	limited := startStreamLimitServer(t)
	rotating := startGoAwayServer(t, 10, http2.ErrCodeNo)
	// One request a connection, GOAWAY before its answer, which takes
	// 20ms: the requests turned away meanwhile have seen no answer yet.
	single := startGoAwayServer(t, 1, http2.ErrCodeNo)
	single.early, single.delay = true, 20*time.Millisecond
	for _, tc := range []struct {
		name    string
		url     string
		perHost int
	}{
		{"max concurrent streams 2, per host 20", limited, 20},
		{"max concurrent streams 2, per host 100", limited, 100},
		{"goaway after 10 streams, per host 20", rotating.url, 20},
		{"goaway after 10 streams, per host 100", rotating.url, 100},
		{"goaway before the answer to each connection's only stream, per host 20", single.url, 20},
		{"goaway before the answer to each connection's only stream, per host 100", single.url, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 200
			opts := h2Opts(t, tc.perHost, 20*time.Second)
			opts.Retries = 0 // each URL ok at its first attempt
			start := time.Now()
			recs, err := runJobs(t, context.Background(), opts, h2Lines(tc.url, n))
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != n {
				t.Fatalf("%d records, want %d", len(recs), n)
			}
			failed := map[string]int{}
			var (
				example string
				slowest float64
			)
			for _, r := range recs {
				slowest = max(slowest, r.DurationMS)
				if r.Error != nil {
					failed[r.Error.Kind]++
					example = r.Error.Message
				}
			}
			if len(failed) > 0 {
				t.Errorf("failed URLs by kind %v (one said %q), want none", failed, example)
			}
			t.Logf("the run took %s, its slowest URL %.0fms", took.Round(time.Millisecond), slowest)
			// A hang guard: requests that waited for --timeout take 20s.
			if took > 15*time.Second {
				t.Errorf("the run took %s, want it to end well inside --timeout 20s", took)
			}
		})
	}
}

// TestH2ServerThatRefusesEveryStreamIsBounded: a server that never
// processes a request, refusing every stream (REFUSED_STREAM, as nginx
// with http2_max_concurrent_streams 0) or resetting it (PROTOCOL_ERROR),
// costs each attempt at most 4 sends on at most 4 connections, and each
// URL fails with kind protocol well before --timeout. Sending refused
// requests again must not turn into thousands of connections held until
// --timeout.
func TestH2ServerThatRefusesEveryStreamIsBounded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		code http2.ErrCode
		n    int
	}{
		// TestH2StreamResetsAreNotAStorm has one URL reset with
		// PROTOCOL_ERROR.
		{"refused stream, one url", http2.ErrCodeRefusedStream, 1},
		{"refused stream, 50 urls", http2.ErrCodeRefusedStream, 50},
		{"protocol error, 50 urls", http2.ErrCodeProtocol, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startResettingH2Server(t, tc.code)
			recs, took := runNeverAnswered(t, srv.url, tc.n)
			for _, r := range recs {
				if r.Error == nil || r.Error.Kind != report.KindProtocol {
					t.Errorf("%s: error %+v, want kind protocol", r.URL, r.Error)
				}
			}
			checkBounded(t, recs, took, srv.headers.Load(), srv.conns.Load())
		})
	}
}

// TestH2GoAwayWithAnErrorIsBounded: a server that answers the first
// stream of every connection with a GOAWAY carrying an error code (last
// stream 0: nothing processed) costs each attempt at most 4 sends on at
// most 4 connections, and each URL fails well before --timeout. The
// request on the connection's first stream is not sent again (net/http
// gives up on it), and its error names the code.
func TestH2GoAwayWithAnErrorIsBounded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		code http2.ErrCode
		n    int
	}{
		{"enhance your calm, one url", http2.ErrCodeEnhanceYourCalm, 1},
		{"enhance your calm, 50 urls", http2.ErrCodeEnhanceYourCalm, 50},
		{"protocol error, 50 urls", http2.ErrCodeProtocol, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startGoAwayServer(t, 0, tc.code)
			recs, took := runNeverAnswered(t, srv.url, tc.n)
			named := 0
			for _, r := range recs {
				if r.Error == nil {
					t.Errorf("%s: no error, want the URL failed", r.URL)
					continue
				}
				if strings.Contains(r.Error.Message, tc.code.String()) {
					named++
				}
			}
			// Other streams of a connection, above the GOAWAY's last
			// stream, are sent again elsewhere; at least the first
			// stream's URL fails with the code.
			if named == 0 {
				t.Errorf("no error names %s, want the URL of a connection's first stream to", tc.code)
			}
			checkBounded(t, recs, took, srv.headers.Load(), srv.conns.Load())
		})
	}
}

// runNeverAnswered runs n URLs on url at --per-host 25 with --timeout 30s
// and one retry, against a server that answers none of them, and returns
// the records, checked to be one per URL, and how long the run took.
func runNeverAnswered(t *testing.T, url string, n int) ([]*report.Record, time.Duration) {
	t.Helper()
	start := time.Now()
	recs, err := runJobs(t, context.Background(), h2Opts(t, 25, 30*time.Second), h2Lines(url, n))
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n {
		t.Fatalf("%d records, want %d", len(recs), n)
	}
	return recs, took
}

// checkBounded checks a run against a server that answered none of its
// requests: one attempt per URL (what failed is not retried by default),
// at most 4 requests and 4 connections per attempt at the server, every
// attempt well inside --timeout (30s), and the run too.
func checkBounded(t *testing.T, recs []*report.Record, took time.Duration, headers, conns int64) {
	t.Helper()
	attempts := 0
	for _, r := range recs {
		attempts += r.Attempts
		if r.Attempts != 1 {
			t.Errorf("%s: %d attempts (%+v), want 1: the error is not retried by default", r.URL, r.Attempts, r.Error)
		}
		// A hang guard, far above what an attempt needs: the
		// attempts that ran into --timeout failed it.
		if r.DurationMS > 10_000 {
			t.Errorf("%s: the URL took %.0fms, want it to end well inside --timeout 30s", r.URL, r.DurationMS)
		}
	}
	t.Logf("%d URLs, %d attempts: the server saw %d requests on %d connections; the run took %s",
		len(recs), attempts, headers, conns, took.Round(time.Millisecond))
	// Not an endless resend: a handful of sends per attempt.
	if headers > int64(4*attempts) {
		t.Errorf("the server saw %d requests for %d attempts, want at most 4 per attempt", headers, attempts)
	}
	if conns > int64(4*attempts) {
		t.Errorf("the server saw %d connections for %d attempts, want at most 4 per attempt", conns, attempts)
	}
	if took > 20*time.Second {
		t.Errorf("the run took %s, want it to end well inside --timeout 30s", took)
	}
}

// startZombieServer speaks HTTP/2 at the frame level with a limit of one
// stream a connection, and never answers /slow: a stream the client resets
// there still counts against the connection's limit, as nginx counts one
// until its handler ends, and other streams on that connection are
// refused (REFUSED_STREAM). Everything else is answered at once.
func startZombieServer(t *testing.T) string {
	t.Helper()
	ln := h2Listener(t)
	testnet.Serve(t, ln, func(c net.Conn) {
		fr := testnet.H2Framer(c, http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 1})
		if fr == nil {
			return
		}
		fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		var (
			head   bytes.Buffer
			enc    = hpack.NewEncoder(&head)
			zombie bool
		)
		for {
			f, err := testnet.ReadH2Frame(fr)
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.MetaHeadersFrame:
				switch {
				case zombie:
					if fr.WriteRSTStream(f.StreamID, http2.ErrCodeRefusedStream) != nil {
						return
					}
				case f.PseudoValue("path") == "/slow":
					zombie = true
				default:
					head.Reset()
					_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
					if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, BlockFragment: head.Bytes(), EndHeaders: true}) != nil ||
						fr.WriteData(f.StreamID, true, []byte("ok")) != nil {
						return
					}
				}
			}
		}
	})
	return "https://" + ln.Addr().String()
}

// TestH2RefusedOnABusyConnectionGoesElsewhere: a connection whose server
// still counts a stream the client gave up on refuses the next requests,
// which must go on another connection rather than fail after four sends
// on that one.
func TestH2RefusedOnABusyConnectionGoesElsewhere(t *testing.T) {
	t.Parallel()
	base := startZombieServer(t)
	opts := h2Opts(t, 1, time.Second)
	opts.Retries = 0
	lines := append([]string{base + "/slow"}, h2Lines(base+"/x", 10)...)
	recs := runEach(t, opts, lines)
	for _, r := range recs {
		if strings.HasSuffix(r.URL, "/slow") {
			if r.Error == nil || r.Error.Kind != report.KindTimeout {
				t.Errorf("%s: error %+v, want timeout", r.URL, r.Error)
			}
			continue
		}
		if !r.OK {
			t.Errorf("%s: error %+v, want ok", r.URL, r.Error)
		}
	}
}
