package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/target"
)

// rawServer is a loopback TCP server whose answers a test writes byte by
// byte. handle gets each connection, numbered from 0; the connection is
// closed when handle returns.
type rawServer struct {
	ln     net.Listener
	conns  atomic.Int64
	wg     sync.WaitGroup
	URL    string
	CAFile string // over TLS, a PEM file that trusts the server
}

func newRawServer(t *testing.T, handle func(c net.Conn, n int64)) *rawServer {
	t.Helper()
	return startRawServer(t, nil, handle)
}

// newRawTLSServer is newRawServer over TLS (HTTP/1.1, the project's
// loopback certificate); s.CAFile trusts it.
func newRawTLSServer(t *testing.T, handle func(c net.Conn, n int64)) *rawServer {
	t.Helper()
	cert, err := target.LoopbackCert()
	if err != nil {
		t.Fatal(err)
	}
	s := startRawServer(t, &tls.Config{Certificates: []tls.Certificate{cert}}, handle)
	s.CAFile = filepath.Join(t.TempDir(), "ca.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	if err := os.WriteFile(s.CAFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

func startRawServer(t *testing.T, conf *tls.Config, handle func(c net.Conn, n int64)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln, URL: "http://" + ln.Addr().String()}
	if conf != nil {
		s.URL = "https://" + ln.Addr().String()
	}
	var mu sync.Mutex
	var open []net.Conn
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			n := s.conns.Add(1) - 1
			s.wg.Go(func() {
				defer c.Close()
				if conf != nil {
					tc := tls.Server(c, conf)
					if tc.Handshake() != nil {
						return
					}
					c = tc
				}
				handle(c, n)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// readHead reads one request head from br, returning it, or "" when the
// connection ended first.
func readHead(br *bufio.Reader) string {
	var b strings.Builder
	for {
		line, err := br.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			return ""
		}
		if line == "\r\n" {
			return b.String()
		}
	}
}

// answer is a server that reads each request head on a connection and
// writes the same bytes in reply; with hangUp it then closes the
// connection, after a reset when reset is set.
func answer(reply string, hangUp, reset bool) func(net.Conn, int64) {
	return func(c net.Conn, _ int64) {
		br := bufio.NewReader(c)
		for readHead(br) != "" {
			io.WriteString(c, reply)
			if hangUp {
				if reset {
					under := c
					if tc, ok := c.(*tls.Conn); ok {
						under = tc.NetConn()
					}
					under.(*net.TCPConn).SetLinger(0)
				}
				return
			}
		}
	}
}

// getGz is get with the Accept-Encoding header that the runner sets on
// every request, with which a request takes the client's own HTTP/1.1
// path (see h1Eligible).
func getGz(t *testing.T, c *http.Client, u string) (*http.Response, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := newGz(t, ctx, u)
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

func newGz(t *testing.T, ctx context.Context, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept-Encoding", "gzip")
	return req
}

func mustGetGz(t *testing.T, c *http.Client, u string) {
	t.Helper()
	if _, _, err := getGz(t, c, u); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

var addrPattern = regexp.MustCompile(`127\.0\.0\.1:\d+`)

// outcome is what a client made of one request, addresses masked.
func outcome(resp *http.Response, body string, err error) string {
	var b strings.Builder
	if resp != nil {
		b.WriteString(resp.Status + " " + resp.Proto + " close=")
		if resp.Close {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
		b.WriteString(" body=" + body)
	}
	if err != nil {
		b.WriteString(" err=" + addrPattern.ReplaceAllString(err.Error(), "ADDR") + " kind=" + kindOf(err))
	}
	return b.String()
}

// TestH1MatchesNetHTTP sends the same requests to servers that answer
// well and badly through the client's own HTTP/1.1 path and through
// net/http's Transport, and expects the same outcome: status, body, error
// text and, for a response head over the limit, the same *HeadError.
func TestH1MatchesNetHTTP(t *testing.T) {
	t.Parallel()
	long := "X-Long: " + strings.Repeat("a", 4096) + "\r\n"
	tests := []struct {
		name          string
		reply         string
		hangUp, reset bool
	}{
		{name: "ok", reply: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"},
		{name: "chunked", reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{name: "no length, closed", reply: "HTTP/1.1 200 OK\r\n\r\nhello", hangUp: true},
		{name: "HTTP/1.0", reply: "HTTP/1.0 200 OK\r\n\r\nhello", hangUp: true},
		{name: "connection close", reply: "HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno"},
		{name: "informational first", reply: "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
		{name: "no content", reply: "HTTP/1.1 204 No Content\r\n\r\n"},
		{name: "closed without answering", hangUp: true},
		{name: "reset without answering", hangUp: true, reset: true},
		{name: "not HTTP", reply: "SSH-2.0-OpenSSH_9.2\r\n\r\n", hangUp: true},
		{name: "bad status code", reply: "HTTP/1.1 2x0 OK\r\n\r\n", hangUp: true},
		{name: "cut in the head", reply: "HTTP/1.1 200 OK\r\nContent-Le", hangUp: true},
		{name: "cut in a header name", reply: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Abc", hangUp: true},
		{name: "head over the limit", reply: "HTTP/1.1 200 OK\r\n" + long + "Content-Length: 0\r\n\r\n", hangUp: true},
		{name: "cut in the body", reply: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel", hangUp: true},
		{name: "reset in the body", reply: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel", hangUp: true, reset: true},
		{name: "bad chunk", reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n", hangUp: true},
		{name: "two lengths", reply: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", hangUp: true},
		{name: "bad length", reply: "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", hangUp: true},
		{name: "unknown transfer encoding", reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: br\r\n\r\n", hangUp: true},
		{name: "switching protocols", reply: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\nrawdata", hangUp: true},
	}
	for _, tt := range tests {
		for _, overTLS := range []bool{false, true} {
			name := tt.name
			if overTLS {
				name += " over TLS"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				var srv *rawServer
				if overTLS {
					srv = newRawTLSServer(t, answer(tt.reply, tt.hangUp, tt.reset))
				} else {
					srv = newRawServer(t, answer(tt.reply, tt.hangUp, tt.reset))
				}
				var got [2]string
				for i, noH1 := range []bool{false, true} {
					c := testClient(t, Options{KeepAlive: time.Minute, MaxHeaderBytes: 2048, CACertFile: srv.CAFile, noH1: noH1})
					if !noH1 && (c.Transport.(*roundTripper).h1 == nil || overTLS && c.Transport.(*roundTripper).h1.tlsConf == nil) {
						t.Fatal("the client has no HTTP/1.1 path of its own")
					}
					for range 2 {
						resp, body, err := getGz(t, c, srv.URL+"/x")
						got[i] += outcome(resp, body, err) + "\n"
					}
				}
				if got[0] != got[1] {
					t.Errorf("own HTTP/1.1 path:\n%s\nnet/http:\n%s", got[0], got[1])
				}
			})
		}
	}
}

// TestH1LogsBytesPastTheResponse checks that bytes a server sends past
// the end of its response, which net/http logs through the standard
// logger, are logged too, once, quoting their start, and that the
// request after them gets its own answer.
func TestH1LogsBytesPastTheResponse(t *testing.T) {
	// Not parallel: it takes over the standard logger.
	var buf bytes.Buffer
	var mu sync.Mutex
	log.SetOutput(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}))
	flags := log.Flags()
	log.SetFlags(0)
	t.Cleanup(func() {
		log.SetOutput(os.Stderr)
		log.SetFlags(flags)
	})
	tests := []struct {
		name, reply string
		later       bool   // the extra bytes come once the client kept the connection
		extra       string // what comes later
		quiet       bool   // nothing is logged
	}{
		{name: "with the response", reply: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA-1"},
		{name: "after it", reply: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", later: true, extra: "EXTRA-2"},
		{name: "a 408 once idle", reply: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", later: true,
			extra: "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", quiet: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			buf.Reset()
			mu.Unlock()
			next, wrote := make(chan struct{}), make(chan struct{})
			srv := newRawServer(t, func(c net.Conn, n int64) {
				br := bufio.NewReader(c)
				readHead(br)
				if n > 0 {
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					return
				}
				io.WriteString(c, tt.reply)
				if tt.later {
					<-next
					io.WriteString(c, tt.extra)
				}
				close(wrote)
				readHead(br)
			})
			c := testClient(t, Options{KeepAlive: time.Minute})
			mustGetGz(t, c, srv.URL)
			close(next)
			<-wrote
			if _, body, err := getGz(t, c, srv.URL); err != nil || body != "ok" {
				t.Fatalf("second request: body %q, err %v", body, err)
			}
			mu.Lock()
			got := buf.String()
			mu.Unlock()
			if tt.quiet {
				if got != "" {
					t.Errorf("logged %q, want nothing: a 408 on an idle connection is the server closing it", got)
				}
				return
			}
			if strings.Count(got, "\n") != 1 || !strings.Contains(got, "bytes past the end of a response from "+strings.TrimPrefix(srv.URL, "http://")) || !strings.Contains(got, `"EXTRA-`) {
				t.Errorf("logged %q, want one line naming the host and quoting the extra bytes", got)
			}
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestH1WritesNetHTTPsHead checks that a request's head is byte for byte
// the one net/http writes, for headers with several values, a User-Agent
// set, empty or left out, and a query.
func TestH1WritesNetHTTPsHead(t *testing.T) {
	t.Parallel()
	heads := make(chan string, 8)
	srv := newRawServer(t, func(c net.Conn, _ int64) {
		br := bufio.NewReader(c)
		for {
			h := readHead(br)
			if h == "" {
				return
			}
			heads <- h
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		}
	})
	tests := []struct {
		name   string
		header http.Header
	}{
		{"default user agent", http.Header{"Accept": {"*/*"}, "Accept-Encoding": {"gzip"}}},
		{"user agent and repeats", http.Header{"User-Agent": {" fetchctl/1.0 "}, "X-B": {"2", "1"}, "Accept-Encoding": {"gzip"}, "Cookie": {"a=1"}}},
		{"empty user agent", http.Header{"User-Agent": {""}, "X-A": {" padded\t"}, "Range": {"bytes=0-1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got [2]string
			for i, noH1 := range []bool{false, true} {
				c := testClient(t, Options{KeepAlive: time.Minute, noH1: noH1})
				req, err := http.NewRequest(http.MethodGet, srv.URL+"/p/a%20th?q=1&r=%2F", nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header = tt.header
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				got[i] = <-heads
			}
			if got[0] != got[1] {
				t.Errorf("own HTTP/1.1 path wrote\n%q\nnet/http wrote\n%q", got[0], got[1])
			}
		})
	}
}

// TestH1SendsAgainOnAClosedKeptConnection checks that a request whose kept
// connection the server closed goes again on a new one, while a failure on
// a new connection is the request's.
func TestH1SendsAgainOnAClosedKeptConnection(t *testing.T) {
	t.Parallel()
	// Each connection answers one request as if it were kept, then closes
	// without a word, as servers do with idle connections.
	srv := newRawServer(t, answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true, false))
	c := testClient(t, Options{KeepAlive: time.Minute})
	for i := range 3 {
		if _, body, err := getGz(t, c, srv.URL); err != nil || body != "ok" {
			t.Fatalf("request %d: body %q, err %v", i, body, err)
		}
	}
	if got := srv.conns.Load(); got < 3 {
		t.Errorf("the server saw %d connections for 3 requests, each closed after one", got)
	}
}

// h1Of returns the client's own HTTP/1.1 transport.
func h1Of(t *testing.T, c *http.Client) *h1Transport {
	t.Helper()
	h := c.Transport.(*roundTripper).h1
	if h == nil {
		t.Fatal("the client has no HTTP/1.1 path of its own")
	}
	return h
}

// TestH1Pool checks how connections are kept: reused after a body read to
// its end, closed after one closed early, after bytes past the response,
// once idle for the keep-alive time, and the least recently used one when
// the idle pool is full.
func TestH1Pool(t *testing.T) {
	t.Parallel()
	okReply := "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
	t.Run("body read to its end", func(t *testing.T) {
		t.Parallel()
		srv := newRawServer(t, answer(okReply, false, false))
		c := testClient(t, Options{KeepAlive: time.Minute})
		for range 3 {
			mustGetGz(t, c, srv.URL)
		}
		if got := srv.conns.Load(); got != 1 {
			t.Errorf("server saw %d connections, want 1", got)
		}
	})
	t.Run("body closed early", func(t *testing.T) {
		t.Parallel()
		srv := newRawServer(t, answer(okReply, false, false))
		c := testClient(t, Options{KeepAlive: time.Minute})
		for range 2 {
			resp, err := c.Do(newGz(t, context.Background(), srv.URL))
			if err != nil {
				t.Fatal(err)
			}
			io.ReadFull(resp.Body, make([]byte, 2))
			resp.Body.Close()
		}
		if got := srv.conns.Load(); got != 2 {
			t.Errorf("server saw %d connections, want 2", got)
		}
	})
	t.Run("bytes past the response", func(t *testing.T) {
		t.Parallel()
		srv := newRawServer(t, answer(okReply+"junk", false, false))
		c := testClient(t, Options{KeepAlive: time.Minute})
		for range 2 {
			if _, body, err := getGz(t, c, srv.URL); err != nil || body != "hello" {
				t.Fatalf("body %q, err %v", body, err)
			}
		}
		if got := srv.conns.Load(); got != 2 {
			t.Errorf("server saw %d connections, want 2", got)
		}
	})
	for _, overTLS := range []bool{false, true} {
		name := "bytes after the response, once idle"
		if overTLS {
			name += ", over TLS"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// The server answers, then, once the client has read the
			// answer and kept the connection, sends a second answer no
			// request asked for: a request must never take it for its own.
			wrote := make(chan struct{})
			next := make(chan struct{})
			handle := func(c net.Conn, n int64) {
				br := bufio.NewReader(c)
				readHead(br)
				if n == 0 {
					io.WriteString(c, okReply)
					<-next
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale")
					close(wrote)
					readHead(br)
					return
				}
				io.WriteString(c, okReply)
			}
			var srv *rawServer
			if overTLS {
				srv = newRawTLSServer(t, handle)
			} else {
				srv = newRawServer(t, handle)
			}
			c := testClient(t, Options{KeepAlive: time.Minute, CACertFile: srv.CAFile})
			mustGetGz(t, c, srv.URL)
			close(next)
			<-wrote
			if _, body, err := getGz(t, c, srv.URL); err != nil || body != "hello" {
				t.Fatalf("body %q, err %v; want hello", body, err)
			}
			if got := srv.conns.Load(); got != 2 {
				t.Errorf("server saw %d connections, want 2", got)
			}
		})
	}
	t.Run("closed by the server once idle", func(t *testing.T) {
		t.Parallel()
		closed := make(chan struct{})
		srv := newRawServer(t, func(c net.Conn, n int64) {
			br := bufio.NewReader(c)
			readHead(br)
			io.WriteString(c, okReply)
			if n == 0 {
				c.Close()
				close(closed)
			}
		})
		c := testClient(t, Options{KeepAlive: time.Minute})
		h := h1Of(t, c)
		mustGetGz(t, c, srv.URL)
		<-closed
		var sends atomic.Int64
		h.onWrite = func() { sends.Add(1) }
		mustGetGz(t, c, srv.URL)
		if got := sends.Load(); got != 1 {
			t.Errorf("the request was written %d times, want once: the closed connection is seen before it is used", got)
		}
	})
	t.Run("idle too long", func(t *testing.T) {
		t.Parallel()
		srv := newRawServer(t, answer(okReply, false, false))
		c := testClient(t, Options{KeepAlive: time.Hour})
		h := h1Of(t, c)
		mustGetGz(t, c, srv.URL)
		h.mu.Lock()
		if h.nIdle != 1 {
			h.mu.Unlock()
			t.Fatalf("%d idle connections, want 1", h.nIdle)
		}
		h.lru.head.idleAt = time.Now().Add(-2 * time.Hour)
		h.mu.Unlock()
		mustGetGz(t, c, srv.URL)
		if got := srv.conns.Load(); got != 2 {
			t.Errorf("server saw %d connections, want 2: the idle one was past the keep-alive time", got)
		}
	})
	t.Run("idle pool full", func(t *testing.T) {
		t.Parallel()
		var srvs []*rawServer
		for range 3 {
			srvs = append(srvs, newRawServer(t, answer(okReply, false, false)))
		}
		c := testClient(t, Options{KeepAlive: time.Minute, MaxIdle: 2, PerHost: 1, IdleBudget: 2})
		h := h1Of(t, c)
		if h.maxIdle != 2 {
			t.Fatalf("idle cap %d, want 2", h.maxIdle)
		}
		for _, s := range srvs {
			mustGetGz(t, c, s.URL)
		}
		h.mu.Lock()
		n, _, first := h.nIdle, h.hosts[strings.TrimPrefix(srvs[0].URL, "http://")], h.hosts[strings.TrimPrefix(srvs[1].URL, "http://")]
		h.mu.Unlock()
		if n != 2 {
			t.Errorf("%d idle connections, want 2", n)
		}
		if first == nil {
			t.Errorf("the second host's connection was closed, want the first's (the least recently used)")
		}
		mustGetGz(t, c, srvs[0].URL)
		if got := srvs[0].conns.Load(); got != 2 {
			t.Errorf("first server saw %d connections, want 2: its idle one was closed to make room", got)
		}
	})
}

// TestH1WaitsForTheHostsCap checks that a request to a host at its cap
// waits for a connection, gives up when its context ends, and that the
// host's connections stay within the cap.
func TestH1WaitsForTheHostsCap(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{}, 4)
	release := make(chan struct{})
	srv := newRawServer(t, func(c net.Conn, _ int64) {
		br := bufio.NewReader(c)
		for readHead(br) != "" {
			entered <- struct{}{}
			<-release
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	c := testClient(t, Options{KeepAlive: time.Minute, PerHost: 1})
	queued := make(chan struct{}, 1)
	h1Of(t, c).onWait = func() {
		select {
		case queued <- struct{}{}:
		default:
		}
	}
	first := make(chan error, 1)
	go func() {
		_, _, err := getGz(t, c, srv.URL)
		first <- err
	}()
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	waiting := make(chan error, 1)
	go func() {
		resp, err := c.Do(newGz(t, ctx, srv.URL))
		if err == nil {
			resp.Body.Close()
		}
		waiting <- err
	}()
	// The second request waits in the host's queue; cancelling it ends
	// the wait.
	select {
	case <-queued:
	case err := <-waiting:
		t.Fatalf("the second request ended (%v) while the host was at its cap", err)
	}
	cancel()
	if err := <-waiting; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: err = %v, want context.Canceled", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, body, err := getGz(t, c, srv.URL); err != nil || body != "ok" {
				t.Errorf("body %q, err %v", body, err)
			}
		})
	}
	wg.Wait()
	if got := srv.conns.Load(); got != 1 {
		t.Errorf("server saw %d connections, want 1 (the cap)", got)
	}
}

// TestH1CancelStopsARead checks that cancelling a request whose answer
// does not come ends it with the context's error, and closes the
// connection.
func TestH1CancelStopsARead(t *testing.T) {
	t.Parallel()
	got := make(chan struct{})
	srv := newRawServer(t, func(c net.Conn, _ int64) {
		br := bufio.NewReader(c)
		readHead(br)
		got <- struct{}{}
		io.Copy(io.Discard, br)
	})
	c := testClient(t, Options{KeepAlive: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-got
		cancel()
	}()
	_, err := c.Do(newGz(t, ctx, srv.URL))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	h := h1Of(t, c)
	h.mu.Lock()
	n := len(h.hosts)
	h.mu.Unlock()
	if n != 0 {
		t.Errorf("%d hosts still hold connections, want none", n)
	}
}

// TestH1Eligible checks which requests take the client's own HTTP/1.1
// path.
func TestH1Eligible(t *testing.T) {
	t.Parallel()
	gz := http.Header{"Accept-Encoding": {"gzip"}}
	tests := []struct {
		name   string
		method string
		url    string
		body   io.Reader
		header http.Header
		want   bool
		tls    bool // the transport speaks TLS
	}{
		{"GET", http.MethodGet, "http://127.0.0.1:8080/a", nil, gz, true, false},
		{"GET of a range", http.MethodGet, "http://127.0.0.1:8080/a", nil, http.Header{"Range": {"bytes=0-1"}}, true, false},
		{"GET that net/http would ask gzip for", http.MethodGet, "http://127.0.0.1:8080/a", nil, nil, false, false},
		{"HEAD", http.MethodHead, "http://localhost/a", nil, nil, true, false},
		{"POST", http.MethodPost, "http://127.0.0.1/a", bytes.NewReader([]byte("x")), nil, false, false},
		{"https", http.MethodGet, "https://127.0.0.1/a", nil, gz, false, false},
		{"https over TLS", http.MethodGet, "https://127.0.0.1/a", nil, gz, true, true},
		{"non-ASCII host", http.MethodGet, "http://bücher.example/a", nil, gz, false, false},
		{"IPv6 zone", http.MethodGet, "http://[fe80::1%25eth0]:80/", nil, gz, false, false},
		{"Connection header", http.MethodGet, "http://127.0.0.1/", nil, http.Header{"Connection": {"close"}, "Accept-Encoding": {"gzip"}}, false, false},
		{"Expect header", http.MethodGet, "http://127.0.0.1/", nil, http.Header{"Expect": {"100-continue"}, "Accept-Encoding": {"gzip"}}, false, false},
		{"bad header value", http.MethodGet, "http://127.0.0.1/", nil, http.Header{"X-A": {"a\r\nb"}, "Accept-Encoding": {"gzip"}}, false, false},
		{"bad header name", http.MethodGet, "http://127.0.0.1/", nil, http.Header{"X A": {"a"}, "Accept-Encoding": {"gzip"}}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, tt.url, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if tt.header != nil {
				req.Header = tt.header
			}
			h := &h1Transport{}
			if tt.tls {
				h.tlsConf = &tls.Config{}
			}
			if got := h.eligible(req); got != tt.want {
				t.Errorf("eligible = %v, want %v", got, tt.want)
			}
		})
	}
}
