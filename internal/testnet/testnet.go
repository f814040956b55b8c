// Package testnet serves raw connections for tests: servers that speak
// frames or bytes by hand, where net/http's server would not misbehave on
// purpose. It is imported by tests only.
package testnet

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"testing"
)

// Serve accepts connections on ln until the test ends and runs serve on
// each in a goroutine of its own, closing the connection when serve
// returns. When the test ends it closes ln and every connection, and waits
// for the goroutines.
func Serve(t testing.TB, ln net.Listener, serve func(net.Conn)) {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				serve(c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// ServeRequest listens on 127.0.0.1 until the test ends and answers the
// first request of each connection with answer, writing what it likes to c
// (a status line that quotes what was sent, say); a connection that sends
// no request is closed. It returns the listener's address.
func ServeRequest(t testing.TB, answer func(c net.Conn, req *http.Request)) net.Addr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	Serve(t, ln, func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		answer(c, req)
	})
	return ln.Addr()
}
