package transport

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/secret"
	"github.com/fetchctl/fetchctl/internal/target"
)

func TestParseProxy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw     string
		want    string // Redact of the result
		wantErr string // part of the error
	}{
		{raw: "127.0.0.1:3128", want: "http://127.0.0.1:3128"},
		{raw: "  http://user:pass@proxy.example:8080  ", want: "http://user:***@proxy.example:8080"},
		{raw: "https://proxy.example", want: "https://proxy.example"},
		{raw: "http://proxy.example:3128/", want: "http://proxy.example:3128"},
		{raw: "socks5://u:p@127.0.0.1:1080", want: "socks5://u:***@127.0.0.1:1080"},
		{raw: "SOCKS5H://127.0.0.1:1080", want: "socks5h://127.0.0.1:1080"},
		{raw: "user@proxy.example:3128", want: "http://user@proxy.example:3128"},
		{raw: "ftp://u:hunter2@proxy.example:21", wantErr: `proxy ftp://u:***@proxy.example:21: unsupported scheme "ftp"`},
		{raw: "socks4://proxy.example:1080", wantErr: "unsupported scheme"},
		{raw: "", wantErr: "empty proxy URL"},
		{raw: "http://", wantErr: "no host"},
		{raw: "http://u:hunter2@proxy.example:99999", wantErr: `invalid port "99999"`},
		{raw: "http://proxy.example:3128/path", wantErr: "no path, query or fragment"},
		{raw: "http://u:hunter2@proxy.example:3128?x=1", wantErr: "no path, query or fragment"},
		{raw: "http://u:hun%zzter2@proxy.example:3128", wantErr: "proxy http://u:***@proxy.example:3128: not a valid URL"},
		{raw: "http://proxy.example:port", wantErr: "not a valid URL: invalid port"},
		{raw: "http://u-{session}@proxy.example:3128", want: "http://u-%7Bsession%7D@proxy.example:3128"},
		{raw: "http://gw-{session}.example:8000", wantErr: "proxy http://gw-{session}.example:8000: {session} goes only in the user name or password"},
		{raw: "u:hunter2@gw.example:{session:4}", wantErr: "proxy http://u:***@gw.example:{session:4}: {session} goes only in the user name or password"},
		{raw: "http://gw.example:1/{session}", wantErr: "{session} goes only in the user name or password"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			t.Parallel()
			u, err := ParseProxy(tt.raw)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseProxy(%q) = %v, want error %q", tt.raw, u, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not contain %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "zz") {
					t.Errorf("error leaks the password: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseProxy(%q): %v", tt.raw, err)
			}
			if got := secret.URLOf(u); got != tt.want {
				t.Errorf("secret.URLOf(ParseProxy(%q)) = %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
}

func TestReadProxyFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    []string
		repeats map[int][]int // first line -> the lines that repeat it
		wantErr string
	}{
		{
			name: "comments, blanks and CRLF",
			in:   "\uFEFF# pool A\r\nhttp://u:p@10.0.0.1:3128\r\n\r\n  socks5://10.0.0.2:1080  \n#last\n10.0.0.3:8080",
			want: []string{"http://u:***@10.0.0.1:3128", "socks5://10.0.0.2:1080", "http://10.0.0.3:8080"},
		},
		{
			name: "repeats name the first line",
			in: "http://u:p@10.0.0.1:3128\nHTTP://u:p@10.0.0.1:3128/\nhttp://u:p@10.0.0.1:3128\n" +
				"u:p@10.0.0.1:3128\nhttp://u:P@10.0.0.1:3128\nhttp://U:p@10.0.0.1:3128\nhttps://u:p@10.0.0.1:3128\n" +
				"http://10.0.0.2\nhttp://10.0.0.2:80\nhttp://10.0.0.2:8080\nsocks5://10.0.0.2\nsocks5h://10.0.0.2:1080\nsocks5://10.0.0.2:1080\n" +
				"http://u-{session}:p@gw:1\nhttp://u-{session}:p@gw:1\nhttp://u-{session:8}:p@gw:1\nhttp://u-abcdefgh:p@gw:1\n" +
				"http://[::1]:1\nhttp://[0:0::1]:1\nhttp://GW:1\nhttp://gw:1\nhttp://u:@gw:1\nhttp://u@gw:1\n",
			want: []string{
				"http://u:***@10.0.0.1:3128", "http://u:***@10.0.0.1:3128", "http://U:***@10.0.0.1:3128", "https://u:***@10.0.0.1:3128",
				"http://10.0.0.2", "http://10.0.0.2:8080", "socks5://10.0.0.2", "socks5h://10.0.0.2:1080",
				"http://u-%7Bsession%7D:***@gw:1", "http://u-%7Bsession%3A8%7D:***@gw:1", "http://u-abcdefgh:***@gw:1",
				"http://[::1]:1", "http://GW:1", "http://u:***@gw:1",
			},
			repeats: map[int][]int{1: {2, 3, 4}, 8: {9}, 11: {13}, 14: {15}, 18: {19}, 20: {21}, 22: {23}},
		},
		{name: "bad line named", in: "http://a:1\n\n# x\nftp://u:hunter2@b:2\n", wantErr: "line 4: proxy ftp://u:***@b:2: unsupported scheme"},
		{name: "only comments", in: "# nothing\n\n", wantErr: "holds no proxy"},
		{name: "empty", in: "", wantErr: "holds no proxy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ReadProxyFile(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error leaks the password: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d proxies, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if r := secret.URLOf(got[i].URL); r != tt.want[i] {
					t.Errorf("proxy %d = %q, want %q", i, r, tt.want[i])
				}
				if want := tt.repeats[got[i].Line]; !slices.Equal(got[i].Repeats, want) {
					t.Errorf("line %d is repeated by %v, want %v", got[i].Line, got[i].Repeats, want)
				}
			}
		})
	}
}

