package transport

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testCA is a certificate authority of a test's own.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	ca := &testCA{}
	ca.cert, ca.key = makeCert(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil)
	return ca
}

// makeCert signs tmpl with parent (itself when nil), valid from an hour
// ago for a day unless tmpl says otherwise.
func makeCert(t *testing.T, tmpl *x509.Certificate, parent *testCA) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// pemFile writes the CA's certificate as a PEM file.
func (ca *testCA) pemFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// serverCert is a server certificate for names (IP addresses or DNS
// names) issued through an intermediate of ca, which the server sends
// along; notAfter zero is a day from now.
func (ca *testCA) serverCert(t *testing.T, notAfter time.Time, names ...string) tls.Certificate {
	t.Helper()
	mid := &testCA{}
	mid.cert, mid.key = makeCert(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: ca.cert.Subject.CommonName + " intermediate"},
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, ca)
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: names[0]},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		NotAfter:    notAfter,
	}
	if !notAfter.IsZero() {
		tmpl.NotBefore = notAfter.Add(-48 * time.Hour)
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	leaf, key := makeCert(t, tmpl, mid)
	return tls.Certificate{Certificate: [][]byte{leaf.Raw, mid.cert.Raw}, PrivateKey: key, Leaf: leaf}
}

// certServer starts a TLS server (HTTP/1.1 and HTTP/2) with cert that
// answers "ok", and, to a proxy's forwarded request, "proxied".
func certServer(t *testing.T, cert tls.Certificate) *httptest.Server {
	srv, _ := resumeServer(t, cert)
	return srv
}

// resumeServer is certServer that counts the handshakes that resumed a
// session.
func resumeServer(t *testing.T, cert tls.Certificate) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.IsAbs() {
			io.WriteString(w, "proxied")
			return
		}
		io.WriteString(w, "ok")
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.EnableHTTP2 = true
	resumed := new(atomic.Int64)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, VerifyConnection: func(cs tls.ConnectionState) error {
		if cs.DidResume {
			resumed.Add(1)
		}
		return nil
	}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, resumed
}

// fakeSystemRoots makes the system's roots those of cas for the test,
// and counts the loads.
func fakeSystemRoots(t *testing.T, cas ...*testCA) *atomic.Int64 {
	t.Helper()
	loads := new(atomic.Int64)
	old := systemRoots
	systemRoots = func() (*x509.CertPool, error) {
		loads.Add(1)
		pool := x509.NewCertPool()
		for _, ca := range cas {
			pool.AddCert(ca.cert)
		}
		return pool, nil
	}
	t.Cleanup(func() { systemRoots = old })
	return loads
}

// TestCACertFileLoadsSystemRootsWhenNeeded: with a CA file, a server's
// chain is checked against the file's certificates first, and the
// system's roots are loaded (once a run) only when that fails; what is
// accepted and what is refused, and with what error, is as when both
// were loaded from the start. It replaces the system roots, so it does
// not run in parallel.
func TestCACertFileLoadsSystemRootsWhenNeeded(t *testing.T) {
	fileCA, sysCA, otherCA := newTestCA(t, "file CA"), newTestCA(t, "system CA"), newTestCA(t, "other CA")
	loads := fakeSystemRoots(t, sysCA)
	file := fileCA.pemFile(t)
	union := x509.NewCertPool()
	union.AddCert(sysCA.cert)
	union.AddCert(fileCA.cert)

	tests := []struct {
		name     string
		cert     tls.Certificate
		host     string // the URL's host, dialled at the server; "" is 127.0.0.1
		insecure bool
		ok       bool
		loads    int64 // system root loads over the whole case
	}{
		{name: "chain to the file's CA", cert: fileCA.serverCert(t, time.Time{}, "127.0.0.1"), ok: true, loads: 0},
		{name: "chain to the file's CA, DNS name", cert: fileCA.serverCert(t, time.Time{}, "a.example"), host: "a.example", ok: true, loads: 0},
		{name: "chain to a system CA", cert: sysCA.serverCert(t, time.Time{}, "127.0.0.1"), ok: true, loads: 1},
		{name: "chain to neither", cert: otherCA.serverCert(t, time.Time{}, "127.0.0.1"), loads: 1},
		{name: "file's CA, another IP address", cert: fileCA.serverCert(t, time.Time{}, "127.0.0.2"), loads: 1},
		{name: "file's CA, another DNS name", cert: fileCA.serverCert(t, time.Time{}, "a.example"), host: "b.example", loads: 1},
		{name: "system CA, another IP address", cert: sysCA.serverCert(t, time.Time{}, "127.0.0.2"), loads: 1},
		{name: "file's CA, expired", cert: fileCA.serverCert(t, time.Now().Add(-time.Hour), "127.0.0.1"), loads: 1},
		{name: "insecure, chain to neither", cert: otherCA.serverCert(t, time.Time{}, "127.0.0.1"), insecure: true, ok: true, loads: 0},
	}
	for _, tt := range tests {
		srv, resumed := resumeServer(t, tt.cert)
		addr := srv.Listener.Addr().String()
		u := srv.URL
		if tt.host != "" {
			_, port, _ := net.SplitHostPort(addr)
			u = "https://" + net.JoinHostPort(tt.host, port) + "/"
		}
		dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
		// What crypto/tls says of the server with both pools loaded.
		ref := &http.Client{Transport: &http.Transport{DialContext: dial, TLSClientConfig: &tls.Config{RootCAs: union}}}
		_, refErr := ref.Get(u)
		ref.CloseIdleConnections()
		if (refErr == nil) != tt.ok && !tt.insecure {
			t.Fatalf("%s: the reference client got %v", tt.name, refErr)
		}
		for _, http2 := range []bool{false, true} {
			name := tt.name + ", HTTP/1.1 path"
			if http2 {
				name = tt.name + ", net/http"
			}
			t.Run(name, func(t *testing.T) {
				before, resumedBefore := loads.Load(), resumed.Load()
				opts := Options{CACertFile: file, Insecure: tt.insecure, HTTP2: http2, KeepAlive: time.Minute,
					ConnectTimeout: 5 * time.Second, DialContext: dial}
				opts.Shared = NewShared(opts)
				// Several connections, over two clients of the run.
				for i := range 4 {
					c := testClient(t, opts)
					_, body, err := getGz(t, c, u)
					c.CloseIdleConnections()
					if tt.ok {
						if err != nil || body != "ok" {
							t.Fatalf("request %d: %q, %v", i, body, err)
						}
						continue
					}
					if err == nil {
						t.Fatalf("request %d: accepted, want %v", i, refErr)
					}
					if got, want := sansClock(err.Error()), sansClock(refErr.Error()); got != want {
						t.Errorf("request %d: error %q, want %q", i, got, want)
					}
					var ve *tls.CertificateVerificationError
					if !errors.As(err, &ve) || len(ve.UnverifiedCertificates) != 2 {
						t.Errorf("request %d: error %#v is not crypto/tls's verification error with the server's chain", i, err)
					}
				}
				if got := loads.Load() - before; got != tt.loads {
					t.Errorf("system roots loaded %d times, want %d", got, tt.loads)
				}
				// A session is checked again when it resumes, and passes.
				if got := resumed.Load() - resumedBefore; tt.ok && got != 3 {
					t.Errorf("%d of 4 connections resumed their session, want 3", got)
				}
			})
		}
	}
}

