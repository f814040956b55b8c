package runner

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

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

// goAwayServer speaks HTTP/2 at the frame level and rotates connections
// as nginx does with keepalive_requests: a connection answers its first
// perConn requests, sends GOAWAY (NO_ERROR) with the last of them as its
// last stream after the perConn-th one arrives, and leaves the streams
// above it unprocessed, for the client to send again elsewhere.
type goAwayServer struct {
	perConn  int
	url      string
	answered atomic.Int64
	conns    atomic.Int64
}

func startGoAwayServer(t *testing.T, perConn int) *goAwayServer {
	t.Helper()
	ln := h2Listener(t)
	s := &goAwayServer{perConn: perConn, url: "https://" + ln.Addr().String() + "/"}
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
		head bytes.Buffer
		enc  = hpack.NewEncoder(&head)
		n    int
	)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if fr.WriteSettingsAck() != nil {
					return
				}
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				if fr.WritePing(true, f.Data) != nil {
					return
				}
			}
		case *http2.HeadersFrame:
			if n >= s.perConn {
				continue // above the GOAWAY's last stream: never processed
			}
			n++
			head.Reset()
			_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
			if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, BlockFragment: head.Bytes(), EndHeaders: true}) != nil ||
				fr.WriteData(f.StreamID, true, []byte("ok")) != nil {
				return
			}
			s.answered.Add(1)
			if n == s.perConn && fr.WriteGoAway(f.StreamID, http2.ErrCodeNo, nil) != nil {
				return
			}
		}
	}
}

// TestH2RefusedStreamsAreSentAgain: a server that refuses the streams it
// does not process, because they are over its limit of concurrent streams
// or above the last stream of its GOAWAY, loses no URL. net/http sends
// such a request again, as often as the server refuses it; those sends are
// not requests the server left unanswered, and do not stop the attempt as
// a server that resets every stream does (TestH2StreamResetsAreNotAStorm).
func TestH2RefusedStreamsAreSentAgain(t *testing.T) {
	t.Parallel()
	limited := startStreamLimitServer(t)
	rotating := startGoAwayServer(t, 10)
	for _, tc := range []struct {
		name    string
		url     string
		perHost int
	}{
		{"max concurrent streams 2, per host 20", limited, 20},
		{"max concurrent streams 2, per host 100", limited, 100},
		{"goaway after 10 streams, per host 20", rotating.url, 20},
		{"goaway after 10 streams, per host 100", rotating.url, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := transport.New(transport.Options{HTTP2: true, Insecure: true, KeepAlive: 30 * time.Second, PerHost: tc.perHost})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.CloseIdleConnections)
			ok, _ := ParseStatusSet("200-299")
			opts := Options{
				Limit: tc.perHost, PerHost: tc.perHost, Routes: []Route{{Client: c}},
				Timeout: 30 * time.Second, OKStatus: ok, RetryOn: mustRetryOn(t, "429,5xx,timeout,reset,connect"),
				KeepAlive: true,
			}
			const n = 200
			lines := make([]string, n)
			for i := range lines {
				lines[i] = fmt.Sprintf("%s?i=%d", tc.url, i)
			}
			recs, err := runJobs(t, context.Background(), opts, lines)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != n {
				t.Fatalf("%d records, want %d", len(recs), n)
			}
			failed := map[string]int{}
			var example string
			for _, r := range recs {
				if r.Error != nil {
					failed[string(r.Error.Kind)]++
					example = r.Error.Message
				}
			}
			if len(failed) > 0 {
				t.Errorf("failed URLs by kind %v (one said %q), want none", failed, example)
			}
		})
	}
}

// TestUnansweredGuardCountsResetsNotRefusals: the guard against net/http's
// endless resending stops an attempt whose request went out more than
// maxUnanswered times unanswered with a stream reset before each new send,
// and lets one go on that the server refused unprocessed each time (the
// transport's count of resets unchanged between the sends).
func TestUnansweredGuardCountsResetsNotRefusals(t *testing.T) {
	t.Parallel()
	type send struct {
		resets   int64 // transport.StreamResets when sent
		answered bool  // the send got a response (a redirect follows)
	}
	sends := func(n int, resets func(i int) int64) []send {
		s := make([]send, n)
		for i := range s {
			s[i].resets = resets(i)
		}
		return s
	}
	for _, tc := range []struct {
		name    string
		sends   []send
		known   bool
		stopped bool
	}{
		{"reset before every send", sends(4, func(i int) int64 { return int64(i) }), true, true},
		{"three resets", sends(3, func(i int) int64 { return int64(i) }), true, false},
		{"refused 50 times", sends(50, func(int) int64 { return 7 }), true, false},
		// Six refused, then the seventh send and two after a reset each.
		{"refused, then 3 unanswered", sends(9, func(i int) int64 { return int64(max(0, i-6)) }), true, false},
		{"refused, then 4 unanswered", sends(10, func(i int) int64 { return int64(max(0, i-6)) }), true, true},
		{"resets unknown", sends(4, func(int) int64 { return 0 }), false, true},
		{"answered redirects", []send{{0, true}, {0, true}, {0, true}, {0, true}, {0, false}}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			c := &phaseClock{ws: &workerState{cancel: cancel}}
			for _, s := range tc.sends {
				c.mu.Lock()
				c.connected(false, true, s.resets, tc.known)
				if s.answered {
					c.answered++
					c.lastAnswered = true
				}
				c.mu.Unlock()
			}
			if stopped := context.Cause(ctx) == errUnanswered; stopped != tc.stopped {
				t.Errorf("stopped %v after %d sends (%d refused), want %v", stopped, c.sent, c.refused, tc.stopped)
			}
		})
	}
}
