package target

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Real proxies for tests come from Debian's packages: apt-get install
// tinyproxy microsocks.

// ProxyPath finds the binary of a proxy daemon (tinyproxy, microsocks) on
// PATH or in the system folders Debian installs it in.
func ProxyPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed (apt-get install tinyproxy microsocks)", name)
}

// Daemon is a proxy program running on a loopback port. Stop ends it; it is
// safe to call more than once.
type Daemon struct {
	Addr string // 127.0.0.1:port
	stop func()
	once sync.Once
}

// Stop kills the daemon and waits for it to exit.
func (d *Daemon) Stop() { d.once.Do(d.stop) }

// TinyproxyOptions configure [StartTinyproxy].
type TinyproxyOptions struct {
	User, Pass string // basic auth when User is set
	Via        bool   // add tinyproxy's Via header to forwarded requests
}

// StartTinyproxy runs tinyproxy in the foreground on a free loopback port,
// its config written into dir: loopback clients only, CONNECT to every port
// (no ConnectPort line), logging to stderr.
func StartTinyproxy(dir string, o TinyproxyOptions) (*Daemon, error) {
	return startDaemon("tinyproxy", func(port int) ([]string, error) {
		conf := filepath.Join(dir, fmt.Sprintf("tinyproxy-%d.conf", port))
		text := fmt.Sprintf("Listen 127.0.0.1\nPort %d\nTimeout 30\nMaxClients 128\nAllow 127.0.0.1\nLogLevel Error\n", port)
		if !o.Via {
			text += "DisableViaHeader Yes\n"
		}
		if o.User != "" {
			text += fmt.Sprintf("BasicAuth %s %s\n", o.User, o.Pass)
		}
		return []string{"-d", "-c", conf}, os.WriteFile(conf, []byte(text), 0o600)
	})
}

// StartMicrosocks runs microsocks on a free loopback port with user and
// password authentication.
func StartMicrosocks(user, pass string) (*Daemon, error) {
	return startDaemon("microsocks", func(port int) ([]string, error) {
		return []string{"-i", "127.0.0.1", "-p", strconv.Itoa(port), "-u", user, "-P", pass}, nil
	})
}

// LockedBuffer is a bytes.Buffer that one goroutine (a daemon's output, a
// process's stdout) may write while another reads it. The zero value is
// ready to use.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// freeAddr returns a loopback address free at the time of the call, for a
// program that binds it itself.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr, nil
}

// startDaemon runs the named binary with args(port) on a free loopback port
// and returns once it accepts connections. A port taken by someone else
// between the pick and the bind gets another try.
func startDaemon(name string, args func(port int) ([]string, error)) (*Daemon, error) {
	bin, err := ProxyPath(name)
	if err != nil {
		return nil, err
	}
	var out *LockedBuffer
	for range 3 {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		_, p, _ := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(p)
		argv, err := args(port)
		if err != nil {
			return nil, err
		}
		out = &LockedBuffer{}
		cmd := exec.Command(bin, argv...)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		exited := make(chan struct{})
		go func() {
			cmd.Wait()
			close(exited)
		}()
		d := &Daemon{Addr: addr, stop: func() {
			cmd.Process.Kill()
			<-exited
		}}
		if awaitListening(addr, exited, 5*time.Second) {
			return d, nil
		}
		d.Stop()
	}
	return nil, fmt.Errorf("%s did not start listening; its output:\n%s", name, out.String())
}

// awaitListening polls addr until it accepts a connection, the process
// exits, or limit passes.
func awaitListening(addr string, exited <-chan struct{}, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return true
		}
		select {
		case <-exited:
			return false
		case <-tick.C:
		}
	}
	return false
}
