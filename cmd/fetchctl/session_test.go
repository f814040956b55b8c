package main

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// userGateway is a loopback gateway that answers every forwarded request
// itself, as a pool's gateway would through some exit, and records the user
// name each request came with, by target host.
type userGateway struct {
	srv    *httptest.Server
	mu     sync.Mutex
	byHost map[string][]string
}

func newUserGateway(t *testing.T) *userGateway {
	g := &userGateway{byHost: map[string][]string{}}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		creds, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(r.Header.Get("Proxy-Authorization"), "Basic "))
		user, pass, _ := strings.Cut(string(creds), ":")
		if pass != "S3cret" {
			w.Header().Set("Proxy-Authenticate", "Basic")
			w.WriteHeader(http.StatusProxyAuthRequired)
			return
		}
		g.mu.Lock()
		g.byHost[r.URL.Host] = append(g.byHost[r.URL.Host], user)
		g.mu.Unlock()
		io.WriteString(w, "ok")
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func distinct(list []string) int {
	m := map[string]bool{}
	for _, s := range list {
		m[s] = true
	}
	return len(m)
}

func TestProxySessions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var urls strings.Builder
	for i := range 4 {
		urls.WriteString("http://a.example/" + string(rune('0'+i)) + "\nhttp://b.example/" + string(rune('0'+i)) + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "urls.txt"), []byte(urls.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		mode string
		// sessions in all, and each host saw
		total, perHost int
	}{{"host", 2, 1}, {"url", 8, 4}, {"2", 4, 4}} {
		t.Run(tt.mode, func(t *testing.T) {
			g := newUserGateway(t)
			proxy := "http://cust-x-session-{session}:S3cret@" + g.srv.Listener.Addr().String()
			res := runFetchctl(t, dir, nil, "run", "-q", "--limit", "1", "--proxy", proxy, "--session", tt.mode, "urls.txt")
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.stderr)
			}
			if strings.Count(res.stdout, `"ok":true`) != 8 {
				t.Errorf("not every URL ok:\n%s", res.stdout)
			}
			if strings.Contains(res.stdout, "S3cret") || !strings.Contains(res.stdout, `"proxy":"http://cust-x-session-{session}:***@`) {
				t.Errorf("records name the proxy wrongly:\n%s", res.stdout)
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			all := append(append([]string(nil), g.byHost["a.example"]...), g.byHost["b.example"]...)
			for _, u := range all {
				if len(u) != len("cust-x-session-")+8 || !strings.HasPrefix(u, "cust-x-session-") {
					t.Errorf("user %q, want the template filled with 8 characters", u)
				}
			}
			for _, h := range []string{"a.example", "b.example"} {
				if n := distinct(g.byHost[h]); n != tt.perHost {
					t.Errorf("--session %s: %s saw %d sessions (%q), want %d", tt.mode, h, n, g.byHost[h], tt.perHost)
				}
			}
			if n := distinct(all); n != tt.total {
				t.Errorf("--session %s: %d sessions in all (%q), want %d", tt.mode, n, all, tt.total)
			}
		})
	}
	t.Run("placeholder without --session", func(t *testing.T) {
		res := runFetchctl(t, dir, nil, "run", "--proxy", "http://u-{session}:S3cret@127.0.0.1:9", "urls.txt")
		if res.code != 2 || !strings.Contains(res.stderr, "--session host, url or a number") || strings.Contains(res.stderr, "S3cret") {
			t.Errorf("exit %d, stderr %q", res.code, res.stderr)
		}
	})
	t.Run("--session without a placeholder", func(t *testing.T) {
		res := runFetchctl(t, dir, nil, "run", "--proxy", "http://u:S3cret@127.0.0.1:9", "--session", "host", "urls.txt")
		if res.code != 2 || !strings.Contains(res.stderr, "needs a proxy URL with {session}") {
			t.Errorf("exit %d, stderr %q", res.code, res.stderr)
		}
	})
}

