package target

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

// TestClosedAddr checks that a connection to ClosedAddr is refused and that
// no listener can take its port over while the tests run.
func TestClosedAddr(t *testing.T) {
	addr, err := ClosedAddr()
	if err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", addr); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("dial %s: %v, want connection refused", addr, err)
	}
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		t.Errorf("a listener took %s over", addr)
	}
}
