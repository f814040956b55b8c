package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/target"
)

// nginxPath finds Debian's nginx (apt-get install nginx; .ci/run installs
// it). Without it the test is skipped, except under CI, where it fails.
func nginxPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/sbin/nginx", "nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("nginx is not installed: CI runs the nginx tests (apt-get install nginx)")
	}
	t.Skip("nginx is not installed (apt-get install nginx); skipping the test against it")
	return ""
}

// startNginx runs nginx in the foreground (one worker, logging to stderr)
// on a free port of 127.0.0.1, with site as its server block's body, and
// returns once nginx said it started its worker, which it does after
// opening its listener. It returns the address and the access log's path;
// nginx stops at cleanup.
func startNginx(t *testing.T, site string) (addr, accessLog string) {
	t.Helper()
	bin := nginxPath(t)
	dir := t.TempDir()
	certFile, keyFile, err := target.WriteLoopbackCert(dir)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	ln.Close()
	accessLog = filepath.Join(dir, "access.log")
	conf := fmt.Sprintf(`daemon off;
worker_processes 1;
user root;
error_log stderr notice;
pid %[1]s/nginx.pid;
events { worker_connections 1024; }
http {
	access_log %[2]s;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server {
		listen %[3]s ssl http2;
		ssl_certificate %[4]s;
		ssl_certificate_key %[5]s;
		%[6]s
	}
}
`, dir, accessLog, addr, certFile, keyFile, site)
	confFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", confFile)
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The master logs "start worker process" once its listeners are open;
	// a failure to start ends the output with the reason.
	var said []string
	started := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		said = append(said, sc.Text())
		if strings.Contains(sc.Text(), "start worker process") {
			started = true
			break
		}
	}
	drained := make(chan struct{})
	go func() {
		io.Copy(io.Discard, out)
		close(drained)
	}()
	stop := func() {
		// SIGTERM: the master stops its worker before it exits; the
		// output ends when both have.
		cmd.Process.Signal(syscall.SIGTERM)
		<-drained
		cmd.Wait()
	}
	if !started {
		stop()
		t.Fatalf("nginx did not start: %s", strings.Join(said, "\n"))
	}
	t.Cleanup(stop)
	return addr, accessLog
}

// TestNginxReturn444OverHTTP2: nginx's `return 444` on an http2 listener
// resets every stream; net/http sends the request again and again on new
// connections (golang/go#52459). One attempt must reach nginx a handful of
// times at most, end at once as kind protocol, and not be retried by
// default.
func TestNginxReturn444OverHTTP2(t *testing.T) {
	t.Parallel()
	addr, accessLog := startNginx(t, "location / { return 444; }")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "urls.txt"), []byte("https://"+addr+"/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const timeout = 5 * time.Second
	res := runFetchctl(t, dir, nil, "run", "-k", "-v", "--http2", "--timeout", timeout.String(), "--retries", "1",
		"--progress", "never", "-o", "out.ndjson", "urls.txt")
	recs := readRecords(t, filepath.Join(dir, "out.ndjson"))
	if len(recs) != 1 {
		t.Fatalf("%d records; stderr %q", len(recs), res.stderr)
	}
	r := recs[0]
	if r.Error == nil || (r.Error.Kind != "protocol" && r.Error.Kind != "reset") {
		t.Errorf("error %+v, want kind protocol or reset", r.Error)
	}
	// fetchctl has exited: every request nginx took is in its log.
	n := countLines(accessLog)
	t.Logf("nginx logged %d requests for %d attempts: %+v", n, r.Attempts, r.Error)
	if r.Attempts < 1 || n > 5*r.Attempts {
		t.Errorf("nginx logged %d requests for %d attempts, want at most 5 per attempt", n, r.Attempts)
	}
	var rec struct {
		DurationMS float64 `json:"duration_ms"`
	}
	if out, err := os.ReadFile(filepath.Join(dir, "out.ndjson")); err == nil {
		_ = json.Unmarshal(out, &rec)
	}
	if rec.DurationMS >= float64(timeout/time.Millisecond) {
		t.Errorf("the URL took %.0fms, past --timeout %s", rec.DurationMS, timeout)
	}
}
