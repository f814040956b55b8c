// Command fetchtarget runs the loopback test target of internal/target for
// `make demo` and `make bench`: it serves several local "hosts", writes a URL
// list over them, and reports the server's counters as JSON.
//
// Usage:
//
//	fetchtarget -hosts 8 -latency 20ms -body 2KiB -urls 10000 \
//	    -paths '/,/flaky?fail=1,/429?after=1' -list urls.txt \
//	    -ready ready.json -stats stats.json
//
// Once listening it writes the URL list (-list), then the addresses (-ready),
// so a script may wait for the -ready file and then read the list. It serves
// until SIGINT or SIGTERM, then closes the server and writes the counters to
// -stats; SIGUSR1 writes them without stopping. With -certdir it only writes
// a certificate and its key for another server (nginx) and exits. It is a
// test tool: it binds 127.0.0.1 only and is never part of fetchctl.
//
// net/http's server answers every request, unless -fast puts the
// benchmark's responder (internal/fast) ahead of it for the default GET and
// HEAD of /, to spare the CPU of the client measured on the same cores.
//
// -gateway also runs a proxy gateway (internal/gateway) on its own loopback
// port, -rtt away from its clients: it forwards plain-http requests and
// tunnels CONNECT to any host, these ones included. The -ready file names
// it, and the counters gain a "gateway" object: connections opened to it,
// tunnels and forwarded requests.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fetchctl/fetchctl/cmd/fetchtarget/internal/fast"
	"github.com/fetchctl/fetchctl/cmd/fetchtarget/internal/gateway"
	"github.com/fetchctl/fetchctl/internal/target"
)

func main() {
	// Listen for signals before anything starts, so that none is missed
	// between the -ready file appearing and the serve loop.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, append([]os.Signal{os.Interrupt, syscall.SIGTERM}, statsSignals...)...)
	// After the first SIGINT/SIGTERM a second one gets the default action
	// and kills at once.
	stop := func() { signal.Stop(sigs) }
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, sigs, stop))
}

// ready is the JSON written to -ready.
type ready struct {
	Addrs []string `json:"addrs"`
	Bases []string `json:"bases"` // scheme://host:port of each host
	PID   int      `json:"pid"`
	// Server says what answers the requests, for a benchmark's report.
	Server string `json:"server"`
	// Gateway is the -gateway proxy's host:port.
	Gateway string `json:"gateway,omitempty"`
}

// stats is the JSON written to -stats: the target's counters, and the
// gateway's with -gateway.
type stats struct {
	target.Stats
	Gateway *gateway.Stats `json:"gateway,omitempty"`
}

type options struct {
	target   target.Options
	urls     int
	sorted   bool
	paths    []string
	list     string
	stats    string
	ready    string
	certFile string
	certDir  string
	fast     bool
	gateway  bool
	rtt      time.Duration
}

