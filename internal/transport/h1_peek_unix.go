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
// cannot look into counts as quiet. When bytes wait, the first of them
// are copied to buf and n says how many.
func quiet(c net.Conn, buf []byte) (n int, ok bool) {
	if tc := trackedOf(c); tc != nil {
		c = tc.Conn
	}
	sc, isSys := c.(syscall.Conn)
	if !isSys {
		return 0, true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, true
	}
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
		return true
	})
	if err == nil && (rerr == unix.EAGAIN || rerr == unix.EWOULDBLOCK) {
		return 0, true
	}
	// Bytes no request asked for, the peer's close (a read of 0 bytes) or
	// an error on the socket.
	if err != nil || rerr != nil || n < 0 {
		n = 0
	}
	return n, false
}