// TestCACertFileThroughProxies: with a CA file, the certificate of an
// HTTPS proxy, and of a target reached through a CONNECT tunnel, is
// checked as crypto/tls checks it against the file's and the system's
// certificates. It replaces the system roots, so it does not run in
// parallel.
func TestCACertFileThroughProxies(t *testing.T) {
	fileCA, sysCA, otherCA := newTestCA(t, "file CA"), newTestCA(t, "system CA"), newTestCA(t, "other CA")
	fakeSystemRoots(t, sysCA)
	file := fileCA.pemFile(t)
	tests := []struct {
		name    string
		proxy   tls.Certificate // an HTTPS proxy's; none: a plain HTTP proxy
		target  tls.Certificate // an https target's; none: plain http
		wantErr string
	}{
		{name: "proxy under the file's CA", proxy: fileCA.serverCert(t, time.Time{}, "127.0.0.1")},
		{name: "proxy under a system CA", proxy: sysCA.serverCert(t, time.Time{}, "127.0.0.1")},
		{name: "proxy under neither", proxy: otherCA.serverCert(t, time.Time{}, "127.0.0.1"),
			wantErr: "tls: failed to verify certificate: x509: certificate signed by unknown authority"},
		{name: "proxy for another address", proxy: fileCA.serverCert(t, time.Time{}, "127.0.0.2"),
			wantErr: "tls: failed to verify certificate: x509: certificate is valid for 127.0.0.2, not 127.0.0.1"},
		{name: "tunnelled target under the file's CA", target: fileCA.serverCert(t, time.Time{}, "127.0.0.1")},
		{name: "tunnelled target under a system CA", target: sysCA.serverCert(t, time.Time{}, "127.0.0.1")},
		{name: "tunnelled target for another address", target: fileCA.serverCert(t, time.Time{}, "127.0.0.2"),
			wantErr: "tls: failed to verify certificate: x509: certificate is valid for 127.0.0.2, not 127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, want := "http://127.0.0.1:9/", "proxied"
			var p *url.URL
			if tt.proxy.Certificate != nil {
				p, _ = url.Parse(certServer(t, tt.proxy).URL)
			} else {
				p = newFakeProxy(t, false, nil).url(nil)
			}
			if tt.target.Certificate != nil {
				u, want = certServer(t, tt.target).URL, "ok"
			}
			c := testClient(t, Options{CACertFile: file, Proxy: p, KeepAlive: time.Minute, ConnectTimeout: 5 * time.Second})
			_, body, err := get(t, c, u)
			if tt.wantErr == "" {
				if err != nil || body != want {
					t.Fatalf("got %q, %v; want %q", body, err, want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one with %q", err, tt.wantErr)
			}
			if tt.proxy.Certificate != nil && kindOf(err) != "proxy" {
				t.Errorf("error kind %q, want proxy", kindOf(err))
			}
		})
	}
}

// TestReadCAFile: the check of a CA file reads the file alone, not the
// system's roots, says what is wrong with it, and returns what it read.
// A CERTIFICATE block that does not parse is refused, wherever it is in
// the file; blocks of other types are skipped.
func TestReadCAFile(t *testing.T) {
	loads := fakeSystemRoots(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	ca, other := newTestCA(t, "file CA"), newTestCA(t, "other CA")
	good := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
	otherPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.cert.Raw})
	// The certificate's DER with bytes of its body overwritten, as
	// `sed '2s/^.\{10\}/AAAAAAAAAA/'` leaves a PEM file.
	bad := append([]byte(nil), other.cert.Raw...)
	copy(bad[4:], make([]byte, 8))
	badPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: bad})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("not a key")})
	// Base64 that does not decode: pem.Decode skips such a block.
	broken := []byte("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")
	join := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	for _, tt := range []struct {
		name, path, wantErr string
		certs               int
	}{
		{"a CA", write("ca.pem", good), "", 1},
		{"two CAs and a key", write("two.pem", join(keyPEM, good, []byte("text between\n"), otherPEM)), "", 2},
		{"missing", filepath.Join(dir, "nope.pem"), "no such file or directory", 0},
		{"no PEM", write("garbage.pem", []byte("not a certificate\n")), "holds no PEM certificate", 0},
		{"a key alone", write("key.pem", keyPEM), "holds no PEM certificate", 0},
		{"second certificate does not parse", write("corrupt.pem", join(good, badPEM)), "certificate 2 does not parse: ", 0},
		{"first certificate does not parse", write("corrupt1.pem", join(keyPEM, badPEM, good)), "certificate 1 does not parse: ", 0},
		{"certificate not valid PEM", write("broken.pem", join(good, broken, otherPEM)), "certificate 2 does not parse: not valid PEM", 0},
		{"certificate without its end", write("cut.pem", join(good, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n"))), "certificate 2 does not parse: not valid PEM", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data, err := ReadCAFile(tt.path)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %v, want one line starting %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			file, _ := os.ReadFile(tt.path)
			if string(data) != string(file) {
				t.Error("ReadCAFile did not return the file's bytes")
			}
			roots, err := parseCA(data)
			if err != nil || len(roots.certs) != tt.certs {
				t.Fatalf("parseCA: %v, %d certificates, want %d", err, len(roots.certs), tt.certs)
			}
		})
	}
	if loads.Load() != 0 {
		t.Errorf("the system roots were loaded %d times", loads.Load())
	}
}

