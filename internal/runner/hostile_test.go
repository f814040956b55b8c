package runner

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/transport"
)

// rawServer answers every request on 127.0.0.1 with the bytes of head and
// closes the connection. It counts the requests it read.
type rawServer struct {
	url      string
	requests atomic.Int64
}

func newRawServer(t *testing.T, head string) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{url: "http://" + ln.Addr().String() + "/"}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				s.requests.Add(1)
				io.WriteString(c, head)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return s
}

// TestHostileHeads: a head over the limit or with a malformed line is kind
// protocol, is not retried by default, and the record's message stays short
// whatever the server sent.
func TestHostileHeads(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	tests := []struct {
		name    string
		head    string
		retryOn string
		want    string // kind; "" is ok
		tries   int
	}{
		{"2 MiB header", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 2<<20) + "\r\nContent-Length: 2\r\n\r\nok", "", report.KindProtocol, 1},
		{"malformed 100 KB line", "HTTP/1.1 200 OK\r\nX-Bad: " + strings.Repeat("b\x01", 50_000) + "\r\nContent-Length: 2\r\n\r\nok", "", report.KindProtocol, 1},
		{"100 KB line without a colon", "HTTP/1.1 200 OK\r\n" + strings.Repeat("no colon ", 11_000) + "\r\nContent-Length: 2\r\n\r\nok", "", report.KindProtocol, 1},
		{"malformed status line", "HTTP/1.1 " + strings.Repeat("9", 100_000) + " OK\r\nContent-Length: 2\r\n\r\nok", "", report.KindProtocol, 1},
		{"retried when asked", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 2<<20) + "\r\n\r\n", "protocol", report.KindProtocol, 3},
		{"512 KiB header passes", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 512<<10) + "\r\nContent-Type: text/" + strings.Repeat("c", 100_000) + "\r\nContent-Length: 2\r\n\r\nok", "", "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newRawServer(t, tt.head)
			c, err := transport.New(transport.Options{MaxHeaderBytes: limit})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.CloseIdleConnections)
			retryOn := "429,5xx,timeout,reset,connect"
			if tt.retryOn != "" {
				retryOn += "," + tt.retryOn
			}
			ok, _ := ParseStatusSet("200-299")
			var logged []string
			var mu sync.Mutex
			opts := Options{
				Limit: 1, PerHost: 1, Routes: []Route{{Client: c}},
				Timeout: 10 * time.Second, OKStatus: ok, RetryOn: mustRetryOn(t, retryOn), Retries: 2,
				Logf: func(format string, args ...any) {
					mu.Lock()
					defer mu.Unlock()
					logged = append(logged, fmt.Sprintf(format, args...))
				},
			}
			recs, err := runJobs(t, context.Background(), opts, []string{srv.url})
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 1 {
				t.Fatalf("%d records", len(recs))
			}
			r := recs[0]
			if tt.want == "" {
				if !r.OK || len(r.ContentType) > report.MaxServerText+3 {
					t.Fatalf("record ok %v, content type of %d bytes, error %+v", r.OK, len(r.ContentType), r.Error)
				}
				return
			}
			if r.Error == nil || r.Error.Kind != tt.want {
				t.Fatalf("error %.300q, want kind %s", fmt.Sprint(r.Error), tt.want)
			}
			if r.Attempts != tt.tries || srv.requests.Load() != int64(tt.tries) {
				t.Errorf("%d attempts, %d requests; want %d", r.Attempts, srv.requests.Load(), tt.tries)
			}
			// The message may name the limit and what went wrong; what the
			// server sent is cut to MaxServerText.
			if n := len(r.Error.Message); n > report.MaxServerText+200 {
				t.Errorf("message of %d bytes: %.200q", n, r.Error.Message)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, l := range logged {
				if len(l) > report.MaxServerText+400 {
					t.Errorf("log line of %d bytes: %.200q", len(l), l)
				}
			}
		})
	}
}
