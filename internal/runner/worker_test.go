package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestWorkerTimeout checks the context the attempts of one worker share: a
// timeout cancels it with errAttemptTimeout, the next attempt gets a fresh
// one, a late firing meant for an earlier attempt leaves the current one
// alone, and the run's cancellation reaches it.
func TestWorkerTimeout(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	ws := newWorkerState(parent, 20*time.Millisecond)
	defer ws.close()

	first := ws.begin()
	<-first.Done()
	if cause := context.Cause(first); !errors.Is(cause, errAttemptTimeout) {
		t.Fatalf("cause after the timeout = %v, want errAttemptTimeout", cause)
	}
	ws.end()

	ws.timeout = time.Hour
	second := ws.begin()
	if second.Err() != nil {
		t.Fatalf("the attempt after a timeout starts cancelled: %v", context.Cause(second))
	}
	// What a firing for the first attempt does if it runs only now.
	ws.expire()
	if second.Err() != nil {
		t.Fatalf("a late firing cancelled the next attempt: %v", context.Cause(second))
	}
	ws.end()

	third := ws.begin()
	if third != second {
		t.Error("an attempt after one that did not time out got a new context")
	}
	cancel()
	<-third.Done()
	if cause := context.Cause(third); !errors.Is(cause, context.Canceled) {
		t.Errorf("cause after the run's cancel = %v, want context.Canceled", cause)
	}
	ws.end()
}

// TestWorkerBufferFollowsBodies checks that a worker reads small bodies
// through a small buffer, so that a run of small pages does not hold 32 KiB
// per worker, and that the buffer grows for good once a body fills it,
// bytes and hash staying right through the change.
func TestWorkerBufferFollowsBodies(t *testing.T) {
	d := &dispatcher{opts: Options{Hash: true}}
	ws := newWorkerState(context.Background(), 0)
	defer ws.close()
	steps := []struct {
		name    string
		size    int
		wantBuf int
	}{
		{"small body", 1 << 10, bodyBufStart},
		{"another small body", bodyBufStart - 1, bodyBufStart},
		{"a body that fills the buffer", 100 << 10, bodyBufMax},
		{"small again", 10, bodyBufMax},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			body := strings.Repeat("x", s.size)
			resp := &http.Response{Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body))}
			res := &result{}
			if err := d.readBody(ws, resp, &task{}, res, false); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256([]byte(body))
			if res.bytes != int64(s.size) || res.sha256 != hex.EncodeToString(sum[:]) {
				t.Errorf("bytes %d hash %s, want %d and the body's", res.bytes, res.sha256, s.size)
			}
			if len(ws.buf) != s.wantBuf {
				t.Errorf("buffer %d bytes after the body, want %d", len(ws.buf), s.wantBuf)
			}
		})
	}
	if bodyBufStart >= 32<<10 {
		t.Errorf("a worker starts with %d bytes of buffer", bodyBufStart)
	}
}
