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
		wantIdle               int // 0: maxIdle, kept
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
		// When --max-idle alone does not fit, it is lowered too: the
		// limit and the idle connections share half the open files.
		{name: "max-idle too", fd: 70, limit: 100, routes: 1, maxIdle: 40, want: 18, wantIdle: 17, notice: true},
		{name: "many proxies, 40 files", fd: 40, limit: 100, routes: 41, maxIdle: 40, want: 10, wantIdle: 10, notice: true},
		{name: "many proxies, 32 files", fd: 32, limit: 100, routes: 41, maxIdle: 40, want: 8, wantIdle: 8, notice: true},
		{name: "a small limit kept", fd: 40, limit: 4, routes: 41, maxIdle: 40, want: 4, wantIdle: 10, notice: true},
		{name: "never below one", fd: 3, limit: 100, routes: 1, maxIdle: 40, want: 1, wantIdle: 1, notice: true},
	}
	for _, tt := range tests {
		got, idle, budget, notice := fitOpenFiles(tt.fd, tt.limit, tt.routes, tt.maxIdle)
		wantIdle := tt.maxIdle
		if tt.wantIdle != 0 {
			wantIdle = tt.wantIdle
		}
		if idle != wantIdle {
			t.Errorf("%s: max idle %d, want %d", tt.name, idle, wantIdle)
		}
		if tt.fd > 3 && uint64(got+idle) > tt.fd-min(fdReserve, tt.fd/2) {
			t.Errorf("%s: limit %d and %d idle connections overrun %d open files", tt.name, got, idle, tt.fd)
		}
		// The requests in flight (got, over all routes) and every route's
		// idle pool fit the open-file limit, unless the floor of one idle
		// connection per route alone passes it.
		if tt.fd > 0 && (budget < 1 || uint64(got+budget*tt.routes) > max(tt.fd-min(fdReserve, tt.fd/2), uint64(got+tt.routes))) {
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
