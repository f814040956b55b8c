//go:build !unix

package target

// ClosedAddr returns a loopback address where nothing listens.
func ClosedAddr() (string, error) { return freeAddr() }
