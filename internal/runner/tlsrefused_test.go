package runner

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/target"
	"github.com/fetchctl/fetchctl/internal/testnet"
	"github.com/fetchctl/fetchctl/internal/transport"
)

// refusingServer serves TLS handshakes by conf on loopback, none of which
// the tests expect to succeed, and returns its address. After a failed
// handshake it reads on until the client closes, so that the alert it
// sent reaches the client rather than being lost to a reset.
func refusingServer(t *testing.T, conf *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testnet.Serve(t, ln, func(c net.Conn) {
		tc := tls.Server(c, conf)
		if err := tc.Handshake(); err == nil {
			io.WriteString(tc, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		}
		io.Copy(io.Discard, c)
	})
	return ln.Addr().String()
}

// plainHTTPServer answers whatever it is sent with an HTTP/1.1 400, as a
// plain-http server answers a TLS handshake.
func plainHTTPServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testnet.Serve(t, ln, func(c net.Conn) {
		buf := make([]byte, 1)
		if _, err := c.Read(buf); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		io.Copy(io.Discard, c)
	})
	return ln.Addr().String()
}

// connectProxy is a loopback proxy that tunnels CONNECT requests, over
// TLS with conf, over plain TCP when conf is nil.
func connectProxy(t *testing.T, conf *tls.Config) *url.URL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	scheme := "http"
	if conf != nil {
		ln = tls.NewListener(ln, conf)
		scheme = "https"
	}
	testnet.Serve(t, ln, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil || req.Method != http.MethodConnect {
			return
		}
		up, err := net.DialTimeout("tcp", req.Host, 5*time.Second)
		if err != nil {
			io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
			return
		}
		defer up.Close()
		io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		done := make(chan struct{})
		go func() {
			io.Copy(up, br)
			up.(*net.TCPConn).CloseWrite()
			close(done)
		}()
		io.Copy(c, up)
		c.Close()
		<-done
	})
	u, _ := url.Parse(scheme + "://" + ln.Addr().String())
	return u
}

// TestTLSRefusedIsKindTLS: a handshake the server ends (an alert: a client
// certificate required, a protocol version or cipher suites in common
// with none of the client's) and a plain-http server's answer to one are
// kind tls, directly over HTTP/2 and HTTP/1.1 and through proxies, keep
// their message, and are retried under --retry-on tls.
func TestTLSRefusedIsKindTLS(t *testing.T) {
	t.Parallel()
	cert, err := target.LoopbackCert()
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(cert.Leaf)
	serve := func(c *tls.Config) string {
		c.Certificates = []tls.Certificate{cert}
		return refusingServer(t, c)
	}
	servers := []struct {
		name, addr, want string
	}{
		{"client certificate required, TLS 1.2", serve(&tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs, MaxVersion: tls.VersionTLS12}), "remote error: tls: handshake failure"},
		{"client certificate required, TLS 1.3", serve(&tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs, MinVersion: tls.VersionTLS13}), "remote error: tls: certificate required"},
		{"TLS 1.1 only", serve(&tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}), "remote error: tls: protocol version not supported"},
		{"no cipher suite in common", serve(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA}}), "remote error: tls: handshake failure"},
		{"plain http server", plainHTTPServer(t), "http: server gave HTTP response to HTTPS client"},
	}

	tinyproxy, err := target.StartTinyproxy(t.TempDir(), target.TinyproxyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tinyproxy.Stop)
	microsocks, err := target.StartMicrosocks("u", "pw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(microsocks.Stop)
	routes := []struct {
		name  string
		http2 bool
		proxy *url.URL
	}{
		{name: "direct, HTTP/2 on", http2: true},
		{name: "direct, HTTP/2 off"},
		{name: "tinyproxy", http2: true, proxy: &url.URL{Scheme: "http", Host: tinyproxy.Addr}},
		{name: "tinyproxy, HTTP/2 off", proxy: &url.URL{Scheme: "http", Host: tinyproxy.Addr}},
		{name: "microsocks", http2: true, proxy: &url.URL{Scheme: "socks5", Host: microsocks.Addr, User: url.UserPassword("u", "pw")}},
		{name: "http proxy tunnel", http2: true, proxy: connectProxy(t, nil)},
		{name: "https proxy tunnel", http2: true, proxy: connectProxy(t, &tls.Config{Certificates: []tls.Certificate{cert}})},
		{name: "https proxy tunnel, HTTP/2 off", proxy: connectProxy(t, &tls.Config{Certificates: []tls.Certificate{cert}})},
	}
	for _, rt := range routes {
		for _, srv := range servers {
			t.Run(rt.name+"/"+srv.name, func(t *testing.T) {
				t.Parallel()
				c, err := transport.New(transport.Options{HTTP2: rt.http2, CACertFile: caFile, Proxy: rt.proxy, ConnectTimeout: 5 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(c.CloseIdleConnections)
				opts := Options{
					Limit: 1, PerHost: 1, Timeout: 10 * time.Second,
					Retries: 2, RetryOn: mustRetryOn(t, "tls"), Backoff: time.Millisecond, BackoffMax: time.Millisecond,
					Routes: []Route{{Client: c}},
				}
				recs, err := runJobs(t, context.Background(), opts, []string{"https://" + srv.addr + "/"})
				if err != nil {
					t.Fatal(err)
				}
				r := recs[0]
				if r.Error == nil {
					t.Fatalf("record without an error: %+v", r)
				}
				if r.Error.Kind != "tls" || !strings.Contains(r.Error.Message, srv.want) {
					t.Errorf("error %s: %q, want tls: %q", r.Error.Kind, r.Error.Message, srv.want)
				}
				if r.Attempts != 3 {
					t.Errorf("%d attempts, want 3: --retry-on tls retries it twice", r.Attempts)
				}
			})
		}
	}
}
