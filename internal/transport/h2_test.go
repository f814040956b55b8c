package transport

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http/httptrace"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/fetchctl/fetchctl/internal/target"
	"github.com/fetchctl/fetchctl/internal/testnet"
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
	testnet.Serve(t, ln, s.serve)
	return s
}

func (s *h2FrameServer) serve(c net.Conn) {
	fr := testnet.H2Framer(c)
	if fr == nil {
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

// gatedConn is a net.Conn whose writes wait for the test: each write
// announces itself on entered and returns when release lets it, with the
// error that release carries.
type gatedConn struct {
	net.Conn // nil: the methods not overridden are not called
	entered  chan []byte
	release  chan error
	readWake chan struct{} // closed by SetReadDeadline
	deadline chan struct{} // gets one value per SetWriteDeadline

	mu         sync.Mutex
	wrote      bytes.Buffer
	writes     int
	wDeadlines int
	closed     bool
}

func newGatedConn() *gatedConn {
	return &gatedConn{entered: make(chan []byte), release: make(chan error), readWake: make(chan struct{}), deadline: make(chan struct{}, 8)}
}

func (g *gatedConn) Write(p []byte) (int, error) {
	g.entered <- bytes.Clone(p)
	if err := <-g.release; err != nil {
		return 0, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.writes++
	g.wrote.Write(p)
	return len(p), nil
}

func (g *gatedConn) Read([]byte) (int, error) {
	<-g.readWake
	return 0, os.ErrDeadlineExceeded
}

func (g *gatedConn) SetReadDeadline(time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.readWake:
	default:
		close(g.readWake)
	}
	return nil
}

func (g *gatedConn) SetWriteDeadline(time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.wDeadlines++
	g.deadline <- struct{}{}
	return nil
}

func (g *gatedConn) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	return nil
}

// TestWriteBehindJoinsWrites: on an HTTP/2 connection, the writes made
// while one is on the wire return at once and go out together in the next
// system call, in order, and the connection counts every byte.
func TestWriteBehindJoinsWrites(t *testing.T) {
	t.Parallel()
	g := newGatedConn()
	tc := &trackedConn{Conn: g}
	tc.writeBehind()
	if n, err := tc.Write([]byte("HEADERS-1;")); n != 10 || err != nil {
		t.Fatalf("first write: %d, %v", n, err)
	}
	if got := string(<-g.entered); got != "HEADERS-1;" {
		t.Fatalf("the wire got %q first", got)
	}
	// The first write is on the wire: these queue behind it.
	var want strings.Builder
	for i := 2; i <= 5; i++ {
		s := fmt.Sprintf("HEADERS-%d;", i)
		want.WriteString(s)
		if n, err := tc.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
	}
	g.release <- nil
	if got := string(<-g.entered); got != want.String() {
		t.Fatalf("the second system call carried %q, want %q", got, want.String())
	}
	g.release <- nil
	// Close waits for the flusher, which has nothing left.
	if err := tc.Close(); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.writes != 2 || g.wrote.String() != "HEADERS-1;"+want.String() {
		t.Errorf("%d system calls carried %q", g.writes, g.wrote.String())
	}
	if out := tc.out.Load(); out != int64(g.wrote.Len()) {
		t.Errorf("counted %d bytes out, the wire got %d", out, g.wrote.Len())
	}
	if _, err := tc.Write([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("a write after Close: %v, want net.ErrClosed", err)
	}
}

// TestWriteBehindCountsWhatIsQueued: a write handed to the flusher counts
// at once, as a write that reached the wire would on its return: a request
// that claims its connection's bytes as soon as it is done (after its last
// read made net/http queue a WINDOW_UPDATE) finds them, though the flusher
// has not written them yet.
func TestWriteBehindCountsWhatIsQueued(t *testing.T) {
	t.Parallel()
	g := newGatedConn()
	tc := &trackedConn{Conn: g}
	tc.writeBehind()
	tc.Write([]byte("HEADERS;"))
	<-g.entered // on the wire, held there
	tc.Write([]byte("WINDOW_UPDATE;"))
	if out, _, _ := ClaimWire(tc, nil); out != int64(len("HEADERS;WINDOW_UPDATE;")) {
		t.Errorf("claimed %d bytes out with both writes made, want %d", out, len("HEADERS;WINDOW_UPDATE;"))
	}
	g.release <- nil
	<-g.entered
	g.release <- nil
	tc.Close()
	if out, _, _ := ClaimWire(tc, nil); out != 0 {
		t.Errorf("claimed %d more bytes once they reached the wire, want none: each byte counts once", out)
	}
}

// TestWriteBehindFailure: a write that fails on the wire fails the writes
// after it and the read that waits on the connection, with its own error.
func TestWriteBehindFailure(t *testing.T) {
	t.Parallel()
	g := newGatedConn()
	tc := &trackedConn{Conn: g}
	tc.writeBehind()
	readErr := make(chan error, 1)
	go func() {
		_, err := tc.Read(make([]byte, 10))
		readErr <- err
	}()
	if _, err := tc.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	<-g.entered
	g.release <- syscall.EPIPE
	if err := <-readErr; !errors.Is(err, syscall.EPIPE) {
		t.Errorf("the waiting read returned %v, want the write's broken pipe", err)
	}
	if _, err := tc.Write([]byte("b")); !errors.Is(err, syscall.EPIPE) {
		t.Errorf("a later write returned %v, want the broken pipe", err)
	}
	tc.Close()
}

// TestWriteBehindCloseFlushes: closing the connection lets the bytes
// queued behind a write in progress (a TLS close_notify) reach the wire,
// under a write deadline.
func TestWriteBehindCloseFlushes(t *testing.T) {
	t.Parallel()
	g := newGatedConn()
	tc := &trackedConn{Conn: g}
	tc.writeBehind()
	tc.Write([]byte("frame;"))
	<-g.entered
	tc.Write([]byte("close_notify"))
	closed := make(chan error)
	go func() { closed <- tc.Close() }()
	// Close bounds the flush with a write deadline, then waits for it.
	<-g.deadline
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) with a write on the wire", err)
	default:
	}
	g.release <- nil
	if got := string(<-g.entered); got != "close_notify" {
		t.Fatalf("the wire got %q after the frame", got)
	}
	g.release <- nil
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.wrote.String() != "frame;close_notify" || !g.closed || g.wDeadlines == 0 {
		t.Errorf("wire %q, closed %v, write deadlines set %d", g.wrote.String(), g.closed, g.wDeadlines)
	}
}

