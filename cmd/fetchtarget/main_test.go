package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/fetchctl/fetchctl/cmd/fetchtarget/internal/fast"
)

func TestWriteURLs(t *testing.T) {
	t.Parallel()
	bases := []string{"http://a:1", "http://b:2"}
	tests := []struct {
		name   string
		n      int
		sorted bool
		paths  []string
		want   []string
	}{
		{"round robin", 4, false, []string{"/"}, []string{
			"http://a:1/?key=0", "http://b:2/?key=1", "http://a:1/?key=2", "http://b:2/?key=3"}},
		{"sorted", 5, true, []string{"/"}, []string{
			"http://a:1/?key=0", "http://a:1/?key=1", "http://a:1/?key=2", "http://b:2/?key=3", "http://b:2/?key=4"}},
		{"paths mixed", 3, false, []string{"/flaky?fail=1", "/x", "/429?"}, []string{
			"http://a:1/flaky?fail=1&key=0", "http://b:2/x?key=1", "http://a:1/429?key=2"}},
		{"none", 0, false, []string{"/"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			if err := writeURLs(&buf, bases, tt.n, tt.sorted, tt.paths); err != nil {
				t.Fatal(err)
			}
			got := strings.Fields(buf.String())
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("urls =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestParseFlagsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
	}{
		{"bad body", []string{"-body", "lots"}},
		{"zero hosts", []string{"-hosts", "0"}},
		{"relative path", []string{"-paths", "/,flaky"}},
		{"cert without tls", []string{"-cert", "c.pem"}},
		{"fast with tls", []string{"-fast", "-tls"}},
		{"fast with http2", []string{"-fast", "-http2"}},
		{"rtt without gateway", []string{"-rtt", "100ms"}},
		{"negative rtt", []string{"-gateway", "-rtt", "-1s"}},
		{"extra argument", []string{"x"}},
		{"unknown flag", []string{"-nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			if code := run(tt.args, io.Discard, &stderr, nil, func() {}); code != 2 {
				t.Errorf("run(%q) = %d, want 2 (stderr %q)", tt.args, code, stderr.String())
			}
		})
	}
}

// TestRun drives the binary's whole life through run, with net/http's server
// alone, with the fast responder ahead of it and through the gateway: URL list and ready line on
// stdout, a SIGUSR1 stats snapshot, then SIGTERM and the final stats file.
func TestRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		flags  []string
		server string
	}{
		{"net/http", nil, "net/http"},
		{"fast", []string{"-fast"}, fast.Name},
		{"gateway", []string{"-gateway", "-rtt", "2ms"}, "net/http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testRun(t, tc.flags, tc.server)
		})
	}
}

