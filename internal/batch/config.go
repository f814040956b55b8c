package batch

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/fetchctl/fetchctl/internal/routes"
	"github.com/fetchctl/fetchctl/internal/runner"
	"github.com/fetchctl/fetchctl/internal/secret"
	"github.com/fetchctl/fetchctl/internal/settings"
	"github.com/fetchctl/fetchctl/internal/transport"
)

// Config is everything a run needs, resolved and validated.
type Config struct {
	// Inputs are the files to read, in order; none or "-" is stdin.
	Inputs    []string
	Transport transport.Options
	Runner    runner.Options
	Proxies   []*url.URL // from --proxy-file, or the one --proxy

	Output     string
	SummaryOut string
	MinSuccess float64
	Resume     bool
	Overwrite  bool
	Shard      runner.Shard
	// Session and SessionTTL say when proxy sessions are renewed.
	Session    routes.SessionMode
	SessionTTL time.Duration
	Quiet      bool
	Verbose    bool
	// Warnings are lines for stderr about settings the run goes on with
	// (a proxy named twice in --proxy-file).
	Warnings []string

	// settings are what the config came from, for --dry-run.
	settings *settings.Settings
	// dryRun: stdout gets the --dry-run report, not records.
	dryRun bool
}

// FromSettings turns settings into a Config, checking every value. Its
// errors are *settings.Error values that name the setting and say how to
// fix it.
func FromSettings(r *settings.Settings) (*Config, error) {
	bad := r.Errorf
	c := &Config{settings: r}
	for _, v := range []struct {
		name string
		n    int
	}{{"limit", r.Limit}, {"per-host", r.PerHost}} {
		if v.n < 1 {
			return nil, bad(v.name, "must be at least 1, got %d", v.n)
		}
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"per-proxy", r.PerProxy}, {"max-idle", r.MaxIdle}, {"retries", r.Retries}, {"max-redirects", r.MaxRedirects}, {"max-conn-requests", r.MaxConnRequests}} {
		if v.n < 0 {
			return nil, bad(v.name, "must not be negative, got %d", v.n)
		}
	}
	for _, v := range []struct {
		name string
		d    time.Duration
	}{{"keepalive", r.KeepAlive}, {"connect-timeout", r.ConnectTimeout}, {"backoff", r.Backoff}, {"backoff-max", r.BackoffMax}, {"dns-ttl", r.DNSTTL}} {
		if v.d < 0 {
			return nil, bad(v.name, "must not be negative, got %s", v.d)
		}
	}
	if r.Timeout <= 0 {
		return nil, bad("timeout", "must be positive, got %s", r.Timeout)
	}
	if r.MaxHeaderSize <= 0 {
		return nil, bad("max-header-size", "must be positive, got %d", r.MaxHeaderSize)
	}
	if r.Rate < 0 {
		return nil, bad("rate", "must not be negative, got %g", r.Rate)
	}
	if m := r.MinSuccess; m < 0 || m > 1 {
		return nil, bad("min-success", "must be a ratio from 0 to 1, got %s", decimal(m))
	}
	okStatus, err := runner.ParseStatusSet(r.OKStatus)
	if err != nil {
		return nil, bad("ok-status", "%v", err)
	}
	retryOn, err := runner.ParseRetryOn(r.RetryOn)
	if err != nil {
		return nil, bad("retry-on", "%v", err)
	}
	// The method is sent as written, as curl sends -X: "head" is not HEAD.
	method := r.Method
	if !isToken(method) {
		return nil, bad("method", "%q is not an HTTP method", method)
	}
	header, err := parseHeaders(r.Header)
	if err != nil {
		return nil, bad("header", "%v", err)
	}
	if _, ok := header["User-Agent"]; !ok {
		// An empty -A sends no User-Agent, as curl's does: net/http
		// leaves out a User-Agent whose value is empty.
		header["User-Agent"] = []string{r.UserAgent}
	}
	var body []byte
	if data := r.Data; data != "" {
		if strings.HasPrefix(data, "@") {
			body, err = os.ReadFile(data[1:])
			if err != nil {
				return nil, bad("data", "cannot read the body file %s: %v", shownPath(data[1:]), settings.PathError(err))
			}
		} else {
			body = []byte(data)
		}
		if r.PostForData {
			// As with curl, a body without -X is a POST sent as a form
			// unless a Content-Type says otherwise.
			if header.Get("Content-Type") == "" {
				header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
		}
	}
	switch p := r.Progress; p {
	case "auto", "always", "never":
	default:
		return nil, bad("progress", "%q is not one of auto, always, never", p)
	}
	if s := r.Shard; s != "" {
		k, n, ok := strings.Cut(s, "/")
		ki, err1 := strconv.Atoi(k)
		ni, err2 := strconv.Atoi(n)
		if !ok || err1 != nil || err2 != nil || ni < 1 || ki < 0 || ki >= ni {
			return nil, bad("shard", "%q is not K/N with 0 <= K < N, e.g. 0/4", s)
		}
		c.Shard = runner.Shard{K: ki, N: ni}
	}
	c.Output = r.Output
	if c.Output == "-" {
		c.Output = ""
	}
	c.Resume = r.Resume
	if c.Resume && c.Output == "" {
		return nil, bad("resume", "needs -o FILE: the records to keep are read from that file")
	}
	c.Overwrite = r.Overwrite
	if c.Resume && c.Overwrite {
		return nil, bad("overwrite", "cannot go with --resume: one keeps the records in -o FILE, the other throws them away")
	}

	// The CA file is read here alone: every client of the run is given
	// what was read, so that a pipe (<(...), /dev/stdin, a FIFO), which
	// gives its bytes once, works as a regular file does.
	var caPEM []byte
	if ca := r.CACert; ca != "" {
		if caPEM, err = transport.ReadCAFile(ca); err != nil {
			return nil, bad("cacert", "%s: %v", ca, err)
		}
	}

	// Proxies: --proxy-file, else --proxy, else the environment.
	var proxySecrets []string
	if pf := r.ProxyFile; pf != "" {
		f, err := os.Open(pf)
		if err != nil {
			return nil, bad("proxy-file", "%s: %v", pf, settings.PathError(err))
		}
		lines, err := transport.ReadProxyFile(f)
		f.Close()
		if err != nil {
			return nil, bad("proxy-file", "%s: %v", pf, err)
		}
		if c.Session, err = routes.ParseSessionMode(r.Session); err != nil {
			return nil, bad("session", "%v", err)
		}
		for _, l := range lines {
			// Checked here as well as by routes.Build, to name the line.
			if err := routes.CheckProxy(l.URL, c.Session); err != nil {
				return nil, bad("proxy-file", "%s: line %d: %v", pf, l.Line, err)
			}
			c.Proxies = append(c.Proxies, l.URL)
		}
		if w := repeatWarning(lines); w != "" {
			c.Warnings = append(c.Warnings, fmt.Sprintf("--proxy-file %s: %s", pf, w))
		}
	} else if p := r.Proxy; p != "" {
		u, err := transport.ParseProxy(p)
		if err != nil {
			// The message names the proxy with its password masked; mask
			// it again in case the URL was too malformed to tell.
			return nil, bad("proxy", "%s", secret.Text(err.Error(), secret.Password(p)))
		}
		if c.Session, err = routes.ParseSessionMode(r.Session); err != nil {
			return nil, bad("session", "%v", err)
		}
		// Checked here as well as by routes.Build, to name where the
		// proxy was set: the flag, FETCHCTL_PROXY or the config file.
		if err := routes.CheckProxy(u, c.Session); err != nil {
			return nil, bad("proxy", "%v", err)
		}
		c.Proxies = []*url.URL{u}
	}
	for _, u := range c.Proxies {
		if pw, ok := u.User.Password(); ok && pw != "" && !secret.PlaceholdersOnly(pw) {
			proxySecrets = append(proxySecrets, pw)
		}
		// A password with a session placeholder is sent filled in: its
		// fixed parts are what a message could show.
		proxySecrets = append(proxySecrets, routes.TemplateSecrets(u)...)
	}

	c.Transport = transport.Options{
		PerHost:         r.PerHost,
		MaxIdle:         r.MaxIdle,
		InFlight:        r.Limit,
		KeepAlive:       r.KeepAlive,
		HTTP2:           r.HTTP2,
		ConnectTimeout:  r.ConnectTimeout,
		Insecure:        r.Insecure,
		CACertFile:      r.CACert,
		CACertPEM:       caPEM,
		MaxRedirects:    r.MaxRedirects,
		LocationTrusted: r.LocationTrusted,
		MaxHeaderBytes:  int64(r.MaxHeaderSize),
		MaxHeaderText:   "--max-header-size " + r.SizeText("max-header-size"),
		ProxyFromEnv:    len(c.Proxies) == 0,
		DNSTTL:          r.DNSTTL,
		MaxConnRequests: r.MaxConnRequests,
	}
	c.Runner = runner.Options{
		Limit:       r.Limit,
		PerHost:     r.PerHost,
		PerProxy:    r.PerProxy,
		Method:      method,
		Header:      header,
		Body:        body,
		Timeout:     r.Timeout,
		MaxBody:     int64(r.MaxBody),
		MaxBodyText: r.SizeText("max-body"),
		Hash:        r.Hash,
		SaveDir:     r.SaveBodies,
		OKStatus:    okStatus,
		RetryOn:     retryOn,
		Retries:     r.Retries,
		Backoff:     r.Backoff,
		BackoffMax:  r.BackoffMax,
		Rate:        r.Rate,
		Adaptive:    r.Adaptive,
		KeepAlive:   r.KeepAlive > 0,
		// The --proxy, environment-proxy and header secrets come from
		// Settings.Secrets; those of --proxy-file are known only here.
		Secrets: proxySecrets,
	}
	// --rotate-on none (or given empty) turns rotation on statuses off:
	// the zero set holds no status.
	if v := strings.TrimSpace(r.RotateOn); v != "" && !strings.EqualFold(v, "none") {
		if c.Runner.RotateOn, err = runner.ParseStatusSet(v); err != nil {
			return nil, bad("rotate-on", "%v; none turns rotation off", err)
		}
	}
	if r.BlockPattern != "" {
		if c.Runner.BlockPattern, err = regexp.Compile(r.BlockPattern); err != nil {
			return nil, bad("block-pattern", "not a regular expression: %v", err)
		}
	}
	c.Runner.Budget = int64(r.Budget)
	c.Runner.BudgetText = r.SizeText("budget")
	if r.Budget > 0 {
		// The budget holds as bytes flow: the clients count them on their
		// connections through proxies, and the run stops at the limit.
		m := transport.NewWireMeter(int64(r.Budget))
		c.Transport.Meter, c.Runner.Meter = m, m
	}
	if c.Session, err = routes.ParseSessionMode(r.Session); err != nil {
		return nil, bad("session", "%v", err)
	}
	if r.SessionTTL < 0 {
		return nil, bad("session-ttl", "must not be negative, got %s", r.SessionTTL)
	}
	c.SessionTTL = r.SessionTTL
	c.SummaryOut = r.Summary
	if c.SummaryOut == "-" && c.Output == "" {
		return nil, bad("summary", "- is stdout, which gets the records too: give -o FILE, or --summary FILE")
	}
	c.MinSuccess = r.MinSuccess
	c.Quiet = r.Quiet
	c.Verbose = r.Verbose
	return c, nil
}

