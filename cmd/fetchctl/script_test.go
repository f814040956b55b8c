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
	"net/url"
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
		// [proxies]: tinyproxy and microsocks are installed; under CI their
		// absence fails the script instead of skipping it.
		Condition: scriptCondition,
		Setup: func(env *testscript.Env) error {
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("XDG_CONFIG_HOME", filepath.Join(env.WorkDir, ".config"))
			env.Setenv("CI", "")
			env.Values[scriptTargetsKey{}] = map[string]*target.Server{}
			for _, kv := range os.Environ() {
				name, _, _ := strings.Cut(kv, "=")
				if strings.HasPrefix(name, "FETCHCTL_") || strings.HasSuffix(strings.ToUpper(name), "_PROXY") {
					env.Setenv(name, "")
				}
			}
			for i, addr := range srv.plain.Addrs() {
				env.Setenv("HOST"+strconv.Itoa(i), base(srv.plain.URL(i, "")))
				// host:port alone, for /redirect-host?to=
				env.Setenv("ADDR"+strconv.Itoa(i), addr)
			}
			env.Setenv("SERVER", base(srv.plain.URL(0, "")))
			env.Setenv("TLSSERVER", base(srv.tls.URL(0, "")))
			// Ports alone, for URLs that name the servers another way
			// (0.0.0.0, which environment proxy rules do not exempt).
			_, port, _ := net.SplitHostPort(srv.plain.Addrs()[0])
			env.Setenv("SERVER_PORT", port)
			_, port, _ = net.SplitHostPort(srv.tls.Addrs()[0])
			env.Setenv("TLSSERVER_PORT", port)
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
			"chop":      cmdChop,

			// Real proxies (proxy_test.go).
			"proxyd":     cmdProxyd,
			"closedport": cmdClosedPort,

			// Scaling out: shards, summarize, rate and adaptive.
			"target":     cmdTarget,
			"shardcheck": cmdShardCheck,
			"sumcmp":     cmdSumCmp,
			"timespread": cmdTimeSpread,
			"numcmp":     cmdNumCmp,
			"jsonset":    cmdJSONSet,
		},
	})
}

// cmdChop cuts the last N bytes (default 1, the final newline that txtar
// always adds) off a file: "chop FILE [N]", to make a torn last line.
func cmdChop(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: chop FILE [N]")
	}
	n := 1
	if len(args) == 2 {
		var err error
		if n, err = strconv.Atoi(args[1]); err != nil || n < 0 {
			ts.Fatalf("chop: bad count %q", args[1])
		}
	}
	data := ts.ReadFile(args[0])
	if n > len(data) {
		ts.Fatalf("chop: %s holds %d bytes, fewer than %d", args[0], len(data), n)
	}
	if err := os.WriteFile(ts.MkAbs(args[0]), []byte(data[:len(data)-n]), 0o644); err != nil {
		ts.Fatalf("chop: %v", err)
	}
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

// scriptTargetsKey keys, in each script's Values, the targets that the
// script started with the target command, by name.
type scriptTargetsKey struct{}

func scriptTargets(ts *testscript.TestScript) map[string]*target.Server {
	m, _ := ts.Value(scriptTargetsKey{}).(map[string]*target.Server)
	if m == nil {
		ts.Fatalf("target: no target table in this script's values")
	}
	return m
}

