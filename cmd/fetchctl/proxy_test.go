package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/fetchctl/fetchctl/internal/target"
)

// Real proxies come from Debian's packages (apt-get install tinyproxy
// microsocks; .ci/run installs them). Without them the tests that need them
// are skipped, except under CI, where they fail.

// scriptCondition answers testscript conditions: [proxies] is true when
// tinyproxy and microsocks are installed, and an error under CI when not.
func scriptCondition(cond string) (bool, error) {
	if cond != "proxies" {
		return false, fmt.Errorf("unknown condition %q", cond)
	}
	for _, name := range []string{"tinyproxy", "microsocks"} {
		if _, err := target.ProxyPath(name); err != nil {
			if os.Getenv("CI") != "" {
				return false, fmt.Errorf("%v: CI runs the real-proxy tests", err)
			}
			return false, nil
		}
	}
	return true, nil
}

// cmdProxyd starts a real proxy for the rest of the script and sets $NAME to
// its host:port:
//
//	proxyd tinyproxy NAME [USER PASS]
//	proxyd microsocks NAME USER PASS
func cmdProxyd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: proxyd tinyproxy|microsocks NAME [USER PASS]")
	}
	kind, name := args[0], args[1]
	var user, pass string
	switch len(args) {
	case 2:
	case 4:
		user, pass = args[2], args[3]
	default:
		ts.Fatalf("usage: proxyd tinyproxy|microsocks NAME [USER PASS]")
	}
	var (
		d   *target.Daemon
		err error
	)
	switch kind {
	case "tinyproxy":
		// The Via header stays on, so a target's /echo shows that a
		// request came through the proxy.
		d, err = target.StartTinyproxy(ts.MkAbs("."), target.TinyproxyOptions{User: user, Pass: pass, Via: true})
	case "microsocks":
		if user == "" {
			ts.Fatalf("proxyd microsocks needs USER and PASS")
		}
		d, err = target.StartMicrosocks(user, pass)
	default:
		ts.Fatalf("proxyd: unknown proxy %q", kind)
	}
	if err != nil {
		ts.Fatalf("proxyd: %v (guard the script with [!proxies] skip)", err)
	}
	ts.Defer(d.Stop)
	ts.Setenv(name, d.Addr)
}

// cmdClosedPort sets $NAME to a loopback host:port where nothing listens:
// "closedport NAME".
func cmdClosedPort(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: closedport NAME")
	}
	addr, err := target.ClosedAddr()
	ts.Check(err)
	ts.Setenv(args[0], addr)
}

// peak counts requests in flight and remembers the most at once.
type peak struct{ cur, max atomic.Int64 }

func (p *peak) enter() {
	n := p.cur.Add(1)
	for m := p.max.Load(); n > m && !p.max.CompareAndSwap(m, n); m = p.max.Load() {
	}
}

func (p *peak) leave() { p.cur.Add(-1) }

// forwardProxy is an HTTP forward proxy on loopback: it forwards plain-http
// requests and tunnels CONNECT, optionally asks for basic credentials, and
// counts what it carries: requests, URLs, and the peak in flight in total
// and per target host. A forwarded request counts as in flight from its
// arrival until the target's whole answer has been read, before any of it
// goes back to the client, so the client can never have started its next
// request while this one still counts.
type forwardProxy struct {
	srv        *httptest.Server
	upstream   *http.Transport
	user, pass string

	requests atomic.Int64
	total    peak
	mu       sync.Mutex
	perHost  map[string]*peak
	urls     map[string]int
}

func newForwardProxy(t *testing.T, user, pass string) *forwardProxy {
	return startForwardProxy(t, user, pass, false)
}

// startForwardProxy starts a forward proxy, speaking TLS to its clients
// when tlsProxy is set (an https:// proxy).
func startForwardProxy(t *testing.T, user, pass string, tlsProxy bool) *forwardProxy {
	t.Helper()
	p := &forwardProxy{
		user: user, pass: pass,
		perHost:  map[string]*peak{},
		urls:     map[string]int{},
		upstream: &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second},
	}
	if tlsProxy {
		p.srv = httptest.NewTLSServer(p)
	} else {
		p.srv = httptest.NewServer(p)
	}
	t.Cleanup(func() {
		p.srv.Close()
		p.upstream.CloseIdleConnections()
	})
	return p
}

