package fast

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/target"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// start runs a target with the responder ahead of net/http for one test,
// and closes it when the test ends. Latency and BodySize come from opts.
func start(t *testing.T, opts target.Options) *target.Server {
	t.Helper()
	return startWith(t, opts, newResponder(opts.Latency, opts.BodySize))
}

// startWith is start with a responder of the test's own.
func startWith(t *testing.T, opts target.Options, r *responder) *target.Server {
	t.Helper()
	opts.Front = r.serve
	s, err := target.Start(opts)
	if err != nil {
		t.Fatalf("Start(%+v): %v", opts, err)
	}
	t.Cleanup(s.Close)
	return s
}

// rawConn dials host 0 of s and returns the connection and a reader for
// its responses.
func rawConn(t *testing.T, s *target.Server) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", s.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

// readResponse reads one response to a request of method and its body.
func readResponse(t *testing.T, r *bufio.Reader, method string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.ReadResponse(r, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, b
}

// TestAnswersThenHandsOff sends pipelined requests on one connection: the
// ones the responder serves, then one it hands to net/http, then another
// that net/http serves because the connection is now its own.
func TestAnswersThenHandsOff(t *testing.T) {
	t.Parallel()
	s := start(t, target.Options{BodySize: 300})
	c, r := rawConn(t, s)
	reqs := "GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: x\r\n\r\n" +
		"HEAD / HTTP/1.1\r\nhost: a\r\n\r\n" +
		"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" +
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	if _, err := io.WriteString(c, reqs); err != nil {
		t.Fatal(err)
	}
	want := target.Body(300)
	for i, tc := range []struct {
		method string
		body   []byte
	}{{"GET", want}, {"HEAD", nil}, {"POST", []byte("hello")}, {"GET", want}} {
		resp, b := readResponse(t, r, tc.method)
		if resp.StatusCode != 200 {
			t.Errorf("response %d: status %d, want 200", i, resp.StatusCode)
		}
		if tc.method != "POST" {
			if cl := resp.Header.Get("Content-Length"); cl != "300" {
				t.Errorf("response %d: Content-Length %q, want 300", i, cl)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("response %d: Content-Type %q", i, ct)
			}
			if _, err := http.ParseTime(resp.Header.Get("Date")); err != nil {
				t.Errorf("response %d: Date %q: %v", i, resp.Header.Get("Date"), err)
			}
		}
		if !bytes.Contains(b, tc.body) || (tc.method != "POST" && !bytes.Equal(b, tc.body)) {
			t.Errorf("response %d: body %.40q, want %.40q", i, b, tc.body)
		}
	}
	st := s.Stats()
	if st.Requests != 4 || st.Conns != 1 || st.PeakInFlight != 1 || st.InFlight != 0 {
		t.Errorf("stats requests %d conns %d peak %d in flight %d, want 4 1 1 0",
			st.Requests, st.Conns, st.PeakInFlight, st.InFlight)
	}
}

// TestHandsOff checks that requests the responder must not answer
// get net/http's answer, the bytes already read included.
func TestHandsOff(t *testing.T) {
	t.Parallel()
	s := start(t, target.Options{BodySize: 10})
	long := strings.Repeat("a", maxHead)
	for _, tc := range []struct {
		name, req    string
		status, size int
	}{
		{"no host", "GET / HTTP/1.1\r\n\r\n", 400, -1},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, -1},
		{"HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", 200, 10},
		{"status parameter", "GET /?key=1&status=404 HTTP/1.1\r\nHost: a\r\n\r\n", 404, -1},
		{"escaped size parameter", "GET /?si%7Ae=3 HTTP/1.1\r\nHost: a\r\n\r\n", 200, 3},
		{"bad method", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, -1},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, -1},
		{"head longer than the buffer", "GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + long + "\r\n\r\n", 200, 10},
		{"TLS handshake", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\n", 400, -1},
		{"POST", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi", 200, 10},
		{"chunked body", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 200, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, r := rawConn(t, s)
			if _, err := io.WriteString(c, tc.req); err != nil {
				t.Fatal(err)
			}
			resp, b := readResponse(t, r, "GET")
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (%q), want %d", resp.StatusCode, b, tc.status)
			}
			if tc.size >= 0 && !bytes.Equal(b, target.Body(tc.size)) {
				t.Errorf("body %q, want %q", b, target.Body(tc.size))
			}
		})
	}
}