// cmdTarget gives a script loopback targets of its own, so that counters
// and limits are not shared with other scripts:
//
//	target start NAME [-hosts N] [-latency D] [-limit429 N] [-body N]
//	    starts a target; $NAME is the base URL of its first host
//	target urls NAME FILE N PATH...
//	    writes N URLs to FILE, URL i on host i%hosts with PATH i%len(PATH)
//	    and ?i=<i> (or &i=<i>) appended
//	target stats NAME PREFIX
//	    prints the target's counters and sets $PREFIX_REQUESTS,
//	    $PREFIX_TOO_MANY and $PREFIX_PEAK
//
// The target is closed when the script ends.
func cmdTarget(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: target start|urls|stats NAME ...")
	}
	targets := scriptTargets(ts)
	name := args[1]
	switch args[0] {
	case "start":
		if targets[name] != nil {
			ts.Fatalf("target %s already started", name)
		}
		fs := flag.NewFlagSet("target start", flag.ContinueOnError)
		hosts := fs.Int("hosts", 1, "listeners")
		latency := fs.Duration("latency", 0, "latency of the default path")
		limit429 := fs.Int("limit429", 0, "429 above this many in flight per host")
		body := fs.Int("body", 5, "body size of the default path")
		if err := fs.Parse(args[2:]); err != nil || fs.NArg() > 0 {
			ts.Fatalf("target start: bad options %q", args[2:])
		}
		srv, err := target.Start(target.Options{Hosts: *hosts, Latency: *latency, Limit429: *limit429, BodySize: *body})
		if err != nil {
			ts.Fatalf("target start: %v", err)
		}
		ts.Defer(srv.Close)
		targets[name] = srv
		ts.Setenv(name, base(srv.URL(0, "")))
	case "urls":
		srv := targets[name]
		if srv == nil || len(args) < 5 {
			ts.Fatalf("usage: target urls NAME FILE N PATH... (after target start NAME)")
		}
		n, err := strconv.Atoi(args[3])
		if err != nil {
			ts.Fatalf("target urls: bad count %q", args[3])
		}
		hosts, paths := len(srv.Addrs()), args[4:]
		var b strings.Builder
		for i := 0; i < n; i++ {
			p := paths[i%len(paths)]
			sep := "?"
			if strings.Contains(p, "?") {
				sep = "&"
			}
			fmt.Fprintf(&b, "%s%si=%d\n", srv.URL(i%hosts, p), sep, i)
		}
		if err := os.WriteFile(ts.MkAbs(args[2]), []byte(b.String()), 0o644); err != nil {
			ts.Fatalf("target urls: %v", err)
		}
	case "stats":
		srv := targets[name]
		if srv == nil || len(args) != 3 {
			ts.Fatalf("usage: target stats NAME PREFIX (after target start NAME)")
		}
		st := srv.Stats()
		prefix := args[2]
		ts.Setenv(prefix+"_REQUESTS", strconv.FormatInt(st.Requests, 10))
		ts.Setenv(prefix+"_TOO_MANY", strconv.FormatInt(st.TooMany, 10))
		ts.Setenv(prefix+"_PEAK", strconv.FormatInt(st.PeakInFlight, 10))
		fmt.Fprintf(ts.Stdout(), "requests=%d too_many=%d peak_in_flight=%d\n", st.Requests, st.TooMany, st.PeakInFlight)
	default:
		ts.Fatalf("target: unknown subcommand %q", args[0])
	}
}

// shardRecord is what the shard checks read from a record.
type shardRecord struct {
	Input string `json:"input"`
	Line  int64  `json:"line"`
	URL   string `json:"url"`
	Error *struct {
		Kind string `json:"kind"`
	} `json:"error"`
}

func readShardRecords(ts *testscript.TestScript, file string) []shardRecord {
	var recs []shardRecord
	sc := bufio.NewScanner(strings.NewReader(ts.ReadFile(file)))
	sc.Buffer(nil, 1<<24)
	for n := 1; sc.Scan(); n++ {
		var r shardRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			ts.Fatalf("%s line %d is not a record: %v", file, n, err)
		}
		recs = append(recs, r)
	}
	return recs
}

// shardHostKey is the documented shard key of a URL: lower-case host, a
// colon, and the port (the scheme's default when the URL names none).
func shardHostKey(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port), nil
}

