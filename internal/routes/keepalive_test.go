package routes

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/transport"
)

// TestKeptAlive checks that only limit + max-idle proxies keep idle
// connections, so that a long list does not hold a pool per proxy: the
// others ask the proxy to close each connection, and their answers say so.
func TestKeptAlive(t *testing.T) {
	t.Parallel()
	tests := []struct {
		proxies, limit, maxIdle, want int
	}{
		{proxies: 5, limit: 100, maxIdle: 40, want: 5},
		{proxies: 1000, limit: 100, maxIdle: 40, want: 140},
		{proxies: 1000, limit: 1, maxIdle: 0, want: 1},
	}
	for _, tt := range tests {
		if got := keptAlive(tt.proxies, tt.limit, tt.maxIdle); got != tt.want {
			t.Errorf("keptAlive(%d, %d, %d) = %d, want %d", tt.proxies, tt.limit, tt.maxIdle, got, tt.want)
		}
	}

	// One loopback server stands in for six proxies told apart by their
	// user names; it answers forwarded requests itself.
	var mu sync.Mutex
	closed := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(r.Header.Get("Proxy-Authorization"), "Basic "))
		user, _, _ := strings.Cut(string(auth), ":")
		mu.Lock()
		closed[user] = r.Close
		mu.Unlock()
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	var proxies []*url.URL
	for i := range 6 {
		u, err := transport.ParseProxy(fmt.Sprintf("http://u%d:pw@%s", i, srv.Listener.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		proxies = append(proxies, u)
	}
	plan, err := Build(Options{Proxies: proxies, Limit: 2, Transport: transport.Options{MaxIdle: 1, KeepAlive: time.Minute}, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	if plan.KeptAlive != 3 {
		t.Fatalf("%d proxies kept alive, want 3 (--limit 2 + --max-idle 1)", plan.KeptAlive)
	}
	for i, r := range plan.Routes {
		req, err := http.NewRequest(http.MethodGet, "http://target.test/x", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := r.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		user := fmt.Sprintf("u%d", i)
		mu.Lock()
		askedClose, seen := closed[user]
		mu.Unlock()
		kept := i < 3
		if !seen || askedClose == kept || resp.Close == kept {
			t.Errorf("proxy %s: seen %v, asked to close %v, answer closes %v; want keep-alive %v", user, seen, askedClose, resp.Close, kept)
		}
	}
}

// TestKeptAliveFollowsLoweredLimit: when the open-file limit lowers
// --limit, the proxies that keep idle connections are counted from the
// limit in force, as they are when --limit is given that low.
func TestKeptAliveFollowsLoweredLimit(t *testing.T) {
	t.Parallel()
	var proxies []*url.URL
	for i := range 100 {
		u, err := transport.ParseProxy(fmt.Sprintf("http://u%d:pw%d@127.0.0.1:%d", i, i, 20000+i))
		if err != nil {
			t.Fatal(err)
		}
		proxies = append(proxies, u)
	}
	for _, limit := range []int{100, 24} {
		t.Run(fmt.Sprint("--limit ", limit), func(t *testing.T) {
			t.Parallel()
			plan, err := Build(Options{Proxies: proxies, Limit: limit, OpenFiles: 128, Transport: transport.Options{MaxIdle: 40}, Getenv: func(string) string { return "" }})
			if err != nil {
				t.Fatal(err)
			}
			// 128 open files less 64 kept free and 40 idle leave 24.
			if plan.Limit != 24 || plan.KeptAlive != 24+40 {
				t.Errorf("limit %d, kept alive %d; want 24 and 64", plan.Limit, plan.KeptAlive)
			}
		})
	}
}