// hostPort is the proxy's address without a scheme.
func (p *forwardProxy) hostPort() string { return p.srv.Listener.Addr().String() }

func (p *forwardProxy) hostPeak(host string) *peak {
	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.perHost[host]
	if g == nil {
		g = &peak{}
		p.perHost[host] = g
	}
	return g
}

func (p *forwardProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.user != "" {
		want := "Basic " + base64.StdEncoding.EncodeToString([]byte(p.user+":"+p.pass))
		// A -H Proxy-Authorization is sent as well as the proxy URL's.
		if !slices.Contains(r.Header.Values("Proxy-Authorization"), want) {
			w.Header().Set("Proxy-Authenticate", `Basic realm="test"`)
			http.Error(w, "proxy credentials wanted", http.StatusProxyAuthRequired)
			return
		}
	}
	if r.Method == http.MethodConnect {
		p.tunnel(w, r)
		return
	}
	p.requests.Add(1)
	p.mu.Lock()
	p.urls[r.URL.String()]++
	p.mu.Unlock()
	host := p.hostPeak(r.URL.Host)
	p.total.enter()
	host.enter()
	status, header, body, err := p.forward(r)
	host.leave()
	p.total.leave()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	for k, v := range header {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
	w.Write(body)
}

func (p *forwardProxy) forward(r *http.Request) (int, http.Header, []byte, error) {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.Header.Del("Proxy-Authorization")
	out.Header.Del("Proxy-Connection")
	resp, err := p.upstream.RoundTrip(out)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, err
	}
	resp.Header.Del("Content-Length")
	resp.Header.Del("Connection")
	return resp.StatusCode, resp.Header, body, nil
}

