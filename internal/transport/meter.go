package transport

import (
	"errors"
	"sync"
	"sync/atomic"
)

// ErrWireLimit fails the reads and writes of a connection through a proxy
// once the [WireMeter] it counts on has reached its limit.
var ErrWireLimit = errors.New("limit of bytes on the wire through proxies reached")

// WireMeter adds up the bytes on the wire of every connection through a
// proxy made by the clients that share it (Options.Meter), as they are read
// and written, TLS and the proxy's own exchange included. Once they reach
// its limit, it calls the function set with OnLimit, once, and from then
// on every read and write on those connections fails with [ErrWireLimit]:
// what passes the limit is the reads and writes already under way at that
// moment, at most one each per connection. Safe for concurrent use.
type WireMeter struct {
	n     atomic.Int64
	limit int64
	over  atomic.Bool
	once  sync.Once
	mu    sync.Mutex
	fn    func()
}

// NewWireMeter returns a meter that stops its connections at limit bytes;
// a limit of 0 or less never stops them.
func NewWireMeter(limit int64) *WireMeter {
	return &WireMeter{limit: limit}
}

// OnLimit sets the function called, once, on the goroutine whose read or
// write reaches the limit, before any connection fails with ErrWireLimit.
func (m *WireMeter) OnLimit(fn func()) {
	m.mu.Lock()
	m.fn = fn
	m.mu.Unlock()
}

// Total returns the bytes counted so far.
func (m *WireMeter) Total() int64 { return m.n.Load() }

// Limit returns the meter's limit.
func (m *WireMeter) Limit() int64 { return m.limit }

// add counts n bytes, and returns ErrWireLimit once the limit is reached.
// A call that reaches it runs the OnLimit function first; one that comes
// meanwhile waits for that.
func (m *WireMeter) add(n int) error {
	if m.n.Add(int64(n)) < m.limit || m.limit <= 0 {
		return nil
	}
	m.once.Do(m.reach)
	return ErrWireLimit
}

// stopped reports whether the limit has been reached.
func (m *WireMeter) stopped() bool { return m.over.Load() }

func (m *WireMeter) reach() {
	m.mu.Lock()
	fn := m.fn
	m.mu.Unlock()
	if fn != nil {
		fn()
	}
	m.over.Store(true)
}
