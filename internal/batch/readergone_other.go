//go:build !linux

package batch

import "os"

// watchReader does nothing here: only Linux is known to report a pipe
// whose reader went away without a write; the next write finds out.
func watchReader(*os.File, func()) (stop func()) { return func() {} }

func dieOfSIGPIPE() {}
