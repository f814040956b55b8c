package batch

import (
	"os"
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// watchReader calls gone, once, when f is the write end of a pipe or FIFO
// whose last reader went away, without waiting for the next write to find
// out: the write end of a pipe reports POLLERR then. For any other file
// (regular, terminal, socket) it does nothing. stop ends the watch; it
// returns once the watching goroutine has, so gone is not called after it.
func watchReader(f *os.File, gone func()) (stop func()) {
	fd := rawFd(f)
	var st unix.Stat_t
	if fd < 0 {
		return func() {}
	}
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return func() {}
	}
	// Closing wake's write end wakes the poll with POLLHUP on its read end.
	var wake [2]int
	if err := unix.Pipe2(wake[:], unix.O_CLOEXEC); err != nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer unix.Close(wake[0])
		fds := []unix.PollFd{
			{Fd: int32(fd)}, // no events asked: POLLERR and POLLHUP come anyway
			{Fd: int32(wake[0]), Events: unix.POLLIN},
		}
		for {
			_, err := unix.Poll(fds, -1)
			if err == unix.EINTR {
				continue
			}
			if err != nil || fds[1].Revents != 0 {
				return
			}
			if fds[0].Revents != 0 {
				// Anything else than POLLERR (POLLNVAL, say) would wake
				// each poll again at once: stop watching.
				if fds[0].Revents&unix.POLLERR != 0 {
					gone()
				}
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			unix.Close(wake[1])
			<-done
		})
	}
}

// rawFd returns f's descriptor without f.Fd's switch to blocking mode, or
// -1.
func rawFd(f *os.File) int {
	fd := -1
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(s uintptr) { fd = int(s) })
	}
	return fd
}

// dieOfSIGPIPE ends the process as Go's runtime does when a write to
// stdout or stderr finds the pipe closed: killed by SIGPIPE, which a shell
// reports as 141.
func dieOfSIGPIPE() {
	// The runtime handles SIGPIPE itself and ignores one that is sent:
	// restore the default action first. Zero is SIG_DFL, no flags, an
	// empty mask.
	var act [4]uint64
	unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGPIPE), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
	runtime.LockOSThread()
	_ = unix.Tgkill(unix.Getpid(), unix.Gettid(), unix.SIGPIPE)
	// Not reached unless the signal was blocked: the runtime then exits 2.
	os.Exit(2)
}
