//go:build unix

package routes

import "syscall"

// RaiseOpenFileLimit raises the soft open-file limit to the hard one and returns
// the soft limit in force, or 0 when it cannot be read.
func RaiseOpenFileLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			lim = raised
		}
	}
	// Cur is an int64 on some systems (the BSDs), a uint64 on others.
	return uint64(lim.Cur)
}
