package target

import (
	"context"
	"net"
	"net/http"
	"sync"
)

// Front serves one host's listener ahead of net/http's server; see
// [Options.Front]. It accepts the connections of ln until ln is closed,
// counts each one on h ([Host.Accepted]), answers the requests it can,
// counting each as the handlers do ([Host.Enter], [Host.Leave]), and gives
// every other connection to [Host.Hand] with the bytes it has read ahead.
// Once ln is closed it closes the connections it still holds and returns;
// [Server.Close] waits for it.
//
// The benchmark's target (cmd/fetchtarget -fast) has one, which answers its
// hot request without net/http's server: the target shares the cores with
// the client it measures, and net/http's server takes CPU that the client
// would otherwise have. Tests use none.
type Front func(ln net.Listener, h *Host)

// Host is one listener of a [Server], as a [Front] sees it. Its methods are
// safe for concurrent use.
type Host struct {
	s    *Server
	c    *hostCounters
	hand *handoffListener // the listener of the host's http.Server, with a Front
}

// Accepted counts a connection the front accepted, whether it keeps it or
// hands it over.
func (h *Host) Accepted() { h.c.conns.Add(1) }

// Enter counts a request as the handlers count theirs and returns the status
// to answer it with: 200, or 429 when it makes more than [Options.Limit429]
// requests in flight on the host (counted among the 429s). Once
// [Server.Close] has begun it counts nothing and returns 0: the connection
// is to be closed without an answer.
//
// Every Enter that returns a status is followed by one Leave once the answer
// is ready and before it is written, as a net/http handler returns before
// its small answer reaches the client: a client that sends its next request
// on another connection as soon as it has an answer is never counted twice.
func (h *Host) Enter() int {
	s, c := h.s, h.c
	total := s.inFlight.Add(1)
	if s.closing.Load() {
		// Close may already be waiting for inFlight to drain.
		s.leave()
		return 0
	}
	raise(&s.peak, total)
	c.requests.Add(1)
	n := c.inFlight.Add(1)
	raise(&c.peak, n)
	if lim := s.opts.Limit429; lim > 0 && n > int64(lim) {
		c.tooMany.Add(1)
		return http.StatusTooManyRequests
	}
	return http.StatusOK
}

// Leave ends a request that [Host.Enter] let in.
func (h *Host) Leave() {
	h.c.inFlight.Add(-1)
	h.s.leave()
}

// Hand gives c to the host's net/http server, which serves it from then on.
// Once the server has closed, Hand closes c instead.
func (h *Host) Hand(c net.Conn) { h.hand.handoff(c) }

// Context is done once [Server.Close] has begun: a front's waits end with it.
func (h *Host) Context() context.Context { return h.s.life }

// handoffListener is the listener of a fronted host's http.Server: it
// accepts the connections the front hands over.
type handoffListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// handoff gives c to the http.Server, or closes it when the server is gone.
func (l *handoffListener) handoff(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }
