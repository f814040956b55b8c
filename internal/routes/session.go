package routes

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fetchctl/fetchctl/internal/secret"
	"github.com/fetchctl/fetchctl/internal/transport"
)

// SessionMode says when a proxy session, the {session} of a proxy URL's user
// info, is renewed. The zero value uses no sessions.
type SessionMode struct {
	// PerHost keeps one session per target host until its TTL passes or it
	// is blocked.
	PerHost bool
	// PerURL uses a fresh session for every request.
	PerURL bool
	// Every, when positive, uses a fresh session every Every requests.
	Every int
}

// On reports whether the mode uses sessions.
func (m SessionMode) On() bool { return m.PerHost || m.PerURL || m.Every > 0 }

// ParseSessionMode reads --session: host, url, a count, or "" for none.
func ParseSessionMode(s string) (SessionMode, error) {
	switch s {
	case "":
		return SessionMode{}, nil
	case "host":
		return SessionMode{PerHost: true}, nil
	case "url":
		return SessionMode{PerURL: true}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return SessionMode{}, fmt.Errorf("%q is not host, url or a number of requests", s)
	}
	return SessionMode{Every: n}, nil
}

// sessionIdle is how long a session may go unused before it is renewed:
// gateways end an idle session after a minute or so, and the next request
// would get a new exit anyway.
const sessionIdle = 60 * time.Second

// placeholder finds {session} or {session:N} in an unescaped user name or
// password.
var placeholder = regexp.MustCompile(`\{session(?::([0-9]+))?\}`)

// defaultIDLength is the length of a session id; some gateways take exactly 8.
const defaultIDLength = 8

// HasSession reports whether a proxy URL's user info holds a session
// placeholder.
func HasSession(u *url.URL) bool {
	if u == nil || u.User == nil {
		return false
	}
	pw, _ := u.User.Password()
	return placeholder.MatchString(u.User.Username()) || placeholder.MatchString(pw)
}

// checkTemplate returns an error for a placeholder whose length is out of
// range, saying when it is in the password, which the proxy's masked name
// does not show.
func checkTemplate(u *url.URL) error {
	pw, _ := u.User.Password()
	for _, part := range []struct{ text, where string }{{u.User.Username(), ""}, {pw, " in its password"}} {
		for _, m := range placeholder.FindAllStringSubmatch(part.text, -1) {
			if m[1] == "" {
				continue
			}
			if n, err := strconv.Atoi(m[1]); err != nil || n < 1 || n > 64 {
				return fmt.Errorf("%s%s: a session id is 1 to 64 characters long", m[0], part.where)
			}
		}
	}
	return nil
}

// checkPlaceholders returns an error for a "{session" in the user info
// that is no placeholder, {session} or {session:N}: a typo that would
// otherwise be sent as written, or make --session find no template. One in
// the password is not quoted, as the password reads as ***.
func checkPlaceholders(u *url.URL) error {
	if u == nil || u.User == nil {
		return nil
	}
	const want = "write {session} or {session:N}, N from 1 to 64"
	if bad := malformedPlaceholder(u.User.Username()); bad != "" {
		return fmt.Errorf("%s is a malformed session placeholder: %s", bad, want)
	}
	if pw, _ := u.User.Password(); malformedPlaceholder(pw) != "" {
		return fmt.Errorf("a malformed session placeholder in its password: %s", want)
	}
	return nil
}

// malformedPlaceholder returns the first "{session" of s that starts no
// placeholder, up to its closing brace or the end of s; "" for none.
func malformedPlaceholder(s string) string {
	for i := 0; ; {
		j := strings.Index(s[i:], "{session")
		if j < 0 {
			return ""
		}
		j += i
		if loc := placeholder.FindStringIndex(s[j:]); loc != nil && loc[0] == 0 {
			i = j + loc[1]
			continue
		}
		if end := strings.IndexByte(s[j:], '}'); end >= 0 {
			return s[j : j+end+1]
		}
		return s[j:]
	}
}

