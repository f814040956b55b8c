package gateway

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// link is a client connection seen through a path of the gateway's RTT:
// what the client sends reaches the gateway half a round trip later, and
// what the gateway writes reaches the client half a round trip later, in
// order and without holding back what follows (a delay line, not a pause
// per write). The first bytes the client sends arrive no earlier than one
// and a half round trips after the connection was accepted: the TCP
// handshake that loopback completes at once costs a real client one round
// trip before it may send.
//
// So whatever the client speaks costs what it would 100 ms away: a
// forwarded request one round trip, CONNECT one, a TLS 1.3 handshake inside
// a tunnel one, and HTTP/2 streams in flight at once share their round trip.
type link struct {
	net.Conn
	half time.Duration

	in      chan chunk // from the client, stamped when they are due
	pending []byte     // the rest of the chunk being read
	readErr error

	out       chan chunk // to the client, stamped when they are due
	closeOnce sync.Once
	closing   chan struct{}
	flushed   chan struct{} // the writer is done
}

type chunk struct {
	data []byte
	due  time.Time
	err  error // the end of the reading side
	// done, on the way out, marks the point that drain waits for.
	done chan struct{}
}

// linkQueue bounds the chunks on their way in each direction.
const linkQueue = 64

func newLink(c net.Conn, rtt time.Duration, accepted time.Time) *link {
	l := &link{
		Conn:    c,
		half:    rtt / 2,
		in:      make(chan chunk, linkQueue),
		out:     make(chan chunk, linkQueue),
		closing: make(chan struct{}),
		flushed: make(chan struct{}),
	}
	go l.readLoop(accepted.Add(rtt + l.half))
	go l.writeLoop()
	return l
}

// readLoop reads from the client and stamps each chunk with its arrival
// half a round trip later, but not before firstDue.
func (l *link) readLoop(firstDue time.Time) {
	buf := make([]byte, 32<<10)
	for {
		n, err := l.Conn.Read(buf)
		due := time.Now().Add(l.half)
		if due.Before(firstDue) {
			due = firstDue
		}
		if n > 0 {
			select {
			case l.in <- chunk{data: append([]byte(nil), buf[:n]...), due: due}:
			case <-l.closing:
				return
			}
		}
		if err != nil {
			select {
			case l.in <- chunk{err: err, due: due}:
			case <-l.closing:
			}
			return
		}
	}
}

func (l *link) Read(p []byte) (int, error) {
	if len(l.pending) == 0 {
		if l.readErr != nil {
			return 0, l.readErr
		}
		var c chunk
		select {
		case c = <-l.in:
		case <-l.closing:
			return 0, net.ErrClosed
		}
		if !sleepUntil(c.due, l.closing) {
			return 0, net.ErrClosed
		}
		if c.err != nil {
			l.readErr = c.err
			return 0, c.err
		}
		l.pending = c.data
	}
	n := copy(p, l.pending)
	l.pending = l.pending[n:]
	return n, nil
}

// Write queues p for the client, due half a round trip from now, and
// returns once it is queued.
func (l *link) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c := chunk{data: append([]byte(nil), p...), due: time.Now().Add(l.half)}
	select {
	case l.out <- c:
		return len(p), nil
	case <-l.closing:
		return 0, net.ErrClosed
	case <-l.flushed:
		return 0, errWriteFailed
	}
}

var errWriteFailed = errors.New("write to the client failed")

func (l *link) writeLoop() {
	defer close(l.flushed)
	for {
		select {
		case c := <-l.out:
			if c.done != nil {
				close(c.done)
				continue
			}
			if !sleepUntil(c.due, l.closing) {
				return
			}
			if _, err := l.Conn.Write(c.data); err != nil {
				return
			}
		case <-l.closing:
			return
		}
	}
}

// CloseWrite delivers what is queued, when it is due, and then half-closes
// the connection to the client.
func (l *link) CloseWrite() error {
	l.drain()
	if cw, ok := l.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// drain waits until the writer has delivered every queued chunk.
func (l *link) drain() {
	done := make(chan struct{})
	select {
	case l.out <- chunk{done: done}:
	case <-l.closing:
		return
	case <-l.flushed:
		return
	}
	select {
	case <-done:
	case <-l.closing:
	case <-l.flushed:
	}
}

// Close delivers what is queued, when it is due, then closes the
// connection.
func (l *link) Close() error {
	l.drain()
	var err error
	l.closeOnce.Do(func() {
		close(l.closing)
		err = l.Conn.Close()
	})
	return err
}

// sleepUntil waits for t, or returns false when stop closes first.
func sleepUntil(t time.Time, stop <-chan struct{}) bool {
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-stop:
		return false
	}
}

var _ io.ReadWriteCloser = (*link)(nil)
