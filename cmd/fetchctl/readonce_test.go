//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fetchctl/fetchctl/internal/target"
)

// TestNamedFilesReadOnce: the files a run reads besides its inputs
// (--cacert, --config, --proxy-file, --data @FILE) are read once, so that
// a pipe works as a regular file does: process substitution
// (/dev/fd/N), /dev/stdin when the URLs come from a file, and a FIFO
// with one writer, with --dry-run and without.
func TestNamedFilesReadOnce(t *testing.T) {
	t.Parallel()
	tlsSrv, err := target.Start(target.Options{Hosts: 1, BodySize: 5, TLS: true, HTTP2: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tlsSrv.Close)
	// /config answers 200 only to the header the config file sets, /data
	// only to the body --data gives.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch {
		case r.URL.Path == "/config" && r.Header.Get("X-Check") != "from config":
			w.WriteHeader(http.StatusTeapot)
		case r.URL.Path == "/data" && string(body) != "the body":
			w.WriteHeader(http.StatusTeapot)
		}
	}))
	t.Cleanup(plain.Close)
	proxy := newForwardProxy(t, "", "")

	tests := []struct {
		name  string
		url   string
		flag  string // takes the file's path
		data  string
		proxy bool // the record must name a proxy
	}{
		{name: "cacert", url: tlsSrv.URL(0, "/"), flag: "--cacert", data: string(tlsSrv.CertPEM())},
		{name: "config", url: plain.URL + "/config", flag: "--config", data: "header:\n  - 'X-Check: from config'\n"},
		{name: "proxy-file", url: plain.URL + "/", flag: "--proxy-file", data: "http://" + proxy.hostPort() + "\n", proxy: true},
		{name: "data", url: plain.URL + "/data", flag: "--data", data: "the body"},
	}
	for _, tt := range tests {
		for _, how := range []string{"fd", "stdin", "fifo"} {
			for _, dry := range []bool{false, true} {
				name := tt.name + "/" + how
				if dry {
					name += "/dry-run"
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					dir := t.TempDir()
					list := filepath.Join(dir, "urls.txt")
					if err := os.WriteFile(list, []byte(tt.url+"\n"), 0o600); err != nil {
						t.Fatal(err)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer cancel()
					var path string
					var feed func() // writes the file's contents once
					var extra []*os.File
					var stdin io.Reader
					switch how {
					case "fd":
						r, w, err := os.Pipe()
						if err != nil {
							t.Fatal(err)
						}
						t.Cleanup(func() { r.Close(); w.Close() })
						extra, path = []*os.File{r}, "/dev/fd/3"
						feed = func() {
							io.WriteString(w, tt.data)
							w.Close()
						}
					case "stdin":
						stdin, path = strings.NewReader(tt.data), "/dev/stdin"
						feed = func() {}
					case "fifo":
						path = filepath.Join(dir, "file.fifo")
						if err := syscall.Mkfifo(path, 0o600); err != nil {
							t.Fatal(err)
						}
						feed = func() {
							go func() {
								// One writer, as `cat root.pem > fifo`.
								w, err := os.OpenFile(path, os.O_WRONLY, 0)
								if err != nil {
									return
								}
								io.WriteString(w, tt.data)
								w.Close()
							}()
						}
					}
					arg := []string{tt.flag, path}
					if tt.flag == "--data" {
						arg = []string{"--data", "@" + path}
					}
					args := append([]string{"run", "-q", "--progress", "never"}, arg...)
					if dry {
						args = append(args, "--dry-run")
					}
					cmd := fetchctlCmd(t, ctx, dir, append(args, list)...)
					cmd.ExtraFiles = extra
					cmd.Stdin = stdin
					var stdout, stderr bytes.Buffer
					cmd.Stdout, cmd.Stderr = &stdout, &stderr
					if err := cmd.Start(); err != nil {
						t.Fatal(err)
					}
					feed()
					if err := waitEnd(t, cmd, &stderr, "its files were written"); err != nil {
						t.Fatalf("fetchctl: %v; stderr: %s", err, stderr.String())
					}
					if dry {
						return
					}
					var rec struct {
						OK     bool   `json:"ok"`
						Status int    `json:"status"`
						Proxy  string `json:"proxy"`
						Error  any    `json:"error"`
					}
					if err := json.Unmarshal(stdout.Bytes(), &rec); err != nil {
						t.Fatalf("record %q: %v", stdout.String(), err)
					}
					if !rec.OK || (rec.Proxy != "") != tt.proxy {
						t.Errorf("record %s, want ok (through the proxy: %v)", stdout.String(), tt.proxy)
					}
				})
			}
		}
	}
}