// fnv1a64 is FNV-1a, 64 bit, written out from its definition so that the
// shard checks do not lean on the code they check.
func fnv1a64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// cmdShardCheck checks N shard outputs against one unsharded run of the same
// input: "shardcheck ALL SHARD0 ... SHARD(N-1)". The shards must hold every
// record of ALL (same input, line and URL) exactly once, keep each host in
// one shard, the one FNV-1a 64 of its host key modulo N names, and record
// invalid lines in shard 0 alone. It prints "records=R hosts=H shards=N".
func cmdShardCheck(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: shardcheck ALL SHARD...")
	}
	key := func(r shardRecord) string { return r.Input + "\x00" + strconv.FormatInt(r.Line, 10) }
	all := map[string]string{}
	for _, r := range readShardRecords(ts, args[0]) {
		if _, dup := all[key(r)]; dup {
			ts.Fatalf("%s: line %s:%d recorded twice", args[0], r.Input, r.Line)
		}
		all[key(r)] = r.URL
	}
	n := len(args) - 1
	seenIn := map[string]int{}
	hostShard := map[string]int{}
	for k, file := range args[1:] {
		for _, r := range readShardRecords(ts, file) {
			where := fmt.Sprintf("%s line %s:%d", file, r.Input, r.Line)
			if prev, dup := seenIn[key(r)]; dup {
				ts.Fatalf("%s: also recorded by shard %d", where, prev)
			}
			seenIn[key(r)] = k
			want, ok := all[key(r)]
			if !ok {
				ts.Fatalf("%s: not in the unsharded run", where)
			}
			if r.URL != want {
				ts.Fatalf("%s: url %q, the unsharded run has %q", where, r.URL, want)
			}
			if r.Error != nil && r.Error.Kind == "invalid_url" {
				if k != 0 {
					ts.Fatalf("%s: invalid line recorded by shard %d, want shard 0 alone", where, k)
				}
				continue
			}
			host, err := shardHostKey(r.URL)
			if err != nil {
				ts.Fatalf("%s: %v", where, err)
			}
			if prev, ok := hostShard[host]; ok && prev != k {
				ts.Fatalf("%s: host %s split over shards %d and %d", where, host, prev, k)
			}
			hostShard[host] = k
			if want := int(fnv1a64(host) % uint64(n)); want != k {
				ts.Fatalf("%s: host %s in shard %d, FNV-1a says %d", where, host, k, want)
			}
		}
	}
	if len(seenIn) != len(all) {
		for k := range all {
			if _, ok := seenIn[k]; !ok {
				in, line, _ := strings.Cut(k, "\x00")
				ts.Fatalf("shards hold %d of %d records; line %s:%s is missing", len(seenIn), len(all), in, line)
			}
		}
	}
	fmt.Fprintf(ts.Stdout(), "records=%d hosts=%d shards=%d\n", len(seenIn), len(hostShard), n)
}

// cmdSumCmp checks that two summary JSON files agree on every count, leaving
// out timing (elapsed_ms, rate_per_s, latency_ms): "sumcmp A B". by_host is
// compared host by host on total, ok, status, errors and limit.
func cmdSumCmp(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: sumcmp A B")
	}
	read := func(name string) map[string]any {
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(ts.ReadFile(name)))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			ts.Fatalf("%s: %v", name, err)
		}
		return m
	}
	a, b := read(args[0]), read(args[1])
	var diffs []string
	// Both have the same keys: a summary of results is shaped as a run's.
	keys := func(m map[string]any) string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return strings.Join(out, ",")
	}
	if ka, kb := keys(a), keys(b); ka != kb {
		diffs = append(diffs, fmt.Sprintf("keys: %s vs %s", ka, kb))
	}
	for _, f := range []string{"total", "ok", "failed", "success_ratio", "status", "errors", "attempts", "retries", "bytes", "interrupted"} {
		if x, y := lookup(a, f), lookup(b, f); x != y {
			diffs = append(diffs, fmt.Sprintf("%s: %s vs %s", f, x, y))
		}
	}
	hosts := func(m map[string]any) map[string]string {
		out := map[string]string{}
		list, _ := m["by_host"].([]any)
		for _, h := range list {
			g, _ := h.(map[string]any)
			var parts []string
			for _, f := range []string{"total", "ok", "status", "errors", "limit"} {
				parts = append(parts, f+"="+lookup(g, f))
			}
			out[lookup(g, "host")] = strings.Join(parts, " ")
		}
		return out
	}
	ha, hb := hosts(a), hosts(b)
	if len(ha) != len(hb) {
		diffs = append(diffs, fmt.Sprintf("by_host: %d hosts vs %d", len(ha), len(hb)))
	}
	for h, x := range ha {
		if y := hb[h]; x != y {
			diffs = append(diffs, fmt.Sprintf("by_host %s: %s vs %s", h, x, y))
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		ts.Fatalf("%s and %s differ:\n%s", args[0], args[1], strings.Join(diffs, "\n"))
	}
	fmt.Fprintf(ts.Stdout(), "total=%s ok=%s attempts=%s hosts=%d\n", lookup(a, "total"), lookup(a, "ok"), lookup(a, "attempts"), len(ha))
}

