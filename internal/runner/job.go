package runner

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/fetchctl/fetchctl/internal/report"
	"github.com/fetchctl/fetchctl/internal/secret"
)

// MaxURLLength is the longest line, in bytes, that is taken as a URL.
const MaxURLLength = 8 << 10

// Job is one input URL. A Job with a non-nil Err is an input line that is not
// a usable URL: it is recorded as invalid_url and never fetched.
type Job struct {
	Input string // input name, "-" for stdin
	Line  int64  // 1-based line number in Input
	URL   string // the URL to fetch; for an invalid line, the line as read
	Err   error  // why the line is not a usable URL

	parsed *url.URL
	host   string
	index  int // Input's BodyNo, or its 1-based position among the inputs
}

// Host returns the host key of a valid job: lower-case host and port.
func (j *Job) Host() string { return j.host }

// RecordURL returns the URL as the job's record holds it: its password, if
// any, masked.
func (j *Job) RecordURL() string { return secret.URL(j.URL) }

// InvalidURLError says why an input line is not a usable URL.
type InvalidURLError struct {
	Reason string
}

func (e *InvalidURLError) Error() string { return e.Reason }

// ErrorKind reports the contract's error kind for e.
func (e *InvalidURLError) ErrorKind() string { return report.KindInvalidURL }

func invalid(format string, args ...any) error {
	return &InvalidURLError{Reason: fmt.Sprintf(format, args...)}
}

// skipped reports whether a line gets no record: blank, or a comment.
func skipped(line string) bool {
	s := strings.TrimSpace(line)
	return s == "" || s[0] == '#'
}

// ParseLine turns one input line into a URL. skip is true for lines that get
// no record (blank, or a # comment). A line without a scheme gets "https://"
// in front; only http and https are accepted.
func ParseLine(line string) (u *url.URL, raw string, skip bool, err error) {
	return parseLine(line, 0)
}

// parseLine is [ParseLine] for a line that may be the start of a longer one:
// size, when larger than line, is the length of the whole line without the
// white space at either end.
func parseLine(line string, size int64) (u *url.URL, raw string, skip bool, err error) {
	if skipped(line) {
		return nil, "", true, nil
	}
	s := strings.TrimSpace(line)
	size = max(size, int64(len(s)))
	if size > MaxURLLength {
		return nil, s, false, invalid("line is %d bytes, longer than the %d-byte limit", size, MaxURLLength)
	}
	if !utf8.ValidString(s) {
		return nil, s, false, invalid("line is not valid UTF-8")
	}
	if c := s[0]; c == '"' || c == '\'' || c == '`' {
		return nil, s, false, invalid("line is wrapped in quotes: write the URL without them")
	}
	for i, r := range s {
		switch {
		case unicode.IsSpace(r):
			return nil, s, false, invalid("line holds white space (%U) at byte %d: a URL has none (percent-encode a space as %%20)", r, i)
		case r < 0x20 || r == 0x7f:
			return nil, s, false, invalid("line holds control character %#02x at byte %d", r, i)
		case unicode.Is(unicode.Cf, r):
			// Invisible marks such as U+FEFF and U+200B, which editors leave
			// behind and a terminal does not show.
			return nil, s, false, invalid("line holds the invisible character %U at byte %d", r, i)
		}
	}
	name, rest, ok := schemeOf(s)
	if ok && !strings.HasPrefix(rest, "//") {
		switch lower := strings.ToLower(name); {
		case lower == "http" || lower == "https":
			// "https:/example.com/a", a link cut short, is no host named
			// https.
			return nil, s, false, invalid("line starts with %q without \"//\": write the URL as %s://host/path", name+":", lower)
		case otherScheme(lower, rest):
			return nil, s, false, invalid("scheme %q is not fetched: only http and https are", lower)
		}
	}
	if !ok || !strings.HasPrefix(rest, "//") {
		s = "https://" + s
	}
	u, err = url.Parse(s)
	if err != nil {
		return nil, s, false, parseError(s, err)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, s, false, invalid("scheme %q is not fetched: only http and https are", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, s, false, invalid("URL has no host")
	}
	if strings.ContainsAny(u.Hostname(), " %") {
		return nil, s, false, invalid("host %q is not a valid host name", u.Hostname())
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, s, false, invalid("port %s is out of range: a port is 1 to 65535", p)
		}
	}
	return u, s, false, nil
}

