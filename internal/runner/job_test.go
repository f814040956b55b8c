package runner

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/fetchctl/fetchctl/internal/secret"
)

func TestParseLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		line    string
		want    string // URL fetched; "" when skipped or invalid
		skip    bool
		invalid string // substring of the reason
	}{
		{name: "plain", line: "https://example.com/a?b=1", want: "https://example.com/a?b=1"},
		{name: "trimmed", line: "  \thttp://example.com/ \r\n", want: "http://example.com/"},
		{name: "no scheme", line: "example.com/path", want: "https://example.com/path"},
		{name: "no scheme with port", line: "localhost:8080/x", want: "https://localhost:8080/x"},
		{name: "upper-case scheme", line: "HTTP://Example.com/", want: "HTTP://Example.com/"},
		{name: "blank", line: "   ", skip: true},
		{name: "empty", line: "", skip: true},
		{name: "comment", line: "# https://example.com", skip: true},
		{name: "indented comment", line: "   # note", skip: true},
		{name: "ftp", line: "ftp://example.com/file", invalid: "scheme \"ftp\""},
		{name: "javascript", line: "javascript:alert(1)", invalid: "scheme \"javascript\""},
		{name: "mailto", line: "mailto:info@localhost", invalid: "scheme \"mailto\""},
		{name: "mailto upper-case", line: "MAILTO:info@localhost", invalid: "scheme \"mailto\""},
		{name: "tel", line: "tel:+1-555-0100", invalid: "scheme \"tel\""},
		{name: "data", line: "data:text/plain,hi", invalid: "scheme \"data\""},
		{name: "file without slashes", line: "file:/etc/passwd", invalid: "scheme \"file\""},
		{name: "about", line: "about:blank", invalid: "scheme \"about\""},
		{name: "urn", line: "urn:isbn:0451450523", invalid: "scheme \"urn\""},
		{name: "host named like a scheme, with a port", line: "data:8080/x", want: "https://data:8080/x"},
		{name: "host named like a scheme, port only", line: "data:443", want: "https://data:443"},
		{name: "tel with digits only", line: "tel:911", invalid: "scheme \"tel\""},
		{name: "sms with digits only", line: "sms:5551234", invalid: "scheme \"sms\""},
		{name: "ftp with one slash", line: "ftp:/x", invalid: "scheme \"ftp\""},
		{name: "ws with one slash", line: "ws:/x", invalid: "scheme \"ws\""},
		{name: "http with one slash", line: "http:/127.0.0.1:8080/x", invalid: "http://"},
		{name: "https with one slash", line: "https:/example.com/a", invalid: "https://"},
		{name: "http without slashes", line: "http:127.0.0.1/x", invalid: "http://"},
		{name: "HTTP with one slash", line: "HTTP:/example.com/", invalid: "http://"},
		{name: "http with a port-like start", line: "http:8080/x", invalid: "http://"},
		{name: "user info without a scheme", line: "bob:pw@localhost/a", want: "https://bob:pw@localhost/a"},
		{name: "no host", line: "https:///path", invalid: "no host"},
		{name: "bad port", line: "http://example.com:99999999999x/", invalid: "parse"},
		{name: "control char", line: "http://exa\x01mple.com/", invalid: "control character"},
		{name: "invalid utf8", line: "http://example.com/\xff\xfe", invalid: "UTF-8"},
		{name: "too long", line: "http://example.com/" + strings.Repeat("a", MaxURLLength), invalid: "longer than"},
		{name: "space in host", line: "http://exa mple.com/", invalid: ""},
		{name: "space in path", line: "http://host/a 123", invalid: "white space"},
		{name: "tab in path", line: "http://host/a\tb", invalid: "white space"},
		{name: "no-break space", line: "http://host/a\u00a0b", invalid: "white space"},
		{name: "double quoted", line: `"http://host/a"`, invalid: "quotes"},
		{name: "single quoted", line: "'http://host/a'", invalid: "quotes"},
		{name: "port too large", line: "http://host:70000/", invalid: "port 70000"},
		{name: "port zero", line: "http://host:0/", invalid: "port 0"},
		{name: "port 65535", line: "http://host:65535/", want: "http://host:65535/"},
		{name: "bom", line: "\ufeffhttp://host/a", invalid: "U+FEFF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u, raw, skip, err := ParseLine(tt.line)
			if skip != tt.skip {
				t.Fatalf("skip = %v, want %v", skip, tt.skip)
			}
			if tt.skip {
				return
			}
			if tt.want != "" {
				if err != nil {
					t.Fatalf("err = %v, want none", err)
				}
				if raw != tt.want {
					t.Errorf("raw = %q, want %q", raw, tt.want)
				}
				if u.Scheme != "http" && u.Scheme != "https" {
					t.Errorf("scheme = %q", u.Scheme)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseLine(%q) = %v, want an invalid_url error", tt.line, u)
			}
			var ie *InvalidURLError
			if !errors.As(err, &ie) {
				t.Fatalf("err = %T, want *InvalidURLError", err)
			}
			if !strings.Contains(err.Error(), tt.invalid) {
				t.Errorf("err = %q, want it to mention %q", err, tt.invalid)
			}
		})
	}
}