func TestReadProxyFileLongLine(t *testing.T) {
	t.Parallel()
	long := "http://" + strings.Repeat("a", 70_000) + ".example:3128"
	got, err := ReadProxyFile(strings.NewReader("# long\n" + long + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].URL.Port() != "3128" {
		t.Errorf("got %v, want the one long proxy", got)
	}
}

func TestProxyErrorText(t *testing.T) {
	t.Parallel()
	inner := errors.New("CONNECT answered 407 Proxy Authentication Required")
	pe := &ProxyError{Proxy: "http://user:***@127.0.0.1:3128", Err: inner}
	var err error = fmt.Errorf("wrapped: %w", pe)
	if got, want := pe.Error(), "proxy http://user:***@127.0.0.1:3128: CONNECT answered 407 Proxy Authentication Required"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if k := kindOf(err); k != "proxy" {
		t.Errorf("ErrorKind through wrapping = %q, want proxy", k)
	}
	if !errors.Is(err, inner) {
		t.Error("ProxyError does not unwrap to its cause")
	}
}

// fakeProxy is an in-process HTTP proxy. It answers CONNECT with status (0
// tunnels to the target, or to upstream when set), or stalls or drops the
// connection; a request for a plain-http target is answered by the proxy
// itself with "proxied <absolute URL>".
type fakeProxy struct {
	srv      *httptest.Server
	offerH2  bool // a TLS proxy offers HTTP/2 in ALPN
	status   int
	mode     string // "", "stall" or "drop"
	upstream string
	// hold, when set, keeps each CONNECT waiting for its close before the
	// proxy dials the target. Under mu once the proxy runs.
	hold chan struct{}

	mu      sync.Mutex
	auth    []string // Proxy-Authorization of each request
	targets []string // CONNECT authority or absolute URL
	conns   []net.Conn
	wg      sync.WaitGroup
}

func newFakeProxy(t *testing.T, tlsProxy bool, configure func(*fakeProxy)) *fakeProxy {
	t.Helper()
	p := &fakeProxy{}
	if configure != nil {
		configure(p)
	}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(p.serve))
	// Handshakes that tests make fail on purpose are not news.
	p.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tlsProxy {
		p.srv.EnableHTTP2 = p.offerH2
		p.srv.StartTLS()
	} else {
		p.srv.Start()
	}
	t.Cleanup(func() {
		p.srv.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *fakeProxy) url(userinfo *url.Userinfo) *url.URL {
	u, _ := url.Parse(p.srv.URL)
	u.User = userinfo
	return u
}

func (p *fakeProxy) seen() (auth, targets []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.auth...), append([]string(nil), p.targets...)
}

func (p *fakeProxy) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.auth = append(p.auth, r.Header.Get("Proxy-Authorization"))
	if r.Method == http.MethodConnect {
		p.targets = append(p.targets, r.Host)
	} else {
		p.targets = append(p.targets, r.URL.String())
	}
	p.mu.Unlock()

	if p.status != 0 && p.status != http.StatusOK {
		if p.status == http.StatusProxyAuthRequired {
			w.Header().Set("Proxy-Authenticate", `Basic realm="fake"`)
		}
		w.WriteHeader(p.status)
		return
	}
	if r.Method != http.MethodConnect {
		fmt.Fprintf(w, "proxied %s", r.URL)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, conn)
	p.mu.Unlock()
	switch p.mode {
	case "drop":
		conn.Close()
		return
	case "stall":
		io.Copy(io.Discard, conn)
		return
	}
	p.mu.Lock()
	hold := p.hold
	p.mu.Unlock()
	if hold != nil {
		<-hold
	}
	target := r.Host
	if p.upstream != "" {
		target = p.upstream
	}
	up, err := net.Dial("tcp", target)
	if err != nil {
		io.WriteString(conn, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		conn.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, up)
	p.mu.Unlock()
	io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
	p.wg.Go(func() {
		io.Copy(up, brw)
		up.Close()
	})
	io.Copy(conn, up)
	conn.Close()
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	addr, err := target.ClosedAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestProxyCarriesLoopbackTargets(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "h2", nil)
	tests := []struct {
		name       string
		tlsProxy   bool
		offerH2    bool
		target     string
		http2      bool
		wantBody   string
		wantTarget string
	}{
		{name: "http target via http proxy", target: "http://127.0.0.1:9/x",
			wantBody: "proxied http://127.0.0.1:9/x", wantTarget: "http://127.0.0.1:9/x"},
		{name: "https target via CONNECT keeps HTTP/2", target: srv.URL, http2: true,
			wantBody: "HTTP/2.0", wantTarget: "127.0.0.1:" + srv.port()},
		{name: "https target via CONNECT, HTTP/1.1", target: srv.URL,
			wantBody: "HTTP/1.1", wantTarget: "127.0.0.1:" + srv.port()},
		{name: "http target via https proxy", tlsProxy: true, target: "http://127.0.0.1:9/y", http2: true,
			wantBody: "proxied http://127.0.0.1:9/y", wantTarget: "http://127.0.0.1:9/y"},
		{name: "https target via https proxy", tlsProxy: true, target: srv.URL, http2: true,
			wantBody: "HTTP/2.0", wantTarget: "127.0.0.1:" + srv.port()},
		// net/http speaks HTTP/1.1 to proxies, so HTTP/2 must not be offered
		// to one.
		{name: "https target via https proxy that offers HTTP/2", tlsProxy: true, offerH2: true, target: srv.URL, http2: true,
			wantBody: "HTTP/2.0", wantTarget: "127.0.0.1:" + srv.port()},
		{name: "http target via https proxy that offers HTTP/2", tlsProxy: true, offerH2: true, target: "http://127.0.0.1:9/z", http2: true,
			wantBody: "proxied http://127.0.0.1:9/z", wantTarget: "http://127.0.0.1:9/z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newFakeProxy(t, tt.tlsProxy, func(p *fakeProxy) { p.offerH2 = tt.offerH2 })
			c := testClient(t, Options{
				Proxy: p.url(url.UserPassword("alice", "s3cret")), HTTP2: tt.http2,
				Insecure: true, KeepAlive: time.Minute, ConnectTimeout: 5 * time.Second,
			})
			resp, body := mustGet(t, c, tt.target)
			if body != tt.wantBody {
				t.Errorf("body = %q, want %q", body, tt.wantBody)
			}
			if tt.wantBody == "HTTP/2.0" && resp.Proto != "HTTP/2.0" {
				t.Errorf("proto = %q, want HTTP/2.0", resp.Proto)
			}
			auth, targets := p.seen()
			if len(targets) != 1 || targets[0] != tt.wantTarget {
				t.Errorf("proxy saw targets %v, want [%s]", targets, tt.wantTarget)
			}
			if len(auth) != 1 || auth[0] != basic("alice", "s3cret") {
				t.Errorf("proxy saw Proxy-Authorization %v, want alice's", auth)
			}
		})
	}
}

