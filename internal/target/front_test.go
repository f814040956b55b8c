package target

import (
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
)

// handFront is a Front that answers nothing itself: it counts every
// connection and hands it over. It sends its Host on hosts first, and sets
// returned when it returns.
func handFront(hosts chan<- *Host, returned *atomic.Bool) Front {
	return func(ln net.Listener, h *Host) {
		defer returned.Store(true)
		hosts <- h
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.Accepted()
			h.Hand(c)
		}
	}
}

// TestFront checks what a front sees of a host: Enter and Leave count as the
// handlers do, 429 above Limit429 included; handed connections are served by
// net/http and counted once; Close waits for the front, after which Enter
// lets nothing in and Hand closes what it is given.
func TestFront(t *testing.T) {
	t.Parallel()
	hosts := make(chan *Host, 1)
	var returned atomic.Bool
	s := start(t, Options{BodySize: 7, Limit429: 2, Front: handFront(hosts, &returned)})
	h := <-hosts

	var got []int
	for range 3 {
		got = append(got, h.Enter())
	}
	if want := []int{200, 200, 429}; !equalInts(got, want) {
		t.Errorf("Enter three times with Limit429 2 = %v, want %v", got, want)
	}
	st := s.Stats()
	if st.Requests != 3 || st.InFlight != 3 || st.PeakInFlight != 3 || st.TooMany != 1 || st.Hosts[0].PeakInFlight != 3 {
		t.Errorf("after three Enter: %+v, want 3 requests, 3 in flight, peak 3, 1 too many", st)
	}
	for range 3 {
		h.Leave()
	}

	resp, body, err := fetch(s.Client(), http.MethodGet, s.URL(0, "/"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || string(body) != string(Body(7)) {
		t.Errorf("handed-over GET /: %d %q, want 200 %q", resp.StatusCode, body, Body(7))
	}
	st = s.Stats()
	if st.Requests != 4 || st.InFlight != 0 || st.Conns != 1 {
		t.Errorf("after a handed-over request: requests %d in flight %d conns %d, want 4 0 1",
			st.Requests, st.InFlight, st.Conns)
	}

	s.Close()
	if !returned.Load() {
		t.Error("Close returned before the front did")
	}
	if h.Context().Err() == nil {
		t.Error("Host.Context is not done after Close")
	}
	if status := h.Enter(); status != 0 {
		t.Errorf("Enter after Close = %d, want 0", status)
	}
	if st := s.Stats(); st.Requests != 4 || st.InFlight != 0 {
		t.Errorf("after Close and Enter: requests %d in flight %d, want 4 and 0", st.Requests, st.InFlight)
	}
	mine, theirs := net.Pipe()
	defer mine.Close()
	h.Hand(theirs)
	if _, err := mine.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read from a connection handed over after Close: %v, want EOF", err)
	}
}

func TestStartRejectsFrontWithTLSOrHTTP2(t *testing.T) {
	t.Parallel()
	front := func(net.Listener, *Host) {}
	for _, opts := range []Options{{TLS: true, Front: front}, {HTTP2: true, Front: front}} {
		if s, err := Start(opts); err == nil {
			s.Close()
			t.Errorf("Start with a front and TLS %v HTTP2 %v succeeded, want an error", opts.TLS, opts.HTTP2)
		}
	}
}
