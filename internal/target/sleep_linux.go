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
	f := newTimerFD(d)
	if f == nil {
		return sleepTimer(ctx, life, d)
	}
	defer f.Close()
	wake := func() { _ = f.SetReadDeadline(time.Now()) }
	defer context.AfterFunc(ctx, wake)()
	defer context.AfterFunc(life, wake)()
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

// newTimerFD returns a non-blocking timerfd that becomes readable once d
// has passed, or nil when the kernel refuses one.
func newTimerFD(d time.Duration) *os.File {
	const tfdNonblock, tfdCloexec = syscall.O_NONBLOCK, syscall.O_CLOEXEC
	fd, _, errno := syscall.Syscall(syscall.SYS_TIMERFD_CREATE, uintptr(clockMonotonic), tfdNonblock|tfdCloexec, 0)
	if errno != 0 {
		return nil
	}
	spec := itimerspec{value: syscall.NsecToTimespec(int64(d))}
	if _, _, errno := syscall.Syscall6(syscall.SYS_TIMERFD_SETTIME, fd, 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0); errno != 0 {
		syscall.Close(int(fd))
		return nil
	}
	return os.NewFile(fd, "timerfd")
}

const clockMonotonic = 1

type itimerspec struct {
	interval syscall.Timespec
	value    syscall.Timespec
}
