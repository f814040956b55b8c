package main

import (
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/runner"
	"github.com/fetchctl/fetchctl/internal/transport"
)

// Config is everything a run needs, resolved and validated.
type Config struct {
	Transport transport.Options
	Runner    runner.Options
	Proxies   []*url.URL // from --proxy-file, or the one --proxy

	Output     string
	SummaryOut string
	MinSuccess float64
	Resume     bool
	Overwrite  bool
	Shard      runner.Shard
	Progress   string
	Quiet      bool
	Verbose    bool
	DryRun     bool
}

// buildConfig turns resolved settings into a Config, checking every value.
// Its errors name the setting and say how to fix it.
func buildConfig(r resolved) (*Config, error) {
	bad := func(name string, format string, args ...any) error {
		return &settingError{Setting: name, Source: r.sourceOf(name), Err: fmt.Errorf(format, args...)}
	}
	c := &Config{}
	for _, name := range []string{"limit", "per-host"} {
		if r.int(name) < 1 {
			return nil, bad(name, "must be at least 1, got %d", r.int(name))
		}
	}
	for _, name := range []string{"max-idle", "retries", "max-redirects", "max-conn-requests"} {
		if r.int(name) < 0 {
			return nil, bad(name, "must not be negative, got %d", r.int(name))
		}
	}
	for _, name := range []string{"keepalive", "connect-timeout", "backoff", "backoff-max", "dns-ttl"} {
		if r.dur(name) < 0 {
			return nil, bad(name, "must not be negative, got %s", r.dur(name))
		}
	}
	if r.dur("timeout") <= 0 {
		return nil, bad("timeout", "must be positive, got %s", r.dur("timeout"))
	}
	if r.size("max-header-size") <= 0 {
		return nil, bad("max-header-size", "must be positive, got %d", r.size("max-header-size"))
	}
	if r.float("rate") < 0 {
		return nil, bad("rate", "must not be negative, got %g", r.float("rate"))
	}
	if m := r.float("min-success"); m < 0 || m > 1 {
		return nil, bad("min-success", "must be a ratio from 0 to 1, got %g", m)
	}
	okStatus, err := runner.ParseStatusSet(r.str("ok-status"))
	if err != nil {
		return nil, bad("ok-status", "%v", err)
	}
	retryOn, err := runner.ParseRetryOn(r.str("retry-on"))
	if err != nil {
		return nil, bad("retry-on", "%v", err)
	}
	// The method is sent as written, as curl sends -X: "head" is not HEAD.
	method := r.str("method")
	if !isToken(method) {
		return nil, bad("method", "%q is not an HTTP method", method)
	}
	header, err := parseHeaders(r.strings("header"))
	if err != nil {
		return nil, bad("header", "%v", err)
	}
	if ua := r.str("user-agent"); ua != "" && header.Get("User-Agent") == "" {
		header.Set("User-Agent", ua)
	}
	var body []byte
	if data := r.str("data"); data != "" {
		if strings.HasPrefix(data, "@") {
			body, err = os.ReadFile(data[1:])
			if err != nil {
				return nil, bad("data", "cannot read the body file: %v", unwrapPathErr(err))
			}
		} else {
			body = []byte(data)
		}
		if r.sourceOf("method") == srcDefault {
			// As with curl, a body without -X makes a POST, sent as a form
			// unless a Content-Type says otherwise.
			method = http.MethodPost
			r["method"] = value{V: method, Source: r.sourceOf("data")}
			if header.Get("Content-Type") == "" {
				header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
		}
	}
	switch p := r.str("progress"); p {
	case "auto", "always", "never":
		c.Progress = p
	default:
		return nil, bad("progress", "%q is not one of auto, always, never", p)
	}
	if s := r.str("shard"); s != "" {
		k, n, ok := strings.Cut(s, "/")
		ki, err1 := strconv.Atoi(k)
		ni, err2 := strconv.Atoi(n)
		if !ok || err1 != nil || err2 != nil || ni < 1 || ki < 0 || ki >= ni {
			return nil, bad("shard", "%q is not K/N with 0 <= K < N, e.g. 0/4", s)
		}
		c.Shard = runner.Shard{K: ki, N: ni}
	}
	c.Output = r.str("output")
	if c.Output == "-" {
		c.Output = ""
	}
	c.Resume = r.bool("resume")
	if c.Resume && c.Output == "" {
		return nil, bad("resume", "needs -o FILE: the records to keep are read from that file")
	}
	c.Overwrite = r.bool("overwrite")
	if c.Resume && c.Overwrite {
		return nil, bad("overwrite", "cannot go with --resume: one keeps the records in -o FILE, the other throws them away")
	}

	if ca := r.str("cacert"); ca != "" {
		if _, err := transport.LoadCAFile(ca); err != nil {
			return nil, bad("cacert", "%s: %v", ca, err)
		}
	}

	// Proxies: --proxy-file, else --proxy, else the environment.
	var proxySecrets []string
	if pf := r.str("proxy-file"); pf != "" {
		f, err := os.Open(pf)
		if err != nil {
			return nil, bad("proxy-file", "%s: %v", pf, unwrapPathErr(err))
		}
		c.Proxies, err = transport.ReadProxyFile(f)
		f.Close()
		if err != nil {
			return nil, bad("proxy-file", "%s: %v", pf, err)
		}
	} else if p := r.str("proxy"); p != "" {
		u, err := transport.ParseProxy(p)
		if err != nil {
			// The message names the proxy with its password masked; mask
			// it again in case the URL was too malformed to tell.
			return nil, bad("proxy", "%s", report.RedactText(err.Error(), loosePassword(p)))
		}
		c.Proxies = []*url.URL{u}
	}
	for _, u := range c.Proxies {
		if pw, ok := u.User.Password(); ok && pw != "" {
			proxySecrets = append(proxySecrets, pw)
		}
	}

	c.Transport = transport.Options{
		PerHost:         r.int("per-host"),
		MaxIdle:         r.int("max-idle"),
		InFlight:        r.int("limit"),
		KeepAlive:       r.dur("keepalive"),
		HTTP2:           r.bool("http2"),
		ConnectTimeout:  r.dur("connect-timeout"),
		Insecure:        r.bool("insecure"),
		CACertFile:      r.str("cacert"),
		MaxRedirects:    r.int("max-redirects"),
		LocationTrusted: r.bool("location-trusted"),
		MaxHeaderBytes:  r.size("max-header-size"),
		ProxyFromEnv:    len(c.Proxies) == 0,
		DNSTTL:          r.dur("dns-ttl"),
		MaxConnRequests: r.int("max-conn-requests"),
	}
	c.Runner = runner.Options{
		Limit:     r.int("limit"),
		PerHost:   r.int("per-host"),
		Method:    method,
		Header:    header,
		Body:      body,
		Timeout:   r.dur("timeout"),
		MaxBody:   r.size("max-body"),
		Hash:      r.bool("hash"),
		SaveDir:   r.str("save-bodies"),
		OKStatus:  okStatus,
		RetryOn:   retryOn,
		Retries:   r.int("retries"),
		Backoff:   r.dur("backoff"),
		Rate:      r.float("rate"),
		Adaptive:  r.bool("adaptive"),
		KeepAlive: r.dur("keepalive") > 0,
		// The --proxy, environment-proxy and header secrets come from
		// settingSecrets; those of --proxy-file are known only here.
		Secrets: proxySecrets,
	}
	c.Runner.BackoffMax = r.dur("backoff-max")
	c.SummaryOut = r.str("summary")
	c.MinSuccess = r.float("min-success")
	c.Quiet = r.bool("quiet")
	c.Verbose = r.bool("verbose")
	return c, nil
}

// parseHeaders reads "Name: value" lines.
func parseHeaders(lines []string) (http.Header, error) {
	h := http.Header{}
	for _, line := range lines {
		name, val, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") {
			return nil, fmt.Errorf("%q is not 'Name: value'", report.RedactHeader(name, line))
		}
		val = strings.TrimSpace(val)
		if strings.ContainsAny(val, "\r\n") {
			return nil, fmt.Errorf("header %s holds a line break", name)
		}
		h.Add(textproto.CanonicalMIMEHeaderKey(name), val)
	}
	return h, nil
}

// redactAny hides the password of a proxy URL setting.
func redactAny(v any) any {
	if s, ok := v.(string); ok && s != "" {
		return report.RedactURL(s)
	}
	return v
}

// redactHeaders hides secret header values.
func redactHeaders(v any) any {
	list, _ := v.([]string)
	out := make([]string, len(list))
	for i, line := range list {
		name, val, ok := strings.Cut(line, ":")
		if !ok {
			out[i] = line
			continue
		}
		out[i] = name + ": " + report.RedactHeader(strings.TrimSpace(name), strings.TrimSpace(val))
	}
	return out
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
