//go:build unix

package target

import (
	"net"
	"strconv"
	"syscall"
)

// ClosedAddr returns a loopback address where nothing listens: a connection
// to it is refused. The port stays bound, without listening, for the rest of
// the process, so no other listener of the tests can take it over (a port
// merely closed again can be handed to the next one that asks).
func ClosedAddr() (string, error) {
	// Not every unix has SOCK_CLOEXEC (macOS has not): the descriptor is
	// marked close-on-exec under the fork lock, as the syscall package does.
	syscall.ForkLock.RLock()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return "", err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		return "", err
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port)), nil
}
