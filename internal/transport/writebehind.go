package transport

import (
	"net"
	"runtime"
	"sync"
	"time"
)

// maxWriteBehind is how many bytes an HTTP/2 connection queues before a
// write waits for the wire, as a write to a full socket buffer would.
const maxWriteBehind = 64 << 10

// maxSpare is the largest buffer an idle connection keeps for its next
// batch; a request body's batches can be larger, and are let go.
const maxSpare = 16 << 10

// writeBehind carries the writes to an HTTP/2 connection. net/http's
// HTTP/2 client writes each request's HEADERS frame (and each WINDOW_UPDATE)
// on its own, one TLS record and one write system call each, under the
// connection's write lock, so the streams of a busy connection queue for
// one system call after another. Here a write hands its bytes to a flusher
// goroutine and returns; the writes that come while the flusher is busy go
// out together in its next system call. An idle connection's write starts
// the flusher at once, so nothing waits for company.
//
// The first write that fails is the connection's error from then on:
// later writes, and the read that net/http's read loop has waiting, return
// it, so the streams fail as they would have on the write itself.
type writeBehind struct {
	mu       sync.Mutex
	room     sync.Cond // signalled when the flusher takes the queue
	pend     []byte    // bytes queued, not yet handed to the flusher
	spare    []byte    // the flusher's last batch, reused for the next queue
	flushing bool      // a flusher goroutine runs
	closed   bool
	err      error
}

// writeBehind turns on write-behind for c, which has negotiated HTTP/2.
// Call it before the first HTTP/2 write.
func (c *trackedConn) writeBehind() {
	w := &writeBehind{}
	w.room.L = &w.mu
	c.wb.Store(w)
}

func (w *writeBehind) write(c *trackedConn, p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.pend) >= maxWriteBehind && w.err == nil && !w.closed {
		w.room.Wait()
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, net.ErrClosed
	}
	w.pend = append(w.pend, p...)
	// The bytes count as they are queued, as a write's would on return:
	// a request that claims its connection's bytes once it is done finds
	// those its last reads made net/http write (WINDOW_UPDATE frames),
	// which the flusher may not have written yet.
	c.out.Add(int64(len(p)))
	if !w.flushing {
		w.flushing = true
		go w.flush(c)
	}
	return len(p), nil
}

// flush writes the queue to the wire until it is empty.
func (w *writeBehind) flush(c *trackedConn) {
	// Streams that are ready to run write their frames first and join
	// this batch; with none ready this returns at once.
	runtime.Gosched()
	for {
		w.mu.Lock()
		if len(w.pend) == 0 || w.err != nil {
			w.flushing = false
			w.room.Broadcast()
			w.mu.Unlock()
			return
		}
		buf := w.pend
		w.pend = w.spare[:0]
		w.room.Broadcast()
		w.mu.Unlock()

		var (
			n   int
			err error
		)
		if c.meter != nil && c.meter.stopped() {
			err = ErrWireLimit
		} else {
			n, err = c.Conn.Write(buf)
			if c.meter != nil && n > 0 {
				err = c.metered(n, err)
			}
		}

		w.mu.Lock()
		w.spare = nil
		if cap(buf) <= maxSpare {
			w.spare = buf[:0]
		}
		if err != nil && w.err == nil {
			w.err = c.connectErr(err)
			w.room.Broadcast()
		}
		w.mu.Unlock()
		if err != nil {
			// Wake the read loop: its read returns the write's error.
			_ = c.Conn.SetReadDeadline(time.Unix(1, 0))
		}
	}
}

// failed is the error of the write that failed, if one did.
func (w *writeBehind) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// closeFlushWait bounds how long closing a connection waits for its queue
// to reach the wire: crypto/tls gives its close_notify alert as long.
const closeFlushWait = 5 * time.Second

// close lets the flusher write what is queued (a TLS close_notify alert,
// usually), for closeFlushWait at most, and makes later writes fail.
func (w *writeBehind) close(c *trackedConn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.flushing && w.err == nil {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(closeFlushWait))
		for w.flushing {
			w.room.Wait()
		}
	}
	w.pend = nil
	w.room.Broadcast()
}