// testRun is one case of TestRun: run with these extra flags, whose ready
// line must name server.
func testRun(t *testing.T, flags []string, server string) {
	pr, pw := io.Pipe()
	sigs := make(chan os.Signal, 1)
	stopped := make(chan struct{})
	done := make(chan int, 1)
	args := []string{"-hosts", "2", "-body", "10", "-urls", "4", "-paths", "/,/flaky?fail=1",
		"-list", "-", "-ready", "-", "-stats", "-"}
	args = append(args, flags...)
	go func() {
		code := run(args, pw, io.Discard, sigs, func() { close(stopped) })
		pw.Close()
		done <- code
	}()

	t.Cleanup(func() {
		// On an early failure, unblock and stop run.
		pr.Close()
		select {
		case sigs <- syscall.SIGTERM:
		default:
		}
	})

	rd := bufio.NewReader(pr)
	var urls []string
	for range 4 {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		urls = append(urls, strings.TrimSpace(line))
	}
	dec := json.NewDecoder(rd)
	var rdy ready
	if err := dec.Decode(&rdy); err != nil {
		t.Fatalf("ready: %v", err)
	}
	if len(rdy.Addrs) != 2 || !strings.HasPrefix(urls[1], rdy.Bases[1]+"/flaky?fail=1&key=1") {
		t.Fatalf("ready %+v and urls %q do not match", rdy, urls)
	}
	if rdy.Server != server {
		t.Errorf("ready server = %q, want %q", rdy.Server, server)
	}

	tr := &http.Transport{}
	gw := slices.Contains(flags, "-gateway")
	if gw {
		// Every request through the gateway, on one connection.
		if rdy.Gateway == "" {
			t.Fatalf("ready %+v names no gateway", rdy)
		}
		tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: rdy.Gateway})
	}
	c := &http.Client{Transport: tr}
	defer c.CloseIdleConnections()
	var statuses []int
	for _, u := range append(urls, urls[1]) {
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
	}
	if got, want := fmt.Sprint(statuses), "[200 503 200 503 200]"; got != want {
		t.Errorf("statuses = %s, want %s", got, want)
	}

	// SIGUSR1 (where there is one) writes a snapshot and keeps serving;
	// SIGTERM writes the final counters and stops.
	for _, sig := range append(statsSignals[:len(statsSignals):len(statsSignals)], syscall.SIGTERM) {
		sigs <- sig
		var st stats
		if err := dec.Decode(&st); err != nil {
			t.Fatalf("stats after %v: %v", sig, err)
		}
		if gw && (st.Gateway == nil || st.Gateway.Forwarded != 5 || st.Gateway.Conns != 1) {
			t.Errorf("gateway stats after %v = %+v, want 5 forwarded on 1 connection", sig, st.Gateway)
		}
		if !gw && st.Gateway != nil {
			t.Errorf("stats after %v name a gateway that was not asked for: %+v", sig, st.Gateway)
		}
		if st.Requests != 5 || len(st.Hosts) != 2 || st.Hosts[1].Requests != 3 || st.InFlight != 0 {
			t.Errorf("stats after %v = %+v, want 5 requests, 3 of them on host 1, none in flight", sig, st)
		}
	}
	<-stopped
	if code := <-done; code != 0 {
		t.Fatalf("run exit code = %d, want 0", code)
	}
}

func TestWriteFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "out.json")
	if err := writeFile(path, nil, func(w io.Writer) error {
		_, err := io.WriteString(w, "one")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	failed := errors.New("fill failed")
	if err := writeFile(path, nil, func(w io.Writer) error {
		io.WriteString(w, "two")
		return failed
	}); !errors.Is(err, failed) {
		t.Errorf("err = %v, want %v", err, failed)
	}
	// The failed write leaves the old content and no temporary file.
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "one" {
		t.Errorf("content = %q, %v; want %q", b, err, "one")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("dir holds %d entries, want 1", len(ents))
	}
}

func TestHelpListsPaths(t *testing.T) {
	var stderr strings.Builder
	if _, err := parseFlags([]string{"-help"}, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("parseFlags(-help) = %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"-hosts", "/status/NNN", "/flaky?fail=K", "/429?after", "/reset", "/stall?for=", "/echo"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("help does not list %s:\n%s", want, stderr.String())
		}
	}
}

// -certdir writes a key pair a file-reading server (nginx) can load, whose
// certificate a client trusting it accepts for 127.0.0.1, and serves nothing.
func TestCertDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var stderr bytes.Buffer
	if code := run([]string{"-certdir", dir}, io.Discard, &stderr, nil, func() {}); code != 0 {
		t.Fatalf("run -certdir = %d, want 0 (stderr %q)", code, stderr.String())
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(filepath.Join(dir, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("cert.pem holds no certificate")
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1"}); err != nil {
		t.Errorf("the certificate does not verify for 127.0.0.1: %v", err)
	}
}

func TestServerName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{nil, "net/http"},
		{[]string{"-fast"}, fast.Name},
		{[]string{"-tls"}, "net/http (TLS, HTTP/1.1)"},
		{[]string{"-tls", "-http2"}, "net/http (TLS, HTTP/2 and HTTP/1.1)"},
		{[]string{"-http2"}, "net/http (h2c and HTTP/1.1)"},
	}
	for _, tt := range tests {
		o, err := parseFlags(tt.args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if got := serverName(o); got != tt.want {
			t.Errorf("serverName(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
}