func TestParseHead(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		head                 string
		ok, isHead, closeAft bool
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\n", true, false, false},
		{"HEAD / HTTP/1.1\r\nHost: a\r\n", true, true, false},
		{"GET / HTTP/1.1\r\nhOsT:a\r\nConnection: Close\r\n", true, false, true},
		{"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n", true, false, true},
		{"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n", true, false, false},
		{"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n", false, false, false},
		{"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n", false, false, false},
		{"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n", false, false, false},
		{"GET / HTTP/1.1\r\nHost:\r\n", false, false, false},
		{"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n", false, false, false},
		{"GET / HTTP/1.1\r\nHost: a\nX: b\r\n", false, false, false},
		{"GET /?key=7 HTTP/1.1\r\nHost: a\r\n", true, false, false},
		{"GET /?key=7&x HTTP/1.1\r\nHost: a\r\n", true, false, false},
		{"GET /?key=1&latency=1s HTTP/1.1\r\nHost: a\r\n", false, false, false},
		{"GET /?size HTTP/1.1\r\nHost: a\r\n", false, false, false},
		{"GET /?status=404 HTTP/1.1\r\nHost: a\r\n", false, false, false},
		{"GET /?st%61tus=404 HTTP/1.1\r\nHost: a\r\n", false, false, false},
		{"GET / HTTP/1.0\r\nHost: a\r\n", false, false, false},
		{"GET / HTTP/1.1 x\r\nHost: a\r\n", false, false, false},
		{"GET /x HTTP/1.1\r\nHost: a\r\n", false, false, false},
		{"GET  / HTTP/1.1\r\nHost: a\r\n", false, false, false},
		{"PUT / HTTP/1.1\r\nHost: a\r\n", false, false, false},
		{"GET http://a/ HTTP/1.1\r\nHost: a\r\n", false, false, false},
	} {
		isHead, closeAft, ok := parseHead([]byte(tc.head))
		if ok != tc.ok || (ok && (isHead != tc.isHead || closeAft != tc.closeAft)) {
			t.Errorf("parseHead(%q) = head %v close %v ok %v, want %v %v %v",
				tc.head, isHead, closeAft, ok, tc.isHead, tc.closeAft, tc.ok)
		}
	}
}

// TestConnectionClose checks that "Connection: close" ends the
// connection after the response.
func TestConnectionClose(t *testing.T) {
	t.Parallel()
	s := start(t, target.Options{BodySize: 3})
	c, r := rawConn(t, s)
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := readResponse(t, r, "GET"); resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	if b, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("after a Connection: close response read %q, %v; want EOF", b, err)
	}
	if got := s.Stats().Requests; got != 1 {
		t.Errorf("requests = %d, want 1", got)
	}
}

// TestCloseEndsIdleAndWaiting checks that Close ends a connection
// idle on the responder and one waiting out the latency, and returns.
func TestCloseEndsIdleAndWaiting(t *testing.T) {
	t.Parallel()
	waiting := make(chan struct{})
	r := newResponder(time.Hour, 0)
	r.onWait = func() { close(waiting) }
	s := startWith(t, target.Options{Latency: time.Hour}, r)
	_, idleR := rawConn(t, s)
	busy, busyR := rawConn(t, s)
	if _, err := io.WriteString(busy, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	<-waiting
	if st := s.Stats(); st.InFlight != 1 || st.Requests != 1 {
		t.Errorf("waiting: in_flight %d requests %d, want 1 and 1", st.InFlight, st.Requests)
	}
	s.Close()
	for name, r := range map[string]*bufio.Reader{"idle": idleR, "busy": busyR} {
		if b, err := r.ReadByte(); err == nil {
			t.Errorf("%s connection: read %q after Close, want an error", name, b)
		}
	}
	if st := s.Stats(); st.InFlight != 0 || st.Hosts[0].InFlight != 0 {
		t.Errorf("after Close in_flight %d (host %d), want 0", st.InFlight, st.Hosts[0].InFlight)
	}
}

// TestLargeBody checks that a body too large to copy next to the
// headers is written whole after them, response after response.
func TestLargeBody(t *testing.T) {
	t.Parallel()
	const size = maxInlineBody*2 + 5
	s := start(t, target.Options{BodySize: size})
	c, r := rawConn(t, s)
	if _, err := io.WriteString(c, strings.Repeat("GET /?key=1 HTTP/1.1\r\nHost: a\r\n\r\n", 2)); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		resp, b := readResponse(t, r, "GET")
		if resp.StatusCode != 200 || resp.ContentLength != size || !bytes.Equal(b, target.Body(size)) {
			t.Errorf("response %d: status %d, Content-Length %d, %d body bytes; want 200 and %d matching bytes",
				i, resp.StatusCode, resp.ContentLength, len(b), size)
		}
	}
	if got := s.Stats().Requests; got != 2 {
		t.Errorf("requests = %d, want 2", got)
	}
}

