package transport

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http/httptrace"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/fetchctl/fetchctl/internal/target"
)

// h2FrameServer speaks HTTP/2 at the frame level on 127.0.0.1: it answers
// every stream with an empty 200 and keeps each request's header block as
// it came.
type h2FrameServer struct {
	url    string
	mu     sync.Mutex
	blocks [][]byte
}

func startH2FrameServer(t *testing.T) *h2FrameServer {
	t.Helper()
	cert, err := target.LoopbackCert()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	s := &h2FrameServer{url: "https://" + ln.Addr().String()}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return s
}

func (s *h2FrameServer) serve(c net.Conn) {
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		return
	}
	var resp bytes.Buffer
	enc := hpack.NewEncoder(&resp)
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
			if !f.HeadersEnded() {
				return // the client's small blocks fit one frame
			}
			s.mu.Lock()
			s.blocks = append(s.blocks, bytes.Clone(f.HeaderBlockFragment()))
			s.mu.Unlock()
			resp.Reset()
			_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
			if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, BlockFragment: resp.Bytes(), EndStream: true, EndHeaders: true}) != nil {
				return
			}
		case *http2.PingFrame:
			if !f.IsAck() && fr.WritePing(true, f.Data) != nil {
				return
			}
		}
	}
}

// TestH2RequestHeadersStandAlone: each request's header block decodes on
// its own, with an empty HPACK table: the client adds no request header to
// the dynamic table, so a URL list's distinct paths cost no table upkeep
// (insertions and evictions) per request.
func TestH2RequestHeadersStandAlone(t *testing.T) {
	t.Parallel()
	srv := startH2FrameServer(t)
	c := testClient(t, Options{HTTP2: true, Insecure: true, KeepAlive: time.Minute, PerHost: 1})
	paths := []string{"/?key=1", "/?key=2", "/?key=3"}
	for _, p := range paths {
		req, err := newGet(t.Context(), srv.url+p)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("User-Agent", "fetchctl-test")
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("GET %s: proto %s, want HTTP/2", p, resp.Proto)
		}
	}
	srv.mu.Lock()
	blocks := srv.blocks
	srv.mu.Unlock()
	if len(blocks) != len(paths) {
		t.Fatalf("server saw %d header blocks, want %d", len(blocks), len(paths))
	}
	for i, b := range blocks {
		fields, err := hpack.NewDecoder(4096, nil).DecodeFull(b)
		if err != nil {
			t.Errorf("request %d: header block needs an earlier request's table entries: %v", i+1, err)
			continue
		}
		var path, ua string
		for _, f := range fields {
			switch f.Name {
			case ":path":
				path = f.Value
			case "user-agent":
				ua = f.Value
			}
		}
		if path != paths[i] || ua != "fetchctl-test" {
			t.Errorf("request %d: :path %q, user-agent %q; want %q, %q", i+1, path, ua, paths[i], "fetchctl-test")
		}
	}
}

// TestIsHTTP2 asks, request after request, whether the connection each
// one got speaks HTTP/2.
func TestIsHTTP2(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		tlsMode string
		http2   bool
		want    bool
	}{
		{name: "h2 server, HTTP/2 on", tlsMode: "h2", http2: true, want: true},
		{name: "h2 server, HTTP/2 off", tlsMode: "h2", want: false},
		{name: "HTTP/1.1 TLS server", tlsMode: "h1", http2: true, want: false},
		{name: "plain http", tlsMode: "", http2: true, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, tt.tlsMode, nil)
			c := testClient(t, Options{HTTP2: tt.http2, Insecure: true, KeepAlive: time.Minute, PerHost: 1})
			for i := range 3 {
				var got []bool
				ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
					GotConn: func(info httptrace.GotConnInfo) { got = append(got, IsHTTP2(info.Conn)) },
				})
				req, err := newGet(ctx, srv.URL)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if len(got) != 1 || got[0] != tt.want || (resp.ProtoMajor == 2) != tt.want {
					t.Errorf("request %d (%s): IsHTTP2 said %v, want [%v]", i+1, resp.Proto, got, tt.want)
				}
			}
		})
	}
}
