// Command gopool fetches every URL of a list the way a plain Go program
// would: net/http's client, a fixed pool of workers and a semaphore per
// host. It is a peer in scripts/bench.sh, not part of fetchctl.
//
// Usage:
//
//	gopool [-limit 100] [-per-host 20] [-cacert FILE] [-http2] [-proxy URL] LIST
//
// It prints one line, "answered distinct ok": the responses read, the
// distinct URLs among them (each line of LIST counts once) and those with a
// 2xx status. Failures are counted on stderr.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	limit := flag.Int("limit", 100, "workers, and connections in total")
	perHost := flag.Int("per-host", 20, "requests and connections per host")
	cacert := flag.String("cacert", "", "also trust the certificates in this PEM file")
	h2 := flag.Bool("http2", false, "offer HTTP/2 on TLS connections")
	timeout := flag.Duration("timeout", time.Minute, "limit on one request")
	proxy := flag.String("proxy", "", "send every request through this proxy (http://host:port)")
	flag.Parse()
	if flag.NArg() != 1 || *limit < 1 || *perHost < 1 {
		fmt.Fprintln(os.Stderr, "usage: gopool [-limit N] [-per-host N] [-cacert FILE] [-http2] [-proxy URL] LIST")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *limit, *perHost, *cacert, *h2, *proxy, *timeout); err != nil {
		fmt.Fprintf(os.Stderr, "gopool: %v\n", err)
		os.Exit(1)
	}
}

func run(list string, limit, perHost int, cacert string, h2 bool, proxy string, timeout time.Duration) error {
	urls, err := readList(list)
	if err != nil {
		return err
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(h2)
	tr := &http.Transport{
		Protocols:           &protos,
		MaxIdleConns:        limit,
		MaxIdleConnsPerHost: perHost,
		MaxConnsPerHost:     perHost,
		IdleConnTimeout:     time.Minute,
	}
	if cacert != "" {
		pem, err := os.ReadFile(cacert)
		if err != nil {
			return err
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s: no certificate", cacert)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if proxy != "" {
		u, err := url.Parse(proxy)
		if err != nil {
			return err
		}
		tr.Proxy = http.ProxyURL(u)
		// net/http pools plain-http requests through a proxy by proxy, not
		// by target host: its per-host caps would hold the whole run to
		// per-host connections. The semaphores still cap each target.
		tr.MaxConnsPerHost = 0
		tr.MaxIdleConnsPerHost = limit
	}
	client := &http.Client{Transport: tr, Timeout: timeout}

	// One semaphore per host, made before the workers start.
	sems := make(map[string]chan struct{})
	for _, u := range urls {
		if _, ok := sems[u.Host]; !ok {
			sems[u.Host] = make(chan struct{}, perHost)
		}
	}
	answered := make([]bool, len(urls))
	var ok, failed atomic.Int64
	next := make(chan int, limit)
	var wg sync.WaitGroup
	for range limit {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				sem := sems[urls[i].Host]
				sem <- struct{}{}
				status, err := get(client, urls[i].String())
				<-sem
				if err != nil {
					failed.Add(1)
					continue
				}
				// Each index goes to one worker only: no race.
				answered[i] = true
				if status >= 200 && status <= 299 {
					ok.Add(1)
				}
			}
		}()
	}
	for i := range urls {
		next <- i
	}
	close(next)
	wg.Wait()
	tr.CloseIdleConnections()
	var distinct int64
	for _, a := range answered {
		if a {
			distinct++
		}
	}
	if n := failed.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "gopool: %d requests failed\n", n)
	}
	// Every URL is sent once, so the answers are the distinct URLs.
	fmt.Printf("%d %d %d\n", distinct, distinct, ok.Load())
	return nil
}

func get(c *http.Client, u string) (int, error) {
	resp, err := c.Get(u)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

func readList(name string) ([]*url.URL, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var urls []*url.URL
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		u, err := url.Parse(line)
		if err != nil {
			return nil, err
		}
		urls = append(urls, u)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(urls) == 0 {
		return nil, errors.New(name + ": no URL")
	}
	return urls, nil
}
