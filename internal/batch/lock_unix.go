//go:build unix

package batch

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// tryLock takes the advisory lock (flock) of f's file for as long as f is
// open, the lock that every run writing that file as -o holds. It reports
// false only when another open file holds it; a file system without locks
// goes without. The lock goes with the process, however it ends.
func tryLock(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return true
	}
	held := true
	rc.Control(func(fd uintptr) {
		for {
			err := unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			held = !errors.Is(err, unix.EWOULDBLOCK)
			return
		}
	})
	return held
}
