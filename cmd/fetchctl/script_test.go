package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/fetchctl/fetchctl/internal/target"
)

var update = flag.Bool("update", false, "rewrite golden files and testscript cmp targets")

// TestMain builds the fetchctl binary once, as `make build` does, and puts
// it first on PATH: the end-to-end tests drive that binary, not this test
// process.
func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "fetchctl-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "fetchctl"), ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build fetchctl:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	os.Setenv("PATH", dir+string(filepath.ListSeparator)+os.Getenv("PATH"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// servers are shared by all scripts of one test run: a plain HTTP target
// posing as three hosts, and an HTTPS target that offers HTTP/2.
type servers struct {
	plain  *target.Server
	tls    *target.Server
	silent string // accepts connections and never says a word
}

// silentListener accepts TCP connections on loopback and holds them open
// without reading or writing, so a TLS handshake with it never completes.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}

func startServers(t *testing.T) *servers {
	t.Helper()
	plain, err := target.Start(target.Options{Hosts: 3, BodySize: 5})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(plain.Close)
	tlsSrv, err := target.Start(target.Options{Hosts: 1, BodySize: 5, TLS: true, HTTP2: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tlsSrv.Close)
	return &servers{plain: plain, tls: tlsSrv, silent: silentListener(t)}
}

func TestScripts(t *testing.T) {
	srv := startServers(t)
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		UpdateScripts:       *update,
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("XDG_CONFIG_HOME", filepath.Join(env.WorkDir, ".config"))
			env.Setenv("CI", "")
			for _, kv := range os.Environ() {
				name, _, _ := strings.Cut(kv, "=")
				if strings.HasPrefix(name, "FETCHCTL_") || strings.HasSuffix(strings.ToUpper(name), "_PROXY") {
					env.Setenv(name, "")
				}
			}
			for i := range srv.plain.Addrs() {
				env.Setenv("HOST"+strconv.Itoa(i), base(srv.plain.URL(i, "")))
			}
			env.Setenv("SERVER", base(srv.plain.URL(0, "")))
			env.Setenv("TLSSERVER", base(srv.tls.URL(0, "")))
			env.Setenv("SILENT", srv.silent)
			sum := sha256.Sum256(target.Body(5))
			env.Setenv("BODY5_SHA256", hex.EncodeToString(sum[:]))
			if err := os.WriteFile(filepath.Join(env.WorkDir, "ca.pem"), srv.tls.CertPEM(), 0o644); err != nil {
				return err
			}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"recs":      cmdRecs,
			"exitcode":  cmdExitCode,
			"jsonget":   cmdJSONGet,
			"genurls":   cmdGenURLs,
			"expand":    cmdExpand,
			"interrupt": cmdInterrupt,
			"genjunk":   cmdGenJunk,
			"reccount":  cmdRecCount,
		},
	})
}

// base is a server URL without its final slash, so scripts write $SERVER/path.
func base(u string) string { return strings.TrimSuffix(u, "/") }

// cmdRecs prints chosen fields of every record of an NDJSON file, sorted by
// input and line, one record a line: "recs FILE FIELD...". A field is a
// dotted path (error.kind); a missing one prints "-". Every line of FILE must
// be one JSON object, so this also checks that stdout holds only NDJSON.
func cmdRecs(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: recs FILE FIELD...")
	}
	data := ts.ReadFile(args[0])
	var rows []struct {
		input string
		line  float64
		text  string
	}
	sc := bufio.NewScanner(strings.NewReader(data))
	sc.Buffer(nil, 1<<24)
	n := 0
	for sc.Scan() {
		n++
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			ts.Fatalf("%s line %d is not a JSON object: %v: %q", args[0], n, err, sc.Text())
		}
		fields := make([]string, 0, len(args)-1)
		for _, f := range args[1:] {
			fields = append(fields, lookup(m, f))
		}
		in, _ := m["input"].(string)
		line, _ := strconv.ParseFloat(fmt.Sprint(m["line"]), 64)
		rows = append(rows, struct {
			input string
			line  float64
			text  string
		}{in, line, strings.Join(fields, " ")})
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].input != rows[j].input {
			return rows[i].input < rows[j].input
		}
		return rows[i].line < rows[j].line
	})
	for _, r := range rows {
		fmt.Fprintln(ts.Stdout(), r.text)
	}
}

