package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/target"
	"github.com/fetchctl/fetchctl/internal/testnet"
)

// byteRelay relays TCP connections to upstream and counts the bytes it
// passes both ways, as a pool's gateway would bill them.
type byteRelay struct {
	ln    net.Listener
	bytes atomic.Int64
	up    atomic.Int64
	conns atomic.Int64
	wg    sync.WaitGroup
	// setup, when set, is how long a new connection takes to reach
	// upstream: a gateway a round trip or more away.
	setup time.Duration
}

// startByteRelay relays each connection to upstream, setup after it was
// accepted (0 for at once).
func startByteRelay(t *testing.T, upstream string, setup time.Duration) *byteRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &byteRelay{ln: ln, setup: setup}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.wg.Add(1)
			go r.relay(c, upstream)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return r
}

func (r *byteRelay) relay(c net.Conn, upstream string) {
	defer r.wg.Done()
	defer c.Close()
	r.conns.Add(1)
	if r.setup > 0 {
		time.Sleep(r.setup) // the latency of a far gateway, not a wait for anything
	}
	up, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{})
	go func() {
		n, _ := io.Copy(up, c)
		r.bytes.Add(n)
		r.up.Add(n)
		up.Close()
		close(done)
	}()
	n, _ := io.Copy(c, up)
	r.bytes.Add(n)
	c.Close()
	<-done
}

// wait stops the relay and waits for every relayed connection to end.
func (r *byteRelay) wait() int64 {
	r.ln.Close()
	r.wg.Wait()
	return r.bytes.Load()
}

