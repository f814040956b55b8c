package runner

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a dispatcher clock for tests. Its time stands still until
// Advance moves it, or, when jump is set, until the dispatcher sets its
// timer: the clock then jumps to the timer's time at once, so that every
// wait takes no real time and what the dispatcher schedules is exact.
type fakeClock struct {
	jump bool

	mu    sync.Mutex
	now   time.Time
	armed []*fakeTimer
}

// fakeEpoch is where a fake clock starts.
var fakeEpoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newFakeClock(jump bool) *fakeClock { return &fakeClock{jump: jump, now: fakeEpoch} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer() wakeTimer {
	return &fakeTimer{c: c, ch: make(chan time.Time, 1)}
}

// Advance moves the time on by d and fires the timers it reaches.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.armed[:0]
	for _, t := range c.armed {
		if t.at.After(c.now) {
			kept = append(kept, t)
			continue
		}
		t.fire(c.now)
	}
	clear(c.armed[len(kept):])
	c.armed = kept
}

type fakeTimer struct {
	c  *fakeClock
	ch chan time.Time
	at time.Time // guarded by c.mu
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) ResetAt(at time.Time) {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	t.disarm()
	if c.jump && at.After(c.now) {
		c.now = at
	}
	if !at.After(c.now) {
		t.fire(c.now)
		return
	}
	t.at = at
	c.armed = append(c.armed, t)
}

func (t *fakeTimer) Stop() {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.disarm()
}

// disarm drops a pending firing and the setting. t.c.mu is held.
func (t *fakeTimer) disarm() {
	select {
	case <-t.ch:
	default:
	}
	for i, a := range t.c.armed {
		if a == t {
			t.c.armed = append(t.c.armed[:i], t.c.armed[i+1:]...)
			break
		}
	}
}

// fire delivers now. t.c.mu is held and t is not armed.
func (t *fakeTimer) fire(now time.Time) {
	select {
	case t.ch <- now:
	default:
	}
}

func TestFakeClock(t *testing.T) {
	t.Parallel()
	t.Run("jump", func(t *testing.T) {
		t.Parallel()
		c := newFakeClock(true)
		tm := c.NewTimer()
		tm.ResetAt(fakeEpoch.Add(time.Second))
		if got := <-tm.C(); !got.Equal(fakeEpoch.Add(time.Second)) {
			t.Errorf("fired at %v, want the time set", got)
		}
		if got := c.Now(); !got.Equal(fakeEpoch.Add(time.Second)) {
			t.Errorf("Now() = %v after the jump, want the timer's time", got)
		}
	})
	t.Run("advance", func(t *testing.T) {
		t.Parallel()
		c := newFakeClock(false)
		tm := c.NewTimer()
		tm.ResetAt(fakeEpoch.Add(time.Second))
		c.Advance(999 * time.Millisecond)
		select {
		case <-tm.C():
			t.Fatal("fired before its time")
		default:
		}
		c.Advance(time.Millisecond)
		select {
		case <-tm.C():
		default:
			t.Fatal("did not fire at its time")
		}
		tm.ResetAt(fakeEpoch)
		select {
		case <-tm.C():
		default:
			t.Fatal("a timer set in the past did not fire at once")
		}
		tm.ResetAt(fakeEpoch.Add(2 * time.Second))
		tm.Stop()
		c.Advance(time.Hour)
		select {
		case <-tm.C():
			t.Fatal("a stopped timer fired")
		default:
		}
	})
}
