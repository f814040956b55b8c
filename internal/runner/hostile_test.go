package runner

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/target"
	"github.com/fetchctl/fetchctl/internal/transport"
)

// newRawServer starts a target.RawServer answering with head.
func newRawServer(t *testing.T, head string) *target.RawServer {
	t.Helper()
	s, err := target.StartRaw(head)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
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
		message string // in the message, when set
	}{
		{"2 MiB header", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 2<<20) + "\r\nContent-Length: 2\r\n\r\nok", "", report.KindProtocol, 1, ""},
		{"malformed 100 KB line", "HTTP/1.1 200 OK\r\nX-Bad: " + strings.Repeat("b\x01", 50_000) + "\r\nContent-Length: 2\r\n\r\nok", "", report.KindProtocol, 1, ""},
		{"100 KB line without a colon", "HTTP/1.1 200 OK\r\n" + strings.Repeat("no colon ", 11_000) + "\r\nContent-Length: 2\r\n\r\nok", "", report.KindProtocol, 1, ""},
		{"malformed status line", "HTTP/1.1 " + strings.Repeat("9", 100_000) + " OK\r\nContent-Length: 2\r\n\r\nok", "", report.KindProtocol, 1, ""},
		{"retried when asked", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 2<<20) + "\r\n\r\n", "protocol", report.KindProtocol, 3, ""},
		// net/http reports these through "transport connection broken",
		// as it does a connection that breaks: the head is malformed all
		// the same, and no second attempt gets another answer.
		{"bad Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhi", "", report.KindProtocol, 1, `bad Content-Length "abc"`},
		{"two Content-Lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi", "", report.KindProtocol, 1, "multiple Content-Length"},
		{"empty Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\nhi", "", report.KindProtocol, 1, "invalid empty Content-Length"},
		{"unsupported Transfer-Encoding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", "", report.KindProtocol, 1, "unsupported transfer encoding"},
		{"two Transfer-Encodings", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", "", report.KindProtocol, 1, "too many transfer encodings"},
		{"forbidden trailer key", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n2\r\nhi\r\n0\r\n\r\n", "", report.KindProtocol, 1, "bad trailer key"},
		{"bad Content-Length retried when asked", "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhi", "protocol", report.KindProtocol, 3, ""},
		// A whole line without a colon, even one of header-name
		// characters alone, is a malformed head; so are a first header
		// line that starts with a space and a field name net/http refuses.
		{"line without a colon", "HTTP/1.1 200 OK\r\nNoColonHeader\r\nContent-Length: 2\r\n\r\nok", "", report.KindProtocol, 1, `missing colon: "NoColonHeader"`},
		{"last line without a colon", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nNoColonHeader\r\n\r\nok", "", report.KindProtocol, 1, "missing colon"},
		{"first header line starts with a space", "HTTP/1.1 200 OK\r\n X-Lead: 1\r\nContent-Length: 2\r\n\r\nok", "", report.KindProtocol, 1, "malformed MIME header initial line"},
		{"invalid field name", "HTTP/1.1 200 OK\r\nX@Bad: 1\r\nContent-Length: 2\r\n\r\nok", "", report.KindProtocol, 1, "malformed MIME header line"},
		{"512 KiB header passes", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 512<<10) + "\r\nContent-Type: text/" + strings.Repeat("c", 100_000) + "\r\nContent-Length: 2\r\n\r\nok", "", "", 1, ""},
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
			recs, err := runJobs(t, context.Background(), opts, []string{srv.URL})
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
			if !strings.Contains(r.Error.Message, tt.message) {
				t.Errorf("message %q does not say %q", r.Error.Message, tt.message)
			}
			if strings.Contains(r.Error.Message, "connection broken") {
				t.Errorf("message %q says the connection broke", r.Error.Message)
			}
			if r.Attempts != tt.tries || srv.Requests() != int64(tt.tries) {
				t.Errorf("%d attempts, %d requests; want %d", r.Attempts, srv.Requests(), tt.tries)
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