// FuzzParseHead checks that every head the responder takes is one that
// net/http reads as the same request: GET or HEAD of the default answer,
// HTTP/1.1, a Host, no body, and the same Connection: close.
func FuzzParseHead(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n",
		"HEAD /?key=3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n",
		"GET /?key=1&x=y HTTP/1.1\r\nhost: 127.0.0.1:80\r\nUser-Agent: x\r\nAccept-Encoding: gzip\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, head string) {
		// readHead passes the lines up to the first blank one, each
		// with its CRLF.
		if !strings.HasSuffix(head, "\r\n") || strings.Contains(head, "\r\n\r\n") {
			return
		}
		isHead, closeAfter, ok := parseHead([]byte(head))
		if !ok {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head + "\r\n")))
		if err != nil {
			t.Fatalf("responder takes %q, net/http refuses it: %v", head, err)
		}
		wantMethod := "GET"
		if isHead {
			wantMethod = "HEAD"
		}
		q := req.URL.Query()
		switch {
		case req.Method != wantMethod:
			t.Errorf("%q: net/http method %q, responder %q", head, req.Method, wantMethod)
		case req.URL.Path != "/" || q.Has("latency") || q.Has("size") || q.Has("status"):
			t.Errorf("%q: net/http reads URL %q, not the default answer", head, req.URL)
		case req.ProtoMajor != 1 || req.ProtoMinor != 1:
			t.Errorf("%q: net/http reads %s", head, req.Proto)
		case req.Host == "":
			t.Errorf("%q: no Host for net/http", head)
		case req.ContentLength != 0 || len(req.TransferEncoding) > 0:
			t.Errorf("%q: net/http sees a body (length %d, encoding %v)", head, req.ContentLength, req.TransferEncoding)
		case req.Close != closeAfter:
			t.Errorf("%q: net/http Close %v, responder %v", head, req.Close, closeAfter)
		}
	})
}

// failingListener fails its first Accept calls the way a process out of
// file descriptors does.
type failingListener struct {
	net.Listener
	fails int
}

func (l *failingListener) Accept() (net.Conn, error) {
	if l.fails > 0 {
		l.fails--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

// TestAcceptRetries checks that accept errors do not end a host's
// responder.
func TestAcceptRetries(t *testing.T) {
	t.Parallel()
	r := newResponder(0, 5)
	hosts := make(chan *target.Host, 1)
	s, err := target.Start(target.Options{BodySize: 5, Front: func(ln net.Listener, h *target.Host) {
		hosts <- h
		r.serve(ln, h)
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		r.serve(&failingListener{Listener: ln, fails: 2}, <-hosts)
	}()
	t.Cleanup(func() {
		ln.Close()
		<-served
	})

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, b := readResponse(t, bufio.NewReader(c), "GET")
	if resp.StatusCode != 200 || !bytes.Equal(b, target.Body(5)) {
		t.Errorf("after two failed accepts: status %d body %q, want 200 %q", resp.StatusCode, b, target.Body(5))
	}
}

// TestLimit429 checks that a request over Limit429 on its host gets the
// responder's 429 at once, counted among the 429s.
func TestLimit429(t *testing.T) {
	t.Parallel()
	waiting := make(chan struct{}, 1)
	r := newResponder(time.Hour, 4)
	r.onWait = func() { waiting <- struct{}{} }
	s := startWith(t, target.Options{Latency: time.Hour, BodySize: 4, Limit429: 1}, r)
	held, _ := rawConn(t, s)
	if _, err := io.WriteString(held, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	<-waiting
	c, rd := rawConn(t, s)
	if _, err := io.WriteString(c, "GET /?key=2 HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, b := readResponse(t, rd, "GET")
	if resp.StatusCode != http.StatusTooManyRequests || string(b) != "429 Too Many Requests\n" {
		t.Errorf("over the limit: %d %q, want 429", resp.StatusCode, b)
	}
	if st := s.Stats(); st.TooMany != 1 || st.Requests != 2 || st.InFlight != 1 {
		t.Errorf("too_many %d requests %d in_flight %d, want 1 2 1", st.TooMany, st.Requests, st.InFlight)
	}
}