// parseHeaders reads "Name: value" lines; a Host must be a host name,
// with a port or not.
func parseHeaders(lines []string) (http.Header, error) {
	h := http.Header{}
	for _, line := range lines {
		name, val, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") {
			return nil, fmt.Errorf("%q is not 'Name: value'", secret.Header(name, line))
		}
		val = strings.TrimSpace(val)
		if strings.ContainsAny(val, "\r\n") {
			return nil, fmt.Errorf("header %s holds a line break", name)
		}
		name = textproto.CanonicalMIMEHeaderKey(name)
		if name == "Host" && val != "" {
			// The request's Host (see runner.Options.Header) goes on the
			// wire as given, so it must be name[:port]; net/http would
			// send an empty one instead of one it finds invalid.
			if p, err := httpguts.PunycodeHostPort(val); err != nil || !validHostPort(p) {
				return nil, fmt.Errorf("header Host %q is not a host name", val)
			}
		}
		h.Add(name, val)
	}
	return h, nil
}

// validHostPort reports whether s is name[:port]: a DNS name (a trailing
// dot allowed), an IPv4 address or a bracketed IPv6 one, with a port of
// 1-65535 or none. A name must be in ASCII already (punycode).
func validHostPort(s string) bool {
	host := s
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return false
		}
		host = s[1:end]
		if rest := s[end+1:]; rest != "" && (rest[0] != ':' || !validPort(rest[1:])) {
			return false
		}
		a, err := netip.ParseAddr(host)
		return err == nil && a.Is6() && a.Zone() == ""
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		if !validPort(s[i+1:]) {
			return false
		}
		host = s[:i]
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Is4()
	}
	return validDNSName(host)
}