func (p *forwardProxy) tunnel(w http.ResponseWriter, r *http.Request) {
	up, err := net.DialTimeout("tcp", r.Host, 5*time.Second)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		up.Close()
		http.Error(w, "no hijacking", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
	conn, buf, err := hj.Hijack()
	if err != nil {
		up.Close()
		return
	}
	done := make(chan struct{})
	go func() {
		io.Copy(up, buf)
		up.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	io.Copy(conn, up)
	conn.Close()
	<-done
	up.Close()
}

// fetchctlResult is what one fetchctl process wrote.
type fetchctlResult struct {
	stdout, stderr string
	code           int
}

// runFetchctl runs the fetchctl binary built by TestMain in dir with a clean
// environment (no FETCHCTL_* or *_PROXY variables, HOME in dir) plus env.
func runFetchctl(t *testing.T, dir string, env []string, args ...string) fetchctlResult {
	t.Helper()
	bin, err := exec.LookPath("fetchctl")
	if err != nil {
		t.Fatalf("fetchctl not on PATH: %v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "FETCHCTL_"), strings.HasSuffix(strings.ToUpper(name), "_PROXY"),
			name == "HOME", name == "XDG_CONFIG_HOME", name == "CI", name == "REQUEST_METHOD":
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, ".config"))
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run fetchctl: %v", err)
	}
	return fetchctlResult{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// record is the part of an NDJSON record these tests read.
type record struct {
	URL      string `json:"url"`
	Line     int    `json:"line"`
	OK       bool   `json:"ok"`
	Status   int    `json:"status"`
	Attempts int    `json:"attempts"`
	Proto    string `json:"proto"`
	Proxy    string `json:"proxy"`
	Error    *struct {
		Kind    string `json:"kind"`
		Message string `json:"message"`
	} `json:"error"`
	Blocked  bool  `json:"blocked"`
	BytesOut int64 `json:"bytes_out"`
	BytesIn  int64 `json:"bytes_in"`
	History  []struct {
		Status   int    `json:"status"`
		Proxy    string `json:"proxy"`
		Blocked  bool   `json:"blocked"`
		BytesOut int64  `json:"bytes_out"`
		BytesIn  int64  `json:"bytes_in"`
	} `json:"history"`
}

func readRecords(t *testing.T, name string) []record {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []record
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v: %q", name, err, sc.Text())
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestHTTPSProxy fetches through an https:// proxy (TLS to the proxy
// itself): an http target forwarded, an https target through CONNECT with
// HTTP/2 inside. --cacert trusts both the proxy's and the target's
// certificates.
func TestHTTPSProxy(t *testing.T) {
	t.Parallel()
	plain, err := target.Start(target.Options{BodySize: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(plain.Close)
	secure, err := target.Start(target.Options{BodySize: 8, TLS: true, HTTP2: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(secure.Close)
	proxy := startForwardProxy(t, "user", "tls-pass", true)
	dir := t.TempDir()
	cas := append(secure.CertPEM(), pemCert(proxy.srv.Certificate().Raw)...)
	files := map[string]string{
		"ca.pem":   string(cas),
		"urls.txt": plain.URL(0, "/x") + "\n" + secure.URL(0, "/x") + "\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res := runFetchctl(t, dir, nil, "run", "-q", "--cacert", "ca.pem", "--proxy", "https://user:tls-pass@"+proxy.hostPort(), "-o", "out.ndjson", "urls.txt")
	if res.code != 0 {
		t.Fatalf("fetchctl exited %d: %s", res.code, res.stderr)
	}
	recs := readRecords(t, filepath.Join(dir, "out.ndjson"))
	sort.Slice(recs, func(i, j int) bool { return recs[i].Line < recs[j].Line })
	wantProxy := "https://user:***@" + proxy.hostPort()
	for i, want := range []string{"HTTP/1.1", "HTTP/2.0"} {
		if i >= len(recs) {
			t.Fatalf("%d records, want 2", len(recs))
		}
		r := recs[i]
		if !r.OK || r.Proto != want || r.Proxy != wantProxy {
			t.Errorf("line %d: ok %v proto %q proxy %q, want ok %s through %s (%+v)", r.Line, r.OK, r.Proto, r.Proxy, want, wantProxy, r.Error)
		}
	}
	if got := proxy.requests.Load(); got != 1 {
		t.Errorf("proxy forwarded %d plain-http requests, want 1", got)
	}
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestProxyFileSpreadsLoad runs 3,000 URLs over four target hosts through a
// --proxy-file of three forward proxies and checks that every URL is
// fetched once and that each proxy carries a fair share, within the caps:
// --limit in total and --per-host per target host over all proxies, what
// the target sees, and --per-proxy at each proxy. (Until --per-proxy came,
// --limit and --per-host held at each proxy, and this run put 30 requests
// in flight on the target; TestProxyCapsHoldAcrossProxies pins each cap.)
func TestProxyFileSpreadsLoad(t *testing.T) {
	t.Parallel()
	const (
		urls     = 3000
		hosts    = 4
		limit    = 10
		perHost  = 3
		perProxy = 4
	)
	srv, err := target.Start(target.Options{Hosts: hosts, BodySize: 64, Latency: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	proxies := []*forwardProxy{newForwardProxy(t, "", ""), newForwardProxy(t, "", ""), newForwardProxy(t, "", "")}

	dir := t.TempDir()
	var list strings.Builder
	for i := range urls {
		fmt.Fprintf(&list, "%s?i=%d\n", srv.URL(i%hosts, "/x"), i)
	}
	var pf strings.Builder
	pf.WriteString("# three local forward proxies\n\n")
	names := make([]string, len(proxies))
	for i, p := range proxies {
		names[i] = p.srv.URL
		fmt.Fprintf(&pf, "# proxy %d\n  %s  \n", i, p.srv.URL)
	}
	for name, text := range map[string]string{"urls.txt": list.String(), "proxies.txt": pf.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res := runFetchctl(t, dir, nil, "run", "-q", "--progress", "never", "--proxy-file", "proxies.txt",
		"--limit", strconv.Itoa(limit), "--per-host", strconv.Itoa(perHost), "--per-proxy", strconv.Itoa(perProxy),
		"-o", "out.ndjson", "--summary", "summary.json", "urls.txt")
	if res.code != 0 {
		t.Fatalf("fetchctl exited %d: %s", res.code, res.stderr)
	}

	recs := readRecords(t, filepath.Join(dir, "out.ndjson"))
	if len(recs) != urls {
		t.Fatalf("%d records, want %d", len(recs), urls)
	}
	carried := map[string]int{}
	for _, r := range recs {
		if !r.OK || r.Attempts != 1 {
			t.Errorf("line %d: ok %v after %d attempts, want ok at once (%+v)", r.Line, r.OK, r.Attempts, r.Error)
		}
		carried[r.Proxy]++
	}
	// Every URL reached the target exactly once, through one proxy.
	seen := map[string]int{}
	for _, p := range proxies {
		p.mu.Lock()
		for u, n := range p.urls {
			seen[u] += n
		}
		p.mu.Unlock()
	}
	if len(seen) != urls {
		t.Errorf("the proxies carried %d distinct URLs, want %d", len(seen), urls)
	}
	for u, n := range seen {
		if n != 1 {
			t.Errorf("%s carried %d times, want once", u, n)
		}
	}
	if got := srv.Stats().Requests; got != urls {
		t.Errorf("target saw %d requests, want %d", got, urls)
	}

	for i, p := range proxies {
		n := int(p.requests.Load())
		if carried[names[i]] != n {
			t.Errorf("proxy %d carried %d requests, but %d records name it", i, n, carried[names[i]])
		}
		if share := float64(n) / urls; share < 0.25 || share > 0.42 {
			t.Errorf("proxy %d carried %d of %d (%.1f%%), want a fair third", i, n, urls, 100*share)
		}
		if m := p.total.max.Load(); m > perProxy {
			t.Errorf("proxy %d had %d requests in flight, more than --per-proxy %d", i, m, perProxy)
		}
		var peaks []string
		p.mu.Lock()
		for h, g := range p.perHost {
			peaks = append(peaks, fmt.Sprintf("%s=%d", h, g.max.Load()))
		}
		p.mu.Unlock()
		sort.Strings(peaks)
		t.Logf("proxy %d: carried %d requests (%.1f%%), peak in flight %d in total, per host %s",
			i, n, 100*float64(n)/urls, p.total.max.Load(), strings.Join(peaks, " "))
	}
	st := srv.Stats()
	t.Logf("target: peak in flight %d in total (--limit %d), per host up to %d (--per-host %d)",
		st.PeakInFlight, limit, maxHostPeak(st), perHost)
	// The target sees the caps over all proxies together.
	if st.PeakInFlight > limit {
		t.Errorf("target peak in flight %d, more than --limit %d over all proxies", st.PeakInFlight, limit)
	}
	if m := maxHostPeak(st); m > perHost {
		t.Errorf("target host peak in flight %d, more than --per-host %d over all proxies", m, perHost)
	}

	var sum struct {
		ByProxy []struct {
			Proxy string `json:"proxy"`
			Total int    `json:"total"`
			OK    int    `json:"ok"`
		} `json:"by_proxy"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &sum); err != nil {
		t.Fatal(err)
	}
	if len(sum.ByProxy) != len(proxies) {
		t.Fatalf("summary by_proxy has %d entries, want %d: %s", len(sum.ByProxy), len(proxies), data)
	}
	for _, g := range sum.ByProxy {
		if g.Total != carried[g.Proxy] || g.OK != g.Total {
			t.Errorf("by_proxy %s: total %d ok %d, want %d records all ok", g.Proxy, g.Total, g.OK, carried[g.Proxy])
		}
	}
}

func maxHostPeak(st target.Stats) int64 {
	var m int64
	for _, h := range st.Hosts {
		m = max(m, h.PeakInFlight)
	}
	return m
}

// TestProxyFileSetsAsideAFailingProxy puts a proxy that refuses connections
// between two working ones: its URLs go to the others at once, it is set
// aside, and every URL is fetched.
func TestProxyFileSetsAsideAFailingProxy(t *testing.T) {
	t.Parallel()
	const urls = 600
	srv, err := target.Start(target.Options{Hosts: 3, BodySize: 16, Latency: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	a, b := newForwardProxy(t, "", ""), newForwardProxy(t, "", "")
	dead, err := target.ClosedAddr()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var list strings.Builder
	for i := range urls {
		fmt.Fprintf(&list, "%s?i=%d\n", srv.URL(i%3, "/x"), i)
	}
	proxyFile := fmt.Sprintf("%s\nhttp://user:pw@%s\n%s\n", a.hostPort(), dead, b.srv.URL)
	for name, text := range map[string]string{"urls.txt": list.String(), "proxies.txt": proxyFile} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res := runFetchctl(t, dir, nil, "run", "-v", "-q", "--progress", "never", "--proxy-file", "proxies.txt",
		"--limit", "8", "--per-host", "4", "--retries", "0", "-o", "out.ndjson", "urls.txt")
	if res.code != 0 {
		t.Fatalf("fetchctl exited %d: %s", res.code, res.stderr)
	}
	deadName := "http://user:***@" + dead
	if want := "proxy " + deadName + ": set aside for 30s after 3 failures in a row"; !strings.Contains(res.stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
	}
	recs := readRecords(t, filepath.Join(dir, "out.ndjson"))
	if len(recs) != urls {
		t.Fatalf("%d records, want %d", len(recs), urls)
	}
	moved := 0
	for _, r := range recs {
		if !r.OK {
			t.Errorf("line %d failed: %+v", r.Line, r.Error)
		}
		if r.Proxy == deadName || r.Proxy == "" {
			t.Errorf("line %d carried by %q, want one of the working proxies", r.Line, r.Proxy)
		}
		if r.Attempts > 1 {
			moved++
		}
	}
	if moved == 0 {
		t.Errorf("no URL was moved off the dead proxy: it was never tried")
	}
	if got := srv.Stats().Requests; got != urls {
		t.Errorf("target saw %d requests, want %d", got, urls)
	}
}

// TestSecretsNeverWritten runs fetchctl in every mode with secrets in its
// settings, its environment, its config file and its input, and greps every
// byte it writes (stdout, stderr and its files, the saved bodies aside: they
// are the target's words) for them.
func TestSecretsNeverWritten(t *testing.T) {
	t.Parallel()
	const (
		proxyPass = "Pr0xy-S3cret"
		wrongPass = "Wr0ng-S3cret"
		envPass   = "Env-S3cret"
		urlPass   = "Url-S3cret"
		authVal   = "Bearer Auth-S3cret"
		cookieVal = "sid=Cookie-S3cret"
	)
	// A Proxy-Authorization header takes the place of the proxy URL's
	// credentials, so it must be one the proxy takes.
	pauthVal := "Basic " + base64.StdEncoding.EncodeToString([]byte("user:"+proxyPass))
	forbidden := []string{
		"S3cret",
		base64.StdEncoding.EncodeToString([]byte("user:" + proxyPass)),
		base64.StdEncoding.EncodeToString([]byte("user:" + wrongPass)),
		base64.StdEncoding.EncodeToString([]byte("user:" + envPass)),
		base64.StdEncoding.EncodeToString([]byte("u:" + urlPass)),
	}
	srv, err := target.Start(target.Options{Hosts: 2, BodySize: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	proxy := newForwardProxy(t, "user", proxyPass)
	_, port, _ := net.SplitHostPort(srv.Addrs()[0])
	closed, err := target.ClosedAddr()
	if err != nil {
		t.Fatal(err)
	}

	withPass := func(pass string) string { return "http://user:" + pass + "@" + proxy.hostPort() }
	targetURL := func(path string) string {
		return strings.Replace(srv.URL(0, path), "http://", "http://u:"+urlPass+"@", 1)
	}
	input := strings.Join([]string{
		targetURL("/x"),
		targetURL("/status/500"),
		targetURL("/redirect?n=2"),
		"http://u:" + urlPass + "@127.0.0.1:notaport/",
		"ftp://u:" + urlPass + "@127.0.0.1/",
		strings.Replace(srv.URL(1, "/x"), "http://", "u:"+urlPass+"@", 1),
	}, "\n") + "\n"
	many := strings.Repeat(targetURL("/x")+"\n", 40)
	headers := []string{"-H", "Authorization: " + authVal, "-H", "Proxy-Authorization: " + pauthVal, "-H", "Cookie: " + cookieVal}
	config := fmt.Sprintf("proxy: %s\nheader:\n  - 'Authorization: %s'\n  - 'Cookie: %s'\n", withPass(proxyPass), authVal, cookieVal)

	tests := []struct {
		name  string
		env   []string
		args  []string
		files map[string]string
		// wantCode is the exit code; wantErr a part of stderr that shows
		// the mode did what it should.
		wantCode int
		wantErr  string
	}{
		{name: "run through the proxy, verbose, every output", args: append([]string{"run", "-v", "--progress", "always",
			"--proxy", withPass(proxyPass), "--retries", "1", "--backoff", "1ms", "-o", "out.ndjson", "--summary", "summary.json",
			"--save-bodies", "bodies", "--hash", "in.txt"}, headers...), wantErr: "invalid_url"},
		{name: "records to stdout", args: append([]string{"run", "-v", "--proxy", withPass(proxyPass), "in.txt"}, headers...), wantErr: "fail"},
		{name: "wrong proxy password", args: []string{"run", "-v", "--proxy", withPass(wrongPass), "-o", "out.ndjson", "--summary", "summary.json", "in.txt"},
			wantCode: 1, wantErr: "answered 407"},
		{name: "wrong proxy password stops the run", args: []string{"run", "-v", "--proxy", withPass(wrongPass), "many.txt"},
			wantCode: 1, wantErr: "run stopped"},
		{name: "proxy refused", args: []string{"run", "-v", "--proxy", "http://user:" + proxyPass + "@" + closed, "--summary", "summary.json", "many.txt"},
			wantCode: 1, wantErr: "connection refused"},
		{name: "proxy file", args: []string{"run", "-v", "--proxy-file", "proxies.txt", "--summary", "summary.json", "in.txt"},
			files:   map[string]string{"proxies.txt": "# working, then refusing\n" + withPass(proxyPass) + "\nhttp://user:" + wrongPass + "@" + closed + "\n"},
			wantErr: "fail"},
		{name: "proxy and headers from env", env: []string{"FETCHCTL_PROXY=" + withPass(proxyPass), "FETCHCTL_HEADER=Authorization: " + authVal + "\nCookie: " + cookieVal},
			args: []string{"run", "-v", "in.txt"}, wantErr: "fail"},
		{name: "proxy and headers from the config file", args: []string{"run", "-v", "in.txt"},
			files: map[string]string{"fetchctl.yaml": config}, wantErr: "fail"},
		{name: "environment proxy", env: []string{"HTTP_PROXY=http://user:" + envPass + "@" + proxy.hostPort()},
			args: []string{"run", "-v", "env.txt"}, files: map[string]string{"env.txt": "http://0.0.0.0:" + port + "/x\n"}, wantErr: "answered 407"},
		{name: "dry run with flags", args: append([]string{"run", "--dry-run", "--proxy", withPass(proxyPass), "in.txt"}, headers...)},
		{name: "dry run from env", env: []string{"FETCHCTL_PROXY=" + withPass(proxyPass), "FETCHCTL_HEADER=Cookie: " + cookieVal, "HTTPS_PROXY=http://user:" + envPass + "@127.0.0.1:1"},
			args: []string{"run", "--dry-run", "in.txt"}},
		{name: "dry run from the config file", args: []string{"run", "--dry-run", "in.txt"}, files: map[string]string{"fetchctl.yaml": config}},
		{name: "malformed --proxy", args: []string{"run", "--proxy", "http://user:" + proxyPass + "@127.0.0.1:notaport", "in.txt"},
			wantCode: 2, wantErr: "--proxy"},
		{name: "unsupported proxy scheme", args: []string{"run", "--proxy", "ftp://user:" + proxyPass + "@127.0.0.1:21", "in.txt"},
			wantCode: 2, wantErr: "unsupported scheme"},
		{name: "proxy without a scheme, bad port", args: []string{"run", "--proxy", "user:" + proxyPass + "@127.0.0.1:99999", "in.txt"},
			wantCode: 2, wantErr: "invalid port"},
		{name: "malformed FETCHCTL_PROXY", env: []string{"FETCHCTL_PROXY=http://user:" + proxyPass + "@127.0.0.1:x/"},
			args: []string{"run", "in.txt"}, wantCode: 2, wantErr: "FETCHCTL_PROXY"},
		{name: "malformed HTTP_PROXY", env: []string{"HTTP_PROXY=ftp://user:" + envPass + "@127.0.0.1:21"},
			args: []string{"run", "in.txt"}, wantCode: 2, wantErr: "HTTP_PROXY"},
		{name: "bad line in the proxy file", args: []string{"run", "--proxy-file", "proxies.txt", "in.txt"},
			files:    map[string]string{"proxies.txt": withPass(proxyPass) + "\nhttp://user:" + proxyPass + "@127.0.0.1:1/path\n"},
			wantCode: 2, wantErr: "line 2"},
		{name: "header without a colon", args: []string{"run", "-H", "Authorization " + authVal, "in.txt"},
			wantCode: 2, wantErr: "--header"},
		{name: "cookie header with =", env: []string{"FETCHCTL_HEADER=Cookie=" + cookieVal}, args: []string{"run", "in.txt"},
			wantCode: 2, wantErr: "FETCHCTL_HEADER"},
		{name: "input named like a URL", args: []string{"run", targetURL("/x")}, wantCode: 2, wantErr: "input"},
		{name: "unknown command", args: []string{targetURL("/x")}, wantCode: 2, wantErr: "unknown command"},
		{name: "flag of another command", args: []string{"presets", "--proxy=" + withPass(proxyPass)}, wantCode: 2, wantErr: "unknown flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			files := map[string]string{"in.txt": input, "many.txt": many}
			for k, v := range tt.files {
				files[k] = v
			}
			for name, text := range files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			res := runFetchctl(t, dir, tt.env, tt.args...)
			if res.code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", res.code, tt.wantCode, res.stderr)
			}
			if !strings.Contains(res.stderr, tt.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantErr, res.stderr)
			}
			outputs := map[string]string{"stdout": res.stdout, "stderr": res.stderr}
			// The summary of the records, as summarize shows it, too.
			if _, err := os.Stat(filepath.Join(dir, "out.ndjson")); err == nil {
				sum := runFetchctl(t, dir, nil, "summarize", "--json", "out.ndjson")
				outputs["summarize stdout"], outputs["summarize stderr"] = sum.stdout, sum.stderr
			}
			err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(dir, path)
				if e.IsDir() {
					if rel == "bodies" {
						return filepath.SkipDir
					}
					return nil
				}
				if _, input := files[rel]; input {
					return nil
				}
				data, err := os.ReadFile(path)
				outputs[rel] = string(data)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			for name, text := range outputs {
				for _, secret := range forbidden {
					if i := strings.Index(text, secret); i >= 0 {
						t.Errorf("%s shows %q: ...%s...", name, secret, text[max(0, i-120):min(len(text), i+60)])
					}
				}
			}
		})
	}
}

// panicWriter fails the way a bug would, with a message holding a secret.
type panicWriter struct{ msg string }

func (w panicWriter) Write([]byte) (int, error) { panic(w.msg) }

// TestPanicReportIsRedacted makes fetchctl panic after its settings are
// resolved and before, and checks the crash report: exit code, the panic's
// message and stack on stderr, no secret.
func TestPanicReportIsRedacted(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "urls.txt")
	if err := os.WriteFile(list, []byte("http://127.0.0.1:1/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const cookie = "sid=Panic-S3cret"
	tests := []struct {
		name   string
		out    io.Writer
		getenv func(string) string
	}{
		{name: "after the settings", out: panicWriter{msg: "cannot write; the request had Cookie: " + cookie}, getenv: env(t, nil)},
		{name: "before the settings", out: &bytes.Buffer{}, getenv: func(string) string {
			panic("lookup failed for http://user:Pr0xy-S3cret@127.0.0.1:1")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			streams, _, _, errOut := testStreams()
			streams.Out = tt.out
			code := mainWith([]string{"run", "--dry-run", "-H", "Cookie: " + cookie, list}, streams, tt.getenv)
			if code != exitInternal {
				t.Errorf("exit code %d, want %d", code, exitInternal)
			}
			text := errOut.String()
			for _, want := range []string{"fetchctl: internal error: ", "goroutine ", "***"} {
				if !strings.Contains(text, want) {
					t.Errorf("stderr lacks %q:\n%s", want, text)
				}
			}
			if strings.Contains(text, "S3cret") {
				t.Errorf("stderr shows the secret:\n%s", text)
			}
		})
	}
}
