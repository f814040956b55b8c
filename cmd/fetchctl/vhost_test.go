package main

import (
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// hostLog records the Host each request reached a server with, by server
// name and path.
type hostLog struct {
	mu   sync.Mutex
	seen map[string][]string
}

func (l *hostLog) get(key string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[key]
}

// handler answers a request with a query parameter u with a 302 to u, and
// any other with 200.
func (l *hostLog) handler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		key := name + " " + r.URL.Path
		l.seen[key] = append(l.seen[key], r.Host)
		l.mu.Unlock()
		if u := r.URL.Query().Get("u"); u != "" {
			http.Redirect(w, r, u, http.StatusFound)
			return
		}
		io.WriteString(w, "ok")
	})
}

// TestHostHeader: -H 'Host: name' is the request's Host, as with curl
// (virtual hosting), over plain http (fetchctl's own HTTP/1.1 path) and
// https (net/http's) alike, from the flag, FETCHCTL_HEADER and the config
// file. A redirect keeps it while it stays at the origin of the listed
// URL, by a relative Location or an absolute one, and not elsewhere: a
// hop to another origin, and a relative Location from there, get that
// host's own name.
func TestHostHeader(t *testing.T) {
	t.Parallel()
	hosts := &hostLog{seen: map[string][]string{}}
	plain := httptest.NewServer(hosts.handler("plain"))
	t.Cleanup(plain.Close)
	tlsSrv := httptest.NewUnstartedServer(hosts.handler("tls"))
	tlsSrv.EnableHTTP2 = true
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	p, s := plain.URL, tlsSrv.URL
	paddr, saddr := strings.TrimPrefix(p, "http://"), strings.TrimPrefix(s, "https://")

	dir := t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), ca, 0o644); err != nil {
		t.Fatal(err)
	}
	lines := []string{
		p + "/a",
		s + "/a",
		p + "/rel?u=/rel-end",
		s + "/rel?u=/rel-end",
		p + "/abs?u=" + p + "/abs-end",
		s + "/abs?u=" + s + "/abs-end",
		p + "/other?u=" + s + "/other-end",
		s + "/other?u=" + p + "/other-end",
		p + "/away?u=" + s + "/away-mid%3Fu%3D/away-end",
		s + "/back?u=" + p + "/back-mid%3Fu%3D" + s + "/back-end",
	}
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := runFetchctl(t, dir, nil, "run", "-q", "--retries", "0", "--cacert", "ca.pem", "--min-success", "1",
		"-H", "Host: vhost.example:8080", "-o", "out.ndjson", "in.txt")
	if res.code != 0 {
		t.Fatalf("exit %d, want 0:\n%s", res.code, res.stderr)
	}
	const vhost = "vhost.example:8080"
	want := map[string][]string{
		"plain /a":         {vhost},
		"tls /a":           {vhost},
		"plain /rel-end":   {vhost},
		"tls /rel-end":     {vhost},
		"plain /abs-end":   {vhost},
		"tls /abs-end":     {vhost},
		"tls /other-end":   {saddr},
		"plain /other-end": {paddr},
		// Back at the origin after another one, it is the origin's again.
		"tls /away-mid":   {saddr},
		"tls /away-end":   {saddr},
		"plain /back-mid": {paddr},
		"tls /back-end":   {vhost},
	}
	for key, w := range want {
		if got := hosts.get(key); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("%s reached with Host %q, want %q", key, got, w)
		}
	}

	// The same from FETCHCTL_HEADER (and HTTP/1.1 over TLS) and from the
	// config file.
	if err := os.WriteFile(filepath.Join(dir, "in2.txt"), []byte(p+"/env\n"+s+"/env\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res = runFetchctl(t, dir, []string{"FETCHCTL_HEADER=X-A: 1\nHost: env.example"}, "run", "-q", "--retries", "0", "--cacert", "ca.pem", "--http2=false",
		"--min-success", "1", "in2.txt")
	if res.code != 0 {
		t.Fatalf("FETCHCTL_HEADER: exit %d, want 0:\n%s", res.code, res.stderr)
	}
	if err := os.WriteFile(filepath.Join(dir, "in3.txt"), []byte(p+"/cfg\n"+s+"/cfg\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte("header:\n  - \"Host: cfg.example\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res = runFetchctl(t, dir, nil, "run", "-q", "--config", "c.yaml", "--retries", "0", "--cacert", "ca.pem", "--min-success", "1", "in3.txt")
	if res.code != 0 {
		t.Fatalf("config file: exit %d, want 0:\n%s", res.code, res.stderr)
	}
	for key, w := range map[string]string{"plain /env": "env.example", "tls /env": "env.example", "plain /cfg": "cfg.example", "tls /cfg": "cfg.example"} {
		if got := hosts.get(key); len(got) != 1 || got[0] != w {
			t.Errorf("%s reached with Host %q, want %q", key, got, w)
		}
	}
}

// TestHostHeaderNotAName: a Host that is not name[:port] (a DNS name, an
// IPv4 address or a bracketed IPv6 one, a port of 1-65535) is exit 2 with
// one line, whether it comes from the flag, FETCHCTL_HEADER or the config
// file, and nothing is fetched.
func TestHostHeaderNotAName(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("http://127.0.0.1:1/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, val := range []string{":80", "x:abc", "x:99999", "1.2.3.4:65536", "x:0", "x:", "[::1", "x..y", "-x"} {
		cfg := filepath.Join(dir, "c"+strconv.Itoa(i)+".yaml")
		if err := os.WriteFile(cfg, []byte("header:\n  - 'Host: "+val+"'\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		msg := `header Host "` + val + `" is not a host name`
		for _, tt := range []struct {
			name, prefix string
			env, args    []string
		}{
			{name: "flag", prefix: "--header: ", args: []string{"-H", "Host: " + val}},
			{name: "env", prefix: "FETCHCTL_HEADER: ", env: []string{"FETCHCTL_HEADER=X-A: 1\nHost: " + val}},
			{name: "config", prefix: "config file " + cfg + ": key header: ", args: []string{"--config", cfg}},
		} {
			t.Run(tt.name+" "+val, func(t *testing.T) {
				t.Parallel()
				args := append([]string{"run", "-q", "--retries", "0"}, tt.args...)
				res := runFetchctl(t, dir, tt.env, append(args, "in.txt")...)
				want := "fetchctl: " + tt.prefix + msg + "\n"
				if res.code != 2 || res.stderr != want {
					t.Errorf("exit %d, stderr %q; want exit 2, stderr %q", res.code, res.stderr, want)
				}
			})
		}
	}
}