// parseFlags reads the command line; errors are usage errors.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("fetchtarget", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.target.Hosts, "hosts", 4, "number of hosts (loopback listeners)")
	fs.DurationVar(&o.target.Latency, "latency", 0, "latency of the default path")
	body := fs.String("body", "1KiB", "body size of the default path, e.g. 512, 2KiB")
	fs.BoolVar(&o.target.TLS, "tls", false, "serve HTTPS with a self-signed certificate (see -cert)")
	fs.BoolVar(&o.target.HTTP2, "http2", false, "also serve HTTP/2 (ALPN with -tls, h2c without)")
	fs.IntVar(&o.target.Limit429, "limit429", 0, "answer 429 above this many requests in flight per host (0 = off)")
	fs.IntVar(&o.urls, "urls", 0, "number of URLs to write to -list")
	fs.BoolVar(&o.sorted, "sorted", false, "group the URL list by host instead of round-robin")
	paths := fs.String("paths", "/", "comma-separated paths mixed round-robin into the URL list")
	fs.StringVar(&o.list, "list", "-", "file for the URL list (- for stdout)")
	fs.StringVar(&o.stats, "stats", "", "file for the counters as JSON on exit and on SIGUSR1 (- for stdout)")
	fs.StringVar(&o.ready, "ready", "", "file written with the addresses as JSON once listening")
	fs.StringVar(&o.certFile, "cert", "", "with -tls, file for the certificate in PEM (for fetchctl --cacert)")
	fs.StringVar(&o.certDir, "certdir", "", "write a fresh self-signed certificate for 127.0.0.1 and its key (cert.pem, key.pem) into this folder and exit, for a server that reads files (nginx)")
	fs.BoolVar(&o.gateway, "gateway", false, "also run a proxy gateway (forwarding and CONNECT) -rtt away from its clients")
	fs.DurationVar(&o.rtt, "rtt", 0, "with -gateway, the round-trip time between a client and the gateway")
	fs.BoolVar(&o.fast, "fast", false, "answer the default GET and HEAD of / without net/http's server (for benchmarks; not with -tls or -http2)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage of fetchtarget:\n")
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\n%s", target.PathsHelp)
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	n, err := target.ParseSize(*body)
	if err != nil {
		return o, fmt.Errorf("-body: %w", err)
	}
	if n > 64<<20 {
		return o, fmt.Errorf("-body: %s is over 64MiB", *body)
	}
	o.target.BodySize = int(n)
	if o.target.Hosts < 1 || o.urls < 0 || o.target.Limit429 < 0 || o.target.Latency < 0 {
		return o, errors.New("-hosts must be at least 1; -urls, -limit429 and -latency must not be negative")
	}
	for _, p := range strings.Split(*paths, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !strings.HasPrefix(p, "/") {
			return o, fmt.Errorf("-paths: %q does not start with /", p)
		}
		o.paths = append(o.paths, p)
	}
	if len(o.paths) == 0 {
		return o, errors.New("-paths: no path given")
	}
	if o.rtt < 0 {
		return o, errors.New("-rtt must not be negative")
	}
	if o.rtt > 0 && !o.gateway {
		return o, errors.New("-rtt needs -gateway")
	}
	if o.certFile != "" && !o.target.TLS {
		return o, errors.New("-cert needs -tls")
	}
	if o.fast {
		if o.target.TLS || o.target.HTTP2 {
			return o, errors.New("-fast serves plain HTTP/1.1 only: not with -tls or -http2")
		}
		o.target.Front = fast.Front(o.target.Latency, o.target.BodySize)
	}
	return o, nil
}

