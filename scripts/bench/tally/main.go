// Command tally is the bookkeeping side of scripts/bench.sh: it checks what
// each tool answered, reads the target's counters, and turns the raw runs
// into the markdown tables and the pass/fail lines of the results.
//
// Usage:
//
//	tally ndjson FILE|-      fetchctl records: prints "answered distinct ok"
//	tally curl FILE          curl -w '%{http_code} %{url_effective}' lines: the same
//	tally vegeta FILE|-      vegeta encode --to json lines: the same
//	tally target STATS.json  fetchtarget counters: prints "requests conns peak_host"
//	tally nginx ACCESS.log   the bench's nginx log: "requests conns peak_host full resumed"
//	tally table RUNS.tsv SCENARIO
//	tally checks RUNS.tsv [15]   the targets of issue 5, or of issue 15
//
// It is a benchmark tool only: fetchctl never imports it, and it reads only
// the files it is given.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "tally: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) < 2 {
		return errors.New("usage: tally ndjson|curl|target|nginx|table|checks FILE [SCENARIO]")
	}
	open := func(name string) (io.ReadCloser, error) {
		if name == "-" {
			return io.NopCloser(stdin), nil
		}
		return os.Open(name)
	}
	f, err := open(args[1])
	if err != nil {
		return err
	}
	defer f.Close()
	switch args[0] {
	case "ndjson", "curl", "vegeta":
		count := countRecords
		switch args[0] {
		case "curl":
			count = countCurl
		case "vegeta":
			count = countVegeta
		}
		a, err := count(f)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%d %d %d\n", a.answered, a.distinct, a.ok)
		return err
	case "target":
		var st targetStats
		if err := json.NewDecoder(f).Decode(&st); err != nil {
			return fmt.Errorf("%s: %w", args[1], err)
		}
		var peak int64
		for _, h := range st.Hosts {
			peak = max(peak, h.PeakInFlight)
		}
		_, err = fmt.Fprintf(stdout, "%d %d %d\n", st.Requests, st.Conns, peak)
		return err
	case "nginx":
		c, err := countNginx(f)
		if err != nil {
			return fmt.Errorf("%s: %w", args[1], err)
		}
		_, err = fmt.Fprintf(stdout, "%d %d %d %d %d\n", c.requests, c.conns, c.peak, c.full, c.resumed)
		return err
	case "table", "checks":
		runs, err := readRuns(f)
		if err != nil {
			return fmt.Errorf("%s: %w", args[1], err)
		}
		if args[0] == "checks" {
			if len(args) > 2 && args[2] == "15" {
				return writeChecks15(stdout, runs)
			}
			return writeChecks(stdout, runs)
		}
		if len(args) < 3 {
			return errors.New("table needs a scenario name")
		}
		return writeTable(stdout, runs, args[2])
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// answers counts what a tool answered: every answer, the distinct URLs (or
// input lines) among them, and those with a 2xx status.
type answers struct {
	answered, distinct, ok int64
}

// bitset marks small non-negative integers (input line numbers).
type bitset []uint64

// add sets n and reports whether it was unset.
func (b *bitset) add(n int64) bool {
	i := int(n / 64)
	if i >= len(*b) {
		*b = append(*b, make([]uint64, i+1-len(*b))...)
	}
	m := uint64(1) << (n % 64)
	if (*b)[i]&m != 0 {
		return false
	}
	(*b)[i] |= m
	return true
}

// countRecords reads fetchctl's NDJSON; distinct counts distinct line
// numbers, so a million records cost a bitset of 125 KiB.
func countRecords(r io.Reader) (answers, error) {
	var a answers
	var seen bitset
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 && len(strings.TrimSpace(string(line))) > 0 {
			var rec struct {
				Line int64 `json:"line"`
				OK   bool  `json:"ok"`
			}
			if jerr := json.Unmarshal(line, &rec); jerr != nil {
				return a, fmt.Errorf("record %d: %w", a.answered+1, jerr)
			}
			a.answered++
			if rec.Line >= 0 && seen.add(rec.Line) {
				a.distinct++
			}
			if rec.OK {
				a.ok++
			}
		}
		if err == io.EOF {
			return a, nil
		}
		if err != nil {
			return a, err
		}
	}
}

