//go:build !linux

package fast

import (
	"context"
	"time"
)

// sleeper waits on Go timers where there is no timerfd.
type sleeper struct{ life context.Context }

func newSleeper(life context.Context) *sleeper { return &sleeper{life: life} }

// sleep waits d and reports whether the whole of it passed.
func (sl *sleeper) sleep(d time.Duration) bool {
	if d <= 0 {
		return sl.life.Err() == nil
	}
	return sleepTimer(sl.life, d)
}

func (sl *sleeper) close() {}
