package target

import (
	"context"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// sleep waits d, returning false early when ctx or life is done.
//
// A Go timer fires late, by half a millisecond on average here, when the
// process has little else to do: the runtime's poller sleeps in whole
// milliseconds. Over a benchmark of 60 rounds of 50 ms that is 1% of the
// wall time, charged to the client. A timerfd wakes the poller itself, on
// the kernel's high-resolution clock. Where a timerfd cannot be had, a Go
// timer does.
func sleep(ctx, life context.Context, d time.Duration) bool {
	f, _ := newTimerFD(d)
	if f == nil {
		return sleepTimer(ctx, life, d)
	}
	defer f.Close()
	wake := waker(f)
	defer context.AfterFunc(ctx, wake)()
	defer context.AfterFunc(life, wake)()
	return waitTimerFD(f)
}

// waitTimerFD waits for the armed timerfd f to fire and reports whether it
// did, rather than being woken by its read deadline (see waker).
func waitTimerFD(f *os.File) bool {
	var buf [8]byte
	for {
		_, err := f.Read(buf[:])
		if err == nil {
			return true
		}
		if err != syscall.EINTR {
			return false
		}
	}
}

// waker returns a function that ends a wait on f at once.
func waker(f *os.File) func() {
	return func() { _ = f.SetReadDeadline(time.Now()) }
}

// sleeper waits, one wait at a time, on a timerfd it keeps: a connection
// on the fast path makes one for its life instead of one per request.
type sleeper struct {
	f    *os.File
	fd   uintptr // f's descriptor: f.Fd() would make it blocking
	stop func() bool
	life context.Context
}

// newSleeper returns a sleeper whose waits end early once life is done.
func newSleeper(life context.Context) *sleeper {
	sl := &sleeper{life: life}
	if sl.f, sl.fd = newTimerFD(0); sl.f != nil {
		sl.stop = context.AfterFunc(life, waker(sl.f))
	}
	return sl
}

// sleep waits d and reports whether the whole of it passed.
func (sl *sleeper) sleep(d time.Duration) bool {
	if d <= 0 {
		return sl.life.Err() == nil
	}
	if sl.f == nil || !setTimerFD(sl.fd, d) {
		return sleepTimer(sl.life, sl.life, d)
	}
	return waitTimerFD(sl.f)
}

// close releases the timerfd.
func (sl *sleeper) close() {
	if sl.f != nil {
		sl.stop()
		sl.f.Close()
	}
}

// newTimerFD returns a non-blocking timerfd and its descriptor, armed to
// become readable once d has passed when d > 0, or nil when the kernel
// refuses one.
func newTimerFD(d time.Duration) (*os.File, uintptr) {
	const tfdNonblock, tfdCloexec = syscall.O_NONBLOCK, syscall.O_CLOEXEC
	fd, _, errno := syscall.Syscall(syscall.SYS_TIMERFD_CREATE, uintptr(clockMonotonic), tfdNonblock|tfdCloexec, 0)
	if errno != 0 {
		return nil, 0
	}
	if d > 0 && !setTimerFD(fd, d) {
		syscall.Close(int(fd))
		return nil, 0
	}
	return os.NewFile(fd, "timerfd"), fd
}

// setTimerFD arms the timerfd fd to fire once, d from now.
func setTimerFD(fd uintptr, d time.Duration) bool {
	spec := itimerspec{value: syscall.NsecToTimespec(int64(d))}
	_, _, errno := syscall.Syscall6(syscall.SYS_TIMERFD_SETTIME, fd, 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0)
	return errno == 0
}

const clockMonotonic = 1

type itimerspec struct {
	interval syscall.Timespec
	value    syscall.Timespec
}