// TestWriteBehindOnlyOnHTTP2: connections that negotiated HTTP/2 write
// behind; HTTP/1.1 ones write as they always did.
func TestWriteBehindOnlyOnHTTP2(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		tlsMode string
		http2   bool
		want    bool
	}{
		{"h2", true, true},
		{"h2", false, false},
		{"h1", true, false},
		{"", true, false},
	} {
		t.Run(fmt.Sprintf("%s http2=%v", tt.tlsMode, tt.http2), func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, tt.tlsMode, nil)
			c := testClient(t, Options{HTTP2: tt.http2, Insecure: true, KeepAlive: time.Minute, ConnectTimeout: 5 * time.Second})
			conn, _, _, ok := getAndClaim(t, c, srv.URL)
			if !ok {
				t.Fatal("not a connection of this package")
			}
			if got := trackedOf(conn).wb.Load() != nil; got != tt.want {
				t.Errorf("write-behind %v, want %v", got, tt.want)
			}
		})
	}
}

// TestHeadError: the errors net/http gives for a response head it refuses
// for its size (HTTP/1 or HTTP/2) or for its HTTP/2 encoding become a
// *HeadError of kind protocol that names the limit in force, as
// Options.MaxHeaderText words it when set; other errors are left as they
// are.
func TestHeadError(t *testing.T) {
	t.Parallel()
	const h1 = "net/http: HTTP/1.x transport connection broken: net/http: server response headers exceeded 4096 bytes; aborted"
	tests := []struct {
		name  string
		err   error
		limit int64
		text  string
		want  string // in the message; "" is no HeadError
	}{
		{"field over the limit", errors.New("connection error: COMPRESSION_ERROR"), 4096, "", "over the limit of 4096 bytes"},
		{"list over the limit", errors.New("stream error: stream ID 1; PROTOCOL_ERROR; http2: response header list larger than advertised limit"), 4096, "", "header list over the limit of 4096 bytes"},
		{"frame far over the limit", errors.New("connection error: PROTOCOL_ERROR"), 4096, "", "4096"},
		{"net/http's default limit", errors.New("connection error: COMPRESSION_ERROR"), 0, "", "10485760"},
		{"HTTP/1 head over the limit", errors.New(h1), 4096, "", "response head over the limit of 4096 bytes"},
		{"field over the limit, named", errors.New("connection error: COMPRESSION_ERROR"), 4096, "--max-header-size 4KiB", "a header field over --max-header-size 4KiB,"},
		{"list over the limit, named", errors.New("stream error: stream ID 1; PROTOCOL_ERROR; http2: response header list larger than advertised limit"), 4096, "--max-header-size 4KiB", "HTTP/2 response header list over --max-header-size 4KiB"},
		{"frame far over the limit, named", errors.New("connection error: PROTOCOL_ERROR"), 4096, "--max-header-size 4KiB", "far over --max-header-size 4KiB,"},
		{"HTTP/1 head over the limit, named", errors.New(h1), 4096, "--max-header-size 4KiB", "response head over --max-header-size 4KiB"},
		{"stream reset by the server", errors.New("stream error: stream ID 1; INTERNAL_ERROR; received from peer"), 4096, "", ""},
		{"connection reset", fmt.Errorf("read: %w", syscall.ECONNRESET), 4096, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			he := headError(tt.err, tt.limit, tt.text)
			if tt.want == "" {
				if he != nil {
					t.Fatalf("headError(%v) = %v, want none", tt.err, he)
				}
				return
			}
			if he == nil || he.ErrorKind() != "protocol" || !strings.Contains(he.Error(), tt.want) || !errors.Is(he, tt.err) {
				t.Fatalf("headError(%v) = %v, want protocol saying %q and wrapping the error", tt.err, he, tt.want)
			}
		})
	}
}