func readAll(t *testing.T, inputs []Input, opts ReadOptions) []Job {
	t.Helper()
	out := make(chan Job)
	errc := make(chan error, 1)
	go func() {
		defer close(out)
		errc <- ReadJobs(context.Background(), inputs, opts, out)
	}()
	var jobs []Job
	for j := range out {
		jobs = append(jobs, j)
	}
	if err := <-errc; err != nil {
		t.Fatalf("ReadJobs: %v", err)
	}
	return jobs
}

func TestReadJobsLineNumbersAndHugeLines(t *testing.T) {
	t.Parallel()
	huge := "https://example.com/" + strings.Repeat("x", 1<<20)
	input := strings.Join([]string{
		"# header comment",
		"https://a.example/1",
		"",
		huge,
		"b.example/2",
		"gopher://c.example/",
		"https://a.example/3", // no final newline
	}, "\n")
	jobs := readAll(t, []Input{{Name: "list.txt", R: strings.NewReader(input)}}, ReadOptions{})
	type got struct {
		line    int64
		invalid bool
	}
	want := []got{{2, false}, {4, true}, {5, false}, {6, true}, {7, false}}
	if len(jobs) != len(want) {
		t.Fatalf("got %d jobs, want %d", len(jobs), len(want))
	}
	for i, w := range want {
		if jobs[i].Line != w.line || (jobs[i].Err != nil) != w.invalid {
			t.Errorf("job %d: line %d invalid %v, want line %d invalid %v", i, jobs[i].Line, jobs[i].Err != nil, w.line, w.invalid)
		}
	}
	if len(jobs[1].URL) > 2048 {
		t.Errorf("an over-long line's record URL is %d bytes, want it cut short", len(jobs[1].URL))
	}
	if jobs[2].URL != "https://b.example/2" || jobs[2].Host() != "b.example:443" {
		t.Errorf("job without scheme: URL %q host %q", jobs[2].URL, jobs[2].Host())
	}
}

func TestReadJobsSeveralInputs(t *testing.T) {
	t.Parallel()
	jobs := readAll(t, []Input{
		{Name: "a", R: strings.NewReader("http://x.example/1\nhttp://x.example/2\n")},
		{Name: "-", R: strings.NewReader("\nhttp://y.example/1\n")},
	}, ReadOptions{Recorded: func(j *Job) (bool, error) { return j.Input == "a" && j.Line == 1, nil }})
	if len(jobs) != 2 {
		t.Fatalf("got %d jobs, want 2", len(jobs))
	}
	if jobs[0].Input != "a" || jobs[0].Line != 2 || jobs[1].Input != "-" || jobs[1].Line != 2 {
		t.Errorf("jobs = %+v", jobs)
	}
}

