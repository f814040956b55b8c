package runner

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"
	"time"

	"github.com/fetchctl/fetchctl/internal/secret"
)

// work is one attempt handed to a worker.
type work struct {
	t     *task
	r     *route
	start time.Time
}

// worker makes attempts until the run ends.
func (d *dispatcher) worker() {
	defer d.wg.Done()
	ws := newWorkerState(d.ctx, d.opts.Timeout)
	defer ws.close()
	for w := range d.work {
		d.results <- d.safeAttempt(ws, w)
	}
}

// workerState is what a worker keeps from one attempt to the next.
type workerState struct {
	buf  []byte // for reading bodies
	head []byte // the start of the last body, for --block-pattern
	body io.LimitedReader
	out  onlyWriter
	gz   *gzip.Reader // made for the first gzip body
	raw  endReader    // the body under gz
	// rawBuf reads raw for gz, made for the first gzip body; members
	// reads gz and what follows its stream in rawBuf.
	rawBuf  *bufio.Reader
	members gzipMembers

	// The attempts share one context, a child of the run's, until one
	// of them times out and it is cancelled; the next attempt gets a new
	// one. A context per attempt would cost a context, a timer, and the
	// table of children that net/http's own context per request is
	// entered in; this one's table is reused. Sharing the run's context
	// instead would have every worker take its lock.
	parent   context.Context
	timeout  time.Duration
	timer    *time.Timer // cancels ctx at deadline, when timeout > 0
	mu       sync.Mutex  // guards what follows, which the timer reads
	ctx      context.Context
	cancel   context.CancelCauseFunc
	armed    bool
	deadline time.Time
}

// errAttemptTimeout is the cause of a context cancelled by --timeout.
var errAttemptTimeout = errors.New("attempt timed out")

// errUnanswered is the cause of a context cancelled because too many
// requests of the attempt went unanswered (see maxUnanswered).
var errUnanswered = errors.New("requests unanswered")

func newWorkerState(parent context.Context, timeout time.Duration) *workerState {
	ws := &workerState{buf: make([]byte, bodyBufStart), parent: parent, timeout: timeout}
	ws.ctx, ws.cancel = context.WithCancelCause(parent)
	if timeout > 0 {
		ws.timer = time.AfterFunc(timeout, ws.expire)
		ws.timer.Stop()
	}
	return ws
}

// begin returns the context of an attempt that starts now, its timeout
// running.
func (ws *workerState) begin() context.Context {
	ws.mu.Lock()
	if ws.ctx.Err() != nil && ws.parent.Err() == nil {
		// The last attempt timed out or was stopped.
		ws.ctx, ws.cancel = context.WithCancelCause(ws.parent)
	}
	ctx := ws.ctx
	if ws.timer != nil {
		ws.armed = true
		ws.deadline = time.Now().Add(ws.timeout)
		ws.timer.Reset(ws.timeout)
	}
	ws.mu.Unlock()
	return ctx
}

// end stops the timeout of the attempt begun last.
func (ws *workerState) end() {
	if ws.timer == nil {
		return
	}
	ws.timer.Stop()
	ws.mu.Lock()
	ws.armed = false
	ws.mu.Unlock()
}

// abort stops the attempt in progress with cause. Its caller makes sure
// that the attempt has not ended.
func (ws *workerState) abort(cause error) {
	ws.mu.Lock()
	ws.cancel(cause)
	ws.mu.Unlock()
}

// expire runs on the timer's goroutine. A firing meant for an attempt that
// has ended may come late, when the next one has begun; the deadline tells.
func (ws *workerState) expire() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.armed && !time.Now().Before(ws.deadline) {
		ws.cancel(errAttemptTimeout)
	}
}

func (ws *workerState) close() {
	if ws.timer != nil {
		ws.timer.Stop()
	}
	ws.cancel(context.Canceled)
}

// safeAttempt runs one attempt; a panic in it ends the run with an error
// (its text scrubbed of secrets) instead of crashing with it unmasked.
func (d *dispatcher) safeAttempt(ws *workerState, w work) (res *result) {
	defer func() {
		if p := recover(); p != nil {
			msg := secret.Text(fmt.Sprintf("%v\n%s", p, debug.Stack()), d.opts.Secrets...)
			res = &result{task: w.t, route: w.r, start: w.start, panicked: msg}
		}
	}()
	return d.attempt(ws, w.t, w.r, w.start)
}