// cmdTimeSpread checks the start times of an NDJSON file's records:
// "timespread [-gap D] FILE MIN [MAX]". The spread from the first start to
// the last must be at least MIN (and at most MAX); with -gap, two starts on
// the same host must be at least D apart. It prints the spread.
func cmdTimeSpread(ts *testscript.TestScript, neg bool, args []string) {
	usage := "usage: timespread [-gap D] FILE MIN [MAX]"
	if neg {
		ts.Fatalf("%s", usage)
	}
	var gap time.Duration
	if len(args) > 1 && args[0] == "-gap" {
		d, err := time.ParseDuration(args[1])
		if err != nil {
			ts.Fatalf("timespread: -gap: %v", err)
		}
		gap, args = d, args[2:]
	}
	if len(args) < 2 || len(args) > 3 {
		ts.Fatalf("%s", usage)
	}
	var bounds []time.Duration
	for _, s := range args[1:] {
		d, err := time.ParseDuration(s)
		if err != nil {
			ts.Fatalf("timespread: %v", err)
		}
		bounds = append(bounds, d)
	}
	byHost := map[string][]time.Time{}
	var first, last time.Time
	sc := bufio.NewScanner(strings.NewReader(ts.ReadFile(args[0])))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var r struct {
			URL  string    `json:"url"`
			Time time.Time `json:"time"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.Time.IsZero() {
			ts.Fatalf("timespread: record without a time: %q", sc.Text())
		}
		host, err := shardHostKey(r.URL)
		if err != nil {
			ts.Fatalf("timespread: %v", err)
		}
		byHost[host] = append(byHost[host], r.Time)
		if first.IsZero() || r.Time.Before(first) {
			first = r.Time
		}
		if r.Time.After(last) {
			last = r.Time
		}
	}
	spread := last.Sub(first)
	fmt.Fprintf(ts.Stdout(), "spread=%s\n", spread.Round(10*time.Millisecond))
	if spread < bounds[0] {
		ts.Fatalf("records started within %s, want at least %s", spread, bounds[0])
	}
	if len(bounds) == 2 && spread > bounds[1] {
		ts.Fatalf("records started over %s, want at most %s", spread, bounds[1])
	}
	for host, times := range byHost {
		sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
		for i := 1; i < len(times); i++ {
			if d := times[i].Sub(times[i-1]); d < gap {
				ts.Fatalf("two requests to %s started %s apart, want at least %s", host, d, gap)
			}
		}
	}
}

// cmdNumCmp compares two numbers: "numcmp X lt|le|gt|ge|eq Y".
func cmdNumCmp(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: numcmp X lt|le|gt|ge|eq Y")
	}
	x, err1 := strconv.ParseFloat(args[0], 64)
	y, err2 := strconv.ParseFloat(args[2], 64)
	if err1 != nil || err2 != nil {
		ts.Fatalf("numcmp: %q or %q is not a number", args[0], args[2])
	}
	ok := map[string]bool{"lt": x < y, "le": x <= y, "gt": x > y, "ge": x >= y, "eq": x == y}
	got, known := ok[args[1]]
	if !known {
		ts.Fatalf("numcmp: unknown comparison %q", args[1])
	}
	if !got {
		ts.Fatalf("numcmp: %s %s %s is false", args[0], args[1], args[2])
	}
}

// cmdJSONSet sets a script variable to the value at a dotted path of a JSON
// file: "jsonset VAR FILE PATH".
func cmdJSONSet(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: jsonset VAR FILE PATH")
	}
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(ts.ReadFile(args[1])))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		ts.Fatalf("%s: %v", args[1], err)
	}
	ts.Setenv(args[0], lookup(m, args[2]))
}
