package target

// PathsHelp lists the paths the target serves, one a line, for a command's
// help.
const PathsHelp = `Paths (each takes latency=DURATION; the default path also size= and status=):
  /                       200 with the default body (-body)
  /status/NNN             status NNN (200-599)
  /slow?ms=50             the default path after ms milliseconds
  /echo                   the request as JSON (method, uri, header, body)
  /flaky?fail=K&status=503&key=X
                          the status for the first K requests of key X, then 200
  /429?after=1&times=1&key=X[&date=1]
                          429 with Retry-After for the first requests of key X
  /redirect?n=3           a chain of n redirects to /
  /redirect-host?to=HOST:PORT&path=/x
                          302 to another host of this server
  /loop                   302 to itself, forever
  /reset                  the connection reset before any answer
  /reset-mid              reset in the middle of the head
  /short                  Content-Length 1000 and only 10 body bytes
  /stall?for=10s          nothing until the duration has passed
  /drip?bytes=10&every=1s one body byte per interval
  /big?size=20MiB         a streamed body of that size
`

// The fault paths. Unless a path says otherwise, it waits the latency query
// parameter (default [Options.Latency]) before answering and ignores the
// other parameters of the default path. Parameters that do not parse get a
// 400 response.
const (
	// PathFlaky (/flaky?fail=K&status=503&key=X) answers the first K
	// requests (default 1) for key X with the status (default 503), then
	// 200 with the default body.
	PathFlaky = "/flaky"

	// PathRetryAfter (/429?after=2&times=1&key=X) answers 429 with
	// "Retry-After: <after>" (seconds, default 1) the first `times` requests
	// (default 1) for key X, then 200. With date=1 the Retry-After is an
	// HTTP-date `after` seconds from now.
	PathRetryAfter = "/429"

	// PathReset (/reset) closes the connection before writing anything,
	// with a TCP RST (SO_LINGER 0). Under HTTP/2 it resets the stream.
	PathReset = "/reset"

	// PathResetMid (/reset-mid) writes part of the status line and headers,
	// then resets the connection like [PathReset].
	PathResetMid = "/reset-mid"

	// PathShort (/short) sends "Content-Length: 1000" and only 10 body
	// bytes, then closes the connection (under HTTP/2, resets the stream).
	PathShort = "/short"

	// PathStall (/stall?for=10s) sends nothing until the duration (default
	// 10s) has passed, then answers 200 with the default body. It returns
	// early when the client goes away or the server closes.
	PathStall = "/stall"

	// PathDrip (/drip?bytes=10&every=1s) answers 200 with
	// "Content-Length: bytes", flushes the headers at once, then sends one
	// byte per `every`, flushing each, until done or the client goes away.
	// Defaults: 10 bytes, 1s.
	PathDrip = "/drip"

	// PathBig (/big?size=20MiB) answers 200 with a streamed body of that
	// size (default 20MiB), never held in memory whole.
	PathBig = "/big"

	// PathRedirect (/redirect?n=3) is a chain of n 302 redirects (default
	// 3): /redirect?n=3 → /redirect?n=2 → /redirect?n=1 → /. Other query
	// parameters are kept along the chain; n=0 answers like the default
	// path.
	PathRedirect = "/redirect"

	// PathLoop (/loop) answers 302 to itself, query included, forever.
	PathLoop = "/loop"

	// PathRedirectHost (/redirect-host?to=HOST:PORT&path=/x) answers 302 to
	// path (default /) on another host of this server; `to` must be one of
	// [Server.Addrs].
	PathRedirectHost = "/redirect-host"

	// PathStatus (/status/NNN) answers status NNN (200-599) with a one-line
	// body, or none where the status forbids one.
	PathStatus = "/status/"

	// PathEcho (/echo) answers 200 with an [Echo] in JSON describing the
	// request. A request body over 1 MiB gets 413.
	PathEcho = "/echo"

	// PathSlow (/slow?ms=50) is the default path with a latency of ms
	// milliseconds (default 50); size and status apply as on the default
	// path.
	PathSlow = "/slow"
)

// maxEchoBody bounds the request body /echo reads.
const maxEchoBody = 1 << 20

// Echo is the JSON body of [PathEcho]. Header holds every request header as
// received (Host is in Host, not in Header).
type Echo struct {
	Method        string              `json:"method"`
	URI           string              `json:"uri"`
	Proto         string              `json:"proto"`
	Host          string              `json:"host"`
	Header        map[string][]string `json:"header"`
	ContentLength int64               `json:"content_length"`
	Body          string              `json:"body"`
}
