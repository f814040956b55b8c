package report

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// ErrClosed is returned by [Writer.Write] after [Writer.Close].
var ErrClosed = errors.New("report: write after close")

// bufSize is the batch a [Writer] gathers before writing it out.
const bufSize = 64 << 10

// Writer writes records as NDJSON lines to an underlying writer, batching
// them, and never splits a line across two writes to it: each write holds
// whole lines only, so a reader that sees a write sees whole records.
//
// The first error from the underlying writer (a broken pipe, a full disk) is
// kept: every later call returns it, wrapped as "write output: ...", and
// [Writer.OnError] learns of it at once, also when the flushing goroutine
// made the write.
//
// Use [NewWriter]; the zero value is not usable. A Writer is safe for
// concurrent use. Call [Writer.Close] when done, to write what is buffered
// and stop its flushing goroutine.
type Writer struct {
	mu     sync.Mutex
	w      io.Writer
	buf    []byte // whole lines not yet written
	line   []byte // the line being encoded
	err    error
	closed bool
	stop   chan struct{}
	done   chan struct{}
	wake   chan struct{} // a line went into an empty buffer
	last   time.Time     // when buf was last written out

	onWritten func(*Record)
	pending   []*Record // records in buf, kept only for onWritten
	onError   func(error)
}

// NewWriter returns a Writer to w. When interval is positive, a goroutine
// writes out buffered lines soon after they are buffered: at once when
// nothing was written out for interval, else once interval has passed since
// the last write. A reader sees each line promptly when lines come slowly,
// lines that come fast still go out in batches (one write per interval at
// most, besides those of a full buffer), and a crash loses at most about
// interval of finished work. [Writer.Close] stops the goroutine. With
// interval 0, lines go out only when the buffer is full, on Flush and on
// Close.
func NewWriter(w io.Writer, interval time.Duration) *Writer {
	wr := &Writer{
		w:   w,
		buf: make([]byte, 0, bufSize),
	}
	if interval > 0 {
		wr.stop = make(chan struct{})
		wr.done = make(chan struct{})
		wr.wake = make(chan struct{}, 1)
		go wr.flushLoop(interval)
	}
	return wr
}

// OnWritten sets f to be called with each record once its line has been
// written to the underlying writer, in the order written; a record whose
// line was lost to a write error is never passed to f. f is called with the
// Writer's lock held, from Write, Flush, Close or the flushing goroutine, one
// call at a time. Call OnWritten before the first Write.
func (w *Writer) OnWritten(f func(*Record)) {
	w.mu.Lock()
	w.onWritten = f
	w.mu.Unlock()
}

// OnError sets f to be called, once, with the kept error when a write to
// the underlying writer first fails, from whichever of Write, Flush, Close
// or the flushing goroutine made it: a failed background write is known at
// once, not at the next Write. f is called with the Writer's lock held and
// must not call the Writer. Call OnError before the first Write.
func (w *Writer) OnError(f func(error)) {
	w.mu.Lock()
	w.onError = f
	w.mu.Unlock()
}

// Write encodes r (see [AppendJSON]) as one line and buffers it, writing out
// the buffer first when the line would not fit. A line larger than the
// buffer is written on its own, in one call. It keeps r only when
// [Writer.OnWritten] is set, until r's line is written.
func (w *Writer) Write(r *Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return ErrClosed
	}
	w.line = AppendJSON(w.line[:0], r)
	w.line = append(w.line, '\n')
	if len(w.buf)+len(w.line) > cap(w.buf) {
		if err := w.flushLocked(); err != nil {
			return err
		}
	}
	if len(w.line) <= cap(w.buf) {
		if len(w.buf) == 0 && w.wake != nil {
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
		w.buf = append(w.buf, w.line...)
		if w.onWritten != nil {
			w.pending = append(w.pending, r)
		}
		return nil
	}
	err := w.writeLocked(w.line)
	if err == nil && w.onWritten != nil {
		w.onWritten(r)
	}
	if cap(w.line) > bufSize {
		// Do not hold on to the memory of one outsized record.
		w.line = nil
	}
	return err
}

// Flush writes out the buffered lines.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked()
}

// Close stops the flushing goroutine and writes out the buffered lines. It
// does not close the underlying writer. Calling it again returns the kept
// error, if any.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		defer w.mu.Unlock()
		return w.err
	}
	w.closed = true
	w.mu.Unlock()

	if w.stop != nil {
		close(w.stop)
		<-w.done
	}
	return w.Flush()
}

// flushLoop writes out the buffer each time a line goes into it empty, but
// not sooner than interval after the last write: the lines buffered in the
// meantime go out with it.
func (w *Writer) flushLoop(interval time.Duration) {
	defer close(w.done)
	t := time.NewTimer(interval)
	t.Stop()
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-w.wake:
		}
		w.mu.Lock()
		wait := interval - time.Since(w.last)
		w.mu.Unlock()
		if wait > 0 {
			t.Reset(wait)
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
		// An error is kept in w.err, returned by the next call and
		// passed to onError.
		_ = w.Flush()
	}
}

func (w *Writer) flushLocked() error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf) == 0 {
		return nil
	}
	err := w.writeLocked(w.buf)
	w.buf = w.buf[:0]
	w.last = time.Now()
	if err == nil {
		for _, r := range w.pending {
			w.onWritten(r)
		}
	}
	clear(w.pending)
	w.pending = w.pending[:0]
	return err
}

func (w *Writer) writeLocked(p []byte) error {
	n, err := w.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = fmt.Errorf("write output: %w", err)
		if w.onError != nil {
			w.onError(w.err)
		}
	}
	return w.err
}
