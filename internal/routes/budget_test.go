package routes

import (
	"strings"
	"testing"
)

func TestFitOpenFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                   string
		fd                     uint64
		limit, routes, maxIdle int
		want                   int
		notice                 bool
	}{
		{name: "plenty", fd: 1 << 20, limit: 100, routes: 1, maxIdle: 40, want: 100},
		{name: "unknown", fd: 0, limit: 5000, routes: 1, maxIdle: 40, want: 5000},
		{name: "exactly enough", fd: 100 + 40 + fdReserve, limit: 100, routes: 1, maxIdle: 40, want: 100},
		{name: "too low", fd: 256, limit: 1000, routes: 1, maxIdle: 40, want: 256 - fdReserve - 40, notice: true},
		// The limit is the total over all routes: five proxies need no
		// more open files for it than one.
		{name: "shared by proxies", fd: 1024, limit: 300, routes: 5, maxIdle: 0, want: 300},
		{name: "many proxies", fd: 20000, limit: 100, routes: 1000, maxIdle: 40, want: 100},
		{name: "too low over proxies", fd: 256, limit: 1000, routes: 5, maxIdle: 40, want: 256 - fdReserve - 40, notice: true},
		{name: "never below one", fd: 70, limit: 100, routes: 1, maxIdle: 40, want: 1, notice: true},
	}
	for _, tt := range tests {
		got, budget, notice := fitOpenFiles(tt.fd, tt.limit, tt.routes, tt.maxIdle)
		// The requests in flight (got, over all routes) and every route's
		// idle pool fit the open-file limit, unless the floor of one idle
		// connection per route alone passes it.
		if tt.fd > 0 && (budget < 1 || uint64(got+budget*tt.routes) > max(tt.fd-fdReserve, uint64(got+tt.routes))) {
			t.Errorf("%s: idle budget %d per route with limit %d overruns %d open files", tt.name, budget, got, tt.fd)
		}
		if got != tt.want || (notice != "") != tt.notice {
			t.Errorf("%s: got %d %q, want %d notice %v", tt.name, got, notice, tt.want, tt.notice)
		}
		if notice != "" && (strings.Contains(notice, "\n") || !strings.Contains(notice, "ulimit -n")) {
			t.Errorf("%s: notice %q is not one line saying how to fix it", tt.name, notice)
		}
	}
}
