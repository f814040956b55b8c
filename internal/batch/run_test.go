package batch

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
)

// TestWriteFailed checks that a write whose reader went away (EPIPE, on
// stdout or an -o FIFO) ends the process as a closed stdout pipe does, and
// that any other failure stops the run with the write's error.
func TestWriteFailed(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		err     error
		wantDie bool
	}{
		{"reader gone", fmt.Errorf("write output: %w", syscall.EPIPE), true},
		{"disk full", fmt.Errorf("write output: %w", syscall.ENOSPC), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			died := false
			var stopped error
			writeFailed(func() { died = true }, func(err error) { stopped = err })(tt.err)
			if died != tt.wantDie {
				t.Errorf("died = %v, want %v", died, tt.wantDie)
			}
			if !tt.wantDie && !errors.Is(stopped, tt.err) {
				t.Errorf("run stopped with %v, want %v", stopped, tt.err)
			}
		})
	}
}
