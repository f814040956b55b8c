// Package fast is the benchmark's HTTP/1.1 responder: a [target.Front] that
// answers the benchmark's hot request, a GET or HEAD of "/" that asks for
// the default answer, without net/http's server, and hands every other
// connection to it.
//
// The target shares the cores of the machine with the client it measures,
// which a remote server would not: net/http's server took 0.89 s of CPU to
// answer the 20,000 requests of the benchmark's S1, this responder about
// 0.5 s. It also keeps the latency with a timerfd (see sleep_linux.go),
// which fires on time where a Go timer fires up to a millisecond late.
//
// A connection starts here and stays while its requests qualify. The first
// request that does not (another path, a parameter, a body, HTTP/1.0, an
// Upgrade, a malformed head) hands the connection, with the bytes already
// read, to the host's net/http server for the rest of its life, so the fault
// paths and the error answers are net/http's own.
package fast

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fetchctl/fetchctl/internal/target"
)

// Name says which server answers, for the benchmark's report.
const Name = "fetchtarget fast HTTP/1.1 responder (net/http for the rest)"

// Front returns a responder for a target started with this latency and
// body size, as [target.Options.Front].
func Front(latency time.Duration, bodySize int) target.Front {
	return newResponder(latency, bodySize).serve
}

// responder answers the default request of every host of one server.
type responder struct {
	latency time.Duration
	body    []byte

	// Prebuilt responses: the status line and headers up to the Date
	// header's value.
	okHead, tooMany []byte

	// onWait, for tests, is called when a request starts its latency wait.
	onWait func()
}

func newResponder(latency time.Duration, bodySize int) *responder {
	cl := strconv.Itoa(bodySize)
	msg := "429 Too Many Requests\n"
	return &responder{
		latency: latency,
		body:    target.Body(bodySize),
		okHead:  []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " + cl + "\r\nDate: "),
		tooMany: []byte("HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
			strconv.Itoa(len(msg)) + "\r\nDate: "),
	}
}

// serve accepts the connections of ln until it is closed, then closes the
// connections it still holds and waits for them. Like net/http's server it
// waits and tries again after any other error, such as running out of file
// descriptors.
func (r *responder) serve(ln net.Listener, h *target.Host) {
	var (
		conns   connSet
		running sync.WaitGroup
		backoff time.Duration
	)
	defer func() {
		conns.closeAll()
		running.Wait()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || h.Context().Err() != nil {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		h.Accepted()
		if !conns.add(c) {
			c.Close()
			continue
		}
		running.Add(1)
		go func() {
			defer running.Done()
			r.serveConn(c, h, &conns)
		}()
	}
}

// idleTimeout closes a connection that sends nothing for so long, like
// net/http's IdleTimeout and ReadHeaderTimeout together.
const idleTimeout = 2 * time.Minute

// serveConn answers the requests of one connection until it closes, or
// hands it to net/http.
func (r *responder) serveConn(c net.Conn, h *target.Host, conns *connSet) {
	rd := bufio.NewReaderSize(c, maxHead)
	var (
		out    []byte
		sl     *sleeper
		handed bool
	)
	defer func() {
		if sl != nil {
			sl.close()
		}
		if !handed {
			conns.remove(c)
			c.Close()
		}
	}()
	for {
		_ = c.SetReadDeadline(time.Now().Add(idleTimeout))
		n, head, closeAfter, err := readHead(rd)
		if err != nil {
			return
		}
		if n == 0 {
			_ = c.SetReadDeadline(time.Time{})
			conns.remove(c)
			handed = true
			h.Hand(&handedConn{Conn: c, r: rd})
			return
		}
		_, _ = rd.Discard(n)
		if sl == nil && r.latency > 0 {
			sl = newSleeper(h.Context())
		}
		var ok, body bool
		out, body, ok = r.answer(out[:0], h, head, sl)
		if !ok {
			return
		}
		if _, err := c.Write(out); err != nil {
			return
		}
		if body {
			if _, err := c.Write(r.body); err != nil {
				return
			}
		}
		if closeAfter {
			return
		}
	}
}

// answer counts the request, waits the latency on sl (nil when there is
// none) and appends the response to out: all of it, or all but a body of
// more than maxInlineBody, which body says is still to be written. It
// reports false when the server closed before the answer was ready.
func (r *responder) answer(out []byte, h *target.Host, head bool, sl *sleeper) (_ []byte, body, ok bool) {
	switch h.Enter() {
	case 0:
		return out, false, false
	case http.StatusTooManyRequests:
		h.Leave()
		out = appendDate(append(out, r.tooMany...))
		return append(out, "\r\n\r\n429 Too Many Requests\n"...), false, true
	}
	if r.onWait != nil {
		r.onWait()
	}
	waited := h.Context().Err() == nil
	if sl != nil {
		waited = sl.sleep(r.latency)
	}
	h.Leave()
	if !waited {
		return out, false, false
	}
	out = appendDate(append(out, r.okHead...))
	out = append(out, "\r\n\r\n"...)
	switch {
	case head:
	case len(r.body) <= maxInlineBody:
		out = append(out, r.body...)
	default:
		body = true
	}
	return out, body, true
}

// maxInlineBody is the largest body copied next to the headers for one
// write; a larger one is written from the responder's copy.
const maxInlineBody = 16 << 10

// appendDate appends the current time as an HTTP-date. The text changes
// once a second, so it is formatted once a second.
func appendDate(b []byte) []byte {
	now := time.Now().Unix()
	d := dateCache.Load()
	if d == nil || d.sec != now {
		d = &cachedDate{sec: now, text: time.Unix(now, 0).UTC().AppendFormat(nil, http.TimeFormat)}
		dateCache.Store(d)
	}
	return append(b, d.text...)
}

type cachedDate struct {
	sec  int64
	text []byte
}

var dateCache atomic.Pointer[cachedDate]

// handedConn is a connection given to net/http with the bytes the
// responder had read but not consumed.
type handedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *handedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// connSet tracks the connections a host's responder holds, so that it can
// close them when its listener closes; net/http tracks the ones it was
// handed.
type connSet struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// add tracks c; it reports false once closeAll has run.
func (cs *connSet) add(c net.Conn) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		return false
	}
	if cs.conns == nil {
		cs.conns = make(map[net.Conn]struct{})
	}
	cs.conns[c] = struct{}{}
	return true
}

func (cs *connSet) remove(c net.Conn) {
	cs.mu.Lock()
	delete(cs.conns, c)
	cs.mu.Unlock()
}

func (cs *connSet) closeAll() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.closed = true
	for c := range cs.conns {
		c.Close()
	}
	clear(cs.conns)
}

// sleepTimer waits d on a Go timer, returning false early when life is
// done.
func sleepTimer(life context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-life.Done():
		return false
	}
}
