package transport

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestDialAddrsRacesFamilies checks that the cached addresses of a host are
// raced as net.Dialer races a fresh lookup's: an IPv6 address that never
// answers costs the fallback delay, not a share of the connect timeout, and
// its dial is cancelled once IPv4 wins.
func TestDialAddrsRacesFamilies(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	v6Started := make(chan struct{})
	v6Ended := make(chan error, 1)
	d := &dialer{fallbackDelay: 50 * time.Millisecond}
	d.dialAddr = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		if net.ParseIP(host).To4() == nil {
			// A black hole: nothing answers until the dial is given up.
			close(v6Started)
			<-ctx.Done()
			v6Ended <- ctx.Err()
			return nil, ctx.Err()
		}
		var nd net.Dialer
		return nd.DialContext(ctx, network, addr)
	}
	ips := []net.IPAddr{{IP: net.ParseIP("2001:db8::1")}, {IP: net.ParseIP("127.0.0.1")}}
	// A long connect timeout: without the race the IPv6 address would hold
	// the dial for its share of it (at least 2 s).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := d.dialAddrs(ctx, "tcp", ips, port)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	if got := conn.RemoteAddr().String(); got != ln.Addr().String() {
		t.Errorf("connected to %s, want the IPv4 address %s", got, ln.Addr())
	}
	select {
	case <-v6Started:
	default:
		t.Error("the IPv6 address, listed first, was never tried")
	}
	// The IPv6 dial ends because IPv4 won, not because its share of the
	// connect timeout ran out.
	select {
	case err := <-v6Ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the IPv6 dial ended with %v, want it cancelled by the winner", err)
		}
	case <-ctx.Done():
		t.Fatal("the losing IPv6 dial was never cancelled")
	}
}

// TestDialAddrsFallbackOnFailure checks that when the first family fails at
// once the other is tried without waiting for the fallback delay.
func TestDialAddrsFallbackOnFailure(t *testing.T) {
	t.Parallel()
	d := &dialer{fallbackDelay: time.Hour}
	v4 := make(chan struct{}, 1)
	d.dialAddr = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		if net.ParseIP(host).To4() == nil {
			return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
		}
		v4 <- struct{}{}
		c1, c2 := net.Pipe()
		c2.Close()
		return c1, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := d.dialAddrs(ctx, "tcp", []net.IPAddr{{IP: net.ParseIP("::1")}, {IP: net.ParseIP("127.0.0.1")}}, "80")
	if err != nil {
		t.Fatalf("dial: %v (the fallback waited for its delay?)", err)
	}
	conn.Close()
	select {
	case <-v4:
	default:
		t.Error("the IPv4 fallback was not dialled")
	}

	// Both failing: the primary's error is the one reported.
	d.dialAddr = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: network, Addr: &net.TCPAddr{IP: net.ParseIP(addr[:len(addr)-3])}, Err: syscall.ECONNREFUSED}
	}
	_, err = d.dialAddrs(ctx, "tcp", []net.IPAddr{{IP: net.ParseIP("127.0.0.2")}, {IP: net.ParseIP("::2")}}, "80")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("both failing: %v, want connection refused", err)
	}
}