func lookup(m map[string]any, path string) string {
	var cur any = m
	for _, part := range strings.Split(path, ".") {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[part]
			if !ok {
				return "-"
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(c) {
				return "-"
			}
			cur = c[i]
		default:
			return "-"
		}
	}
	switch v := cur.(type) {
	case string:
		return v
	case []any:
		return "[" + strconv.Itoa(len(v)) + "]"
	case map[string]any:
		b, _ := json.Marshal(v)
		return string(b)
	}
	return fmt.Sprint(cur)
}

// cmdExitCode runs a command and checks its exact exit code:
// "exitcode CODE fetchctl ARGS...". Its stdout and stderr are kept for the
// stdout and stderr commands.
func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode CODE COMMAND [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exitcode: bad code %q", args[0])
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exitcode: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Logf("stderr: %s", ts.ReadFile("stderr"))
		ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
	}
}

// cmdJSONGet prints the value at a dotted path of a JSON file:
// "jsonget FILE PATH...".
func cmdJSONGet(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: jsonget FILE PATH...")
	}
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(ts.ReadFile(args[0])))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		ts.Fatalf("%s: %v", args[0], err)
	}
	for _, p := range args[1:] {
		fmt.Fprintf(ts.Stdout(), "%s=%s\n", p, lookup(m, p))
	}
}

// cmdGenURLs writes a URL list: "genurls FILE N PATH BASE...": N URLs
// spread round-robin over the base URLs, each PATH with ?i=<n> appended.
func cmdGenURLs(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 4 {
		ts.Fatalf("usage: genurls FILE N PATH BASE...")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		ts.Fatalf("genurls: bad count %q", args[1])
	}
	var b strings.Builder
	bases := args[3:]
	sep := "?"
	if strings.Contains(args[2], "?") {
		sep = "&"
	}
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "%s%s%si=%d\n", bases[i%len(bases)], args[2], sep, i)
	}
	if err := os.WriteFile(ts.MkAbs(args[0]), []byte(b.String()), 0o644); err != nil {
		ts.Fatalf("genurls: %v", err)
	}
}

// cmdExpand replaces $NAME and ${NAME} in files with the script's
// environment: "expand FILE...".
func cmdExpand(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: expand FILE...")
	}
	for _, name := range args {
		data := os.Expand(ts.ReadFile(name), ts.Getenv)
		if err := os.WriteFile(ts.MkAbs(name), []byte(data), 0o644); err != nil {
			ts.Fatalf("expand: %v", err)
		}
	}
}

