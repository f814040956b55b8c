package batch

import (
	"testing"

	"github.com/fetchctl/fetchctl/internal/routes"
)

// TestInForceNamesTheCapThatBinds: --dry-run's in_force.text says which of
// per-proxy, --limit and --per-host holds the run down.
func TestInForceNamesTheCapThatBinds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		plan     routes.Plan
		perHost  int
		inFlight int
		want     string
	}{
		{"per-proxy binds", routes.Plan{Proxies: 1, PerRoute: 20, Limit: 30, KeptAlive: 1}, 7, 20,
			"1 proxy × per-proxy 20, under --limit 30: up to 20 in flight, 7 per host over all proxies"},
		{"limit binds", routes.Plan{Proxies: 5, PerRoute: 20, Limit: 60, KeptAlive: 5}, 7, 60,
			"5 proxies × per-proxy 20 = 100, capped by --limit 60: up to 60 in flight, 7 per host over all proxies"},
		{"both bind", routes.Plan{Proxies: 5, PerRoute: 20, Limit: 100, KeptAlive: 5}, 7, 100,
			"5 proxies × per-proxy 20 = 100, as --limit 100: up to 100 in flight, 7 per host over all proxies"},
		{"per-host does not bind", routes.Plan{Proxies: 1, PerRoute: 20, Limit: 30, KeptAlive: 1}, 30, 20,
			"1 proxy × per-proxy 20, under --limit 30: up to 20 in flight, all of them on one host if need be (--per-host 30)"},
		{"direct, per-host binds", routes.Plan{Limit: 30, PerRoute: 30}, 7, 30,
			"direct, --limit 30: up to 30 in flight, 7 per host"},
		{"direct, per-host does not bind", routes.Plan{Limit: 30, PerRoute: 30}, 30, 30,
			"direct, --limit 30: up to 30 in flight, all of them on one host if need be (--per-host 30)"},
		{"two environment proxies share the cap", routes.Plan{Proxies: 2, PerRoute: 20, Limit: 30, KeptAlive: 2, EnvProxies: map[string]string{"HTTP_PROXY": "a", "HTTPS_PROXY": "b"}}, 7, 20,
			"2 proxies from the environment share per-proxy 20, under --limit 30: up to 20 in flight, 7 per host over all proxies"},
		{"two environment proxies at --limit", routes.Plan{Proxies: 2, PerRoute: 30, Limit: 30, KeptAlive: 2, EnvProxies: map[string]string{"HTTP_PROXY": "a", "HTTPS_PROXY": "b"}}, 7, 30,
			"2 proxies from the environment share per-proxy 30, as --limit 30: up to 30 in flight, 7 per host over all proxies"},
		{"one environment proxy", routes.Plan{Proxies: 1, PerRoute: 20, Limit: 30, KeptAlive: 1, EnvProxies: map[string]string{"HTTPS_PROXY": "b"}}, 7, 20,
			"1 proxy × per-proxy 20, under --limit 30: up to 20 in flight, 7 per host over all proxies"},
		{"some not kept alive", routes.Plan{Proxies: 3, PerRoute: 10, Limit: 100, KeptAlive: 2}, 7, 30,
			"3 proxies × per-proxy 10, under --limit 100: up to 30 in flight, 7 per host over all proxies; the first 2 keep idle connections, the others open one per request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newInForce(&tt.plan, tt.perHost)
			if f.Text != tt.want {
				t.Errorf("text = %q\nwant   %q", f.Text, tt.want)
			}
			if f.InFlight != tt.inFlight {
				t.Errorf("in_flight = %d, want %d", f.InFlight, tt.inFlight)
			}
		})
	}
}