// TestReadJobsRecorded checks that Recorded sees every line that gets a
// record, outside the shard too, with the URL as its record holds it, and
// that its error stops the read before that line is sent.
func TestReadJobsRecorded(t *testing.T) {
	t.Parallel()
	in := "http://u:hunter2@x.example/1\n# note\n\nftp://bad/\nhttp://y.example/5\nhttp://z.example/6\n"
	stop := errors.New("stop")
	var asked []string
	out := make(chan Job, 10)
	err := ReadJobs(context.Background(), []Input{{Name: "a", R: strings.NewReader(in)}},
		ReadOptions{
			Shard: Shard{K: 0, N: 1000},
			Recorded: func(j *Job) (bool, error) {
				asked = append(asked, fmt.Sprintf("%d %s", j.Line, j.RecordURL()))
				if j.Line == 5 {
					return false, stop
				}
				return j.Line == 1, nil
			},
		}, out)
	close(out)
	if !errors.Is(err, stop) {
		t.Fatalf("ReadJobs = %v, want the callback's error", err)
	}
	want := []string{"1 http://u:***@x.example/1", "4 ftp://bad/", "5 http://y.example/5"}
	if !reflect.DeepEqual(asked, want) {
		t.Errorf("Recorded asked about %q, want %q", asked, want)
	}
	var sent []int64
	for j := range out {
		sent = append(sent, j.Line)
	}
	if !reflect.DeepEqual(sent, []int64{4}) {
		t.Errorf("sent lines %v, want [4] (the invalid line, shard 0's; 1 recorded, 5 stopped)", sent)
	}
}

// TestReadJobsSending checks that Sending is called once for each job sent,
// before it is sent, and for no line that gets no job: blank, a comment,
// recorded already, or in another shard.
func TestReadJobsSending(t *testing.T) {
	t.Parallel()
	in := "http://x.example/1\n# note\n\nftp://bad/\nhttp://y.example/5\n"
	for _, tt := range []struct {
		name string
		opts ReadOptions
		want int
	}{
		{"every line", ReadOptions{}, 3},
		{"recorded", ReadOptions{Recorded: func(j *Job) (bool, error) { return j.Line == 1, nil }}, 2},
		{"another shard", ReadOptions{Shard: Shard{K: 1, N: 1 << 30}}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out := make(chan Job, 10)
			sending := 0
			tt.opts.Sending = func() {
				if len(out) != sending {
					t.Errorf("Sending called with %d jobs sent, want %d: before each send", len(out), sending)
				}
				sending++
			}
			if err := ReadJobs(context.Background(), []Input{{Name: "a", R: strings.NewReader(in)}}, tt.opts, out); err != nil {
				t.Fatal(err)
			}
			if sending != len(out) || sending != tt.want {
				t.Errorf("Sending called %d times for %d jobs sent, want %d", sending, len(out), tt.want)
			}
		})
	}
}

func TestShardsCoverEveryLineOnce(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for i := 0; i < 4000; i++ {
		if i%97 == 0 {
			b.WriteString("ftp://bad/\n")
			continue
		}
		b.WriteString("http://host" + itoa(i%40) + ".example/" + itoa(i) + "\n")
	}
	const n = 4
	seen := map[int64]int{}
	hostShard := map[string]int{}
	for k := 0; k < n; k++ {
		jobs := readAll(t, []Input{{Name: "-", R: strings.NewReader(b.String())}}, ReadOptions{Shard: Shard{K: k, N: n}})
		for _, j := range jobs {
			seen[j.Line]++
			if j.Err != nil {
				if k != 0 {
					t.Errorf("invalid line %d recorded by shard %d, want shard 0 only", j.Line, k)
				}
				continue
			}
			if prev, ok := hostShard[j.Host()]; ok && prev != k {
				t.Errorf("host %s split over shards %d and %d", j.Host(), prev, k)
			}
			hostShard[j.Host()] = k
		}
	}
	if len(seen) != 4000 {
		t.Fatalf("shards cover %d lines, want 4000", len(seen))
	}
	for line, c := range seen {
		if c != 1 {
			t.Errorf("line %d fetched by %d shards", line, c)
		}
	}
}

