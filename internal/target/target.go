// Package target is a loopback HTTP server for tests and benchmarks: it poses
// as several hosts (one listener per host on 127.0.0.1), counts requests,
// connections and in-flight requests per host, and injects the faults that
// fetchctl must survive (resets, short bodies, stalls, 429s, redirect loops).
//
// It is a test and benchmark target only: fetchctl itself never imports it.
// It listens on loopback addresses alone and never dials out.
//
// Any path not listed below answers 200 after [Options.Latency] with
// [Options.BodySize] bytes of text/plain; the query parameters latency
// (a Go duration), size (bytes, or 10MiB-style) and status override those
// per request, e.g. /?latency=50ms&size=1024&status=404. The fault paths are
// the Path constants ([PathFlaky], [PathRetryAfter], [PathReset], ...).
//
// Every request is served by net/http's server, unless [Options.Front] puts
// a responder of its own ahead of it (the benchmark's target does).
//
// Counters are kept per fault key: /flaky and /429 count requests per value of
// the key query parameter, so tests that use distinct keys never share state.
package target

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a [Server]. The zero value is usable: one host, no
// latency, an empty body, plain HTTP/1.1, no 429 limit.
type Options struct {
	// Hosts is the number of loopback listeners, each one a distinct
	// host:port. Zero or less means 1.
	Hosts int
	// Latency is how long the default path waits before answering.
	Latency time.Duration
	// BodySize is the body length of the default path, in bytes.
	BodySize int
	// TLS serves HTTPS with a self-signed certificate for 127.0.0.1, ::1 and
	// localhost; see [Server.CertPool] and [Server.Client].
	TLS bool
	// HTTP2 also offers HTTP/2: negotiated by ALPN with TLS, or as
	// prior-knowledge h2c on plain listeners. Without it only HTTP/1.1 is
	// served.
	HTTP2 bool
	// Limit429 answers 429 at once when a request would make more than this
	// many requests in flight on its host (the request itself included).
	// Zero turns the limit off.
	Limit429 int
	// Front, when set, serves each listener ahead of net/http's server and
	// hands it the connections it does not keep (see [Front]). It needs
	// plain HTTP/1.1: neither TLS nor HTTP2.
	Front Front
}

// maxBodySize bounds BodySize so that a typo cannot allocate gigabytes.
const maxBodySize = 64 << 20

// Server is a running target. Create it with [Start]; the zero value is not
// usable. Its methods are safe for concurrent use.
type Server struct {
	opts   Options
	scheme string
	addrs  []string
	lns    []net.Listener
	srvs   []*http.Server
	hosts  []hostCounters
	body   []byte
	bodyCL []string
	cert   *x509.Certificate
	pool   *x509.CertPool

	inFlight atomic.Int64
	peak     atomic.Int64
	closing  atomic.Bool
	idle     chan struct{}      // signalled when inFlight drops to 0 while closing
	life     context.Context    // done once Close begins; every wait selects on it
	endLife  context.CancelFunc // called by Close
	serving  sync.WaitGroup
	keys     sync.Map // fault kind + "\x00" + key → *atomic.Int64

	fronted    []*Host // each host's, with a Front
	closeOnce  sync.Once
	mu         sync.Mutex
	transports []*http.Transport
}

// Pre-built header values, shared by every response; net/http only reads them.
var (
	textPlain = []string{"text/plain; charset=utf-8"}
	appJSON   = []string{"application/json"}
)