// cmdInterrupt runs a command, waits until FILE holds at least N lines,
// sends it a signal and checks its exit code:
// "interrupt INT|TERM CODE FILE N COMMAND [ARGS...]". The command's stdout
// and stderr are saved as interrupt.stdout and interrupt.stderr.
func cmdInterrupt(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 5 {
		ts.Fatalf("usage: interrupt INT|TERM CODE FILE N COMMAND [ARGS...]")
	}
	sig := map[string]os.Signal{"INT": os.Interrupt, "TERM": syscall.SIGTERM}[args[0]]
	if sig == nil {
		ts.Fatalf("interrupt: unknown signal %q", args[0])
	}
	wantCode, err1 := strconv.Atoi(args[1])
	wantLines, err2 := strconv.Atoi(args[3])
	if err1 != nil || err2 != nil {
		ts.Fatalf("interrupt: bad CODE or N")
	}
	file := ts.MkAbs(args[2])
	path, err := exec.LookPath(args[4])
	if err != nil {
		ts.Fatalf("interrupt: %v", err)
	}
	cmd := exec.Command(path, args[5:]...)
	cmd.Dir = ts.MkAbs(".")
	cmd.Env = scriptEnv(ts)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		ts.Fatalf("interrupt: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for countLines(file) < wantLines {
		select {
		case err := <-done:
			ts.Fatalf("interrupt: %s ended before %s had %d lines: %v\n%s", args[4], args[2], wantLines, err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			ts.Fatalf("interrupt: %s never reached %d lines", args[2], wantLines)
		}
	}
	if err := cmd.Process.Signal(sig); err != nil {
		ts.Fatalf("interrupt: %v", err)
	}
	var waitErr error
	select {
	case waitErr = <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		ts.Fatalf("interrupt: %s did not stop within 20s of SIG%s", args[4], args[0])
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(waitErr, &ee) {
		code = ee.ExitCode()
	} else if waitErr != nil {
		ts.Fatalf("interrupt: %v", waitErr)
	}
	_ = os.WriteFile(ts.MkAbs("interrupt.stdout"), stdout.Bytes(), 0o644)
	_ = os.WriteFile(ts.MkAbs("interrupt.stderr"), stderr.Bytes(), 0o644)
	if code != wantCode {
		ts.Fatalf("interrupt: exit code %d, want %d; stderr:\n%s", code, wantCode, stderr.String())
	}
}

// scriptEnv is the environment a script's exec would see for the variables
// fetchctl reads.
func scriptEnv(ts *testscript.TestScript) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "FETCHCTL_") || strings.HasSuffix(strings.ToUpper(name), "_PROXY") ||
			name == "HOME" || name == "XDG_CONFIG_HOME" || name == "CI" || name == "PATH" {
			continue
		}
		env = append(env, kv)
	}
	for _, name := range []string{"HOME", "XDG_CONFIG_HOME", "PATH"} {
		env = append(env, name+"="+ts.Getenv(name))
	}
	return env
}

func countLines(file string) int {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	return bytes.Count(data, []byte{'\n'})
}

// cmdGenJunk writes N lines, about 30% of them garbage (binary junk, lines
// of 20 KiB, other schemes, control characters), the rest URLs of BASE:
// "genjunk FILE N BASE".
func cmdGenJunk(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: genjunk FILE N BASE")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		ts.Fatalf("genjunk: bad count")
	}
	f, err := os.Create(ts.MkAbs(args[0]))
	if err != nil {
		ts.Fatalf("genjunk: %v", err)
	}
	w := bufio.NewWriter(f)
	huge := strings.Repeat("A", 20<<10)
	for i := 0; i < n; i++ {
		switch i % 10 {
		case 0:
			fmt.Fprintf(w, "\x00\xff\xfe%d\x01junk\n", i)
		case 3:
			fmt.Fprintf(w, "https://example.com/%s%d\n", huge, i)
		case 6:
			fmt.Fprintf(w, "gopher://example.com/%d\n", i)
		default:
			fmt.Fprintf(w, "%s/x?i=%d\n", args[2], i)
		}
	}
	if err := w.Flush(); err != nil {
		ts.Fatalf("genjunk: %v", err)
	}
	f.Close()
}

// cmdRecCount checks that an NDJSON file holds exactly one record for each
// of the lines 1..N, and prints "records=N ok=K": "reccount FILE N".
func cmdRecCount(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: reccount FILE N")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		ts.Fatalf("reccount: bad count")
	}
	f, err := os.Open(ts.MkAbs(args[0]))
	if err != nil {
		ts.Fatalf("reccount: %v", err)
	}
	defer f.Close()
	seen := make([]bool, n+1)
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	records, ok := 0, 0
	for sc.Scan() {
		var rec struct {
			Line int  `json:"line"`
			OK   bool `json:"ok"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			ts.Fatalf("reccount: record %d is not JSON: %v", records+1, err)
		}
		if rec.Line < 1 || rec.Line > n {
			ts.Fatalf("reccount: line %d out of range", rec.Line)
		}
		if seen[rec.Line] {
			ts.Fatalf("reccount: line %d has two records", rec.Line)
		}
		seen[rec.Line] = true
		records++
		if rec.OK {
			ok++
		}
	}
	if err := sc.Err(); err != nil {
		ts.Fatalf("reccount: %v", err)
	}
	if records != n {
		ts.Fatalf("reccount: %d records, want %d", records, n)
	}
	fmt.Fprintf(ts.Stdout(), "records=%d ok=%d\n", records, ok)
}
