// Package runner fetches a stream of [Job] values: a dispatcher hands each job
// to a worker when a global slot, its host's slot (over all routes) and a
// slot on some route are free, retries what the policy allows without
// holding a slot while it waits, classifies every failure, and hands one
// [report.Record] per job to a callback.
//
// It takes its HTTP clients as [Doer] values and knows nothing of flags,
// environment variables or terminals.
package runner

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/transport"
)

// Doer sends one HTTP request. *http.Client satisfies it.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// Route is one way out: a client, direct or through one proxy. With several
// routes, requests are spread over them by load: Limit and PerHost hold
// across all of them together, PerProxy on each one.
type Route struct {
	// Proxy is the proxy URL with its password redacted, or "" for a direct
	// route. It is what records show in their proxy field.
	Proxy  string
	Client Doer
	// ProxyFor, when set on a route with no Proxy, names the proxy (its
	// password redacted) that carries a request to u, or "" for none: the
	// environment's proxies apply per URL.
	ProxyFor func(u *url.URL) string
	// KeepHost, when positive, says the route gives each target host an
	// exit of its own (a proxy session per host) that ends once it has
	// been idle that long. The dispatcher then keeps each host on one
	// route (of all routes, when any has KeepHost), so that the host sees
	// one exit: it moves only when its route
	// is set aside, cools down for it or failed at the proxy, and stays on
	// the one it moves to. It remembers a host's route for KeepHost after
	// the host's last request.
	KeepHost time.Duration
}

// Options configure [Run]. Limit, PerHost and Routes must be set; the other
// zero values are usable (no retries, no rate limit, GET, no body limit...).
type Options struct {
	Limit   int // requests in flight in total, over all routes
	PerHost int // requests in flight to one host, over all routes
	// PerProxy is the requests in flight through one route; 0 (or more
	// than Limit) is Limit.
	PerProxy int
	Routes   []Route // at least one

	Method string // "" is GET
	// Header is sent with every request; read-only once Run starts. Its
	// Host, when not empty, is the requests' Host (see [http.Request]),
	// as curl sends -H 'Host: name'; the transport decides where it goes
	// on a redirect.
	Header  http.Header
	host    string // Header's Host, taken out of it
	gunzip  bool   // Header asks for gzip on the caller's behalf
	Body    []byte // request body, nil for none
	Timeout time.Duration
	MaxBody int64 // body bytes read; more is body_too_large; 0 is no limit
	// MaxBodyText is MaxBody as the user wrote it (2MiB), for the message;
	// "" gives it in bytes.
	MaxBodyText string
	Hash        bool
	SaveDir     string // write each body to a file here when set
	// saveFile creates a temporary body file; tests replace it.
	saveFile func(dir, pattern string) (bodyFile, error)
	// clock is the dispatcher's; tests replace it.
	clock      clock
	OKStatus   StatusSet
	RetryOn    RetryOn
	Retries    int
	Backoff    time.Duration
	BackoffMax time.Duration
	Rate       float64 // requests per second per host; 0 is no limit
	Adaptive   bool
	// KeepAlive says the clients keep connections alive: an attempt then
	// returns once its HTTP/1 connection is back in the pool, so that the
	// host's next request reuses it rather than dialling another.
	KeepAlive bool

	// ReadAhead bounds the jobs held at once (queued, waiting or in flight).
	// 0 picks a value from Limit alone: memory does not grow with the
	// number of routes. Jobs are read that far ahead while a slot is free
	// or the list keeps bringing new hosts; otherwise, with every slot
	// busy, about Limit jobs wait queued.
	ReadAhead int
	// MultiInput sets the input field of records.
	MultiInput bool
	// ProxyFailures consecutive proxy failures set a proxy aside for
	// ProxyCooldown; 0 picks 3 and 30s.
	ProxyFailures int
	ProxyCooldown time.Duration
	// RotateOn are the statuses by which a target says it blocked the exit
	// a proxy gave it, and BlockPattern, when set, a pattern whose match in
	// the first 64 KiB of a body says the same. Through a proxy, such an
	// answer is a blocked attempt: the proxy (or its session) gets a
	// cool-down for the host, and the URL is tried again through another
	// proxy or a fresh session, spending a retry; a 429 with no other exit
	// to go to is retried through the same one after a backoff instead.
	// Direct requests are not judged.
	RotateOn     StatusSet
	BlockPattern *regexp.Regexp
	// Budget, when positive, ends the run with a [*BudgetError] once the
	// bytes on the wire through proxies that finished attempts claimed
	// reach it; BudgetText is how the user wrote it (100KB), for the
	// message.
	Budget     int64
	BudgetText string
	// Meter, when set, is the one the routes' clients count their bytes
	// through proxies on (transport.Options.Meter): the run ends with a
	// [*BudgetError] the moment they reach its limit, the attempts in
	// flight cancelled, rather than once an attempt is over.
	Meter *transport.WireMeter
	// Unrecorded, when set, learns each attempt through a proxy of a job
	// that the run, stopped or interrupted, leaves without a record: its
	// bytes on the wire were spent all the same. retry is true for an
	// attempt after the job's first. Run calls it from its own goroutine
	// before it returns. It also learns, as an attempt of no job, the
	// bytes of a connection through a proxy that its dial spent after the
	// attempt that dialled it ended (a CONNECT answered 502 after the
	// attempt timed out, or took another connection): no record holds
	// those.
	Unrecorded func(a report.Attempt, retry bool)
	// Settle, when set, is called once every attempt is back, before Run
	// returns: it closes the connections through proxies that no request
	// took (dials still under way, connections left idle unused), whose
	// bytes then reach Unrecorded. See transport.Shared.CloseUntaken.
	Settle func()

	// Secrets are strings scrubbed from every error message.
	Secrets []string

	// Logf, when set, receives one line per retry, failure and adaptive
	// limit change. It may be called from several goroutines at once.
	Logf func(format string, args ...any)
}