func TestProxyFailuresAreProxyErrors(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "h1", nil)
	// A short ConnectTimeout only where the proxy stalls: elsewhere a loaded
	// machine must not turn a refusal into a dial timeout.
	const stallTimeout = 300 * time.Millisecond
	tests := []struct {
		name      string
		proxy     func(t *testing.T) *url.URL
		target    string
		wantInErr string
		exact     string // the whole ProxyError text, with %s for the redacted proxy
		stalls    bool
		// the proxy answered that it could not reach the target
		wantTargetUnreachable bool
	}{
		{
			name: "CONNECT answered 407",
			proxy: func(t *testing.T) *url.URL {
				return newFakeProxy(t, false, func(p *fakeProxy) { p.status = 407 }).url(url.UserPassword("user", "pw"))
			},
			target:    srv.URL,
			wantInErr: "CONNECT answered 407 Proxy Authentication Required",
			exact:     "proxy %s: CONNECT answered 407 Proxy Authentication Required",
		},
		{
			name: "CONNECT answered 401, a wrong password to tinyproxy",
			proxy: func(t *testing.T) *url.URL {
				return newFakeProxy(t, false, func(p *fakeProxy) { p.status = 401 }).url(url.UserPassword("user", "pw"))
			},
			target:    srv.URL,
			wantInErr: "CONNECT answered 401 Unauthorized",
		},
		{
			name: "CONNECT answered 429, the proxy's own limit",
			proxy: func(t *testing.T) *url.URL {
				return newFakeProxy(t, false, func(p *fakeProxy) { p.status = 429 }).url(nil)
			},
			target:    srv.URL,
			wantInErr: "CONNECT answered 429 Too Many Requests",
		},
		{
			name: "CONNECT answered 403, a destination the proxy refuses",
			proxy: func(t *testing.T) *url.URL {
				return newFakeProxy(t, false, func(p *fakeProxy) { p.status = 403 }).url(nil)
			},
			target:                srv.URL,
			wantInErr:             "CONNECT answered 403 Forbidden",
			wantTargetUnreachable: true,
		},
		{
			name: "CONNECT answered 404",
			proxy: func(t *testing.T) *url.URL {
				return newFakeProxy(t, false, func(p *fakeProxy) { p.status = 404 }).url(nil)
			},
			target:                srv.URL,
			wantInErr:             "CONNECT answered 404 Not Found",
			wantTargetUnreachable: true,
		},
		{
			name: "CONNECT answered 502 for an unreachable target",
			proxy: func(t *testing.T) *url.URL {
				return newFakeProxy(t, false, func(p *fakeProxy) { p.upstream = closedAddr(t) }).url(nil)
			},
			target:                srv.URL,
			wantInErr:             "CONNECT answered 502 Bad Gateway",
			wantTargetUnreachable: true,
		},
		{
			name: "CONNECT answered 500, as tinyproxy does for an unreachable target",
			proxy: func(t *testing.T) *url.URL {
				return newFakeProxy(t, false, func(p *fakeProxy) { p.status = 500 }).url(nil)
			},
			target:                srv.URL,
			wantInErr:             "CONNECT answered 500 Internal Server Error",
			wantTargetUnreachable: true,
		},
		{
			name: "CONNECT dropped",
			proxy: func(t *testing.T) *url.URL {
				return newFakeProxy(t, false, func(p *fakeProxy) { p.mode = "drop" }).url(nil)
			},
			target:    srv.URL,
			wantInErr: "CONNECT failed",
		},
		{
			name: "CONNECT stalls past ConnectTimeout",
			proxy: func(t *testing.T) *url.URL {
				return newFakeProxy(t, false, func(p *fakeProxy) { p.mode = "stall" }).url(nil)
			},
			target:    srv.URL,
			wantInErr: "connect timeout of " + stallTimeout.String(),
			stalls:    true,
		},
		{
			name: "http proxy refused, https target",
			proxy: func(t *testing.T) *url.URL {
				return &url.URL{Scheme: "http", Host: closedAddr(t), User: url.UserPassword("user", "pw")}
			},
			target:    srv.URL,
			wantInErr: "connection refused",
		},
		{
			name: "http proxy refused, http target",
			proxy: func(t *testing.T) *url.URL {
				return &url.URL{Scheme: "http", Host: closedAddr(t), User: url.UserPassword("user", "pw")}
			},
			target:    "http://127.0.0.1:9/",
			wantInErr: "connection refused",
		},
		{
			name:      "https proxy refused",
			proxy:     func(t *testing.T) *url.URL { return &url.URL{Scheme: "https", Host: closedAddr(t)} },
			target:    "http://127.0.0.1:9/",
			wantInErr: "connection refused",
		},
		{
			name:      "https proxy with an untrusted certificate",
			proxy:     func(t *testing.T) *url.URL { return newFakeProxy(t, true, nil).url(nil) },
			target:    "http://127.0.0.1:9/",
			wantInErr: "certificate",
		},
		{
			name: "socks5 proxy refused",
			proxy: func(t *testing.T) *url.URL {
				return &url.URL{Scheme: "socks5", Host: closedAddr(t), User: url.UserPassword("user", "pw")}
			},
			target:    srv.URL,
			wantInErr: "connection refused",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := tt.proxy(t)
			insecure := !strings.Contains(tt.name, "untrusted")
			timeout := 5 * time.Second
			if tt.stalls {
				timeout = stallTimeout
			}
			c := testClient(t, Options{Proxy: p, Insecure: insecure, ConnectTimeout: timeout, KeepAlive: time.Minute})
			start := time.Now()
			_, _, err := get(t, c, tt.target)
			if err == nil {
				t.Fatal("request succeeded, want a proxy error")
			}
			if elapsed := time.Since(start); tt.stalls && elapsed > 10*timeout {
				t.Errorf("failure took %v, want it within about %v", elapsed, timeout)
			}
			var pe *ProxyError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v (%T), want a *ProxyError inside", err, err)
			}
			if kindOf(err) != "proxy" {
				t.Errorf("ErrorKind = %q, want proxy", kindOf(err))
			}
			if pe.Proxy != secret.URLOf(p) {
				t.Errorf("ProxyError.Proxy = %q, want %q", pe.Proxy, secret.URLOf(p))
			}
			if !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("error %q does not mention %q", err, tt.wantInErr)
			}
			if pe.TargetUnreachable != tt.wantTargetUnreachable {
				t.Errorf("TargetUnreachable = %v, want %v (err %q)", pe.TargetUnreachable, tt.wantTargetUnreachable, err)
			}
			if tt.exact != "" {
				if want := fmt.Sprintf(tt.exact, secret.URLOf(p)); pe.Error() != want {
					t.Errorf("ProxyError = %q, want %q", pe.Error(), want)
				}
			}
			if pw, ok := p.User.Password(); ok && strings.Contains(err.Error(), ":"+pw+"@") {
				t.Errorf("error leaks the proxy password: %q", err)
			}
		})
	}
}

