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

// sleeper waits on Go timers where there is no timerfd.
type sleeper struct{ life context.Context }

func newSleeper(life context.Context) *sleeper { return &sleeper{life: life} }

// sleep waits d and reports whether the whole of it passed.
func (sl *sleeper) sleep(d time.Duration) bool {
	if d <= 0 {
		return sl.life.Err() == nil
	}
	return sleepTimer(sl.life, sl.life, d)
}

func (sl *sleeper) close() {}
