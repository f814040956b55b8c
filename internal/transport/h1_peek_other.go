//go:build !unix

package transport

import "net"

// quiet reports whether an idle connection may carry a request; where the
// socket cannot be looked into without reading, every one may.
func quiet(net.Conn, []byte) (int, bool) { return 0, true }