func TestShardOfIsStable(t *testing.T) {
	t.Parallel()
	// FNV-1a 64 of the host key, modulo N: these values were computed with
	// an independent FNV-1a implementation and are part of the contract,
	// since shards on different machines and versions must agree.
	tests := []struct {
		host string
		n    int
		want int
	}{
		{"example.com:443", 4, 1},
		{"example.com:80", 4, 0},
		{"api.example.org:8443", 16, 14},
		{"127.0.0.1:8080", 3, 0},
	}
	for _, tt := range tests {
		if got := ShardOf(tt.host, tt.n); got != tt.want {
			t.Errorf("ShardOf(%q, %d) = %d, want %d", tt.host, tt.n, got, tt.want)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestParseLineHidesPassword checks that the reason for a line that does not
// parse never echoes any part of the password in its user info.
func TestParseLineHidesPassword(t *testing.T) {
	t.Parallel()
	for _, line := range []string{
		"http://bob:Usec/ret1@host/",
		"http://bob:Usec@ret1@host:x/",
		"https://bob:Usec ret1@host/",
		"bob:Usec%zzret1@host/",
		"http://bob:Usec[ret1@host/",
	} {
		_, raw, _, err := ParseLine(line)
		if err == nil {
			t.Errorf("ParseLine(%q) accepted it", line)
			continue
		}
		for _, part := range []string{"Usec", "ret1"} {
			if strings.Contains(err.Error(), part) {
				t.Errorf("ParseLine(%q): reason %q shows %q", line, err, part)
			}
			if strings.Contains(secret.URL(raw), part) {
				t.Errorf("ParseLine(%q): redacted url %q shows %q", line, secret.URL(raw), part)
			}
		}
	}
}

// TestReadJobsStripsBOM checks that a byte-order mark, or a zero-width space,
// before an input's first line is not part of its URL, and that one on a later
// line is an invalid line.
func TestReadJobsStripsBOM(t *testing.T) {
	t.Parallel()
	for _, prefix := range []string{"\ufeff", "\u200b", "\ufeff\u200b"} {
		in := Input{Name: "-", R: strings.NewReader(prefix + "http://a.example/1\n\ufeffhttp://a.example/2\n")}
		jobs := readAll(t, []Input{in}, ReadOptions{})
		if len(jobs) != 2 {
			t.Fatalf("%q: got %d jobs, want 2", prefix, len(jobs))
		}
		if jobs[0].Err != nil || jobs[0].URL != "http://a.example/1" || jobs[0].Host() != "a.example:80" {
			t.Errorf("%q: first job = %+v, want http://a.example/1 on a.example:80", prefix, jobs[0])
		}
		if jobs[1].Err == nil {
			t.Errorf("%q: a mark on line 2 was accepted: %+v", prefix, jobs[1])
		}
	}
}

// TestReadJobsLongLineLength checks that the reason for an over-long line
// gives the line's own length, however far past the reader's buffer it runs,
// counted as a short line's is: without the white space at either end or the
// marks before a first line. A short URL among white space that runs past
// the buffer is read whole.
func TestReadJobsLongLineLength(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		line string
		want int
	}{
		{name: "under the buffer", line: "http://h/?q=" + strings.Repeat("a", 20000), want: 20012},
		{name: "past the buffer", line: "http://h/?q=" + strings.Repeat("a", 70000), want: 70012},
		{name: "a megabyte", line: "http://h/?q=" + strings.Repeat("a", 1<<20), want: 12 + 1<<20},
		{name: "white space at both ends", line: strings.Repeat(" ", 100) + "http://h/?q=" + strings.Repeat("a", 200000) + strings.Repeat(" \t", 70000) + "\r", want: 200012},
		{name: "white space inside", line: "http://h/?q=" + strings.Repeat("a", 65000) + strings.Repeat(" ", 70000) + "b", want: 135013},
		{name: "leading white space past the buffer", line: strings.Repeat(" ", 100000) + "http://h/?q=" + strings.Repeat("a", 9000), want: 9012},
		{name: "byte-order mark", line: "\ufeffhttp://h/?q=" + strings.Repeat("a", 100000), want: 100012},
		{name: "a short URL in white space past the buffer", line: strings.Repeat(" ", 100000) + "http://h/a" + strings.Repeat(" ", 100000), want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			input := tt.line + "\nhttp://h/next\n"
			jobs := readAll(t, []Input{{Name: "list.txt", R: strings.NewReader(input)}}, ReadOptions{})
			if tt.want == 0 {
				if len(jobs) != 2 || jobs[0].Err != nil || jobs[0].URL != "http://h/a" {
					t.Fatalf("got %+v, want line 1 to be http://h/a", jobs)
				}
				return
			}
			if len(jobs) != 2 || jobs[0].Err == nil || jobs[1].Line != 2 {
				t.Fatalf("got %d jobs (%+v), want the long line invalid and line 2 after it", len(jobs), jobs)
			}
			want := fmt.Sprintf("line is %d bytes, longer than the %d-byte limit", tt.want, MaxURLLength)
			if got := jobs[0].Err.Error(); got != want {
				t.Errorf("reason %q, want %q", got, want)
			}
			if len(jobs[0].URL) > 1100 {
				t.Errorf("record URL is %d bytes, want it cut short", len(jobs[0].URL))
			}
		})
	}
}