// validPort reports whether s is a port number of 1-65535, in digits only.
func validPort(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	n, _ := strconv.Atoi(s)
	return n >= 1 && n <= 65535
}

// validDNSName reports whether s is a DNS name: labels of 1-63 letters,
// digits and hyphens, not starting or ending with a hyphen, 253 bytes at
// most, a trailing dot allowed. A last label of digits alone would be a
// broken IPv4 address (1.2.3.256), not a name.
func validDNSName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	last := labels[len(labels)-1]
	return strings.Trim(last, "0123456789") != ""
}

// isToken reports whether s is an HTTP token (RFC 9110), as a method must be.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// maxRepeatsShown is how many repeated lines of a proxy file a warning
// names before it only counts the rest.
const maxRepeatsShown = 8

// repeatWarning says which lines of a proxy file repeat an earlier one:
// "line 3 repeats line 1, lines 5 and 6 repeat line 2; each is used once",
// or "" when none does. It names lines, never a proxy, so no password.
func repeatWarning(lines []transport.ProxyLine) string {
	var (
		parts         []string
		shown, hidden int
		groups        int
	)
	for _, l := range lines {
		if len(l.Repeats) == 0 {
			continue
		}
		groups++
		room := maxRepeatsShown - shown
		if room <= 0 {
			hidden += len(l.Repeats)
			continue
		}
		rep := l.Repeats
		if len(rep) > room {
			hidden += len(rep) - room
			rep = rep[:room]
		}
		shown += len(rep)
		nums := make([]string, len(rep))
		for i, n := range rep {
			nums[i] = strconv.Itoa(n)
		}
		if len(nums) == 1 {
			parts = append(parts, fmt.Sprintf("line %s repeats line %d", nums[0], l.Line))
			continue
		}
		parts = append(parts, fmt.Sprintf("lines %s and %s repeat line %d", strings.Join(nums[:len(nums)-1], ", "), nums[len(nums)-1], l.Line))
	}
	if groups == 0 {
		return ""
	}
	if hidden > 0 {
		more := "lines repeat earlier ones"
		if hidden == 1 {
			more = "line repeats an earlier one"
		}
		parts = append(parts, fmt.Sprintf("and %d more %s", hidden, more))
	}
	each := "it is"
	if groups > 1 {
		each = "each is"
	}
	return strings.Join(parts, ", ") + "; " + each + " used once"
}