// shownID is id as the first placeholder of template fills it in: the
// session id that messages name beside the proxy as written. When
// placeholders are the whole password, the id is the password: it is then
// "#" and n, the session's number among those of the template.
func shownID(template *url.URL, id string, n int) string {
	pw, _ := template.User.Password()
	if secret.PlaceholdersOnly(pw) {
		return "#" + strconv.Itoa(n)
	}
	for _, s := range []string{template.User.Username(), pw} {
		if m := placeholder.FindStringSubmatch(s); m != nil {
			n := defaultIDLength
			if m[1] != "" {
				n, _ = strconv.Atoi(m[1])
			}
			return strings.Repeat(id, n/len(id)+1)[:n]
		}
	}
	return id
}

// fill returns the template with every placeholder replaced by id (cut or
// repeated to the length the placeholder asks for).
func fill(template *url.URL, id string) *url.URL {
	rep := func(s string) string {
		return placeholder.ReplaceAllStringFunc(s, func(m string) string {
			n := defaultIDLength
			if sub := placeholder.FindStringSubmatch(m); sub[1] != "" {
				n, _ = strconv.Atoi(sub[1])
			}
			return strings.Repeat(id, n/len(id)+1)[:n]
		})
	}
	u := *template
	if pw, ok := template.User.Password(); ok {
		u.User = url.UserPassword(rep(template.User.Username()), rep(pw))
	} else {
		u.User = url.User(rep(template.User.Username()))
	}
	return &u
}

// TemplateSecrets returns the fixed parts of a session template's password,
// which the filled passwords contain.
func TemplateSecrets(u *url.URL) []string {
	if u == nil || u.User == nil {
		return nil
	}
	pw, ok := u.User.Password()
	if !ok || !placeholder.MatchString(pw) {
		return nil
	}
	var out []string
	for _, part := range placeholder.Split(pw, -1) {
		if part != "" {
			out = append(out, part)
		}
	}
	return out
}

// newSessionID returns a random id of lower-case letters and digits, as
// long as the longest placeholder may ask for.
func newSessionID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [64]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}

// session is one filled proxy URL and its connections.
type session struct {
	// name is the proxy as written with the session apart, as messages
	// show it.
	name string
	// sent is the filled-in credentials the session sends (see
	// [secret.UserInfo]): only the session knows them, and the proxy's
	// refusal may quote them.
	sent     []string
	client   *http.Client
	started  time.Time
	lastUsed time.Time
	uses     int
	inflight int
	retired  bool
}

// sessions is the route of a proxy URL with a session placeholder: each
// request goes out through a session that the mode picks, and every session
// has its own connections (so a new session is a new connection, and on a
// rotating gateway a new exit). A session is renewed when its TTL passes,
// when it has been idle for a minute, when the mode says (per URL, every N
// requests) and when [sessions.Rotate] says the target blocked it. Safe for
// concurrent use.
type sessions struct {
	template *url.URL
	mode     SessionMode
	ttl      time.Duration
	opts     transport.Options
	now      func() time.Time
	newID    func() string

	mu        sync.Mutex
	byHost    map[string]*session // PerHost
	current   *session            // Every
	lastSweep time.Time
	opened    int // sessions opened so far
}

func newSessions(template *url.URL, mode SessionMode, ttl time.Duration, opts transport.Options) *sessions {
	return &sessions{
		template: template,
		mode:     mode,
		ttl:      ttl,
		opts:     opts,
		now:      time.Now,
		newID:    newSessionID,
		byHost:   map[string]*session{},
	}
}

// Do sends req through the session the mode picks for its host.
func (s *sessions) Do(req *http.Request) (*http.Response, error) {
	resp, _, err := s.DoSent(req)
	return resp, err
}

// DoSent is Do, and returns the filled-in credentials the session sent
// (see [runner.SentDoer]), which only the session knows.
func (s *sessions) DoSent(req *http.Request) (*http.Response, []string, error) {
	sess, err := s.acquire(req.URL.Host)
	if err != nil {
		return nil, nil, err
	}
	resp, err := sess.client.Do(req)
	if err != nil {
		s.release(sess)
		return resp, sess.sent, err
	}
	if proxyRefused(resp) {
		// The proxy's refusal of a forwarded request names the session,
		// as that of a CONNECT does.
		resp.Body.Close()
		s.release(sess)
		return nil, sess.sent, &transport.ProxyError{Proxy: sess.name, Err: fmt.Errorf("answered %s", secret.Text(resp.Status, sess.sent...))}
	}
	resp.Body = &releasingBody{ReadCloser: resp.Body, name: sess.name, release: func() { s.release(sess) }}
	return resp, sess.sent, nil
}