// socksReplier is a SOCKS5 proxy that takes no credentials and answers
// every CONNECT with the reply code reply. It returns its socks5:// URL.
func socksReplier(t *testing.T, reply byte) *url.URL {
	t.Helper()
	return socksReplierThen(t, reply, nil)
}

// socksReplierThen is socksReplier whose reply carries then after it, as
// from a target that speaks first.
func socksReplierThen(t *testing.T, reply byte, then []byte) *url.URL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				// Greeting: version, number of methods, the methods.
				head := make([]byte, 2)
				if _, err := io.ReadFull(conn, head); err != nil {
					return
				}
				if _, err := io.ReadFull(conn, make([]byte, head[1])); err != nil {
					return
				}
				conn.Write([]byte{5, 0})
				// Request: version, command, reserved, address type.
				req := make([]byte, 4)
				if _, err := io.ReadFull(conn, req); err != nil {
					return
				}
				var addr int
				switch req[3] {
				case 1:
					addr = 4
				case 4:
					addr = 16
				case 3:
					n := make([]byte, 1)
					if _, err := io.ReadFull(conn, n); err != nil {
						return
					}
					addr = int(n[0])
				}
				if _, err := io.ReadFull(conn, make([]byte, addr+2)); err != nil {
					return
				}
				conn.Write(append([]byte{5, reply, 0, 1, 0, 0, 0, 0, 0, 0}, then...))
			}()
		}
	}()
	return &url.URL{Scheme: "socks5", Host: ln.Addr().String()}
}