// parseError words why s does not parse as a URL. The parser quotes the part
// it stumbled on, which for malformed user info can be a piece of the
// password, so when s holds a password the reason is found on the line with
// the password masked, or is a plain statement that the user info is
// malformed.
func parseError(s string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	masked := secret.URL(s)
	if masked == s {
		return invalid("cannot parse URL: %v", err)
	}
	if _, err := url.Parse(masked); err != nil {
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return invalid("cannot parse URL: %v", err)
	}
	return invalid("cannot parse URL: the user info before @ is malformed (percent-encode reserved characters in the password)")
}

// schemeOf splits s at the colon after a leading scheme-like name
// (a letter, then letters, digits, "+", "-" or "."): "https" and
// "//host/", "mailto" and "info@example.com", "localhost" and "8080/x".
// ok is false when s starts with no such name and colon.
func schemeOf(s string) (name, rest string, ok bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		case c == ':' && i > 0:
			return s[:i], s[i+1:], true
		default:
			return "", "", false
		}
	}
	return "", "", false
}

// otherSchemes are URI schemes that lists of links scraped from pages hold
// written without "//" (mailto:, tel:, data:, javascript:, ...), or with
// one slash too few (ftp:/x). Without a "//", "mailto:info@example.com"
// reads like user:password@host, and "file:/etc/passwd" like a host named
// file; these names are taken as the schemes they are. The value says
// whether what follows the colon can still be a port ("data:8080/x" is a
// host named data); a phone number (tel:911) never is.
var otherSchemes = map[string]bool{
	"about": true, "blob": true, "cid": true, "data": true, "file": true,
	"ftp": true, "ftps": true, "geo": true, "git": true, "gopher": true,
	"intent": true, "irc": true, "ircs": true, "javascript": true,
	"ldap": true, "ldaps": true, "magnet": true, "mailto": true,
	"market": true, "mid": true, "news": true, "nntp": true, "rtsp": true,
	"sftp": true, "sip": true, "sips": true, "skype": true, "smb": true,
	"ssh": true, "telnet": true, "urn": true, "view-source": true, "ws": true,
	"wss": true, "xmpp": true,
	"callto": false, "fax": false, "sms": false, "tel": false,
}

// otherScheme reports whether name (lower case), followed by a colon and
// rest, is one of otherSchemes rather than a host and its port.
func otherScheme(name, rest string) bool {
	mayBePort, ok := otherSchemes[name]
	if !ok {
		return false
	}
	digits := 0
	for digits < len(rest) && '0' <= rest[digits] && rest[digits] <= '9' {
		digits++
	}
	return !mayBePort || digits == 0 || (digits < len(rest) && strings.IndexByte("/?#", rest[digits]) < 0)
}

// Shard selects the hosts one of N cooperating runs fetches. The zero value
// selects everything.
type Shard struct {
	K, N int
}

// ShardOf returns the shard, from 0 to n-1, that host falls in: FNV-1a (64
// bit) of the host key, modulo n. It is the same on every machine and version.
func ShardOf(host string, n int) int {
	h := fnv.New64a()
	_, _ = io.WriteString(h, host)
	return int(h.Sum64() % uint64(n))
}

// Keeps reports whether the shard fetches a job for host. Invalid lines
// (host "") belong to shard 0 alone, so the shards' records add up to the
// whole input.
func (s Shard) Keeps(host string) bool {
	if s.N <= 1 {
		return true
	}
	if host == "" {
		return s.K == 0
	}
	return ShardOf(host, s.N) == s.K
}

// Input is one named source of URL lines.
type Input struct {
	Name string // "-" for stdin
	R    io.Reader
	// BodyNo is the N of the input's body file names with several inputs
	// (<N>-<input>-<line>.body, see [Options.SaveDir]); 0 is its position
	// among the inputs, from 1. [NumberBodies] sets it for a resumed run.
	BodyNo int
}

// ReadOptions filter what [ReadJobs] sends.
type ReadOptions struct {
	Shard Shard
	// Recorded, when set, is asked about every line that gets a record,
	// before the shard filter: true drops the line (it has a record already,
	// on --resume); an error stops ReadJobs, which returns it, before the
	// line is sent. It is called from the reading goroutine only.
	Recorded func(j *Job) (bool, error)
	// Sending, when set, is called before each job is sent, from the
	// reading goroutine: a job sent gets a record unless the run stops
	// first.
	Sending func()
}

// ReadJobs reads every input in order, line by line with no length limit, and
// sends one Job per line that is neither blank nor a comment. It returns when
// the inputs are exhausted, with the first read error, or with ctx's error.
// It does not close out.
func ReadJobs(ctx context.Context, inputs []Input, opts ReadOptions, out chan<- Job) error {
	for i, in := range inputs {
		index := i + 1
		if in.BodyNo > 0 {
			index = in.BodyNo
		}
		if err := readOne(ctx, index, in, opts, out); err != nil {
			return err
		}
	}
	return nil
}

