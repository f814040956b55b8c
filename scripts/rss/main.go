// Command rss serves plain-HTTP forward proxies on several loopback ports
// for scripts/rss.sh, which measures fetchctl's peak memory with a
// --proxy-file of many proxies. It forwards each request to its target
// through one shared pool of connections, writes its addresses, one a
// line, to -ready once listening, and serves until SIGINT or SIGTERM. It is
// a test tool: it binds 127.0.0.1 only.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ports := flag.Int("ports", 4, "number of proxies (loopback ports)")
	ready := flag.String("ready", "", "file for the proxies' host:port, one a line, once listening")
	flag.Parse()
	if err := run(*ports, *ready); err != nil {
		fmt.Fprintln(os.Stderr, "rss:", err)
		os.Exit(1)
	}
}

func run(n int, ready string) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	p := &proxy{upstream: &http.Transport{MaxIdleConnsPerHost: 1024, IdleConnTimeout: 30 * time.Second}}
	var addrs []string
	errc := make(chan error, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		addrs = append(addrs, ln.Addr().String())
		srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- srv.Serve(ln) }()
	}
	if ready != "" {
		if err := os.WriteFile(ready, []byte(strings.Join(addrs, "\n")+"\n"), 0o644); err != nil {
			return err
		}
	}
	select {
	case <-sigs:
		return nil
	case err := <-errc:
		return err
	}
}

// proxy forwards plain-http requests; CONNECT is not needed here.
type proxy struct{ upstream *http.Transport }

var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authorization", "Proxy-Authenticate", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect || r.URL.Scheme != "http" {
		http.Error(w, "only plain-http forwarding", http.StatusNotImplemented)
		return
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	for _, h := range hopByHop {
		out.Header.Del(h)
	}
	resp, err := p.upstream.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for _, h := range hopByHop {
		resp.Header.Del(h)
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	if _, err := io.Copy(w, resp.Body); err != nil && !errors.Is(err, io.EOF) {
		return
	}
}
