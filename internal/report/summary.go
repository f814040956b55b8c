package report

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/fetchctl/fetchctl/internal/secret"
)

// kinds lists the error kinds in the contract's order; a kind a summary does
// not know (from a hand-edited file, say) is counted as [KindOther].
var kinds = [...]string{
	KindInvalidURL, KindDNS, KindConnect, KindTLS, KindTimeout, KindReset,
	KindProxy, KindBlocked, KindRedirect, KindBodyTooLarge, KindStatus, KindProtocol, KindOther,
}

const (
	kindInvalidURLIndex = 0
	kindOtherIndex      = len(kinds) - 1
)

func kindIndex(kind string) int {
	for i, k := range kinds {
		if k == kind {
			return i
		}
	}
	return kindOtherIndex
}

// Statuses outside 100 to 999 are not HTTP statuses and are not counted by
// status (the record still counts everywhere else).
const (
	minStatus = 100
	maxStatus = 999
)

// TopHosts is how many hosts [Result.ByHost] lists.
const TopHosts = 50

// maxGroups bounds the hosts (and, apart, the proxies) a [Summary] keeps
// apart. A host typically costs a few hundred bytes, so the bound holds the
// per-host part of the summary to a few MiB however many hosts a list names.
const maxGroups = 10000

// Summary folds records into the run's totals as they stream past, in memory
// that does not grow with the number of records: counts, a fixed-size latency
// histogram, and at most 10,000 hosts and 10,000 proxies.
//
// Past that many hosts, the host with the fewest failures (then the fewest
// records, then the longest unseen) is dropped to make room: the per-host
// figures are exact for a run naming fewer hosts, and beyond that a host is
// dropped only when every host kept has failed at least as often.
//
// Use [NewSummary]; the zero value is not usable. A Summary is not safe for
// concurrent use: it belongs to the single goroutine that writes records.
type Summary struct {
	total, ok    int64
	thisRun      int64
	attempts     int64
	withAttempts int64
	bytes        int64
	// bytes on the wire through proxies, and those of retries
	wireOut, wireIn, retryBytes int64
	status                      [maxStatus - minStatus + 1]int64
	errs                        [len(kinds)]int64
	latency                     histogram
	hosts                       groupTable
	proxies                     groupTable
	keyBuf                      []byte
}

// NewSummary returns an empty summary.
func NewSummary() *Summary {
	return &Summary{
		hosts:   newGroupTable(maxGroups),
		proxies: newGroupTable(maxGroups),
		keyBuf:  make([]byte, 0, 64),
	}
}

// Add counts a record finished by this run: in the totals, and in the rate.
// It does not keep r or anything r points to.
func (s *Summary) Add(r *Record) {
	s.thisRun++
	s.add(r)
}

// AddOld counts a record from an earlier run (one read back by summarize or
// kept by --resume): in the totals, but not in the rate, which covers this
// run only.
func (s *Summary) AddOld(r *Record) {
	s.add(r)
}

func (s *Summary) add(r *Record) {
	s.total++
	if r.OK {
		s.ok++
	}
	if minStatus <= r.Status && r.Status <= maxStatus {
		s.status[r.Status-minStatus]++
	}
	kind := -1
	if r.Error != nil {
		kind = kindIndex(r.Error.Kind)
		s.errs[kind]++
	}
	s.attempts += int64(r.Attempts)
	if r.Attempts > 0 {
		s.withAttempts++
	}
	s.bytes += r.Bytes

	// An invalid line was never fetched: it has no latency and no host.
	if r.Attempts <= 0 || kind == kindInvalidURLIndex {
		return
	}
	ms := r.DurationMS
	if !(ms >= 0) || math.IsInf(ms, 0) {
		ms = 0 // JSON cannot carry these, and no clock measures them
	}
	fine := bucketOf(ms)
	s.latency.add(ms)

	ok := r.HostKey != ""
	if ok {
		s.keyBuf = append(s.keyBuf[:0], r.HostKey...)
	} else {
		s.keyBuf, ok = appendHostKey(s.keyBuf[:0], r.URL)
	}
	if ok {
		g := s.hosts.get(s.keyBuf)
		g.add(r, kind, fine, ms)
		g.blocks += blocks(r)
		if r.HostLimit > 0 {
			// The limit the host had when its last record was made.
			g.limit = r.HostLimit
		}
		s.hosts.down(g.index)
	}
	if r.Proxy != "" {
		s.keyBuf = append(s.keyBuf[:0], r.Proxy...)
		g := s.proxies.get(s.keyBuf)
		g.add(r, kind, fine, ms)
		s.proxies.down(g.index)
	}
	s.addAttempts(r)
}