// TestProxySessionsPerHostOverSeveralGateways: with --session host and
// several proxies that hold {session}, a host goes out through one session
// on one of them, whatever the number of proxies; the hosts spread over
// the proxies.
func TestProxySessionsPerHostOverSeveralGateways(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	g1, g2 := newUserGateway(t), newUserGateway(t)
	proxies := "http://cu-{session}:S3cret@" + g1.srv.Listener.Addr().String() + "\n" +
		"http://cu-{session}:S3cret@" + g2.srv.Listener.Addr().String() + "\n"
	var urls strings.Builder
	for i := range 6 {
		for _, h := range []string{"a", "b", "c"} {
			urls.WriteString("http://" + h + ".example/" + string(rune('0'+i)) + "\n")
		}
	}
	for name, body := range map[string]string{"proxies.txt": proxies, "urls.txt": urls.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res := runFetchctl(t, dir, nil, "run", "-q", "-c", "1", "--per-host", "1", "--proxy-file", "proxies.txt", "--session", "host", "urls.txt", "-o", "-")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	if strings.Count(res.stdout, `"ok":true`) != 18 {
		t.Errorf("not every URL ok:\n%s", res.stdout)
	}
	g1.mu.Lock()
	defer g1.mu.Unlock()
	g2.mu.Lock()
	defer g2.mu.Unlock()
	for _, h := range []string{"a.example", "b.example", "c.example"} {
		users := append(append([]string(nil), g1.byHost[h]...), g2.byHost[h]...)
		if len(users) != 6 || distinct(users) != 1 {
			t.Errorf("%s saw the sessions %q through the first gateway and %q through the second, want 6 requests in one session",
				h, g1.byHost[h], g2.byHost[h])
		}
	}
	if len(g1.byHost) == 0 || len(g2.byHost) == 0 {
		t.Errorf("hosts through the first gateway %d, the second %d: want them spread", len(g1.byHost), len(g2.byHost))
	}
}

// blockFirstGateway is a loopback gateway that blocks, for each target host,
// the first session (user name) it sees: it holds that session's requests
// until held of them are in flight at once, then answers them all 403, as
// a target that bans an exit does to the requests already under way. Any
// other session gets 200. It records the user of every request by host.
type blockFirstGateway struct {
	srv     *httptest.Server
	held    int
	mu      sync.Mutex
	first   map[string]string
	waiting map[string]int
	release map[string]chan struct{}
	byHost  map[string][]string
}

func newBlockFirstGateway(t *testing.T, held int) *blockFirstGateway {
	g := &blockFirstGateway{held: held, first: map[string]string{}, waiting: map[string]int{},
		release: map[string]chan struct{}{}, byHost: map[string][]string{}}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		creds, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(r.Header.Get("Proxy-Authorization"), "Basic "))
		user, _, _ := strings.Cut(string(creds), ":")
		host := r.URL.Host
		g.mu.Lock()
		g.byHost[host] = append(g.byHost[host], user)
		if _, ok := g.first[host]; !ok {
			g.first[host] = user
			g.release[host] = make(chan struct{})
		}
		blocked, release := user == g.first[host], g.release[host]
		if blocked {
			if g.waiting[host]++; g.waiting[host] == g.held {
				close(release)
			}
		}
		g.mu.Unlock()
		if !blocked {
			io.WriteString(w, "ok")
			return
		}
		select {
		case <-release:
		case <-r.Context().Done():
			return
		case <-time.After(10 * time.Second):
			// Bounds the test should fewer requests ever be in flight.
		}
		w.WriteHeader(http.StatusForbidden)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

// TestSessionHostBlockGivesOneFreshSession: with --session host, a host
// that blocks its session while several requests are in flight through it
// gets one fresh session, which all its URLs use after, the blocked ones
// retried included: each host sees two user names in all.
func TestSessionHostBlockGivesOneFreshSession(t *testing.T) {
	t.Parallel()
	const inFlight = 8
	dir := t.TempDir()
	var urls strings.Builder
	for i := range 30 {
		fmt.Fprintf(&urls, "http://a.example/%d\nhttp://b.example/%d\n", i, i)
	}
	if err := os.WriteFile(filepath.Join(dir, "urls.txt"), []byte(urls.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	g := newBlockFirstGateway(t, inFlight)
	proxy := "http://c-{session}:pw@" + g.srv.Listener.Addr().String()
	res := runFetchctl(t, dir, nil, "run", "-q", "--limit", "16", "--per-host", strconv.Itoa(inFlight), "--retries", "1",
		"--proxy", proxy, "--session", "host", "-o", "out.ndjson", "urls.txt")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	recs := readRecords(t, filepath.Join(dir, "out.ndjson"))
	if len(recs) != 60 {
		t.Fatalf("%d records, want 60", len(recs))
	}
	for _, r := range recs {
		if !r.OK {
			t.Errorf("%s: not ok: %+v", r.URL, r.Error)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, h := range []string{"a.example", "b.example"} {
		if g.waiting[h] != inFlight {
			t.Errorf("%s: %d requests of the first session were in flight at once, want %d", h, g.waiting[h], inFlight)
		}
		if n := distinct(g.byHost[h]); n != 2 {
			t.Errorf("%s saw %d sessions after one block, want 2 (the blocked one and one fresh one): %q", h, n, g.byHost[h])
		}
	}
}
