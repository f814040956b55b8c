//go:build !linux

package target

import (
	"context"
	"time"
)

// sleep waits d, returning false early when ctx or life is done.
func sleep(ctx, life context.Context, d time.Duration) bool {
	return sleepTimer(ctx, life, d)
}