// Result is the summary of a run, as the contract's summary JSON.
//
// The counts cover every record added; ElapsedMS and RatePerS cover this run
// only (the records passed to [Summary.Add]). SuccessRatio is OK/Total,
// unrounded so that a threshold compares exactly, and 1 when there are no
// records. The maps and ByHost are never nil, so they encode as {} and []
// when empty; ByProxy is nil unless a record named a proxy.
//
// In JSON, "stopped" is always there (null unless the run stopped), and
// bytes_out, bytes_in and retry_bytes are there, 0 included, whenever
// by_proxy is, that is when a record went through a proxy; a run without
// proxies has none of the four. See [Group] for its entries.
type Result struct {
	Total        int64            `json:"total"`
	OK           int64            `json:"ok"`
	Failed       int64            `json:"failed"`
	SuccessRatio float64          `json:"success_ratio"`
	Status       map[string]int64 `json:"status"`
	Errors       map[string]int64 `json:"errors"`
	Attempts     int64            `json:"attempts"`
	Retries      int64            `json:"retries"`
	Bytes        int64            `json:"bytes"`
	ElapsedMS    float64          `json:"elapsed_ms"`
	RatePerS     float64          `json:"rate_per_s"`
	LatencyMS    Latency          `json:"latency_ms"`
	// BytesOut and BytesIn are the bytes on the wire through proxies;
	// RetryBytes those of the attempts that were retries.
	BytesOut    int64   `json:"bytes_out,omitempty"`
	BytesIn     int64   `json:"bytes_in,omitempty"`
	RetryBytes  int64   `json:"retry_bytes,omitempty"`
	Interrupted bool    `json:"interrupted"`
	Stopped     string  `json:"stopped"`
	ByHost      []Group `json:"by_host"`
	ByProxy     []Group `json:"by_proxy,omitempty"`

	// NoRecord is what the text summary's warning says held nothing when
	// a finished run has no record ("" for "the input held no URL"); it is
	// not part of the JSON.
	NoRecord string `json:"-"`
	// Proxied says that the run went through proxies: the text summary
	// then has its proxies line, 0 B included, with or without a record.
	// Not part of the JSON.
	Proxied bool `json:"-"`
	// AllRecorded says that a stopped run wrote the record of every URL
	// of its input: the text summary then does not say that its counts
	// cover only part of it. Not part of the JSON.
	AllRecorded bool `json:"-"`
}

// MarshalJSON writes res as the contract's summary JSON (see [Result]).
func (res Result) MarshalJSON() ([]byte, error) {
	out := struct {
		Total        int64            `json:"total"`
		OK           int64            `json:"ok"`
		Failed       int64            `json:"failed"`
		SuccessRatio float64          `json:"success_ratio"`
		Status       map[string]int64 `json:"status"`
		Errors       map[string]int64 `json:"errors"`
		Attempts     int64            `json:"attempts"`
		Retries      int64            `json:"retries"`
		Bytes        int64            `json:"bytes"`
		ElapsedMS    float64          `json:"elapsed_ms"`
		RatePerS     float64          `json:"rate_per_s"`
		LatencyMS    Latency          `json:"latency_ms"`
		BytesOut     *int64           `json:"bytes_out,omitempty"`
		BytesIn      *int64           `json:"bytes_in,omitempty"`
		RetryBytes   *int64           `json:"retry_bytes,omitempty"`
		Interrupted  bool             `json:"interrupted"`
		Stopped      *string          `json:"stopped"`
		ByHost       []Group          `json:"by_host"`
		ByProxy      []Group          `json:"by_proxy,omitempty"`
	}{
		Total: res.Total, OK: res.OK, Failed: res.Failed, SuccessRatio: res.SuccessRatio,
		Status: res.Status, Errors: res.Errors, Attempts: res.Attempts, Retries: res.Retries,
		Bytes: res.Bytes, ElapsedMS: res.ElapsedMS, RatePerS: res.RatePerS, LatencyMS: res.LatencyMS,
		Interrupted: res.Interrupted, ByHost: res.ByHost, ByProxy: res.ByProxy,
	}
	if res.ByProxy != nil || res.BytesOut != 0 || res.BytesIn != 0 || res.RetryBytes != 0 {
		out.BytesOut, out.BytesIn, out.RetryBytes = &res.BytesOut, &res.BytesIn, &res.RetryBytes
	}
	if res.Stopped != "" {
		out.Stopped = &res.Stopped
	}
	return json.Marshal(out)
}