// Rotate retires the session that carries requests to host, so that the
// next one goes out through a fresh session: the target blocked this one.
// exit names the blocked session (see [authCheck.ExitName]); when the host
// has already moved on from it, as it has once the first of the requests
// that were in flight through it came back blocked, the session the host
// has now stays. It implements [runner.Rotator]: every mode has a fresh
// session to give.
func (s *sessions) Rotate(host, exit string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	blocked := func(sess *session) bool { return sess != nil && (exit == "" || sess.name == exit) }
	switch {
	case s.mode.PerHost:
		if sess := s.byHost[host]; blocked(sess) {
			delete(s.byHost, host)
			s.retireLocked(sess)
		}
	case s.mode.Every > 0:
		if blocked(s.current) {
			s.retireLocked(s.current)
			s.current = nil
		}
	}
	return true
}

func (s *sessions) acquire(host string) (*session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var sess *session
	switch {
	case s.mode.PerHost:
		s.sweepLocked(now)
		var err error
		if sess, err = s.keepOrOpen(s.byHost[host], now, false); err != nil {
			return nil, err
		}
		s.byHost[host] = sess
	case s.mode.Every > 0:
		var err error
		if sess, err = s.keepOrOpen(s.current, now, s.current != nil && s.current.uses >= s.mode.Every); err != nil {
			return nil, err
		}
		s.current = sess
	default: // PerURL
		var err error
		if sess, err = s.openLocked(now); err != nil {
			return nil, err
		}
		sess.retired = true // closed once its one request is done
	}
	sess.uses++
	sess.inflight++
	sess.lastUsed = now
	return sess, nil
}

// keepOrOpen returns sess while it serves, or retires it (when stale, or
// done says so) and opens a new one.
func (s *sessions) keepOrOpen(sess *session, now time.Time, done bool) (*session, error) {
	if sess != nil && !done && !s.stale(sess, now) {
		return sess, nil
	}
	if sess != nil {
		s.retireLocked(sess)
	}
	return s.openLocked(now)
}

func (s *sessions) stale(sess *session, now time.Time) bool {
	return (s.ttl > 0 && now.Sub(sess.started) >= s.ttl) || (sess.inflight == 0 && now.Sub(sess.lastUsed) >= sessionIdle)
}

// sweepLocked retires the per-host sessions that have gone stale, at most
// once per idle period, so that memory follows live hosts.
func (s *sessions) sweepLocked(now time.Time) {
	if now.Sub(s.lastSweep) < sessionIdle {
		return
	}
	s.lastSweep = now
	for host, sess := range s.byHost {
		if sess.inflight == 0 && s.stale(sess, now) {
			delete(s.byHost, host)
			s.retireLocked(sess)
		}
	}
}

func (s *sessions) openLocked(now time.Time) (*session, error) {
	o := s.opts
	id := s.newID()
	o.Proxy = fill(s.template, id)
	// Messages name the proxy as records do, and the session apart.
	s.opened++
	o.ProxyName = proxyName(s.template) + " (session " + shownID(s.template, id, s.opened) + ")"
	c, err := transport.New(o)
	if err != nil {
		return nil, err
	}
	return &session{name: o.ProxyName, sent: secret.UserInfo(o.Proxy), client: c, started: now, lastUsed: now}, nil
}

// retireLocked takes a session out of use; its connections close once its
// last request is done.
func (s *sessions) retireLocked(sess *session) {
	sess.retired = true
	if sess.inflight == 0 {
		sess.client.CloseIdleConnections()
	}
}

func (s *sessions) release(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess.inflight--
	if sess.retired && sess.inflight == 0 {
		sess.client.CloseIdleConnections()
	}
}

// releasingBody releases its session once, when closed. name is the
// session's (see [authCheck.ExitName]).
type releasingBody struct {
	io.ReadCloser
	name    string
	once    sync.Once
	release func()
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}
