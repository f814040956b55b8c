package runner

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/secret"
	"github.com/fetchctl/fetchctl/internal/target"
	"github.com/fetchctl/fetchctl/internal/testnet"
)

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// kindError carries a contract kind the way the transport's errors do.
type kindError struct{ kind string }

func (e kindError) Error() string     { return "kind " + e.kind }
func (e kindError) ErrorKind() string { return e.kind }

// TestClassifyRealFaults makes each error kind happen for real against
// loopback servers and checks the record fetchctl would write.
func TestClassifyRealFaults(t *testing.T) {
	t.Parallel()
	plain, err := target.Start(target.Options{Hosts: 1, BodySize: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(plain.Close)
	secure, err := target.Start(target.Options{Hosts: 1, BodySize: 10, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(secure.Close)
	dead := closedPort(t)

	// A resolver whose server does not answer: lookups fail as DNS errors
	// without any traffic leaving loopback.
	deadDNS := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", dead)
	}}
	newClient := func(proxy string) *http.Client {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		dialer := &net.Dialer{Resolver: deadDNS, Timeout: 2 * time.Second}
		tr.DialContext = dialer.DialContext
		tr.Proxy = nil
		if proxy != "" {
			u, _ := url.Parse(proxy)
			tr.Proxy = http.ProxyURL(u)
		}
		c := &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return kindError{"redirect"}
			}
			return nil
		}}
		t.Cleanup(c.CloseIdleConnections)
		return c
	}

	tests := []struct {
		name    string
		url     string
		proxy   string
		opts    func(*Options)
		kind    string
		message string
		status  int
	}{
		{name: "dns", url: "http://no-such-host.test/", kind: "dns", message: "no-such-host.test"},
		{name: "connect refused", url: "http://" + dead + "/", kind: "connect", message: "refused"},
		{name: "tls unknown authority", url: secure.URL(0, "/"), kind: "tls", message: "certificate"},
		{name: "timeout while stalled", url: plain.URL(0, "/stall?for=5s"), opts: func(o *Options) { o.Timeout = 200 * time.Millisecond }, kind: "timeout", message: "--timeout"},
		{name: "timeout while dripping", url: plain.URL(0, "/drip?bytes=100&every=50ms"), opts: func(o *Options) { o.Timeout = 300 * time.Millisecond }, kind: "timeout", message: "status 200 received", status: 200},
		{name: "reset before headers", url: plain.URL(0, "/reset"), kind: "reset"},
		{name: "reset mid headers", url: plain.URL(0, "/reset-mid"), kind: "reset"},
		{name: "short body", url: plain.URL(0, "/short"), kind: "reset", status: 200},
		{name: "proxy refused", url: plain.URL(0, "/"), proxy: "http://user:pw@" + dead, kind: "proxy"},
		{name: "redirect loop", url: plain.URL(0, "/loop"), kind: "redirect", status: 302},
		{name: "body too large", url: plain.URL(0, "/big?size=2MiB"), opts: func(o *Options) { o.MaxBody, o.MaxBodyText = 1<<20, "1MiB" }, kind: "body_too_large", message: "body is larger than --max-body 1MiB", status: 200},
		{name: "body too large, limit in bytes", url: plain.URL(0, "/big?size=2MiB"), opts: func(o *Options) { o.MaxBody = 1 << 20 }, kind: "body_too_large", message: "body is larger than --max-body 1048576 bytes", status: 200},
		{name: "status", url: plain.URL(0, "/status/500"), kind: "status", message: "--ok-status 200-299", status: 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			route := Route{Client: newClient(tt.proxy)}
			if tt.proxy != "" {
				route.Proxy = secret.URL(tt.proxy)
			}
			opts := Options{Limit: 1, PerHost: 1, Timeout: 5 * time.Second, Routes: []Route{route}, Secrets: []string{"pw"}}
			if tt.opts != nil {
				tt.opts(&opts)
			}
			recs, err := runJobs(t, context.Background(), opts, []string{tt.url})
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 1 {
				t.Fatalf("%d records", len(recs))
			}
			r := recs[0]
			if r.OK || r.Error == nil {
				t.Fatalf("record ok: %+v", r)
			}
			if r.Error.Kind != tt.kind {
				t.Errorf("kind = %q (%s), want %q", r.Error.Kind, r.Error.Message, tt.kind)
			}
			if !strings.Contains(r.Error.Message, tt.message) {
				t.Errorf("message %q does not mention %q", r.Error.Message, tt.message)
			}
			if r.Status != tt.status {
				t.Errorf("status = %d, want %d", r.Status, tt.status)
			}
			if strings.Contains(r.Error.Message, ":pw@") {
				t.Errorf("message leaks the proxy password: %s", r.Error.Message)
			}
			if r.Attempts != 1 {
				t.Errorf("attempts = %d, want 1 (no retries configured)", r.Attempts)
			}
		})
	}
}

func TestClassifyFallsBackToOther(t *testing.T) {
	t.Parallel()
	if k, _ := Classify(errors.New("something odd")); k != "other" {
		t.Errorf("kind = %q, want other", k)
	}
	if k, _ := Classify(&url.Error{Op: "Get", URL: "x", Err: kindError{"proxy"}}); k != "proxy" {
		t.Errorf("kind = %q, want proxy from ErrorKind", k)
	}
}

// TestClassifyClosedWithoutAnswer: a server that reads the request and
// closes the connection without a byte of answer is kind reset, retried,
// and the message says what happened rather than net/http's "EOF".
func TestClassifyClosedWithoutAnswer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testnet.Serve(t, ln, func(c net.Conn) {
		// Read the request head, then close: a FIN, not a reset.
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil || line == "\r\n" {
				break
			}
		}
		c.Close()
	})
	opts := Options{Limit: 1, PerHost: 1, Retries: 1, RetryOn: mustRetryOn(t, "reset"), Backoff: time.Millisecond, BackoffMax: time.Millisecond}
	recs, err := runJobs(t, context.Background(), opts, []string{"http://" + ln.Addr().String() + "/"})
	if err != nil {
		t.Fatal(err)
	}
	r := recs[0]
	const want = "the server closed the connection without answering"
	if r.Error == nil || r.Error.Kind != "reset" || r.Error.Message != want {
		t.Fatalf("error %+v, want kind reset saying %q", r.Error, want)
	}
	if r.Attempts != 2 {
		t.Errorf("%d attempts, want 2: a reset is retried", r.Attempts)
	}
}

// TestClassifyHTTP2ConnectionLost: net/http's errors for a request whose
// HTTP/2 connection ended under it, before its answer, are kind reset, as
// a broken HTTP/1 connection is, so that --retry-on reset sends it again.
// Through a proxy, a tunnel the target closed after a GOAWAY fails the
// client's next write, and net/http's client then closes the connection
// under the requests still on it.
func TestClassifyHTTP2ConnectionLost(t *testing.T) {
	t.Parallel()
	for _, text := range []string{
		"http2: client connection force closed via ClientConn.Close",
		"http2: client connection lost",
		"http2: server sent GOAWAY and closed the connection; LastStreamID=205, ErrCode=NO_ERROR, debug=\"\"",
	} {
		err := &url.Error{Op: "Get", URL: "https://127.0.0.1/", Err: errors.New(text)}
		if k, msg := Classify(err); k != "reset" || msg != text {
			t.Errorf("Classify(%q) = %s, %q; want reset and the text", text, k, msg)
		}
	}
}