func TestSOCKSRepliesSayWhetherTheTargetWasUnreachable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		reply byte
		text  string
		want  bool
	}{
		{reply: 1, text: "general SOCKS server failure"},
		{reply: 2, text: "connection not allowed by ruleset", want: true},
		{reply: 3, text: "network unreachable", want: true},
		{reply: 4, text: "host unreachable", want: true},
		{reply: 5, text: "connection refused", want: true},
		{reply: 6, text: "TTL expired", want: true},
		{reply: 7, text: "command not supported"},
		{reply: 8, text: "address type not supported"},
		{reply: 9, text: "9, a code it does not define"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			t.Parallel()
			c := testClient(t, Options{Proxy: socksReplier(t, tt.reply), ConnectTimeout: 5 * time.Second})
			_, _, err := get(t, c, "http://127.0.0.1:9/")
			var pe *ProxyError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v (%T), want a *ProxyError inside", err, err)
			}
			if want := "SOCKS5 proxy answered: " + tt.text; !strings.HasSuffix(err.Error(), want) || strings.Contains(err.Error(), "unknown") {
				t.Errorf("err = %q, want it to end with %q", err, want)
			}
			if pe.TargetUnreachable != tt.want {
				t.Errorf("TargetUnreachable = %v, want %v", pe.TargetUnreachable, tt.want)
			}
		})
	}
}

