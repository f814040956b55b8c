package runner

import (
	"context"
	"errors"
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