// leadingMarks returns how many bytes at the start of p are the byte-order
// marks and zero-width spaces that editors and some exports put before a
// file's first line.
func leadingMarks(p []byte) int {
	n := 0
	for {
		switch {
		case bytes.HasPrefix(p[n:], []byte("\ufeff")):
			n += len("\ufeff")
		case bytes.HasPrefix(p[n:], []byte("\u200b")):
			n += len("\u200b")
		default:
			return n
		}
	}
}

func readOne(ctx context.Context, index int, in Input, opts ReadOptions, out chan<- Job) error {
	return readLines(in, func(lineNo int64, text string, size int64) error {
		job, ok, err := makeJob(in.Name, lineNo, text, size, opts)
		job.index = index
		if err != nil || !ok {
			return err
		}
		if opts.Sending != nil {
			opts.Sending()
		}
		select {
		case out <- job:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}

// readLines calls fn with each line of in, numbered from 1, with no length
// limit, and the marks before the first line dropped. A line longer than the
// reader's buffer comes as its start (see [longLine]) and its size, the
// length of the whole line without the white space at either end; size is 0
// when text is the whole line. It stops at the first error fn returns.
func readLines(in Input, fn func(lineNo int64, text string, size int64) error) error {
	br := bufio.NewReaderSize(in.R, 64<<10)
	var lineNo int64
	var long longLine
	for {
		chunk, err := br.ReadSlice('\n')
		if lineNo == 0 && long.n == 0 {
			chunk = chunk[leadingMarks(chunk):]
		}
		if err == bufio.ErrBufferFull {
			long.add(chunk)
			continue
		}
		if len(chunk) == 0 && long.n == 0 && err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("read %s: %w", in.Name, err)
		}
		lineNo++
		var text string
		var size int64
		if long.n > 0 {
			long.add(chunk)
			text, size = long.take()
		} else {
			text = string(chunk)
		}
		if ferr := fn(lineNo, text, size); ferr != nil {
			return ferr
		}
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("read %s: %w", in.Name, err)
		}
	}
}

// longLine gathers a line that is longer than the reader's buffer, piece by
// piece, in memory that does not grow with the line: it keeps the line from
// its first byte that is not white space up to twice MaxURLLength (enough for
// the whole of any line short enough to be a URL, and for the start that an
// invalid line's record shows), and counts the rest.
type longLine struct {
	kept    []byte
	n       int64 // bytes of the line so far
	lead    int64 // white space before its first other byte
	trail   int64 // white space after its last other byte so far
	started bool  // a byte other than white space was seen
}

func (l *longLine) add(p []byte) {
	l.n += int64(len(p))
	if !l.started {
		t := bytes.TrimLeftFunc(p, unicode.IsSpace)
		l.lead += int64(len(p) - len(t))
		if len(t) == 0 {
			return
		}
		l.started = true
		p = t
	}
	if room := 2*MaxURLLength - len(l.kept); room > 0 {
		l.kept = append(l.kept, p[:min(room, len(p))]...)
	}
	if t := bytes.TrimRightFunc(p, unicode.IsSpace); len(t) == 0 {
		l.trail += int64(len(p))
	} else {
		l.trail = int64(len(p) - len(t))
	}
}

// take returns the line's start and its size without the white space at
// either end, and makes l ready for the next line.
func (l *longLine) take() (string, int64) {
	text, size := string(l.kept), l.n-l.lead-l.trail
	*l = longLine{kept: l.kept[:0]}
	return text, size
}

func makeJob(input string, line int64, text string, size int64, opts ReadOptions) (Job, bool, error) {
	u, raw, skip, err := parseLine(text, size)
	if skip {
		return Job{}, false, nil
	}
	job := Job{Input: input, Line: line, URL: raw, Err: err}
	if err == nil {
		job.parsed = u
		job.host = report.URLHostKey(u)
	} else if len(job.URL) > 1024 {
		// The record keeps the start of an over-long line: enough to find it.
		job.URL = strings.ToValidUTF8(job.URL[:1024], "") + "..."
	}
	if opts.Recorded != nil {
		done, err := opts.Recorded(&job)
		if err != nil || done {
			return Job{}, false, err
		}
	}
	if !opts.Shard.Keeps(job.host) {
		return Job{}, false, nil
	}
	return job, true, nil
}
