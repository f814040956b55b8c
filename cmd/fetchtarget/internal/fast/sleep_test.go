package fast

import (
	"context"
	"testing"
	"time"
)

// TestSleeper checks the reusable wait of a connection: each wait
// lasts at least as long as asked, and the end of life ends one under way
// and every later one.
func TestSleeper(t *testing.T) {
	const d = 5 * time.Millisecond
	life, end := context.WithCancel(context.Background())
	sl := newSleeper(life)
	defer sl.close()
	for i := range 3 {
		t0 := time.Now()
		if !sl.sleep(d) {
			t.Fatalf("wait %d reported an early end with nothing to end it", i)
		}
		if took := time.Since(t0); took < d {
			t.Fatalf("wait %d of %v returned after %v", i, d, took)
		}
	}
	done := make(chan bool)
	go func() { done <- sl.sleep(time.Hour) }()
	end()
	if <-done {
		t.Error("a wait under way when life ended reported the whole wait")
	}
	if sl.sleep(time.Hour) {
		t.Error("a wait after life ended reported the whole wait")
	}
	if sl.sleep(0) {
		t.Error("a zero wait after life ended reported success")
	}
}