func TestPlainHTTPTargetProxy407IsAResponse(t *testing.T) {
	t.Parallel()
	p := newFakeProxy(t, false, func(p *fakeProxy) { p.status = http.StatusProxyAuthRequired })
	c := testClient(t, Options{Proxy: p.url(url.UserPassword("user", "wrong"))})
	resp, _, err := get(t, c, "http://127.0.0.1:9/")
	if err != nil {
		t.Fatalf("err = %v, want the proxy's 407 as a response", err)
	}
	if resp.StatusCode != http.StatusProxyAuthRequired {
		t.Errorf("status = %d, want 407", resp.StatusCode)
	}
}

func TestTargetTLSFailureThroughProxyIsNotProxyError(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "h1", nil)
	p := newFakeProxy(t, false, nil)
	c := testClient(t, Options{Proxy: p.url(nil), ConnectTimeout: 5 * time.Second})
	_, _, err := get(t, c, srv.URL)
	if err == nil {
		t.Fatal("request to an untrusted target succeeded")
	}
	var pe *ProxyError
	if errors.As(err, &pe) {
		t.Errorf("target's certificate failure reported as a proxy error: %v", err)
	}
}

func TestProxyClientsShareDNS(t *testing.T) {
	t.Parallel()
	p1 := newFakeProxy(t, false, nil)
	p2 := newFakeProxy(t, false, nil)
	res := &fakeResolver{addrs: map[string][]string{"proxy.test": {"127.0.0.1"}}}
	byName := func(p *fakeProxy) *url.URL {
		u := p.url(nil)
		u.Host = "proxy.test:" + u.Port()
		return u
	}
	opts := Options{DNSTTL: time.Minute, Resolver: res}
	opts.Shared = NewShared(opts)
	var clients []*http.Client
	for _, p := range []*fakeProxy{p1, p2} {
		o := opts
		o.Proxy = byName(p)
		c, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	for i, c := range clients {
		t.Cleanup(c.CloseIdleConnections)
		if _, body := mustGet(t, c, fmt.Sprintf("http://127.0.0.1:9/%d", i)); !strings.HasPrefix(body, "proxied ") {
			t.Errorf("client %d body = %q, want it answered by its proxy", i, body)
		}
	}
	for i, p := range []*fakeProxy{p1, p2} {
		_, targets := p.seen()
		if want := fmt.Sprintf("http://127.0.0.1:9/%d", i); len(targets) != 1 || targets[0] != want {
			t.Errorf("proxy %d saw %v, want [%s]", i, targets, want)
		}
	}
	if got := res.count("proxy.test"); got != 1 {
		t.Errorf("proxy name looked up %d times across clients, want 1 (shared cache)", got)
	}
}

func TestEnvProxy(t *testing.T) {
	// t.Setenv: not parallel.
	srv := newServer(t, "", nil)
	tlsSrv := newServer(t, "h2", nil)
	// The proxy tunnels every CONNECT to the TLS server.
	p := newFakeProxy(t, false, func(p *fakeProxy) { p.upstream = "127.0.0.1:" + tlsSrv.port() })
	res := &fakeResolver{addrs: map[string][]string{"target.test": {"127.0.0.1"}}}
	tests := []struct {
		name            string
		httpProxy       string
		httpsProxy      string
		noProxy         string
		target          string
		wantViaProxy    bool
		wantProxyTarget string
	}{
		{name: "HTTP_PROXY carries http", httpProxy: p.srv.URL, target: "http://target.test:" + srv.port() + "/a",
			wantViaProxy: true, wantProxyTarget: "http://target.test:" + srv.port() + "/a"},
		{name: "NO_PROXY names the host", httpProxy: p.srv.URL, noProxy: "target.test", target: "http://target.test:" + srv.port() + "/b"},
		{name: "loopback never proxied", httpProxy: p.srv.URL, target: srv.URL + "/c"},
		{name: "HTTPS_PROXY carries https through CONNECT", httpsProxy: strings.TrimPrefix(p.srv.URL, "http://"),
			target: "https://target.test:" + tlsSrv.port() + "/", wantViaProxy: true, wantProxyTarget: "target.test:" + tlsSrv.port()},
		{name: "HTTP_PROXY does not carry https", httpProxy: p.srv.URL, target: "https://target.test:" + tlsSrv.port() + "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "REQUEST_METHOD"} {
				t.Setenv(k, "")
			}
			t.Setenv("HTTP_PROXY", tt.httpProxy)
			t.Setenv("HTTPS_PROXY", tt.httpsProxy)
			t.Setenv("NO_PROXY", tt.noProxy)
			_, before := p.seen()
			c := testClient(t, Options{ProxyFromEnv: true, Resolver: res, DNSTTL: time.Minute, HTTP2: true, Insecure: true})
			_, body := mustGet(t, c, tt.target)
			_, after := p.seen()
			via := len(after) > len(before)
			if via != tt.wantViaProxy {
				t.Fatalf("went through the proxy = %v, want %v (body %q)", via, tt.wantViaProxy, body)
			}
			if via && after[len(after)-1] != tt.wantProxyTarget {
				t.Errorf("proxy saw %q, want %q", after[len(after)-1], tt.wantProxyTarget)
			}
			if strings.HasPrefix(tt.target, "https") && body != "HTTP/2.0" {
				t.Errorf("https body = %q, want HTTP/2.0", body)
			}
		})
	}
}