// run serves until sigs yields SIGINT or SIGTERM, writing stats on SIGUSR1,
// and returns the exit code: 0 after a clean stop, 1 when the server or an
// output file fails, 2 on a usage error. stop is called once the first
// stopping signal has arrived.
func run(args []string, stdout, stderr io.Writer, sigs <-chan os.Signal, stop func()) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "fetchtarget: %v\n", err)
		return 2
	}
	if o.certDir != "" {
		if _, _, err := target.WriteLoopbackCert(o.certDir); err != nil {
			fmt.Fprintf(stderr, "fetchtarget: %v\n", err)
			return 1
		}
		return 0
	}

	srv, err := target.Start(o.target)
	if err != nil {
		fmt.Fprintf(stderr, "fetchtarget: %v\n", err)
		return 1
	}
	defer srv.Close()
	var gw *gateway.Gateway
	if o.gateway {
		if gw, err = gateway.Start(o.rtt); err != nil {
			fmt.Fprintf(stderr, "fetchtarget: gateway: %v\n", err)
			return 1
		}
		defer gw.Close()
	}
	snapshot := func() stats {
		st := stats{Stats: srv.Stats()}
		if gw != nil {
			g := gw.Stats()
			st.Gateway = &g
		}
		return st
	}

	if err := announce(o, srv, gw, stdout); err != nil {
		fmt.Fprintf(stderr, "fetchtarget: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "fetchtarget: serving %d hosts (%s): %s\n", len(srv.Addrs()), serverName(o), strings.Join(srv.Addrs(), " "))
	if gw != nil {
		fmt.Fprintf(stderr, "fetchtarget: gateway %s, %v away\n", gw.Addr(), o.rtt)
	}

	for sig := range sigs {
		if isStatsSignal(sig) {
			if err := writeStats(o.stats, snapshot(), stdout); err != nil {
				fmt.Fprintf(stderr, "fetchtarget: %v\n", err)
			}
			continue
		}
		break
	}
	stop()
	if gw != nil {
		gw.Close()
	}
	srv.Close()
	if err := writeStats(o.stats, snapshot(), stdout); err != nil {
		fmt.Fprintf(stderr, "fetchtarget: %v\n", err)
		return 1
	}
	return 0
}

// announce writes the certificate, the URL list and finally the -ready file.
func announce(o options, srv *target.Server, gw *gateway.Gateway, stdout io.Writer) error {
	if o.certFile != "" {
		if err := writeFile(o.certFile, stdout, func(w io.Writer) error {
			_, err := w.Write(srv.CertPEM())
			return err
		}); err != nil {
			return err
		}
	}
	bases := make([]string, len(srv.Addrs()))
	for i := range bases {
		bases[i] = strings.TrimSuffix(srv.URL(i, "/"), "/")
	}
	if o.urls > 0 {
		if err := writeFile(o.list, stdout, func(w io.Writer) error {
			return writeURLs(w, bases, o.urls, o.sorted, o.paths)
		}); err != nil {
			return err
		}
	}
	if o.ready == "" {
		return nil
	}
	r := ready{Addrs: srv.Addrs(), Bases: bases, PID: os.Getpid(), Server: serverName(o)}
	if gw != nil {
		r.Gateway = gw.Addr()
	}
	return writeFile(o.ready, stdout, func(w io.Writer) error {
		return json.NewEncoder(w).Encode(r)
	})
}

// serverName says what answers the requests.
func serverName(o options) string {
	switch {
	case o.fast:
		return fast.Name
	case o.target.TLS && o.target.HTTP2:
		return "net/http (TLS, HTTP/2 and HTTP/1.1)"
	case o.target.TLS:
		return "net/http (TLS, HTTP/1.1)"
	case o.target.HTTP2:
		return "net/http (h2c and HTTP/1.1)"
	}
	return "net/http"
}

// writeURLs writes n URLs, one a line. URL i goes to host i mod len(bases),
// or with sorted to host i*len(bases)/n so that each host's URLs are
// contiguous; its path is paths[i mod len(paths)] with key=i added to the
// query, so every URL has its own fault state.
func writeURLs(w io.Writer, bases []string, n int, sorted bool, paths []string) error {
	bw := bufio.NewWriter(w)
	for i := 0; i < n; i++ {
		h := i % len(bases)
		if sorted {
			h = int(int64(i) * int64(len(bases)) / int64(n))
		}
		p := paths[i%len(paths)]
		sep := "?"
		if strings.Contains(p, "?") {
			sep = "&"
			if strings.HasSuffix(p, "?") || strings.HasSuffix(p, "&") {
				sep = ""
			}
		}
		bw.WriteString(bases[h])
		bw.WriteString(p)
		bw.WriteString(sep)
		bw.WriteString("key=")
		bw.WriteString(strconv.Itoa(i))
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

func writeStats(path string, st stats, stdout io.Writer) error {
	if path == "" {
		return nil
	}
	return writeFile(path, stdout, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	})
}

// writeFile writes to stdout for "-", to a device or FIFO as it is, else to
// a temporary file renamed into place, so that a reader never sees a
// half-written file.
func writeFile(path string, stdout io.Writer, fill func(io.Writer) error) error {
	if path == "-" {
		return fill(stdout)
	}
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		// A device or FIFO (/dev/null, a pipe to a reader) is written to;
		// renaming a file over it would replace it.
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		err = fill(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	err = f.Chmod(0o644)
	if err == nil {
		err = fill(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
