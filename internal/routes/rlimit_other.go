//go:build !unix

package routes

// RaiseOpenFileLimit is unknown on this system.
func RaiseOpenFileLimit() uint64 { return 0 }
