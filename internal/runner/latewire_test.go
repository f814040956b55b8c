package runner

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/testnet"
	"github.com/fetchctl/fetchctl/internal/transport"
)

// countedConn counts what a test proxy reads from and writes to its client.
type countedConn struct {
	net.Conn
	read, written *atomic.Int64
}

func (c countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c countedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

// lateProxy is a loopback HTTP proxy that holds every CONNECT until
// release is closed, then answers 502 and reads on until its client
// closes. read and written are what it read and wrote; got says a CONNECT
// arrived, closed that a client closed its connection.
type lateProxy struct {
	url           *url.URL
	release       chan struct{}
	got, closed   chan struct{}
	read, written atomic.Int64
}

func startLateProxy(t *testing.T) *lateProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &lateProxy{release: make(chan struct{}), got: make(chan struct{}, 8), closed: make(chan struct{}, 8)}
	p.url, _ = url.Parse("http://" + ln.Addr().String())
	testnet.Serve(t, ln, func(c net.Conn) {
		cc := countedConn{Conn: c, read: &p.read, written: &p.written}
		req, err := http.ReadRequest(bufio.NewReader(cc))
		if err != nil || req.Method != "CONNECT" {
			return
		}
		p.got <- struct{}{}
		<-p.release
		io.WriteString(cc, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		io.Copy(io.Discard, cc)
		p.closed <- struct{}{}
	})
	return p
}

// TestLateDialBytesCount: a CONNECT that outlives the attempt that
// dialled it (the attempt timed out) costs bytes all the same, whether the
// proxy answers it 502 later in the run or the run ends first and closes
// it: they reach Unrecorded with the proxy's name, for the totals and
// by_proxy, and the run's bytes are what the proxy read and wrote. The
// --budget meter counts them too.
func TestLateDialBytesCount(t *testing.T) {
	t.Parallel()
	for _, answered := range []bool{true, false} {
		name := "answered 502 after the attempt"
		if !answered {
			name = "under way when the run ends"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := startLateProxy(t)
			var releaseOnce sync.Once
			release := func() { releaseOnce.Do(func() { close(p.release) }) }
			t.Cleanup(release)
			m := transport.NewWireMeter(0) // counts, never stops
			topts := transport.Options{Proxy: p.url, KeepAlive: time.Minute, PerHost: 4, Meter: m}
			topts.Shared = transport.NewShared(topts)
			c, err := transport.New(topts)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseIdleConnections()
			var lost []report.Attempt
			opts := Options{Limit: 1, PerHost: 1, Timeout: 100 * time.Millisecond, Routes: []Route{{Proxy: "http://gw", Client: c}}, Meter: m,
				Settle:     topts.Shared.CloseUntaken,
				Unrecorded: func(a report.Attempt, retry bool) { lost = append(lost, a) }}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			jobs := make(chan Job)
			recs := make(chan *report.Record, 4)
			done := make(chan error, 1)
			go func() {
				done <- Run(ctx, opts, jobs, func(r *report.Record) error {
					recs <- r
					return nil
				})
			}()
			j := make(chan Job, 1)
			_ = ReadJobs(ctx, []Input{{Name: "-", R: strings.NewReader("https://a.test/1")}}, ReadOptions{}, j)
			jobs <- <-j
			<-p.got
			r := <-recs
			if r.OK || r.Error == nil || r.Error.Kind != report.KindTimeout {
				t.Fatalf("record %+v, want the attempt timed out while the proxy held its CONNECT", r)
			}
			if answered {
				// The attempt is over: the proxy answers now, and the
				// client closes.
				release()
				<-p.closed
			}
			close(jobs)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			out, in := r.BytesOut, r.BytesIn
			for _, a := range lost {
				if a.Proxy != "http://gw" {
					t.Errorf("unrecorded bytes %+v, want them the proxy's", a)
				}
				out, in = out+a.BytesOut, in+a.BytesIn
			}
			wantOut, wantIn := p.read.Load(), p.written.Load()
			if wantOut == 0 || out != wantOut || in != wantIn {
				t.Errorf("the run counted %d bytes out and %d in (record %d/%d, unrecorded %+v); the proxy read %d and wrote %d",
					out, in, r.BytesOut, r.BytesIn, lost, wantOut, wantIn)
			}
			if got := m.Total(); got != wantOut+wantIn {
				t.Errorf("the --budget meter counted %d bytes, the proxy read and wrote %d", got, wantOut+wantIn)
			}
		})
	}
}
