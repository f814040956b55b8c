package transport

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
	"github.com/fetchctl/fetchctl/internal/testnet"
)

// forwarder is an HTTP proxy as a plain-http request sees it: on each
// connection it reads requests and does what answer says for the n-th of
// them (0 first).
func forwarder(t *testing.T, answer func(c net.Conn, n int) bool) *url.URL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testnet.Serve(t, ln, func(c net.Conn) {
		br := bufio.NewReader(c)
		for n := 0; ; n++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			req.Body.Close()
			if !answer(c, n) {
				return
			}
		}
	})
	return &url.URL{Scheme: "http", Host: ln.Addr().String(), User: url.UserPassword("user", "fwd-secret-pw")}
}

// reset closes c with an RST.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

const okAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

// TestForwardingProxyWithoutHTTPAnswerIsProxyError: a plain-http request
// forwarded by an HTTP proxy whose connection yields no HTTP response at
// all (bytes that are no status line, or a close or reset before any byte
// on a connection that had carried no response) failed at the proxy, as a
// CONNECT would: a *ProxyError that names the proxy, password masked. An
// answer in HTTP, the proxy's own 502 included, stays a response, and a
// reused connection that breaks is no proxy failure.
func TestForwardingProxyWithoutHTTPAnswerIsProxyError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		answer func(c net.Conn, n int) bool
		// post sends a second request, a POST net/http cannot send again,
		// after a first one answered on the same connection.
		post      bool
		wantProxy bool
		wantInErr string
		status    int
	}{
		{
			name:      "SOCKS5 bytes",
			answer:    func(c net.Conn, _ int) bool { c.Write([]byte{5, 0xff}); return false },
			wantProxy: true,
			wantInErr: `no HTTP answer: malformed HTTP response "\x05\xff"`,
		},
		{
			name:      "garbage status line",
			answer:    func(c net.Conn, _ int) bool { c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n")); return false },
			wantProxy: true,
			wantInErr: "no HTTP answer: malformed HTTP",
		},
		{
			name:      "closed before answering",
			answer:    func(net.Conn, int) bool { return false },
			wantProxy: true,
			wantInErr: "closed the connection without answering",
		},
		{
			name:      "reset before answering",
			answer:    func(c net.Conn, _ int) bool { reset(c); return false },
			wantProxy: true,
			wantInErr: "broke the connection without answering: read tcp ",
		},
		{
			name: "the proxy's 502",
			answer: func(c net.Conn, _ int) bool {
				c.Write([]byte("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"))
				return true
			},
			status: http.StatusBadGateway,
		},
		{
			name: "reset on a reused connection",
			answer: func(c net.Conn, n int) bool {
				if n == 0 {
					c.Write([]byte(okAnswer))
					return true
				}
				reset(c)
				return false
			},
			post: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := forwarder(t, tt.answer)
			c := testClient(t, Options{Proxy: p, ConnectTimeout: 5 * time.Second, KeepAlive: time.Minute, MaxIdle: 4})
			var (
				resp *http.Response
				err  error
			)
			if tt.post {
				if _, _, err := get(t, c, "http://127.0.0.1:9/first"); err != nil {
					t.Fatalf("first request: %v", err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1:9/second", strings.NewReader("x"))
				req.GetBody = nil
				resp, err = c.Do(req)
				if err == nil {
					resp.Body.Close()
				}
			} else {
				resp, _, err = get(t, c, "http://127.0.0.1:9/x")
			}
			if strings.Contains(errText(err), "fwd-secret-pw") {
				t.Errorf("error leaks the proxy password: %q", err)
			}
			var pe *ProxyError
			isProxy := errors.As(err, &pe)
			switch {
			case tt.wantProxy:
				if !isProxy {
					t.Fatalf("err = %v (%T), want a *ProxyError", err, err)
				}
				if pe.Proxy != secret.URLOf(p) || pe.TargetUnreachable {
					t.Errorf("ProxyError names %q (target unreachable %v), want %q and false", pe.Proxy, pe.TargetUnreachable, secret.URLOf(p))
				}
				if want := "proxy " + secret.URLOf(p) + ": " + tt.wantInErr; !strings.HasPrefix(pe.Error(), want) {
					t.Errorf("error = %q, want it to start with %q", pe.Error(), want)
				}
			case isProxy:
				t.Errorf("err = %v, want no *ProxyError", err)
			case tt.status != 0:
				if err != nil || resp.StatusCode != tt.status {
					t.Errorf("got %v, %v; want the response %d", resp, err, tt.status)
				}
			case err == nil:
				t.Errorf("POST on a reset connection succeeded, want an error")
			}
		})
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