// TestSignalWhileReadingNamedFile: SIGINT or SIGTERM while the run is
// still being prepared, blocked reading a file it was given (a FIFO no one
// writes to, as --config, --proxy-file, --cacert or --data @FILE), ends it
// at once with 130 or 143 and one line on stderr.
func TestSignalWhileReadingNamedFile(t *testing.T) {
	t.Parallel()
	for _, flag := range []string{"--config", "--proxy-file", "--cacert", "--data"} {
		for _, tc := range []struct {
			sig  syscall.Signal
			code int
		}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
			t.Run(flag+"/"+tc.sig.String(), func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				fifo := filepath.Join(dir, "file.fifo")
				if err := syscall.Mkfifo(fifo, 0o600); err != nil {
					t.Fatal(err)
				}
				list := filepath.Join(dir, "urls.txt")
				if err := os.WriteFile(list, []byte("http://127.0.0.1:9/\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				arg := fifo
				if flag == "--data" {
					arg = "@" + fifo
				}
				cmd := fetchctlCmd(t, ctx, dir, "run", "-q", flag, arg, list)
				var stderr strings.Builder
				cmd.Stderr = &stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				blockedInFIFOOpen(t, cmd.Process.Pid)
				if err := cmd.Process.Signal(tc.sig); err != nil {
					t.Fatal(err)
				}
				err := waitEnd(t, cmd, &stderr, "one "+tc.sig.String()+" while it opened "+flag)
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != tc.code {
					t.Fatalf("fetchctl ended with %v, want exit %d; stderr: %s", err, tc.code, stderr.String())
				}
				if lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "fetchctl: ") {
					t.Errorf("stderr %q, want one line", stderr.String())
				}
			})
		}
	}
}

// TestNamedFileIsStdinWithStdinURLs: a file the run reads that is stdin
// (/dev/stdin, /dev/fd/0, or the file stdin comes from) while stdin is
// also the URL list is exit 2 before anything is fetched: one of the two
// would find it empty.
func TestNamedFileIsStdinWithStdinURLs(t *testing.T) {
	t.Parallel()
	for _, flag := range []string{"--config", "--proxy-file", "--cacert", "--data"} {
		for _, path := range []string{"/dev/stdin", "/dev/fd/0", "same"} {
			for _, inputs := range [][]string{{"-"}, nil} {
				name := flag + "/" + strings.ReplaceAll(path, "/", "_") + "/" + strings.Join(append([]string{"args"}, inputs...), "")
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					dir := t.TempDir()
					list := filepath.Join(dir, "urls.txt")
					if err := os.WriteFile(list, []byte("http://127.0.0.1:9/\n"), 0o600); err != nil {
						t.Fatal(err)
					}
					f, err := os.Open(list)
					if err != nil {
						t.Fatal(err)
					}
					defer f.Close()
					arg := path
					if path == "same" {
						arg = list
					}
					if flag == "--data" {
						arg = "@" + arg
					}
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer cancel()
					cmd := fetchctlCmd(t, ctx, dir, append([]string{"run", "-q", flag, arg}, inputs...)...)
					cmd.Stdin = f
					var stdout, stderr bytes.Buffer
					cmd.Stdout, cmd.Stderr = &stdout, &stderr
					err = cmd.Run()
					var exit *exec.ExitError
					if !errors.As(err, &exit) || exit.ExitCode() != 2 {
						t.Fatalf("fetchctl ended with %v, want exit 2; stdout %q; stderr %q", err, stdout.String(), stderr.String())
					}
					if msg := stderr.String(); !strings.Contains(msg, flag) || !strings.Contains(msg, "stdin") || strings.Count(msg, "\n") != 1 {
						t.Errorf("stderr %q, want one line naming %s and stdin", msg, flag)
					}
				})
			}
		}
	}
}
