package transport

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMaxConnRequests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		tlsMode  string
		limit    int
		requests int
		// HTTP/2 may open a spare connection while the retired one is still
		// closing; only connections that carried requests are counted.
		exactDials bool
	}{
		{name: "three per connection", limit: 3, requests: 10, exactDials: true},
		{name: "no limit", limit: 0, requests: 10, exactDials: true},
		{name: "one per connection", limit: 1, requests: 4, exactDials: true},
		{name: "three per connection, TLS", tlsMode: "h1", limit: 3, requests: 10, exactDials: true},
		{name: "three per connection, HTTP/2", tlsMode: "h2", limit: 3, requests: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var (
				mu     sync.Mutex
				byConn = map[string]int{} // requests per client address
			)
			srv := newServer(t, tt.tlsMode, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				byConn[r.RemoteAddr]++
				mu.Unlock()
			}))
			c := testClient(t, Options{
				MaxConnRequests: tt.limit, KeepAlive: time.Minute, HTTP2: true,
				Insecure: true, ConnectTimeout: 5 * time.Second,
			})
			for range tt.requests {
				mustGet(t, c, srv.URL)
			}
			want := 1
			if tt.limit > 0 {
				want = (tt.requests + tt.limit - 1) / tt.limit
			}
			if got := srv.conns.Load(); tt.exactDials && got != int64(want) {
				t.Errorf("%d requests with MaxConnRequests=%d opened %d connections, want %d",
					tt.requests, tt.limit, got, want)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(byConn) != want {
				t.Errorf("%d requests with MaxConnRequests=%d used %d connections, want %d",
					tt.requests, tt.limit, len(byConn), want)
			}
			for addr, n := range byConn {
				if tt.limit > 0 && n > tt.limit {
					t.Errorf("connection %s carried %d requests, want at most %d", addr, n, tt.limit)
				}
			}
		})
	}
}

func TestMaxConnRequestsLeavesCallerHeaderAlone(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "", nil)
	c := testClient(t, Options{MaxConnRequests: 1, KeepAlive: time.Minute})
	req, err := newGet(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Test", "1")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if v := req.Header.Get("Connection"); v != "" {
		t.Errorf("caller's request header gained Connection: %q", v)
	}
	if resp.Request != req {
		t.Error("resp.Request is not the caller's request")
	}
}

// stubbornServer answers every request on a connection with keep-alive,
// ignoring "Connection: close", and counts connections.
type stubbornServer struct {
	ln    net.Listener
	conns atomic.Int64
	wg    sync.WaitGroup
	mu    sync.Mutex
	open  []net.Conn
}

func newStubbornServer(t *testing.T) *stubbornServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stubbornServer{ln: ln}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			s.mu.Lock()
			s.open = append(s.open, c)
			s.mu.Unlock()
			s.wg.Go(func() { s.serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.open {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *stubbornServer) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"); err != nil {
			return
		}
	}
}

func TestMaxConnRequestsWhenServerIgnoresClose(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		method string
		body   string
	}{
		{name: "GET", method: http.MethodGet},
		{name: "POST with replayable body", method: http.MethodPost, body: "payload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStubbornServer(t)
			const limit, requests = 3, 10
			c := testClient(t, Options{MaxConnRequests: limit, KeepAlive: time.Minute})
			for i := range requests {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				req, err := http.NewRequestWithContext(ctx, tt.method, "http://"+s.ln.Addr().String()+"/", strings.NewReader(tt.body))
				if err != nil {
					t.Fatal(err)
				}
				resp, err := c.Do(req)
				if err != nil {
					cancel()
					t.Fatalf("request %d: %v", i, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				cancel()
			}
			if got, want := s.conns.Load(), int64((requests+limit-1)/limit); got != want {
				t.Errorf("server saw %d connections, want %d", got, want)
			}
		})
	}
}

func TestRetiredConnWriteError(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := &trackedConn{Conn: a}
	c.retired.Store(true)
	_, err := c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	if err == nil || err.Error() != "connection has carried MaxConnRequests requests" {
		t.Errorf("err = %v, want the connection's reason, with no package prefix", err)
	}
}