// Start listens on opts.Hosts loopback ports and serves until [Server.Close].
// It returns an error if a listener or the TLS certificate cannot be made.
func Start(opts Options) (*Server, error) {
	if opts.Hosts <= 0 {
		opts.Hosts = 1
	}
	if opts.BodySize < 0 || opts.BodySize > maxBodySize {
		return nil, fmt.Errorf("body size %d out of range 0..%d", opts.BodySize, maxBodySize)
	}
	if opts.Front != nil && (opts.TLS || opts.HTTP2) {
		return nil, errors.New("a front serves plain HTTP/1.1 only, without TLS or HTTP/2")
	}
	s := &Server{
		opts:   opts,
		scheme: "http",
		hosts:  make([]hostCounters, opts.Hosts),
		body:   fill(make([]byte, opts.BodySize)),
		idle:   make(chan struct{}, 1),
	}
	s.life, s.endLife = context.WithCancel(context.Background())
	s.bodyCL = []string{strconv.Itoa(len(s.body))}

	var tlsConf *tls.Config
	if opts.TLS {
		cert, leaf, err := selfSigned()
		if err != nil {
			return nil, fmt.Errorf("certificate: %w", err)
		}
		s.scheme = "https"
		s.cert = leaf
		s.pool = x509.NewCertPool()
		s.pool.AddCert(leaf)
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	if opts.HTTP2 {
		if opts.TLS {
			protos.SetHTTP2(true)
		} else {
			protos.SetUnencryptedHTTP2(true)
		}
	}

	errLog := log.New(io.Discard, "", 0)
	for i := 0; i < opts.Hosts; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			for _, l := range s.lns {
				l.Close()
			}
			return nil, fmt.Errorf("listen: %w", err)
		}
		hc := &s.hosts[i]
		h := &Host{s: s, c: hc}
		srv := &http.Server{
			Handler:           hostHandler{h},
			TLSConfig:         tlsConf,
			Protocols:         &protos,
			ReadHeaderTimeout: 30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          errLog,
			HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: 1000},
		}
		if opts.Front != nil {
			// The front counts the connections it accepts, handed over
			// or not.
			h.hand = newHandoffListener(ln.Addr())
			s.fronted = append(s.fronted, h)
		} else {
			srv.ConnState = func(_ net.Conn, st http.ConnState) {
				if st == http.StateNew {
					hc.conns.Add(1)
				}
			}
		}
		s.lns = append(s.lns, ln)
		s.srvs = append(s.srvs, srv)
		s.addrs = append(s.addrs, ln.Addr().String())
	}
	for i, srv := range s.srvs {
		var ln net.Listener = s.lns[i]
		if opts.Front != nil {
			h := s.fronted[i]
			s.serving.Add(1)
			go func(ln net.Listener) {
				defer s.serving.Done()
				opts.Front(ln, h)
			}(ln)
			ln = h.hand
		}
		s.serving.Add(1)
		go func(srv *http.Server, ln net.Listener) {
			defer s.serving.Done()
			if opts.TLS {
				_ = srv.ServeTLS(ln, "", "")
			} else {
				_ = srv.Serve(ln)
			}
		}(srv, ln)
	}
	return s, nil
}

// Close stops every listener, closes every connection, makes waiting
// handlers (stall, drip, latency) return, and waits up to a few seconds for
// running handlers to finish. It also closes the idle connections of the
// clients made by [Server.Client]. Calling it again does nothing.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		s.endLife()
		if s.opts.Front != nil {
			// The fronts close their connections once their listeners
			// are closed; http.Server closes its own listeners.
			for _, ln := range s.lns {
				ln.Close()
			}
		}
		for _, srv := range s.srvs {
			_ = srv.Close()
		}
		s.serving.Wait()
		// A handler that passed the closing check is counted in inFlight,
		// and one that has not yet will see closing and back out, so
		// inFlight reaching 0 means no handler is left.
		deadline := time.NewTimer(5 * time.Second)
		defer deadline.Stop()
		for s.inFlight.Load() > 0 {
			select {
			case <-s.idle:
			case <-deadline.C:
				return
			}
		}
		s.mu.Lock()
		for _, t := range s.transports {
			t.CloseIdleConnections()
		}
		s.mu.Unlock()
	})
}

// Addrs returns the host:port of every listener, in host order. The caller
// may modify the returned slice.
func (s *Server) Addrs() []string {
	return append([]string(nil), s.addrs...)
}

// URL returns the URL of path on host i, e.g. URL(1, "/flaky?fail=2&key=a").
// A path without a leading slash gets one. It panics if i is out of range.
func (s *Server) URL(i int, path string) string {
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return s.scheme + "://" + s.addrs[i] + path
}

// CertPool returns a pool holding the server's certificate, or nil without
// [Options.TLS]. The pool must not be modified.
func (s *Server) CertPool() *x509.CertPool { return s.pool }

// Certificate returns the self-signed certificate, or nil without
// [Options.TLS].
func (s *Server) Certificate() *x509.Certificate { return s.cert }

// Client returns a new client that trusts the server's certificate and
// speaks the server's protocols (HTTP/2 or h2c with [Options.HTTP2]). It uses
// no proxy and follows redirects like [http.DefaultClient]. [Server.Close]
// closes its idle connections.
func (s *Server) Client() *http.Client {
	var p http.Protocols
	switch {
	case s.opts.HTTP2 && s.opts.TLS:
		p.SetHTTP1(true)
		p.SetHTTP2(true)
	case s.opts.HTTP2:
		p.SetUnencryptedHTTP2(true)
	default:
		p.SetHTTP1(true)
	}
	tr := &http.Transport{
		Protocols:           &p,
		MaxIdleConns:        1000,
		MaxIdleConnsPerHost: 1000,
		IdleConnTimeout:     30 * time.Second,
	}
	if s.pool != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: s.pool, MinVersion: tls.VersionTLS12}
	}
	s.mu.Lock()
	s.transports = append(s.transports, tr)
	s.mu.Unlock()
	return &http.Client{Transport: tr}
}
