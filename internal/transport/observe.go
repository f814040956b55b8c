package transport

import (
	"context"
	"net"
	"net/http/httptrace"
	"sync"
	"time"
)

// DialObserver learns how long the dials made for a request took, when the
// request's context carries it (see [WithDialObserver]): each name lookup
// not answered from the DNS cache, and each connect, to the proxy for a
// proxied request. A dial that outlives its request, because the request
// got another connection first, still reports to that request's observer,
// as httptrace hooks do. Calls come from the dial's goroutine.
//
// It stands in for httptrace's DNS and connect hooks, whose presence makes
// every request carry a second set of hooks for package net.
type DialObserver interface {
	ObserveDNS(start, done time.Time)
	ObserveConnect(start, done time.Time)
}

type observerKey struct{}

// WithDialObserver returns a copy of ctx that carries o.
func WithDialObserver(ctx context.Context, o DialObserver) context.Context {
	return context.WithValue(ctx, observerKey{}, o)
}

func observerFrom(ctx context.Context) DialObserver {
	o, _ := ctx.Value(observerKey{}).(DialObserver)
	return o
}

// timedConnect runs dial, reporting its span to obs as a connect.
func timedConnect(obs DialObserver, dial func() (net.Conn, error)) (net.Conn, error) {
	if obs == nil {
		return dial()
	}
	start := time.Now()
	conn, err := dial()
	obs.ObserveConnect(start, time.Now())
	return conn, err
}

// traceNet returns ctx with httptrace hooks that pass the lookups and
// connects package net makes on its own (a dial that resolves its own
// names) to obs.
func traceNet(ctx context.Context, obs DialObserver) context.Context {
	// Connects to several addresses may run at once.
	var (
		mu                  sync.Mutex
		dnsStart, connStart time.Time
	)
	set := func(t *time.Time) {
		mu.Lock()
		*t = time.Now()
		mu.Unlock()
	}
	get := func(t *time.Time) time.Time {
		mu.Lock()
		defer mu.Unlock()
		return *t
	}
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		DNSStart:     func(httptrace.DNSStartInfo) { set(&dnsStart) },
		DNSDone:      func(httptrace.DNSDoneInfo) { obs.ObserveDNS(get(&dnsStart), time.Now()) },
		ConnectStart: func(string, string) { set(&connStart) },
		ConnectDone:  func(string, string, error) { obs.ObserveConnect(get(&connStart), time.Now()) },
	})
}

// lookup resolves host through the DNS cache, reporting to obs a lookup
// that the cache did not answer at once.
func (d *dialer) lookup(ctx context.Context, obs DialObserver, host string) ([]net.IPAddr, error) {
	if obs == nil {
		return d.cache.lookup(ctx, host)
	}
	if addrs, ok := d.cache.cached(host); ok {
		return addrs, nil
	}
	start := time.Now()
	addrs, err := d.cache.lookup(ctx, host)
	obs.ObserveDNS(start, time.Now())
	return addrs, err
}