// MarkStopped records that the run stopped on a failure of its own (its
// output not writable, every proxy failing), for the reason given: such a
// run is interrupted, and with no record its success ratio is 0.
func (res *Result) MarkStopped(reason string) {
	res.Interrupted = true
	res.Stopped = reason
	if res.Total == 0 {
		res.SuccessRatio = 0
	}
}

// Latency holds percentiles (nearest rank) and the maximum of the durations
// of the records that were fetched, in milliseconds, rounded to four
// significant digits (a whole millisecond from 1 s on, never finer than
// 0.001 ms). The whole-run percentiles are within 1% of the true ones, a
// group's within 3.5%; the maximum is exact.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Group is the summary of one host (Host set) or one proxy (Proxy set, its
// password as [Redacted]). Limit is the adaptive limit a host settled at, 0
// when none was set.
type Group struct {
	Host      string           `json:"host,omitempty"`
	Proxy     string           `json:"proxy,omitempty"`
	Total     int64            `json:"total"`
	OK        int64            `json:"ok"`
	Status    map[string]int64 `json:"status"`
	Errors    map[string]int64 `json:"errors"`
	LatencyMS Latency          `json:"latency_ms"`
	Limit     int              `json:"limit,omitempty"`
	// Blocks counts the attempts the target blocked (see KindBlocked).
	Blocks int64 `json:"blocks,omitempty"`
	// For a proxy: every attempt it carried, whichever proxy ended the
	// URL (Total, OK, Status and Errors count the records it ended), the
	// failed ones by kind, how many were retries, and the bytes on the
	// wire.
	Attempts int64            `json:"attempts,omitempty"`
	Failures map[string]int64 `json:"failures,omitempty"`
	Retries  int64            `json:"retries,omitempty"`
	BytesOut int64            `json:"bytes_out,omitempty"`
	BytesIn  int64            `json:"bytes_in,omitempty"`
}

// MarshalJSON writes a proxy's entry (Proxy set) with attempts, ok,
// failures ({} when none), blocks, retries, bytes_out and bytes_in, 0
// included; a host's with blocks, 0 included, and limit when set.
func (g Group) MarshalJSON() ([]byte, error) {
	if g.Proxy == "" {
		return json.Marshal(struct {
			Host      string           `json:"host,omitempty"`
			Total     int64            `json:"total"`
			OK        int64            `json:"ok"`
			Status    map[string]int64 `json:"status"`
			Errors    map[string]int64 `json:"errors"`
			LatencyMS Latency          `json:"latency_ms"`
			Limit     int              `json:"limit,omitempty"`
			Blocks    int64            `json:"blocks"`
		}{g.Host, g.Total, g.OK, g.Status, g.Errors, g.LatencyMS, g.Limit, g.Blocks})
	}
	failures := g.Failures
	if failures == nil {
		failures = map[string]int64{}
	}
	return json.Marshal(struct {
		Proxy     string           `json:"proxy"`
		Total     int64            `json:"total"`
		OK        int64            `json:"ok"`
		Status    map[string]int64 `json:"status"`
		Errors    map[string]int64 `json:"errors"`
		LatencyMS Latency          `json:"latency_ms"`
		Attempts  int64            `json:"attempts"`
		Failures  map[string]int64 `json:"failures"`
		Blocks    int64            `json:"blocks"`
		Retries   int64            `json:"retries"`
		BytesOut  int64            `json:"bytes_out"`
		BytesIn   int64            `json:"bytes_in"`
	}{g.Proxy, g.Total, g.OK, g.Status, g.Errors, g.LatencyMS, g.Attempts, failures, g.Blocks, g.Retries, g.BytesOut, g.BytesIn})
}