// countCurl reads "CODE URL" lines written by curl's --write-out.
func countCurl(r io.Reader) (answers, error) {
	var a answers
	seen := make(map[string]struct{})
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		code, u, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if code == "" || code == "000" {
			// 000: no response (curl could not connect, or timed out).
			continue
		}
		a.answered++
		if _, dup := seen[u]; !dup {
			seen[u] = struct{}{}
			a.distinct++
		}
		if c, err := strconv.Atoi(code); err == nil && c >= 200 && c <= 299 {
			a.ok++
		}
	}
	return a, sc.Err()
}

// countVegeta reads the JSON lines of `vegeta encode --to json`; a code of
// 0 is no response.
func countVegeta(r io.Reader) (answers, error) {
	var a answers
	seen := make(map[string]struct{})
	dec := json.NewDecoder(bufio.NewReaderSize(r, 1<<20))
	for {
		var res struct {
			Code int    `json:"code"`
			URL  string `json:"url"`
		}
		if err := dec.Decode(&res); err == io.EOF {
			return a, nil
		} else if err != nil {
			return a, fmt.Errorf("result %d: %w", a.answered+1, err)
		}
		if res.Code == 0 {
			continue
		}
		a.answered++
		if _, dup := seen[res.URL]; !dup {
			seen[res.URL] = struct{}{}
			a.distinct++
		}
		if res.Code >= 200 && res.Code <= 299 {
			a.ok++
		}
	}
}

type targetStats struct {
	Requests int64 `json:"requests"`
	Conns    int64 `json:"conns"`
	Hosts    []struct {
		PeakInFlight int64 `json:"peak_in_flight"`
	} `json:"hosts"`
}

// runRow is one timed run of one tool, a line of RUNS.tsv.
type runRow struct {
	scenario, tool         string
	run                    int
	urls, hosts, perHost   int64
	ideal                  float64 // seconds; 0 when the scenario has none
	wall, user, sys        float64
	rssKiB                 int64
	requests, conns, peak  int64 // peak: -1 when the server could not tell
	answered, distinct, ok int64
	exit                   int
	targetCPU              float64
	// TLS handshakes the server counted, full and resumed; -1 when it
	// could not count them.
	tlsFull, tlsResumed int64
}

// runColumns is the header of RUNS.tsv, in row order.
var runColumns = []string{
	"scenario", "tool", "run", "urls", "hosts", "per_host", "ideal_s",
	"wall_s", "user_s", "sys_s", "max_rss_kib",
	"requests", "conns", "peak_host", "answered", "distinct", "ok", "exit",
	"target_cpu_s", "tls_full", "tls_resumed",
}

func readRuns(r io.Reader) ([]runRow, error) {
	var rows []runRow
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		text := sc.Text()
		if text == "" || strings.HasPrefix(text, "scenario\t") || strings.HasPrefix(text, "#") {
			continue
		}
		f := strings.Split(text, "\t")
		if len(f) != len(runColumns) {
			return nil, fmt.Errorf("line %d: %d fields, want %d", n, len(f), len(runColumns))
		}
		var row runRow
		var errs []error
		i64 := func(s string) int64 {
			v, err := strconv.ParseInt(s, 10, 64)
			errs = append(errs, err)
			return v
		}
		f64 := func(s string) float64 {
			v, err := strconv.ParseFloat(s, 64)
			errs = append(errs, err)
			return v
		}
		row.scenario, row.tool = f[0], f[1]
		row.run = int(i64(f[2]))
		row.urls, row.hosts, row.perHost = i64(f[3]), i64(f[4]), i64(f[5])
		row.ideal = f64(f[6])
		row.wall, row.user, row.sys = f64(f[7]), f64(f[8]), f64(f[9])
		row.rssKiB = i64(f[10])
		row.requests, row.conns, row.peak = i64(f[11]), i64(f[12]), i64(f[13])
		row.answered, row.distinct, row.ok = i64(f[14]), i64(f[15]), i64(f[16])
		row.exit = int(i64(f[17]))
		row.targetCPU = f64(f[18])
		row.tlsFull, row.tlsResumed = i64(f[19]), i64(f[20])
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		rows = append(rows, row)
	}
	return rows, sc.Err()
}

