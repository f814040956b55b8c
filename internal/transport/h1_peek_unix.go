//go:build unix

package transport

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// quiet reports whether nothing waits to be read on the socket under c
// and its peer has not closed it: an idle HTTP/1.1 connection that may
// carry a request. It looks without reading or waiting; a connection it
// cannot look into counts as quiet.
func quiet(c net.Conn) bool {
	if tc := trackedOf(c); tc != nil {
		c = tc.Conn
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	var (
		b    [1]byte
		rerr error
	)
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		return true
	})
	// Anything but "nothing yet" is bytes no request asked for, the
	// peer's close (a read of 0 bytes) or an error on the socket.
	return err == nil && (rerr == unix.EAGAIN || rerr == unix.EWOULDBLOCK)
}
