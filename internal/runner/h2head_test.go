package runner

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/testnet"
	"github.com/fetchctl/fetchctl/internal/transport"
)

// startH2HeadServer speaks HTTP/2 on 127.0.0.1 at the frame level and
// answers every stream with block as its response head, in HEADERS and
// CONTINUATION frames of at most 16 KiB, and no body. It counts the
// requests.
func startH2HeadServer(t *testing.T, block []byte) (url string, requests *atomic.Int64) {
	t.Helper()
	ln := h2Listener(t)
	requests = new(atomic.Int64)
	testnet.Serve(t, ln, func(c net.Conn) {
		fr := testnet.H2Framer(c)
		if fr == nil {
			return
		}
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() && fr.WriteSettingsAck() != nil {
					return
				}
			case *http2.HeadersFrame:
				requests.Add(1)
				const most = 16 << 10
				first := block[:min(len(block), most)]
				rest := block[len(first):]
				if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, BlockFragment: first, EndStream: true, EndHeaders: len(rest) == 0}) != nil {
					return
				}
				for len(rest) > 0 {
					frag := rest[:min(len(rest), most)]
					rest = rest[len(frag):]
					if fr.WriteContinuation(f.StreamID, len(rest) == 0, frag) != nil {
						return
					}
				}
			}
		}
	})
	return "https://" + ln.Addr().String() + "/", requests
}

// hpackBlock encodes a 200 response head with fields, name and value
// pairs.
func hpackBlock(fields ...string) []byte {
	var b bytes.Buffer
	enc := hpack.NewEncoder(&b)
	enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
	for i := 0; i+1 < len(fields); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return b.Bytes()
}

// TestH2HeadOverLimit: over HTTP/2, a response head over the header limit
// is kind protocol, as over HTTP/1, and not retried by default, whichever
// way net/http refuses it: a header list over the limit, one field longer
// than the limit (which it reports as a connection-level
// COMPRESSION_ERROR), or a frame of the head far beyond it (a
// connection-level PROTOCOL_ERROR). The message names the limit as
// transport.Options.MaxHeaderText words it. A head
// whose header compression is broken is malformed: protocol too.
func TestH2HeadOverLimit(t *testing.T) {
	t.Parallel()
	var many []string
	for i := range 20 {
		many = append(many, "x-field-"+string(rune('a'+i)), strings.Repeat("v", 300))
	}
	tests := []struct {
		name    string
		block   []byte
		message string
	}{
		// 'a' is Huffman-coded in 5 bits: the field's 5000 bytes take
		// 3125 on the wire.
		{"one field over the limit", hpackBlock("x-big", strings.Repeat("a", 5000)), "over --max-header-size 4KiB"},
		{"header list over the limit", hpackBlock(many...), "over --max-header-size 4KiB"},
		// '~' takes 13 bits in Huffman code, so the field goes as is: a
		// 16 KiB frame, more than twice the limit.
		{"frame far over the limit", hpackBlock("x-big", strings.Repeat("~", 20000)), "over --max-header-size 4KiB"},
		// Index 63 is past the static table, and the dynamic one is empty.
		{"broken header compression", append(hpackBlock(), 0x80|63), "header compression"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url, requests := startH2HeadServer(t, tt.block)
			c, err := transport.New(transport.Options{HTTP2: true, Insecure: true, MaxHeaderBytes: 4096, MaxHeaderText: "--max-header-size 4KiB"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.CloseIdleConnections)
			opts := Options{
				Limit: 1, PerHost: 1, Routes: []Route{{Client: c}}, Timeout: 10 * time.Second,
				Retries: 2, RetryOn: mustRetryOn(t, "429,5xx,timeout,reset,connect"),
			}
			recs, err := runJobs(t, context.Background(), opts, []string{url})
			if err != nil {
				t.Fatal(err)
			}
			r := recs[0]
			if r.Error == nil || r.Error.Kind != report.KindProtocol || !strings.Contains(r.Error.Message, tt.message) {
				t.Fatalf("error %+v, want protocol saying %q", r.Error, tt.message)
			}
			if r.Attempts != 1 || requests.Load() != 1 {
				t.Errorf("%d attempts, %d requests; want 1", r.Attempts, requests.Load())
			}
		})
	}
}

// startH2BatchServer speaks HTTP/2 on 127.0.0.1 like startH2HeadServer, but
// waits for n requests on the connection and then answers them in the
// order they came, each with the head blockFor gives its path, so that all
// n are in flight on one connection when the first head arrives.
func startH2BatchServer(t *testing.T, n int, blockFor func(path string) []byte) string {
	t.Helper()
	ln := h2Listener(t)
	testnet.Serve(t, ln, func(c net.Conn) {
		// A limit of 100 or more: a client learns of it at once, where
		// a lower one leaves a new connection with one stream until its
		// first answer, which this server holds back.
		fr := testnet.H2Framer(c, http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: uint32(max(n, 250))})
		if fr == nil {
			return
		}
		fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		type stream struct {
			id   uint32
			path string
		}
		var pending []stream
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() && fr.WriteSettingsAck() != nil {
					return
				}
			case *http2.MetaHeadersFrame:
				pending = append(pending, stream{f.StreamID, f.PseudoValue("path")})
				if len(pending) < n {
					continue
				}
				for _, s := range pending {
					block := blockFor(s.path)
					const most = 16 << 10
					first := block[:min(len(block), most)]
					rest := block[len(first):]
					if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: s.id, BlockFragment: first, EndStream: true, EndHeaders: len(rest) == 0}) != nil {
						return
					}
					for len(rest) > 0 {
						frag := rest[:min(len(rest), most)]
						rest = rest[len(frag):]
						if fr.WriteContinuation(s.id, len(rest) == 0, frag) != nil {
							return
						}
					}
				}
				pending = nil
			}
		}
	})
	return "https://" + ln.Addr().String()
}

// TestH2HeadOverLimitSharedConn: over HTTP/2, a response head over the
// header limit fails that response alone; the other requests in flight on
// the same connection get their answers.
func TestH2HeadOverLimitSharedConn(t *testing.T) {
	t.Parallel()
	var many []string
	for i := range 20 {
		many = append(many, "x-field-"+string(rune('a'+i)), strings.Repeat("v", 300))
	}
	tests := []struct {
		name string
		big  []byte
	}{
		{"one field over the limit", hpackBlock("x-big", strings.Repeat("a", 5000))},
		{"header list over the limit", hpackBlock(many...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const n = 4
			base := startH2BatchServer(t, n, func(path string) []byte {
				if path == "/big" {
					return tt.big
				}
				return hpackBlock("x-ok", "1")
			})
			c, err := transport.New(transport.Options{HTTP2: true, Insecure: true, MaxHeaderBytes: 4096, KeepAlive: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.CloseIdleConnections)
			opts := Options{
				Limit: n, PerHost: n, Routes: []Route{{Client: c}}, Timeout: 10 * time.Second,
				Retries: 0, RetryOn: mustRetryOn(t, "429,5xx,timeout,reset,connect"),
			}
			urls := []string{base + "/big", base + "/a", base + "/b", base + "/c"}
			recs, err := runJobs(t, context.Background(), opts, urls)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if strings.HasSuffix(r.URL, "/big") {
					if r.Error == nil || r.Error.Kind != report.KindProtocol || !strings.Contains(r.Error.Message, "4096") {
						t.Errorf("%s: error %+v, want protocol naming the limit", r.URL, r.Error)
					}
					continue
				}
				if !r.OK {
					t.Errorf("%s: error %+v, want ok", r.URL, r.Error)
				}
			}
		})
	}
}
