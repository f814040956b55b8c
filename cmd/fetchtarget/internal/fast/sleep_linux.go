package fast

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sleeper waits, one wait at a time, on a timerfd it keeps: a connection
// makes one for its life instead of one per request.
//
// A Go timer fires late, by half a millisecond on average here, when the
// process has little else to do: the runtime's poller sleeps in whole
// milliseconds. Over a benchmark of 60 rounds of 50 ms that is 1% of the
// wall time, charged to the client. A timerfd wakes the poller itself, on
// the kernel's high-resolution clock. Where a timerfd cannot be had, a Go
// timer does.
type sleeper struct {
	f    *os.File // nil without a timerfd
	fd   int      // f's descriptor: f.Fd() would make it blocking
	stop func() bool
	life context.Context
}

// newSleeper returns a sleeper whose waits end early once life is done.
func newSleeper(life context.Context) *sleeper {
	sl := &sleeper{life: life}
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return sl
	}
	// A non-blocking descriptor goes to the runtime's poller, so a read
	// deadline can end a wait.
	sl.f, sl.fd = os.NewFile(uintptr(fd), "timerfd"), fd
	sl.stop = context.AfterFunc(life, func() { _ = sl.f.SetReadDeadline(time.Now()) })
	return sl
}

// sleep waits d and reports whether the whole of it passed.
func (sl *sleeper) sleep(d time.Duration) bool {
	if d <= 0 {
		return sl.life.Err() == nil
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	if sl.f == nil || unix.TimerfdSettime(sl.fd, 0, &spec, nil) != nil {
		return sleepTimer(sl.life, d)
	}
	var buf [8]byte
	for {
		_, err := sl.f.Read(buf[:])
		if err == nil {
			return true
		}
		if !errors.Is(err, syscall.EINTR) {
			// The read deadline: life is done.
			return false
		}
	}
}

// close releases the timerfd.
func (sl *sleeper) close() {
	if sl.f != nil {
		sl.stop()
		sl.f.Close()
	}
}
