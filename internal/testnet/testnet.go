// Package testnet serves raw connections for tests: servers that speak
// frames or bytes by hand, where net/http's server would not misbehave on
// purpose. It is imported by tests only.
package testnet

import (
	"net"
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
