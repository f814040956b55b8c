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
	"sync/atomic"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/secret"
	"github.com/fetchctl/fetchctl/internal/target"
	"github.com/fetchctl/fetchctl/internal/testnet"
)

// oversendServer answers its first connection's request with a 2-byte
// body and then, past its Content-Length, the request it read (headers and
// all) and some kilobytes more; later connections get the body alone.
// net/http's Transport finds the extra bytes on the idle connection, logs
// them through the standard library's log package and closes it. closed
// is closed once the client has closed the first connection.
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
	var conns atomic.Int64
	testnet.Serve(t, ln, func(c net.Conn) {
		first := conns.Add(1) == 1
		if first {
			// Each way out below is the client closing the connection:
			// a read ends, or a write still under way fails.
			defer close(done)
		}
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		head, err := httputil.DumpRequest(req, false)
		if err != nil {
			return
		}
		out := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
		if first {
			out += string(head) + strings.Repeat("x", 5000)
		}
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
// all under -q. Over plain http the client may find the extra bytes only
// when the next request would take the connection, and may say nothing:
// a second URL makes it look, and the line is checked when there is one.
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
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				stdin, err := cmd.StdinPipe()
				if err != nil {
					t.Fatal(err)
				}
				stdout, err := cmd.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				records := make(chan string, 2)
				go func() {
					defer close(records)
					sc := bufio.NewScanner(stdout)
					for sc.Scan() {
						records <- sc.Text()
					}
				}()
				fail := func(format string, args ...any) {
					t.Helper()
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf(format+"; stderr %.500q", append(args, stderr.String())...)
				}
				timeout := time.After(30 * time.Second)
				// stdin stays open until the client has dealt with the
				// extra bytes, so the run is still going when it logs.
				io.WriteString(stdin, url+"\n")
				var first string
				select {
				case first = <-records:
				case <-timeout:
					fail("no record")
				}
				if !strings.Contains(first, `"ok":true`) {
					t.Errorf("record %q, want ok", first)
				}
				if scheme == "http" {
					io.WriteString(stdin, url+"again\n")
				}
				select {
				case <-closed:
				case <-timeout:
					fail("the client never closed the connection that carried extra bytes")
				}
				stdin.Close()
				for range records {
				}
				if err := cmd.Wait(); err != nil {
					t.Fatalf("fetchctl: %v; stderr %q", err, stderr.String())
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
				// Over HTTPS net/http logs the bytes; plain-http GETs go
				// through the transport's own HTTP/1.1 path, which says it
				// in its words.
				mark, want := "Unsolicited response", "fetchctl: Unsolicited response"
				if scheme == "http" {
					mark, want = "bytes past the end of a response", "fetchctl: bytes past the end of a response from "
				}
				var logged string
				for _, line := range strings.Split(got, "\n") {
					if strings.Contains(line, mark) {
						logged = line
					}
				}
				if logged == "" {
					t.Fatalf("no line about the unsolicited bytes; stderr %q", got)
				}
				if !strings.HasPrefix(logged, want) {
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
