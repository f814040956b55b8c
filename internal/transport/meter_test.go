package transport

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestWireMeterStopsConnectionsAtItsLimit: the bytes of connections through
// a proxy add up on the meter as they are read, a body read past the limit
// fails there with ErrWireLimit after OnLimit ran once, and a direct
// connection of a client sharing the meter is neither counted nor stopped.
func TestWireMeterStopsConnectionsAtItsLimit(t *testing.T) {
	t.Parallel()
	const body = 8 << 20
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("y", 32<<10))
		for n := 0; n < body; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer gw.Close()
	const limit = 100 << 10
	m := NewWireMeter(limit)
	var calls atomic.Int32
	m.OnLimit(func() { calls.Add(1) })
	pu, _ := url.Parse(gw.URL)
	proxied := testClient(t, Options{Proxy: pu, KeepAlive: time.Minute, Meter: m})
	direct := testClient(t, Options{KeepAlive: time.Minute, Meter: m})

	// A direct request counts nothing. It goes first: after the limit, the
	// proxied connections' last bytes may still be reaching the meter.
	fetchAll := func(what string) {
		t.Helper()
		resp, err := direct.Get(gw.URL + "/direct")
		if err != nil {
			t.Fatalf("a direct request %s: %v", what, err)
		}
		if n, err := io.Copy(io.Discard, resp.Body); err != nil || n != body {
			t.Errorf("direct body %s: %d bytes, %v; want all %d", what, n, err, body)
		}
		resp.Body.Close()
	}
	fetchAll("before the limit")
	if got := m.Total(); got != 0 {
		t.Errorf("a direct request moved the meter to %d", got)
	}

	resp, err := proxied.Get("http://a.example/big")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if !errors.Is(err, ErrWireLimit) || n >= body {
		t.Fatalf("read %d body bytes, then %v; want a stop with ErrWireLimit before the end", n, err)
	}
	if got := m.Total(); got < limit || got > limit+64<<10 {
		t.Errorf("meter counted %d bytes for a limit of %d, want at most a read past it", got, limit)
	}
	if calls.Load() != 1 {
		t.Errorf("OnLimit ran %d times, want once", calls.Load())
	}
	if _, err := proxied.Get("http://a.example/again"); !errors.Is(err, ErrWireLimit) {
		t.Errorf("a request through the proxy after the limit: %v, want ErrWireLimit", err)
	}

	fetchAll("after the limit")
}