// group is the runs of one tool on one list size, with the medians.
type group struct {
	tool  string
	urls  int64
	rows  []runRow
	ideal float64
	hosts int64
	per   int64

	wall, cpu, rssMiB, conns, peak, targetCPU float64
	tlsFull, tlsResumed                       float64 // NaN when not counted
	once                                      bool    // every run answered every URL exactly once
	onceNote                                  string
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func pick(rows []runRow, f func(runRow) float64) []float64 {
	out := make([]float64, len(rows))
	for i, r := range rows {
		out[i] = f(r)
	}
	return out
}

// groups gathers the runs of scenario by tool and list size, in the order
// they first appear.
func groups(rows []runRow, scenario string) []*group {
	var gs []*group
	find := func(tool string, urls int64) *group {
		for _, g := range gs {
			if g.tool == tool && g.urls == urls {
				return g
			}
		}
		g := &group{tool: tool, urls: urls}
		gs = append(gs, g)
		return g
	}
	for _, r := range rows {
		if r.scenario != scenario {
			continue
		}
		g := find(r.tool, r.urls)
		g.rows = append(g.rows, r)
	}
	for _, g := range gs {
		r0 := g.rows[0]
		g.ideal, g.hosts, g.per = r0.ideal, r0.hosts, r0.perHost
		g.wall = median(pick(g.rows, func(r runRow) float64 { return r.wall }))
		g.cpu = median(pick(g.rows, func(r runRow) float64 { return r.user + r.sys }))
		g.rssMiB = median(pick(g.rows, func(r runRow) float64 { return float64(r.rssKiB) / 1024 }))
		g.conns = median(pick(g.rows, func(r runRow) float64 { return float64(r.conns) }))
		g.peak = median(pick(g.rows, func(r runRow) float64 { return counted(r.peak) }))
		g.targetCPU = median(pick(g.rows, func(r runRow) float64 { return r.targetCPU }))
		g.tlsFull = median(pick(g.rows, func(r runRow) float64 { return counted(r.tlsFull) }))
		g.tlsResumed = median(pick(g.rows, func(r runRow) float64 { return counted(r.tlsResumed) }))
		g.once = true
		var notes []string
		for _, r := range g.rows {
			// Retries are off, so the target must have seen each URL once too.
			if r.answered == r.urls && r.distinct == r.urls && r.ok == r.urls && r.requests == r.urls {
				continue
			}
			g.once = false
			notes = append(notes, fmt.Sprintf("run %d: %d answers, %d distinct, %d ok, %d requests", r.run, r.answered, r.distinct, r.ok, r.requests))
		}
		g.onceNote = strings.Join(notes, "; ")
	}
	return gs
}

// counted is n, or NaN for -1 (not counted).
func counted(n int64) float64 {
	if n < 0 {
		return math.NaN()
	}
	return float64(n)
}

func fmtCount(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	n := int64(math.Round(v))
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func writeTable(w io.Writer, rows []runRow, scenario string) error {
	gs := groups(rows, scenario)
	if len(gs) == 0 {
		_, err := fmt.Fprintf(w, "(no runs)\n")
		return err
	}
	withIdeal := gs[0].ideal > 0
	withTLS := strings.HasSuffix(scenario, "-TLS")
	multiSize := false
	for _, g := range gs {
		multiSize = multiSize || g.urls != gs[0].urls
	}
	var b strings.Builder
	head := []string{"tool"}
	if multiSize {
		head = append(head, "URLs")
	}
	head = append(head, "runs", "wall s", "URLs/s", "CPU s", "CPU s/1k URLs", "peak RSS MiB", "conns dialled", "peak in flight/host", "target CPU s")
	if withTLS {
		head = append(head, "TLS full", "TLS resumed")
	}
	if withIdeal {
		head = append(head, "efficiency")
	}
	head = append(head, "each URL once")
	b.WriteString("| " + strings.Join(head, " | ") + " |\n")
	b.WriteString(strings.Repeat("| --- ", len(head)) + "|\n")
	for _, g := range gs {
		cells := []string{g.tool}
		if multiSize {
			cells = append(cells, fmtCount(float64(g.urls)))
		}
		cells = append(cells,
			strconv.Itoa(len(g.rows)),
			fmt.Sprintf("%.2f", g.wall),
			fmtCount(float64(g.urls)/g.wall),
			fmt.Sprintf("%.2f", g.cpu),
			fmt.Sprintf("%.3f", g.cpu/float64(g.urls)*1000),
			fmt.Sprintf("%.1f", g.rssMiB),
			fmtCount(g.conns),
			fmtCount(g.peak),
			fmt.Sprintf("%.2f", g.targetCPU),
		)
		if withTLS {
			cells = append(cells, fmtCount(g.tlsFull), fmtCount(g.tlsResumed))
		}
		if withIdeal {
			cells = append(cells, fmt.Sprintf("%.2f", g.ideal/g.wall))
		}
		once := "yes"
		if !g.once {
			once = "NO (" + g.onceNote + ")"
		}
		cells = append(cells, once)
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeChecks prints one line per target of the issue that these runs can
// judge, each "met" or "NOT met" with the figures it compared.
func writeChecks(w io.Writer, rows []runRow) error {
	var lines []string
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	get := func(gs []*group, tool string) *group {
		for _, g := range gs {
			if g.tool == tool {
				return g
			}
		}
		return nil
	}
	s1 := groups(rows, "S1")
	if f := get(s1, "fetchctl"); f != nil {
		if c := get(s1, "curl"); c != nil {
			ratio := f.wall / c.wall
			lines = append(lines, fmt.Sprintf("S1 wall ≤ 0.8× curl's: %.2f s vs %.2f s = %.2f×: %s", f.wall, c.wall, ratio, verdict(ratio <= 0.8)))
		} else {
			lines = append(lines, "S1 wall ≤ 0.8× curl's: not judged (curl skipped)")
		}
		capN := float64(f.hosts * f.per)
		lines = append(lines, fmt.Sprintf("S1 conns dialled ≤ hosts × per-host: %s ≤ %s: %s", fmtCount(f.conns), fmtCount(capN), verdict(f.conns <= capN)))
	}
	s2 := groups(rows, "S2")
	if f := get(s2, "fetchctl"); f != nil {
		eff := f.ideal / f.wall
		lines = append(lines,
			fmt.Sprintf("S2 efficiency ≥ 0.95: %.3f (%.2f s for an ideal %.2f s): %s", eff, f.wall, f.ideal, verdict(eff >= 0.95)),
			fmt.Sprintf("S2 peak in flight per host = %d: %s: %s", f.per, fmtCount(f.peak), verdict(f.peak == float64(f.per))))
		capN := float64(f.hosts * f.per)
		lines = append(lines, fmt.Sprintf("S2 conns dialled ≤ hosts × per-host: %s ≤ %s: %s", fmtCount(f.conns), fmtCount(capN), verdict(f.conns <= capN)))
	}
	s3 := groups(rows, "S3")
	var big, small *group
	for _, g := range s3 {
		if g.tool != "fetchctl" {
			continue
		}
		if big == nil || g.urls > big.urls {
			big = g
		}
		if small == nil || g.urls < small.urls {
			small = g
		}
	}
	if big != nil {
		lines = append(lines, fmt.Sprintf("S3 peak RSS for %s URLs ≤ 40 MiB: %.1f MiB: %s", fmtCount(float64(big.urls)), big.rssMiB, verdict(big.rssMiB <= 40)))
		if small != nil && small != big {
			ratio := big.rssMiB / small.rssMiB
			lines = append(lines, fmt.Sprintf("S3 peak RSS %s URLs ≤ 1.3× %s URLs: %.1f / %.1f MiB = %.2f×: %s",
				fmtCount(float64(big.urls)), fmtCount(float64(small.urls)), big.rssMiB, small.rssMiB, ratio, verdict(ratio <= 1.3)))
		}
	}
	for _, sc := range []string{"S1", "S2", "S3"} {
		for _, g := range groups(rows, sc) {
			if g.tool == "fetchctl" {
				lines = append(lines, fmt.Sprintf("%s fetchctl (%s URLs) answered every URL exactly once: %s", sc, fmtCount(float64(g.urls)), verdict(g.once)))
			}
		}
	}
	for _, l := range lines {
		if _, err := fmt.Fprintf(w, "- %s\n", l); err != nil {
			return err
		}
	}
	return nil
}
