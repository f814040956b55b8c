package transport

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// lookupTimeout bounds a lookup whose caller set no deadline.
const lookupTimeout = 30 * time.Second

// dnsCache keeps each host's addresses for ttl and makes concurrent lookups
// of one host once. Failures are not cached. It is safe for concurrent use.
type dnsCache struct {
	resolver Resolver
	custom   bool // resolver came from Options
	ttl      time.Duration
	now      func() time.Time
	group    singleflight.Group

	mu      sync.Mutex
	entries map[string]dnsEntry
	sweepAt int // sweep expired entries when the map reaches this size
}

type dnsEntry struct {
	addrs   []net.IPAddr
	expires time.Time
}

func newDNSCache(opts Options) *dnsCache {
	c := &dnsCache{
		resolver: opts.Resolver,
		custom:   opts.Resolver != nil,
		ttl:      opts.DNSTTL,
		now:      opts.now,
		entries:  make(map[string]dnsEntry),
		sweepAt:  1024,
	}
	if c.resolver == nil {
		c.resolver = net.DefaultResolver
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// passthrough reports whether the cache has nothing to add, so the dialer
// may leave resolution to net.Dialer (with its dual-stack racing).
func (c *dnsCache) passthrough() bool { return c.ttl <= 0 && !c.custom }

// cached returns host's addresses when the cache holds them.
func (c *dnsCache) cached(host string) ([]net.IPAddr, bool) {
	if c.ttl <= 0 {
		return nil, false
	}
	return c.get(strings.ToLower(host))
}

// lookup returns host's addresses; the slice is shared and must not be
// modified. Failures are *net.DNSError.
func (c *dnsCache) lookup(ctx context.Context, host string) ([]net.IPAddr, error) {
	key := strings.ToLower(host)
	if c.ttl <= 0 {
		return c.resolve(ctx, key)
	}
	if addrs, ok := c.get(key); ok {
		return addrs, nil
	}
	ch := c.group.DoChan(key, func() (any, error) {
		if addrs, ok := c.get(key); ok {
			return addrs, nil
		}
		// The lookup serves every caller waiting on it, so one caller's
		// cancellation must not end it; its deadline, if any, still bounds it.
		lctx := context.WithoutCancel(ctx)
		var cancel context.CancelFunc
		if dl, ok := ctx.Deadline(); ok {
			lctx, cancel = context.WithDeadline(lctx, dl)
		} else {
			lctx, cancel = context.WithTimeout(lctx, lookupTimeout)
		}
		defer cancel()
		addrs, err := c.resolve(lctx, key)
		if err != nil {
			return nil, err
		}
		c.put(key, addrs)
		return addrs, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.([]net.IPAddr), nil
	case <-ctx.Done():
		return nil, ctxDNSError(ctx.Err(), host)
	}
}

// resolve asks the resolver and makes every failure a *net.DNSError.
func (c *dnsCache) resolve(ctx context.Context, host string) ([]net.IPAddr, error) {
	addrs, err := c.resolver.LookupIPAddr(ctx, host)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) {
			return nil, de
		}
		if ctx.Err() != nil {
			return nil, ctxDNSError(ctx.Err(), host)
		}
		return nil, &net.DNSError{Err: err.Error(), Name: host, UnwrapErr: err}
	}
	if len(addrs) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return addrs, nil
}

func ctxDNSError(err error, host string) *net.DNSError {
	return &net.DNSError{
		Err:       err.Error(),
		Name:      host,
		IsTimeout: errors.Is(err, context.DeadlineExceeded),
		UnwrapErr: err,
	}
}

func (c *dnsCache) get(key string) ([]net.IPAddr, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !c.now().Before(e.expires) {
		return nil, false
	}
	return e.addrs, true
}

func (c *dnsCache) put(key string, addrs []net.IPAddr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.entries) >= c.sweepAt {
		// Memory follows the hosts seen within one TTL, not every host ever
		// seen; sweeping when the map has doubled keeps the cost amortised.
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		c.sweepAt = max(1024, 2*len(c.entries))
	}
	c.entries[key] = dnsEntry{addrs: addrs, expires: now.Add(c.ttl)}
}