// TestHTTP2BytesThroughAProxy pins how bytes on the wire are told over an
// HTTP/2 connection that many requests share, inside a CONNECT tunnel: the
// records' bytes add up to the summary's totals and to by_proxy, and those
// are what went through the proxy, each byte counted once (the relay in
// front of the proxy also sees the connection's last bytes, its TLS close,
// after every request is done). A record's own figure is its share: the
// bytes the connection carried since the last request took them.
func TestHTTP2BytesThroughAProxy(t *testing.T) {
	t.Parallel()
	secure, err := target.Start(target.Options{BodySize: 1024, TLS: true, HTTP2: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(secure.Close)
	proxy := newForwardProxy(t, "", "")
	relay := startByteRelay(t, proxy.hostPort(), 0)
	dir := t.TempDir()
	var urls strings.Builder
	const n = 60
	for i := range n {
		fmt.Fprintln(&urls, secure.URL(0, fmt.Sprintf("/?key=%d", i)))
	}
	for name, text := range map[string]string{"ca.pem": string(secure.CertPEM()), "urls.txt": urls.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gw := "http://" + relay.ln.Addr().String()
	res := runFetchctl(t, dir, nil, "run", "-q", "--cacert", "ca.pem", "--proxy", gw, "--limit", "16", "--per-host", "16",
		"-o", "out.ndjson", "--summary", "sum.json", "urls.txt")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	billed := relay.wait()
	recs := readRecords(t, filepath.Join(dir, "out.ndjson"))
	var out, in int64
	for _, r := range recs {
		if !r.OK || r.Proto != "HTTP/2.0" {
			t.Fatalf("record %+v, want ok over HTTP/2", r)
		}
		out += r.BytesOut
		in += r.BytesIn
	}
	if len(recs) != n {
		t.Fatalf("%d records, want %d", len(recs), n)
	}
	sum := readSummary(t, filepath.Join(dir, "sum.json"))
	if sum.BytesOut != out || sum.BytesIn != in {
		t.Errorf("summary counts %d out and %d in, the records %d and %d", sum.BytesOut, sum.BytesIn, out, in)
	}
	if len(sum.ByProxy) != 1 || sum.ByProxy[0].BytesOut != out || sum.ByProxy[0].BytesIn != in {
		t.Errorf("by_proxy %+v, want the one proxy with the records' %d out and %d in", sum.ByProxy, out, in)
	}
	// The bodies alone are n KiB. The relay may see the connection's TLS
	// close beyond the records, or miss the last bytes fetchctl wrote as it
	// closed, when the far side has gone.
	if total := out + in; total < n*1024 || billed < total-512 || billed > total+512 {
		t.Errorf("records count %d bytes (%d out), the proxy carried %d (%d out) over %d connections: want the same, give or take the connections' TLS close",
			total, out, billed, relay.up.Load(), relay.conns.Load())
	}
}

// TestHeldConnectCountsWhenTheAttemptTimesOut: a proxy that reads a
// CONNECT and answers nothing outlives the attempt (--timeout); the run
// ends with the dial under way, closes it, and counts what it wrote in the
// summary's totals and by_proxy: what the proxy read, byte for byte.
func TestHeldConnectCountsWhenTheAttemptTimesOut(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var read atomic.Int64
	closed := make(chan struct{}, 1)
	testnet.Serve(t, ln, func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c) // the CONNECT, then nothing until the client closes
		read.Add(n)
		closed <- struct{}{}
	})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "urls.txt"), []byte("https://a.test/1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gw := "http://" + ln.Addr().String()
	res := runFetchctl(t, dir, nil, "run", "-q", "--proxy", gw, "--timeout", "200ms", "--retries", "0",
		"-o", "out.ndjson", "--summary", "sum.json", "urls.txt")
	if res.code == 2 {
		t.Fatalf("exit 2: %s", res.stderr)
	}
	<-closed
	recs := readRecords(t, filepath.Join(dir, "out.ndjson"))
	if len(recs) != 1 || recs[0].Error == nil || recs[0].Error.Kind != "timeout" {
		t.Fatalf("records %+v, want one that timed out", recs)
	}
	sum := readSummary(t, filepath.Join(dir, "sum.json"))
	want := read.Load()
	if want == 0 || sum.BytesOut != want || sum.BytesIn != 0 {
		t.Errorf("summary counts %d bytes out and %d in, the proxy read %d and wrote none", sum.BytesOut, sum.BytesIn, want)
	}
	if len(sum.ByProxy) != 1 || sum.ByProxy[0].BytesOut != want || sum.ByProxy[0].BytesIn != 0 {
		t.Errorf("by_proxy %+v, want the proxy with %d bytes out", sum.ByProxy, want)
	}
}

// TestTunnelsThroughASlowProxy: with a proxy whose connections take longer
// to set up than a request takes to answer, https hosts over HTTP/1.1 get
// at most --per-host tunnels each, and every byte the proxy carried is in
// the summary's totals and by_proxy, whether the tunnel carried a request
// or not, through an HTTP proxy (CONNECT) and through SOCKS5, and with
// --session, where each session opens its own tunnels.
func TestTunnelsThroughASlowProxy(t *testing.T) {
	t.Parallel()
	const hosts, perHost, n = 2, 2, 24
	secure, err := target.Start(target.Options{Hosts: hosts, BodySize: 1024, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(secure.Close)
	var urls strings.Builder
	for i := range n {
		fmt.Fprintln(&urls, secure.URL(i%hosts, fmt.Sprintf("/?key=%d", i)))
	}
	for _, tc := range []struct {
		name     string
		scheme   string
		session  []string
		maxConns int64 // 0: not checked
	}{
		{name: "connect", scheme: "http", maxConns: hosts * perHost},
		{name: "socks5", scheme: "socks5", maxConns: hosts * perHost},
		{name: "connect-session", scheme: "http", session: []string{"--session", "7"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var upstream, user string
			switch tc.scheme {
			case "http":
				upstream, user = newForwardProxy(t, "", "").hostPort(), "c-{session}:pw"
				if tc.session == nil {
					user = "u:pw"
				}
			case "socks5":
				if _, err := target.ProxyPath("microsocks"); err != nil && os.Getenv("CI") == "" {
					t.Skip(err)
				}
				d, err := target.StartMicrosocks("u", "pw")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(d.Stop)
				upstream, user = d.Addr, "u:pw"
			}
			relay := startByteRelay(t, upstream, 150*time.Millisecond)
			dir := t.TempDir()
			for name, text := range map[string]string{"ca.pem": string(secure.CertPEM()), "urls.txt": urls.String()} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			gw := tc.scheme + "://" + user + "@" + relay.ln.Addr().String()
			args := append([]string{"run", "-q", "--cacert", "ca.pem", "--proxy", gw, "--per-host", strconv.Itoa(perHost),
				"-o", "out.ndjson", "--summary", "sum.json", "urls.txt"}, tc.session...)
			res := runFetchctl(t, dir, nil, args...)
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.stderr)
			}
			billed := relay.wait()
			conns := relay.conns.Load()
			if tc.maxConns > 0 && conns > tc.maxConns {
				t.Errorf("%d tunnels for %d hosts at --per-host %d, want at most %d", conns, hosts, perHost, tc.maxConns)
			}
			recs := readRecords(t, filepath.Join(dir, "out.ndjson"))
			if len(recs) != n {
				t.Fatalf("%d records, want %d", len(recs), n)
			}
			sum := readSummary(t, filepath.Join(dir, "sum.json"))
			total := sum.BytesOut + sum.BytesIn
			if len(sum.ByProxy) != 1 || sum.ByProxy[0].BytesOut != sum.BytesOut || sum.ByProxy[0].BytesIn != sum.BytesIn {
				t.Errorf("by_proxy %+v, want the one proxy with the totals' %d out and %d in", sum.ByProxy, sum.BytesOut, sum.BytesIn)
			}
			// What the relay may see beyond the totals is each
			// connection's TLS close.
			if billed < total || billed > total+conns*64 {
				t.Errorf("the totals count %d bytes over %d connections, the proxy carried %d", total, conns, billed)
			}
		})
	}
}

// TestBudgetCountsEveryTunnel: with a session for every URL, each URL
// listed several times, to https hosts over HTTP/1.1, through a proxy
// slower to set up a connection than a request takes, --budget stops the
// run, and the bytes
// its message says were spent are the summary's totals and by_proxy: every
// tunnel's, whether a request took it or not, and no fewer than the budget.
// The proxy carried those bytes, and at most what each connection had on
// its way in when the run stopped beyond them.
func TestBudgetCountsEveryTunnel(t *testing.T) {
	t.Parallel()
	const n, budget = 80, 20000
	secure, err := target.Start(target.Options{Hosts: 2, BodySize: 1024, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(secure.Close)
	var urls strings.Builder
	for i := range n {
		fmt.Fprintln(&urls, secure.URL(i%2, fmt.Sprintf("/?key=%d", i%10)))
	}
	relay := startByteRelay(t, newForwardProxy(t, "", "").hostPort(), 150*time.Millisecond)
	dir := t.TempDir()
	for name, text := range map[string]string{"ca.pem": string(secure.CertPEM()), "urls.txt": urls.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gw := "http://c-{session}:pw@" + relay.ln.Addr().String()
	res := runFetchctl(t, dir, nil, "run", "-q", "--cacert", "ca.pem", "--proxy", gw, "--session", "url", "--per-host", "4",
		"--budget", "20KB", "-o", "out.ndjson", "--summary", "sum.json", "urls.txt")
	m := regexp.MustCompile(`--budget of 20KB through proxies reached \((\d+) bytes spent\)`).FindStringSubmatch(res.stderr)
	if res.code != 1 || m == nil {
		t.Fatalf("exit %d, stderr %q; want 1 and the budget's message", res.code, res.stderr)
	}
	spent, _ := strconv.ParseInt(m[1], 10, 64)
	billed := relay.wait()
	conns := relay.conns.Load()
	if spent < budget {
		t.Errorf("%d bytes spent for a budget of %d: the meter stops at the budget, not before", spent, budget)
	}
	sum := readSummary(t, filepath.Join(dir, "sum.json"))
	if sum.BytesOut+sum.BytesIn != spent {
		t.Errorf("summary counts %d+%d bytes through proxies, the message %d spent", sum.BytesOut, sum.BytesIn, spent)
	}
	if len(sum.ByProxy) != 1 || sum.ByProxy[0].BytesOut+sum.ByProxy[0].BytesIn != spent {
		t.Errorf("by_proxy %+v, want the one proxy with the %d bytes spent", sum.ByProxy, spent)
	}
	if billed < spent || billed > spent+conns*4096 {
		t.Errorf("%d bytes spent, the proxy carried %d over %d connections", spent, billed, conns)
	}
}

// TestHTTP1RecordsCarryTheirOwnBytes: through tinyproxy, which closes its
// connection to the client after each forwarded response without saying
// so, a request often takes a connection from the pool that is about to
// close and goes again on a new one. Every record still carries the bytes
// of its own exchange: none is left without them and none holds another's
// (before, the request that went again took those of the request before
// it on the closing connection, when that one had not taken them yet).
func TestHTTP1RecordsCarryTheirOwnBytes(t *testing.T) {
	t.Parallel()
	if _, err := target.ProxyPath("tinyproxy"); err != nil && os.Getenv("CI") == "" {
		t.Skip(err)
	}
	srv, err := target.Start(target.Options{Hosts: 4, Latency: 20 * time.Millisecond, BodySize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	d, err := target.StartTinyproxy(dir, target.TinyproxyOptions{User: "user", Pass: "pass"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	const n = 200
	var urls strings.Builder
	for i := range n {
		fmt.Fprintln(&urls, srv.URL(i%4, fmt.Sprintf("/?key=%03d", i)))
	}
	if err := os.WriteFile(filepath.Join(dir, "urls.txt"), []byte(urls.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	res := runFetchctl(t, dir, nil, "run", "-q", "--proxy", "http://user:pass@"+d.Addr, "--limit", "20", "--per-host", "5",
		"-o", "out.ndjson", "--summary", "sum.json", "urls.txt")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	recs := readRecords(t, filepath.Join(dir, "out.ndjson"))
	if len(recs) != n {
		t.Fatalf("%d records, want %d", len(recs), n)
	}
	// Every exchange is the same but for the date, and the request line's
	// key has a fixed width: the bytes of any two differ by a few at most.
	// A request that net/http wrote to a connection the proxy had closed,
	// then again on a new one, sent its bytes twice; one that met a closing
	// connection again on its second try, three times (net/http sends it
	// again as often as that happens).
	first := recs[0]
	near := func(v, want int64) bool { return v >= want-16 && v <= want+16 }
	sends := func(v, one int64) bool {
		for k := int64(1); k <= 4; k++ {
			if near(v, k*one) {
				return true
			}
		}
		return false
	}
	// One send's bytes: the fewest any record has (the first record may
	// have gone twice itself).
	one := first.BytesOut
	for _, r := range recs {
		if r.BytesOut > 0 && r.BytesOut < one {
			one = r.BytesOut
		}
	}
	var out, in int64
	for _, r := range recs {
		if !r.OK || r.BytesIn < 1024 || !near(r.BytesIn, first.BytesIn) || !sends(r.BytesOut, one) {
			t.Errorf("%s: bytes_out %d, bytes_in %d; %s has %d and %d: want each its own exchange's",
				r.URL, r.BytesOut, r.BytesIn, first.URL, first.BytesOut, first.BytesIn)
		}
		out += r.BytesOut
		in += r.BytesIn
	}
	sum := readSummary(t, filepath.Join(dir, "sum.json"))
	if sum.BytesOut != out || sum.BytesIn != in {
		t.Errorf("summary counts %d out and %d in, the records %d and %d", sum.BytesOut, sum.BytesIn, out, in)
	}
}
