package transport

import (
	"strings"
	"testing"

	"github.com/fetchctl/fetchctl/internal/target"
)

// headServer answers every request on 127.0.0.1 with a 200 whose head holds
// one header of n bytes, and closes the connection.
func headServer(t *testing.T, n int) string {
	t.Helper()
	s, err := target.StartRaw("HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", n) + "\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s.URL
}

func TestMaxHeaderBytes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		limit  int64
		header int
		ok     bool
	}{
		{"10 KiB over 4 KiB", 4 << 10, 10 << 10, false},
		{"512 KiB under 1 MiB", 1 << 20, 512 << 10, true},
		{"2 MiB over 1 MiB", 1 << 20, 2 << 20, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := New(Options{MaxHeaderBytes: tt.limit})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseIdleConnections()
			resp, err := c.Get(headServer(t, tt.header))
			if err == nil {
				resp.Body.Close()
			}
			if ok := err == nil; ok != tt.ok {
				t.Fatalf("limit %d, header %d: error %v, want ok %v", tt.limit, tt.header, err, tt.ok)
			}
		})
	}
}

func TestMaxHeaderBytesNegative(t *testing.T) {
	t.Parallel()
	if _, err := New(Options{MaxHeaderBytes: -1}); err == nil {
		t.Fatal("a negative MaxHeaderBytes was accepted")
	}
}