// BudgetError ends a run whose bytes through proxies reached
// Options.Budget or Options.Meter's limit. The records of the URLs in
// flight are dropped, so that a resumed run fetches them again. Spent
// counts every attempt's bytes, those of the attempts the stop cancelled
// included.
type BudgetError struct {
	Budget, Spent int64
	// Text is the budget as the user wrote it, "" to give it in bytes.
	Text string
}

func (e *BudgetError) Error() string {
	budget := e.Text
	if budget == "" {
		budget = fmt.Sprintf("%d bytes", e.Budget)
	}
	return fmt.Sprintf("--budget of %s through proxies reached (%d bytes spent)", budget, e.Spent)
}

// Rotator is a route client that can give a host a fresh exit (a new proxy
// session) when the host blocked the one it had; Rotate reports whether the
// host has a fresh exit. exit names the blocked one as [ExitNamer] gave it,
// "" when unknown: an exit the host has already left (requests that were in
// flight through it come back blocked one after the other) leaves the
// host's current one in place.
type Rotator interface {
	Rotate(host, exit string) bool
}

// SentDoer is a route client that sends credentials of its own with a
// request, which the run's secrets may not hold: a proxy's password (one
// filled in from a session template), the user:password and the Basic
// token of Proxy-Authorization made of them (see [secret.UserInfo]).
// DoSent is Do that also returns them: a proxy or target may quote them
// back (a redirect's Location, a status line), and records and messages
// then read them as ***.
type SentDoer interface {
	DoSent(*http.Request) (*http.Response, []string, error)
}

// ExitNamer is a route client whose exits are more than its proxy: a proxy
// with sessions. ExitName names the exit that carried a response the
// client returned, as messages show it (the proxy as written and its
// session), or "" when it cannot tell. Messages about that response then
// name the exit rather than the route's Proxy.
type ExitNamer interface {
	ExitName(resp *http.Response) string
}

// defaultReadAhead is the jobs held at once for a total limit: enough to
// keep every slot busy across many hosts, whatever the number of routes.
func defaultReadAhead(limit int) int { return max(8192, 64*limit) }

// ErrAllProxiesDown ends a run whose every proxy has been set aside.
var ErrAllProxiesDown = errors.New("every proxy is failing")

func (o *Options) setDefaults() {
	if o.Method == "" {
		o.Method = http.MethodGet
	}
	if o.clock == nil {
		o.clock = systemClock{}
	}
	if o.saveFile == nil {
		o.saveFile = createTemp
	}
	if o.Limit < 1 {
		o.Limit = 1
	}
	if o.PerHost < 1 {
		o.PerHost = 1
	}
	if o.PerProxy < 1 || o.PerProxy > o.Limit {
		o.PerProxy = o.Limit
	}
	if o.ReadAhead <= 0 {
		o.ReadAhead = defaultReadAhead(o.Limit)
	}
	if o.ProxyFailures <= 0 {
		o.ProxyFailures = 3
	}
	if o.ProxyCooldown <= 0 {
		o.ProxyCooldown = 30 * time.Second
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 30 * time.Second
	}
	if len(o.OKStatus.ranges) == 0 {
		o.OKStatus = StatusSet{ranges: [][2]int{{200, 299}}}
	}
	if _, ok := o.Header["Host"]; ok {
		// net/http writes the request's Host and leaves the map's out;
		// in the map it would be dropped without a word.
		o.host = o.Header.Get("Host")
		o.Header = o.Header.Clone()
		o.Header.Del("Host")
	}
	// Ask for gzip and decode it here, as net/http would on its own and
	// under the same conditions, so that the header is added once rather
	// than to each request, and each worker reuses its decoder.
	if o.Header.Get("Accept-Encoding") == "" && o.Header.Get("Range") == "" && o.Method != http.MethodHead {
		h := o.Header.Clone()
		if h == nil {
			h = make(http.Header)
		}
		h.Set("Accept-Encoding", "gzip")
		o.Header = h
		o.gunzip = true
	}
	if o.Header == nil {
		// A request needs a header map, which net/http does not modify.
		o.Header = make(http.Header)
	}
}
