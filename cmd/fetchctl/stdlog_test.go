package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/secret"
	"github.com/fetchctl/fetchctl/internal/target"
	"github.com/fetchctl/fetchctl/internal/testnet"
)

// oversendServer answers every request with a 2-byte body and then, past
// its Content-Length, the request it read (headers and all) and some
// kilobytes more. net/http's Transport finds those bytes on the idle
// connection, logs them through the standard library's log package and
// closes the connection: closed is closed once the client has closed one.
func oversendServer(t *testing.T, useTLS bool) (url string, closed <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	scheme := "http"
	if useTLS {
		cert, err := target.LoopbackCert()
		if err != nil {
			t.Fatal(err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
		scheme = "https"
	}
	done := make(chan struct{})
	var once sync.Once
	testnet.Serve(t, ln, func(c net.Conn) {
		// Each way out below is the client closing the connection: once
		// it has seen the extra bytes (and logged them), a read ends, or
		// a write still under way fails.
		defer once.Do(func() { close(done) })
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		head, err := httputil.DumpRequest(req, false)
		if err != nil {
			return
		}
		out := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + string(head) + strings.Repeat("x", 5000)
		if _, err := io.WriteString(c, out); err != nil {
			return
		}
		io.Copy(io.Discard, c)
	})
	return scheme + "://" + ln.Addr().String() + "/", done
}

// TestStdLogMasked: what net/http's Transport logs through the standard
// library's log package (here the bytes a server sent past its
// Content-Length, which start with the request's own headers) reaches
// stderr as fetchctl's other lines do: "fetchctl: " first, no timestamp,
// the Authorization and Cookie values as ***, cut to 1 KiB, and nothing at
// all under -q.
func TestStdLogMasked(t *testing.T) {
	t.Parallel()
	const auth, cookie = "authsecret77", "cookiesecret88"
	for _, scheme := range []string{"https", "http"} {
		for _, quiet := range []bool{true, false} {
			name := scheme
			if quiet {
				name += " -q"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				url, closed := oversendServer(t, scheme == "https")
				bin, err := exec.LookPath("fetchctl")
				if err != nil {
					t.Fatal(err)
				}
				args := []string{"run", "-", "-k", "--retries", "0", "--progress", "never",
					"-H", "Authorization: Bearer " + auth, "-H", "Cookie: c=" + cookie}
				if quiet {
					args = append(args, "-q")
				}
				cmd := exec.Command(bin, args...)
				cmd.Dir = t.TempDir()
				cmd.Env = append(os.Environ(), "HOME="+cmd.Dir, "XDG_CONFIG_HOME="+cmd.Dir, "HTTPS_PROXY=", "HTTP_PROXY=", "https_proxy=", "http_proxy=")
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				stdin, err := cmd.StdinPipe()
				if err != nil {
					t.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				// stdin stays open until the Transport has dealt with the
				// extra bytes, so the run is still going when it logs.
				io.WriteString(stdin, url+"\n")
				select {
				case <-closed:
				case <-time.After(30 * time.Second):
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf("the client never closed the connection that carried extra bytes; stdout %q, stderr %.300q", stdout.String(), stderr.String())
				}
				stdin.Close()
				if err := cmd.Wait(); err != nil {
					t.Fatalf("fetchctl: %v; stderr %q", err, stderr.String())
				}
				if !strings.Contains(stdout.String(), `"ok":true`) {
					t.Errorf("record %q, want ok", stdout.String())
				}
				got := stderr.String()
				for _, s := range []string{auth, cookie} {
					if strings.Contains(got, s) {
						t.Errorf("stderr shows %q: %q", s, got)
					}
				}
				if quiet {
					if got != "" {
						t.Errorf("stderr under -q: %q, want nothing", got)
					}
					return
				}
				var logged string
				for _, line := range strings.Split(got, "\n") {
					if strings.Contains(line, "Unsolicited response") {
						logged = line
					}
				}
				if logged == "" {
					t.Fatalf("no line about the unsolicited bytes; stderr %q", got)
				}
				if want := "fetchctl: Unsolicited response"; !strings.HasPrefix(logged, want) {
					t.Errorf("logged line %.100q..., want it to start %q", logged, want)
				}
				if !strings.Contains(logged, `Authorization: ***`) || !strings.Contains(logged, `Cookie: ***`) {
					t.Errorf("logged line does not show the masked headers: %q", logged)
				}
				if n := len(logged) - len("fetchctl: "); n > 1024+len("...") {
					t.Errorf("logged line holds %d bytes of text, more than 1 KiB: %q", n, logged)
				}
			})
		}
	}
}

// TestStdLogLine: a line of the standard logger reads as fetchctl's other
// lines, whatever it quotes.
func TestStdLogLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		quiet bool
		in    string
		want  string
	}{
		{name: "known secret", in: "token s3cr3t-pw seen\n", want: "fetchctl: token *** seen\n"},
		{name: "quoted head", in: `found "HTTP/1.1 200 OK\r\nSet-Cookie: sid=unknown1\r\n\r\n"` + "\n",
			want: `fetchctl: found "HTTP/1.1 200 OK\r\nSet-Cookie: ***\r\n\r\n"` + "\n"},
		{name: "URL password", in: "dial http://u:pw@h:1/\n", want: "fetchctl: dial http://u:***@h:1/\n"},
		{name: "control characters", in: "a\x1b[31mb\nc\n", want: `fetchctl: a\x1b[31mb\x0ac` + "\n"},
		{name: "long", in: strings.Repeat("y", 5000) + "\n", want: "fetchctl: " + strings.Repeat("y", 1024) + "...\n"},
		{name: "quiet", quiet: true, in: "token s3cr3t-pw seen\n", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var red secret.Set
			red.Add("s3cr3t-pw")
			var buf bytes.Buffer
			l := &stdLog{redact: &red, quiet: tt.quiet, w: &buf}
			if n, err := l.Write([]byte(tt.in)); n != len(tt.in) || err != nil {
				t.Errorf("Write = %d, %v; want %d, nil", n, err, len(tt.in))
			}
			if got := buf.String(); got != tt.want {
				t.Errorf("wrote %q, want %q", got, tt.want)
			}
		})
	}
}
