package runner

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/fetchctl/fetchctl/internal/report"
)

// TestRunDecodesGzip checks that a run asks for gzip and hands on the body
// decoded, as net/http would on its own: sizes and hashes are of the
// decoded body, several gzip bodies in a row go through one worker's
// decoder, an empty gzip body is an empty body, and a request that sets its
// own Accept-Encoding, a Range or the HEAD method gets no gzip and no
// decoding.
func TestRunDecodesGzip(t *testing.T) {
	plain := strings.Repeat("fetchctl gzip body ", 500)
	var packed bytes.Buffer
	zw := gzip.NewWriter(&packed)
	zw.Write([]byte(plain))
	zw.Close()

	var mu sync.Mutex
	var asked []string
	ts := newTestServer(t, 0, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.Header.Get("Accept-Encoding"))
		mu.Unlock()
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Write([]byte(plain))
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		if r.URL.Path == "/empty" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Write(packed.Bytes())
	})
	sum := sha256.Sum256([]byte(plain))
	wantHash := hex.EncodeToString(sum[:])
	none := sha256.Sum256(nil)
	emptyHash := hex.EncodeToString(none[:])

	tests := []struct {
		name       string
		header     http.Header
		method     string
		path       string
		wantAsked  string
		wantBytes  int64
		wantHashed bool
	}{
		{name: "gzip asked for and decoded", path: "/", wantAsked: "gzip", wantBytes: int64(len(plain)), wantHashed: true},
		{name: "empty gzip body", path: "/empty", wantAsked: "gzip", wantBytes: 0},
		{name: "caller's header map left alone", header: http.Header{"X-Test": {"1"}}, path: "/",
			wantAsked: "gzip", wantBytes: int64(len(plain)), wantHashed: true},
		{name: "own Accept-Encoding", header: http.Header{"Accept-Encoding": {"gzip, br"}}, path: "/",
			wantAsked: "gzip, br", wantBytes: int64(packed.Len())},
		{name: "range", header: http.Header{"Range": {"bytes=0-"}}, path: "/", wantBytes: int64(len(plain)), wantHashed: true},
		{name: "HEAD", method: http.MethodHead, path: "/", wantBytes: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			asked = nil
			mu.Unlock()
			lines := make([]string, 20)
			for i := range lines {
				lines[i] = ts.URL + tt.path
			}
			recs, err := runJobs(t, context.Background(), Options{
				Limit: 2, PerHost: 2, Hash: true, Header: tt.header, Method: tt.method,
			}, lines)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != len(lines) {
				t.Fatalf("%d records for %d lines", len(recs), len(lines))
			}
			for _, r := range recs {
				if !r.OK || r.Bytes != tt.wantBytes {
					t.Fatalf("record ok=%v bytes=%d error=%+v, want ok with %d bytes", r.OK, r.Bytes, r.Error, tt.wantBytes)
				}
				if tt.wantHashed && r.SHA256 != wantHash {
					t.Fatalf("sha256 %s, want that of the decoded body %s", r.SHA256, wantHash)
				}
				if tt.wantBytes == 0 && r.SHA256 != emptyHash {
					t.Fatalf("sha256 %q of an empty body, want %s", r.SHA256, emptyHash)
				}
			}
			if tt.wantAsked == "gzip" && tt.header.Get("Accept-Encoding") != "" {
				t.Errorf("Run wrote Accept-Encoding into the caller's header map")
			}
			mu.Lock()
			defer mu.Unlock()
			for _, a := range asked {
				if a != tt.wantAsked {
					t.Fatalf("Accept-Encoding sent: %q, want %q", a, tt.wantAsked)
				}
			}
		})
	}
}

// TestRunRecordsContentEncoding checks that a body fetchctl did not decode
// says so: bytes and sha256 are then of the encoded body as received.
func TestRunRecordsContentEncoding(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, 0, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/deflate":
			w.Header().Set("Content-Encoding", "deflate")
			io.WriteString(w, "\x78\x9c\xcb\x48\xcd\xc9\xc9\x07\x00\x06\x2c\x02\x15")
		case "/identity":
			w.Header().Set("Content-Encoding", "identity")
			io.WriteString(w, "hello")
		default:
			io.WriteString(w, "hello")
		}
	})
	recs, err := runJobs(t, context.Background(), Options{Limit: 2, PerHost: 2, Hash: true},
		[]string{srv.URL + "/deflate", srv.URL + "/identity", srv.URL + "/plain"})
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		want := ""
		if strings.HasSuffix(rec.URL, "/deflate") {
			want = "deflate"
			if rec.Bytes != 13 {
				t.Errorf("deflate: bytes %d, want the 13 bytes as received", rec.Bytes)
			}
		}
		if rec.ContentEncoding != want {
			t.Errorf("%s: content_encoding %q, want %q", rec.URL, rec.ContentEncoding, want)
		}
	}
}

