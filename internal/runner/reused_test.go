package runner

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/transport"
)

// TestReusedMeansAnEarlierRequest checks that timings.reused is true only
// for a connection that carried an earlier request: as many records say
// reused: false as the server saw new connections, and none that dialled
// says reused. (net/http calls a freshly dialled connection that waited in
// the idle pool "reused".)
func TestReusedMeansAnEarlierRequest(t *testing.T) {
	t.Parallel()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Uneven latency, so that connections free up out of order and
		// dials race the idle pool.
		var n int
		fmt.Sscanf(r.URL.Path, "/%d", &n)
		time.Sleep(time.Duration(n%7) * time.Millisecond)
		io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c, err := transport.New(transport.Options{PerHost: 16, MaxIdle: 4, KeepAlive: time.Minute, ConnectTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	var lines []string
	for i := 0; i < 1500; i++ {
		lines = append(lines, fmt.Sprintf("%s/%d", srv.URL, i))
	}
	recs, err := runJobs(t, context.Background(), Options{Limit: 16, PerHost: 16, KeepAlive: true, Routes: []Route{{Client: c}}}, lines)
	if err != nil {
		t.Fatal(err)
	}
	fresh := int64(0)
	for _, rec := range recs {
		if rec.Timings == nil {
			t.Fatalf("line %d: no timings", rec.Line)
		}
		if !rec.Timings.Reused {
			fresh++
		} else if rec.Timings.ConnectMS != nil {
			t.Errorf("line %d: reused, yet it dialled (connect_ms %v)", rec.Line, *rec.Timings.ConnectMS)
		}
	}
	if got := conns.Load(); fresh != got {
		t.Errorf("%d records say reused: false, the server saw %d new connections", fresh, got)
	}
}
