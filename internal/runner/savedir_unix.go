//go:build unix

package runner

import (
	"os"
	"syscall"
)

// lockDir takes a lock on the folder f: exclusive without waiting (an
// error when another run holds it), or shared, waiting for a run that
// holds it exclusively (one that is removing leftovers) to be done. Taking
// the shared lock while holding the exclusive one changes it.
func lockDir(f *os.File, exclusive bool) error {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX | syscall.LOCK_NB
	}
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}