// Failed returns the group's records that are not ok.
func (g *Group) Failed() int64 { return g.Total - g.OK }

// Result returns the summary so far. elapsed is how long this run took: it
// gives elapsed_ms and, with the records passed to Add, rate_per_s. It may be
// called again after more records.
func (s *Summary) Result(elapsed time.Duration, interrupted bool) Result {
	res := Result{
		Total:        s.total,
		OK:           s.ok,
		Failed:       s.total - s.ok,
		SuccessRatio: 1,
		Status:       make(map[string]int64),
		Errors:       make(map[string]int64),
		Attempts:     s.attempts,
		Retries:      s.attempts - s.withAttempts,
		Bytes:        s.bytes,
		BytesOut:     s.wireOut,
		BytesIn:      s.wireIn,
		RetryBytes:   s.retryBytes,
		ElapsedMS:    roundMS(float64(elapsed) / float64(time.Millisecond)),
		LatencyMS:    s.latency.latency(),
		Interrupted:  interrupted,
	}
	switch {
	case s.total > 0:
		res.SuccessRatio = float64(s.ok) / float64(s.total)
	case interrupted:
		// A run cut short before any record proves nothing went well.
		res.SuccessRatio = 0
	}
	if secs := elapsed.Seconds(); secs > 0 {
		res.RatePerS = math.Round(float64(s.thisRun)/secs*1000) / 1000
	}
	for i, n := range s.status {
		if n > 0 {
			res.Status[strconv.Itoa(i+minStatus)] = n
		}
	}
	for i, n := range s.errs {
		if n > 0 {
			res.Errors[kinds[i]] += n
		}
	}
	res.ByHost = s.hosts.top(TopHosts, func(g *Group, key string) { g.Host = key })
	if len(s.proxies.heap) > 0 {
		res.ByProxy = s.proxies.top(len(s.proxies.heap), func(g *Group, key string) { g.Proxy = secret.URL(key) })
	}
	return res
}

// statusCount is one status seen by a group.
type statusCount struct {
	status uint16
	n      uint32
}

// group is the running summary of one host or proxy.
type group struct {
	key    string
	total  int64
	failed int64
	seen   uint64 // when last counted, to drop the longest unseen first
	index  int    // in groupTable.heap
	limit  int
	// The attempts through a proxy (a proxy's group) and the blocks (a
	// host's too); see addAttempts.
	attempts, retries, blocks int64
	bytesOut, bytesIn         int64
	failures                  [len(kinds)]uint32
	status                    []statusCount
	errs                      [len(kinds)]uint32
	latency                   sparseHistogram
}

func (g *group) add(r *Record, kind, fine int, ms float64) {
	g.total++
	if !r.OK {
		g.failed++
	}
	if minStatus <= r.Status && r.Status <= maxStatus {
		code := uint16(r.Status)
		i := slices.IndexFunc(g.status, func(c statusCount) bool { return c.status == code })
		if i < 0 {
			g.status = append(g.status, statusCount{status: code})
			i = len(g.status) - 1
		}
		g.status[i].n++
	}
	if kind >= 0 {
		g.errs[kind]++
	}
	g.latency.add(fine, ms)
}

func (g *group) result() Group {
	out := Group{
		Total:     g.total,
		OK:        g.total - g.failed,
		Status:    make(map[string]int64, len(g.status)),
		Errors:    make(map[string]int64),
		LatencyMS: g.latency.latency(),
		Limit:     g.limit,
		Attempts:  g.attempts,
		Retries:   g.retries,
		Blocks:    g.blocks,
		BytesOut:  g.bytesOut,
		BytesIn:   g.bytesIn,
	}
	for i, n := range g.failures {
		if n > 0 {
			if out.Failures == nil {
				out.Failures = map[string]int64{}
			}
			out.Failures[kinds[i]] = int64(n)
		}
	}
	for _, c := range g.status {
		out.Status[strconv.Itoa(int(c.status))] = int64(c.n)
	}
	for i, n := range g.errs {
		if n > 0 {
			out.Errors[kinds[i]] = int64(n)
		}
	}
	return out
}