func TestEnvProxyInvalid(t *testing.T) {
	t.Setenv("HTTP_PROXY", "ftp://user:hunter2@proxy.example:21")
	t.Setenv("http_proxy", "")
	_, err := New(Options{ProxyFromEnv: true})
	if err == nil {
		t.Fatal("New accepted an ftp proxy from HTTP_PROXY")
	}
	if !strings.Contains(err.Error(), "HTTP_PROXY") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error = %q, want it to name HTTP_PROXY without the password", err)
	}
	// Proxy set explicitly wins over the environment.
	if _, err := New(Options{ProxyFromEnv: true, Proxy: &url.URL{Scheme: "http", Host: "127.0.0.1:1"}}); err != nil {
		t.Errorf("explicit proxy with a bad environment: %v", err)
	}
}

// TestProxyAuthorizationHeaderGoesToTheProxyOnly sends requests that carry
// a Proxy-Authorization header of their own through proxies whose URLs have
// other credentials: the header replaces the URL's credentials at the proxy,
// once, and no target ever sees it.
func TestProxyAuthorizationHeaderGoesToTheProxyOnly(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var targetSaw []string
	srv := newServer(t, "h2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		targetSaw = append(targetSaw, r.Header.Values("Proxy-Authorization")...)
		mu.Unlock()
		io.WriteString(w, r.Proto)
	}))
	given := basic("bob", "hunter2")
	tests := []struct {
		name     string
		tlsProxy bool
		target   string
		wantBody string
	}{
		{name: "http target via http proxy", target: "http://127.0.0.1:9/x", wantBody: "proxied http://127.0.0.1:9/x"},
		{name: "https target via CONNECT", target: srv.URL, wantBody: "HTTP/2.0"},
		{name: "http target via https proxy", tlsProxy: true, target: "http://127.0.0.1:9/y", wantBody: "proxied http://127.0.0.1:9/y"},
		{name: "https target via https proxy", tlsProxy: true, target: srv.URL, wantBody: "HTTP/2.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newFakeProxy(t, tt.tlsProxy, nil)
			c := testClient(t, Options{
				Proxy: p.url(url.UserPassword("alice", "s3cret")), HTTP2: true,
				Insecure: true, KeepAlive: time.Minute, ConnectTimeout: 5 * time.Second,
			})
			req, err := http.NewRequest(http.MethodGet, tt.target, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Proxy-Authorization", given)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("GET %s: %v", tt.target, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != tt.wantBody {
				t.Errorf("body = %q, want %q", body, tt.wantBody)
			}
			if got := req.Header.Get("Proxy-Authorization"); got != given {
				t.Errorf("the caller's header became %q", got)
			}
			auth, _ := p.seen()
			if len(auth) != 1 || auth[0] != given {
				t.Errorf("proxy saw Proxy-Authorization %q, want only the header's %q", auth, given)
			}
		})
	}
	t.Run("socks5", func(t *testing.T) {
		t.Parallel()
		proxy := startMicrosocks(t)
		plain := newServer(t, "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			targetSaw = append(targetSaw, r.Header.Values("Proxy-Authorization")...)
			mu.Unlock()
			io.WriteString(w, r.Proto)
		}))
		c := testClient(t, Options{Proxy: proxy, KeepAlive: time.Minute, ConnectTimeout: 5 * time.Second})
		req, err := http.NewRequest(http.MethodGet, plain.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Proxy-Authorization", given)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET through microsocks: %v", err)
		}
		resp.Body.Close()
	})
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if len(targetSaw) != 0 {
			t.Errorf("targets saw Proxy-Authorization %q", targetSaw)
		}
	})
}

// An environment proxy is read as ParseProxy reads it: braces in its user
// name do not make net/http's parser take "http" for its host.
func TestEnvProxyParsedAsProxyIs(t *testing.T) {
	for _, k := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "REQUEST_METHOD"} {
		t.Setenv(k, "")
	}
	t.Setenv("HTTP_PROXY", "http://h-{session}:envPw@127.0.0.1:1")
	var dialed []string
	var mu sync.Mutex
	c, err := New(Options{ProxyFromEnv: true, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dialed = append(dialed, addr)
		mu.Unlock()
		return nil, errors.New("no dialling in this test")
	}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Get("http://target.test/a")
	var pe *ProxyError
	if !errors.As(err, &pe) || pe.Proxy != "http://h-%7Bsession%7D:***@127.0.0.1:1" || strings.Contains(err.Error(), "envPw") {
		t.Errorf("err = %v, want a proxy error naming the proxy as written, password masked", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dialed) != 1 || dialed[0] != "127.0.0.1:1" {
		t.Errorf("dialled %q, want the proxy's 127.0.0.1:1", dialed)
	}
}