// TestCACertPEM: a client given the CA file's bytes (Options.CACertPEM)
// trusts them and never opens the file, which may be a pipe read once
// already; Options.CACertFile names it in messages only.
func TestCACertPEM(t *testing.T) {
	loads := fakeSystemRoots(t)
	ca := newTestCA(t, "file CA")
	srv := certServer(t, ca.serverCert(t, time.Time{}, "127.0.0.1"))
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
	missing := filepath.Join(t.TempDir(), "gone.pem")
	for _, http2 := range []bool{false, true} {
		opts := Options{CACertFile: missing, CACertPEM: data, HTTP2: http2, ConnectTimeout: 5 * time.Second}
		opts.Shared = NewShared(opts)
		for i := range 2 {
			c := testClient(t, opts)
			if _, body, err := get(t, c, srv.URL); err != nil || body != "ok" {
				t.Fatalf("HTTP/2 %v, client %d: %q, %v", http2, i, body, err)
			}
		}
	}
	if loads.Load() != 0 {
		t.Errorf("the system roots were loaded %d times", loads.Load())
	}
	_, err := New(Options{CACertFile: "ca.pem", CACertPEM: []byte("junk\n")})
	if err == nil || err.Error() != "CA file ca.pem: holds no PEM certificate" {
		t.Errorf("error %v, want the file named", err)
	}
}

// TestWebSocketUpgradeOffersHTTP1Only: a request HTTP/2 cannot carry (a
// WebSocket upgrade) goes over a connection that offered HTTP/1.1 alone,
// as net/http's own would, to a server that speaks HTTP/2 too.
func TestWebSocketUpgradeOffersHTTP1Only(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "h2", nil)
	c := testClient(t, Options{HTTP2: true, CACertFile: srv.caFile(t), KeepAlive: time.Minute, ConnectTimeout: 5 * time.Second})
	req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "HTTP/1.1" || resp.Request != req {
		t.Errorf("the server saw %q (want HTTP/1.1); resp.Request is the request sent: %v", body, resp.Request == req)
	}
}

// clockInError is the time an x509 expiry error gives as now, which
// differs between two errors made a second apart.
var clockInError = regexp.MustCompile(`current time \S+ is`)

// sansClock is an error text with the time of clockInError left out.
func sansClock(s string) string { return clockInError.ReplaceAllString(s, "current time NOW is") }