// TestRunGzipThatDoesNotDecode: a gzip body that arrives whole (all its
// Content-Length) but whose compressed stream ends early does not decode,
// like any other bad gzip: kind other, not retried, and the message says
// the compressed body ended early rather than that the connection closed.
// A body the connection really cuts short stays reset and is retried. A
// whole gzip stream followed by bytes that are no gzip member does not
// decode either, and the message says how many follow it.
func TestRunGzipThatDoesNotDecode(t *testing.T) {
	t.Parallel()
	// Text that compresses to tens of KB, so that a cut in the middle
	// leaves decoded bytes behind it.
	var text strings.Builder
	for i := range 20_000 {
		fmt.Fprintf(&text, "line %d of the body %x\n", i, i*7919)
	}
	var packed bytes.Buffer
	zw := gzip.NewWriter(&packed)
	zw.Write([]byte(text.String()))
	zw.Close()
	whole := packed.Bytes()
	// The report's body: a whole gzip stream, then bytes that are none.
	var trail bytes.Buffer
	zw = gzip.NewWriter(&trail)
	zw.Write([]byte("trail\n"))
	zw.Close()
	trailed := append(trail.Bytes(), "GARBAGE"...)
	// Two gzip members in a row are one body (RFC 1952), not trailing bytes.
	twice := append(append([]byte{}, trail.Bytes()...), trail.Bytes()...)

	ts := newTestServer(t, 0, func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		switch r.URL.Path {
		case "/cut-in-data":
			body = whole[:len(whole)/2]
		case "/cut-in-trailer":
			body = whole[:len(whole)-3]
		case "/cut-in-header":
			body = whole[:5]
		case "/not-gzip":
			body = []byte("plain text, not gzip")
		case "/trailing":
			body = trailed
		case "/trailing-long":
			body = append(append([]byte{}, whole...), strings.Repeat("x", 100)...)
		case "/trailing-byte":
			body = append(append([]byte{}, trail.Bytes()...), 0)
		case "/trailing-chunked":
			// No Content-Length: the body ends with its last chunk.
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(trailed[:10])
			http.NewResponseController(w).Flush()
			w.Write(trailed[10:])
			return
		case "/two-members":
			body = twice
		case "/closed":
			// The head promises the whole stream; the connection closes
			// after half of it.
			c, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n", len(whole))
			buf.Write(whole[:len(whole)/2])
			buf.Flush()
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})

	tests := []struct {
		path    string
		kind    string
		message string
		tries   int
	}{
		{"/cut-in-data", report.KindOther, "compressed body ended early", 1},
		{"/cut-in-trailer", report.KindOther, "compressed body ended early", 1},
		{"/cut-in-header", report.KindOther, "compressed body ended early", 1},
		{"/not-gzip", report.KindOther, "invalid header", 1},
		{"/trailing", report.KindOther, "compressed body has 7 bytes after the end of its gzip stream (6 bytes decoded)", 1},
		{"/trailing-long", report.KindOther, fmt.Sprintf("compressed body has 100 bytes after the end of its gzip stream (%d bytes decoded)", text.Len()), 1},
		{"/trailing-byte", report.KindOther, "compressed body has 1 byte after the end of its gzip stream (6 bytes decoded)", 1},
		{"/trailing-chunked", report.KindOther, "compressed body has 7 bytes after the end of its gzip stream (6 bytes decoded)", 1},
		{"/two-members", "", "", 1},
		{"/closed", report.KindReset, "connection closed after", 3},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			recs, err := runJobs(t, context.Background(), Options{
				Limit: 1, PerHost: 1, Retries: 2, RetryOn: mustRetryOn(t, "429,5xx,timeout,reset,connect"),
			}, []string{ts.URL + tt.path})
			if err != nil {
				t.Fatal(err)
			}
			r := recs[0]
			if tt.kind == "" {
				if !r.OK || r.Bytes != 12 {
					t.Fatalf("record ok=%v bytes=%d error=%+v, want ok with the 12 bytes of both members", r.OK, r.Bytes, r.Error)
				}
				return
			}
			if r.OK || r.Error == nil {
				t.Fatalf("record ok: %+v", r)
			}
			if r.Error.Kind != tt.kind || !strings.Contains(r.Error.Message, tt.message) {
				t.Errorf("error %s %q, want %s saying %q", r.Error.Kind, r.Error.Message, tt.kind, tt.message)
			}
			if tt.kind != report.KindReset && strings.Contains(r.Error.Message, "connection closed") {
				t.Errorf("message %q says the connection closed", r.Error.Message)
			}
			if strings.HasPrefix(tt.path, "/trailing") && strings.Contains(r.Error.Message, "ended early") {
				t.Errorf("message %q says the stream ended early", r.Error.Message)
			}
			if r.Attempts != tt.tries {
				t.Errorf("%d attempts, want %d", r.Attempts, tt.tries)
			}
		})
	}
}
