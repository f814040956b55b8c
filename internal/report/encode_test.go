package report

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

// sampleRecord is a typical failed-then-retried record with every field set.
func sampleRecord() *Record {
	return &Record{
		URL:         "https://example.com/a/b?q=1",
		Line:        1234,
		Input:       "urls.txt",
		OK:          true,
		Status:      200,
		FinalURL:    "https://www.example.com/a/b?q=1",
		Proto:       "HTTP/2.0",
		Bytes:       48213,
		ContentType: "text/html; charset=utf-8",
		Attempts:    2,
		DurationMS:  412.337,
		Timings: &Timings{
			DNSMS: ptr(1.25), ConnectMS: ptr(10.5), TLSMS: ptr(22.125), TTFBMS: ptr(84.002),
		},
		History: []Attempt{
			{Status: 503, MS: 80.5, WaitMS: ptr(250.0), RetryAfter: ptr(0.25)},
			{Status: 200, MS: 82.125},
		},
		SHA256:   "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		BodyFile: "bodies/1234",
		Proxy:    "http://bob:***@proxy.example:8080",
		Time:     time.Date(2025, 11, 25, 20, 46, 1, 123456789, time.UTC),
	}
}

// normalized applies the documented normalisations to a copy of r, so that
// encoding/json's output of it is what AppendJSON must produce for r.
func normalized(r *Record) *Record {
	ms := func(v float64) float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0
		}
		if math.Abs(v) < 1e12 {
			v = math.Round(v*1000) / 1000
		}
		return v + 0 // -0 becomes 0
	}
	msPtr := func(p *float64) *float64 {
		if p == nil {
			return nil
		}
		return ptr(ms(*p))
	}
	c := *r
	c.DurationMS = ms(c.DurationMS)
	if c.Timings != nil {
		t := *c.Timings
		t.DNSMS, t.ConnectMS, t.TLSMS, t.TTFBMS = msPtr(t.DNSMS), msPtr(t.ConnectMS), msPtr(t.TLSMS), msPtr(t.TTFBMS)
		c.Timings = &t
	}
	c.History = nil
	for _, a := range r.History {
		a.MS, a.WaitMS, a.RetryAfter = ms(a.MS), msPtr(a.WaitMS), msPtr(a.RetryAfter)
		c.History = append(c.History, a)
	}
	c.Time = c.Time.UTC()
	if y := c.Time.Year(); y < 0 || y > 9999 {
		c.Time = time.Time{}
	}
	return &c
}

// stdJSON is encoding/json's encoding of r, without HTML escaping.
func stdJSON(t testing.TB, r *Record) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func TestAppendJSON(t *testing.T) {
	t.Parallel()
	berlin := time.FixedZone("CET", 3600)
	tests := []struct {
		name string
		rec  *Record
		want string
	}{
		{
			name: "zero record",
			rec:  &Record{},
			want: `{"url":"","line":0,"ok":false,"bytes":0,"attempts":0,"duration_ms":0,"time":"0001-01-01T00:00:00Z"}`,
		},
		{
			name: "invalid line",
			rec: &Record{URL: "https://exa mple.com", Line: 7, Error: &Error{Kind: KindInvalidURL, Message: `parse "https://exa mple.com": invalid character " " in host name`},
				Time: time.Date(2025, 1, 2, 3, 4, 5, 0, berlin)},
			want: `{"url":"https://exa mple.com","line":7,"ok":false,"bytes":0,"attempts":0,"duration_ms":0,"error":{"kind":"invalid_url","message":"parse \"https://exa mple.com\": invalid character \" \" in host name"},"time":"2025-01-02T02:04:05Z"}`,
		},
		{
			name: "every field",
			rec:  sampleRecord(),
			want: `{"url":"https://example.com/a/b?q=1","line":1234,"input":"urls.txt","ok":true,"status":200,"final_url":"https://www.example.com/a/b?q=1","proto":"HTTP/2.0","bytes":48213,"content_type":"text/html; charset=utf-8","attempts":2,"duration_ms":412.337,"timings":{"dns_ms":1.25,"connect_ms":10.5,"tls_ms":22.125,"ttfb_ms":84.002,"reused":false},"history":[{"status":503,"ms":80.5,"wait_ms":250,"retry_after":0.25},{"status":200,"ms":82.125}],"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","body_file":"bodies/1234","proxy":"http://bob:***@proxy.example:8080","time":"2025-11-25T20:46:01.123456789Z"}`,
		},
		{
			name: "body kept encoded",
			rec:  &Record{ContentType: "text/plain", ContentEncoding: "br", Bytes: 9},
			want: `{"url":"","line":0,"ok":false,"bytes":9,"content_type":"text/plain","content_encoding":"br","attempts":0,"duration_ms":0,"time":"0001-01-01T00:00:00Z"}`,
		},
		{
			name: "reused connection has only ttfb",
			rec:  &Record{Timings: &Timings{TTFBMS: ptr(3.0), Reused: true}},
			want: `{"url":"","line":0,"ok":false,"bytes":0,"attempts":0,"duration_ms":0,"timings":{"ttfb_ms":3,"reused":true},"time":"0001-01-01T00:00:00Z"}`,
		},
		{
			name: "timings with nothing measured",
			rec:  &Record{Timings: &Timings{}},
			want: `{"url":"","line":0,"ok":false,"bytes":0,"attempts":0,"duration_ms":0,"timings":{"reused":false},"time":"0001-01-01T00:00:00Z"}`,
		},
		{
			name: "history with error kinds and no status",
			rec:  &Record{History: []Attempt{{Error: KindTimeout, MS: 20000, WaitMS: ptr(1.5)}, {Error: KindReset}}},
			want: `{"url":"","line":0,"ok":false,"bytes":0,"attempts":0,"duration_ms":0,"history":[{"error":"timeout","ms":20000,"wait_ms":1.5},{"error":"reset","ms":0}],"time":"0001-01-01T00:00:00Z"}`,
		},
		{
			// A wait of none, and a Retry-After: 0, are there: the next
			// attempt went at once, and the server asked for no wait.
			name: "history with a wait of 0 and Retry-After 0",
			rec:  &Record{History: []Attempt{{Status: 429, MS: 6.263, WaitMS: ptr(0.0004), RetryAfter: ptr(0.0)}, {Status: 200, MS: 0.271}}},
			want: `{"url":"","line":0,"ok":false,"bytes":0,"attempts":0,"duration_ms":0,"history":[{"status":429,"ms":6.263,"wait_ms":0,"retry_after":0},{"status":200,"ms":0.271}],"time":"0001-01-01T00:00:00Z"}`,
		},
		{
			name: "empty history is left out",
			rec:  &Record{History: []Attempt{}},
			want: `{"url":"","line":0,"ok":false,"bytes":0,"attempts":0,"duration_ms":0,"time":"0001-01-01T00:00:00Z"}`,
		},
		{
			name: "durations rounded to a microsecond",
			rec:  &Record{DurationMS: 12.3456789, Timings: &Timings{DNSMS: ptr(0.0004), ConnectMS: ptr(-0.0001), TLSMS: ptr(0.0005)}},
			want: `{"url":"","line":0,"ok":false,"bytes":0,"attempts":0,"duration_ms":12.346,"timings":{"dns_ms":0,"connect_ms":0,"tls_ms":0.001,"reused":false},"time":"0001-01-01T00:00:00Z"}`,
		},
		{
			name: "values JSON cannot hold",
			rec:  &Record{DurationMS: math.NaN(), Timings: &Timings{DNSMS: ptr(math.Inf(1)), TTFBMS: ptr(1e22)}},
			want: `{"url":"","line":0,"ok":false,"bytes":0,"attempts":0,"duration_ms":0,"timings":{"dns_ms":0,"ttfb_ms":1e+22,"reused":false},"time":"0001-01-01T00:00:00Z"}`,
		},
		{
			name: "time past year 9999",
			rec:  &Record{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
			want: `{"url":"","line":0,"ok":false,"bytes":0,"attempts":0,"duration_ms":0,"time":"0001-01-01T00:00:00Z"}`,
		},
		{
			name: "strings escaped but not HTML-escaped",
			rec: &Record{URL: "https://h/?a=<b>&c", Input: "tab\there \"q\" back\\slash \x00\x1f\b\f\r\n\x7f",
				Error: &Error{Kind: "other", Message: "bad \xff\xfe utf8 é \u2028\u2029 😀"}},
			want: `{"url":"https://h/?a=<b>&c","line":0,"input":"tab\there \"q\" back\\slash \u0000\u001f\b\f\r\n` + "\x7f" + `","ok":false,"bytes":0,"attempts":0,"duration_ms":0,"error":{"kind":"other","message":"bad \ufffd\ufffd utf8 é \u2028\u2029 😀"},"time":"0001-01-01T00:00:00Z"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := AppendJSON([]byte("prefix"), tt.rec)
			if !bytes.HasPrefix(got, []byte("prefix")) {
				t.Fatalf("AppendJSON dropped dst: %q", got)
			}
			got = got[len("prefix"):]
			if string(got) != tt.want {
				t.Errorf("AppendJSON:\n got %s\nwant %s", got, tt.want)
			}
			if std := stdJSON(t, normalized(tt.rec)); !bytes.Equal(got, std) {
				t.Errorf("AppendJSON differs from encoding/json:\n got %s\n std %s", got, std)
			}
		})
	}
}

func TestAppendJSONNil(t *testing.T) {
	t.Parallel()
	if got := string(AppendJSON(nil, nil)); got != "null" {
		t.Errorf("AppendJSON(nil) = %q, want null", got)
	}
}

// randomRecord builds a record with fields drawn from rng: present or not,
// short or long, plain or full of characters that need escaping.
func randomRecord(rng *rand.Rand) *Record {
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	str := func() string {
		if rng.IntN(3) == 0 {
			return ""
		}
		var b strings.Builder
		for range rng.IntN(40) {
			switch rng.IntN(6) {
			case 0:
				b.WriteByte(byte(rng.IntN(0x20)))
			case 1:
				b.WriteByte(byte(0x80 + rng.IntN(0x80)))
			case 2:
				b.WriteString(pick("\"", "\\", "<", ">", "&", "\u2028", "é", "😀", "\x7f"))
			default:
				b.WriteByte(byte('a' + rng.IntN(26)))
			}
		}
		return b.String()
	}
	ms := func() float64 {
		switch rng.IntN(8) {
		case 0:
			return 0
		case 1:
			return rng.Float64() / 1000
		case 2:
			return -rng.Float64()
		case 3:
			return rng.ExpFloat64() * 1e9
		default:
			return rng.ExpFloat64() * 100
		}
	}
	optMS := func() *float64 {
		if rng.IntN(3) == 0 {
			return nil
		}
		return ptr(ms())
	}
	r := &Record{
		URL: str(), Line: rng.Int64N(1 << 40), Input: str(), OK: rng.IntN(2) == 0,
		Status: pick2(rng, 0, 200, 404, 503, -1), FinalURL: str(), Proto: pick("", "HTTP/1.1", "HTTP/2.0"),
		Bytes: rng.Int64N(1 << 30), ContentType: str(), ContentEncoding: pick("", "gzip", "br\"\x01"), Attempts: rng.IntN(5), DurationMS: ms(),
		SHA256: str(), BodyFile: str(), Proxy: str(), Blocked: rng.IntN(2) == 0,
		BytesOut: rng.Int64N(3) * rng.Int64N(1<<40), BytesIn: rng.Int64N(3) * rng.Int64N(1<<40),
		Time: time.Unix(0, rng.Int64()).In(time.FixedZone("x", rng.IntN(50000)-25000)),
	}
	if rng.IntN(2) == 0 {
		r.Timings = &Timings{DNSMS: optMS(), ConnectMS: optMS(), TLSMS: optMS(), TTFBMS: optMS(), Reused: rng.IntN(2) == 0}
	}
	if rng.IntN(2) == 0 {
		r.Error = &Error{Kind: pick(kinds[:]...), Message: str()}
	}
	for range rng.IntN(4) {
		r.History = append(r.History, Attempt{Status: pick2(rng, 0, 429, 503), Error: pick("", KindTimeout, KindReset), MS: ms(), WaitMS: optMS(), RetryAfter: optMS(),
			Proxy: pick("", str()), Blocked: rng.IntN(2) == 0, BytesOut: rng.Int64N(3) * rng.Int64N(1<<30), BytesIn: rng.Int64N(3) * rng.Int64N(1<<30)})
	}
	return r
}

func pick2(rng *rand.Rand, xs ...int) int { return xs[rng.IntN(len(xs))] }

func TestAppendJSONRandomRecords(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	var buf []byte
	for i := range 5000 {
		r := randomRecord(rng)
		buf = AppendJSON(buf[:0], r)
		norm := normalized(r)
		if std := stdJSON(t, norm); !bytes.Equal(buf, std) {
			t.Fatalf("record %d: AppendJSON differs from encoding/json:\n got %s\n std %s", i, buf, std)
		}
		var got, want Record
		if err := json.Unmarshal(buf, &got); err != nil {
			t.Fatalf("record %d: decode %s: %v", i, buf, err)
		}
		std, _ := json.Marshal(norm)
		if err := json.Unmarshal(std, &want); err != nil {
			t.Fatalf("record %d: decode encoding/json output: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("record %d: decoded\n got %+v\nwant %+v", i, got, want)
		}
	}
}

func TestAppendJSONAllocs(t *testing.T) {
	r := sampleRecord()
	r.Error = &Error{Kind: KindStatus, Message: "503 Service Unavailable \xff"}
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendJSON(buf[:0], r)
	})
	if allocs != 0 {
		t.Errorf("AppendJSON allocates %v times per record, want 0", allocs)
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("https://example.com/", int64(1), "", true, 200, "", "HTTP/1.1", int64(512), "text/plain", 1,
		12.5, true, 1.5, false, "", "", 0, "", 80.5, 250.0, 0.0, "", "", int64(1764103561123456789))
	f.Add("https://h/<&>", int64(7), "in\x00put", false, 0, "\xff", "", int64(0), "", 0,
		math.NaN(), false, math.Inf(-1), true, KindInvalidURL, "bad \"url\"\n\u2028", 2, KindTimeout, -0.0004, 1e22, 0.0005, "", "http://u:***@p", int64(-1))
	f.Fuzz(func(t *testing.T, url string, line int64, input string, ok bool, status int, finalURL, proto string,
		nbytes int64, contentType string, attempts int, duration float64, hasTimings bool, dns float64, reused bool,
		kind, message string, nHistory int, histErr string, ms, wait, retryAfter float64,
		sha, proxy string, unixNano int64) {
		r := &Record{
			URL: url, Line: line, Input: input, OK: ok, Status: status, FinalURL: finalURL, Proto: proto,
			Bytes: nbytes, ContentType: contentType, Attempts: attempts, DurationMS: duration,
			SHA256: sha, Proxy: proxy, Time: time.Unix(0, unixNano),
		}
		if hasTimings {
			r.Timings = &Timings{DNSMS: &dns, TTFBMS: &duration, Reused: reused}
		}
		if kind != "" || message != "" {
			r.Error = &Error{Kind: kind, Message: message}
		}
		for range nHistory % 4 {
			r.History = append(r.History, Attempt{Status: status, Error: histErr, MS: ms, WaitMS: &wait, RetryAfter: &retryAfter})
		}
		got := AppendJSON(nil, r)
		if !json.Valid(got) {
			t.Fatalf("AppendJSON wrote invalid JSON: %s", got)
		}
		norm := normalized(r)
		if want := stdJSON(t, norm); !bytes.Equal(got, want) {
			t.Fatalf("AppendJSON differs from encoding/json:\n got %s\nwant %s", got, want)
		}
		var back, want Record
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("decode %s: %v", got, err)
		}
		std, err := json.Marshal(norm)
		if err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
		if err := json.Unmarshal(std, &want); err != nil {
			t.Fatalf("decode encoding/json output: %v", err)
		}
		if !reflect.DeepEqual(back, want) {
			t.Fatalf("decoded\n got %+v\nwant %+v", back, want)
		}
	})
}

func BenchmarkAppendJSON(b *testing.B) {
	r := sampleRecord()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendJSON(buf[:0], r)
	}
	b.SetBytes(int64(len(buf)))
}

// TestRandomRecordsCoverEveryField: the random records that
// TestAppendJSONRandomRecords compares with encoding/json set every field
// that a record writes at least once, so a field added to Record (or to its
// timings, error or history) and left out of AppendJSON fails there.
func TestRandomRecordsCoverEveryField(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return
			}
			v = v.Elem()
		}
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct {
			for i := range v.Len() {
				walk(prefix, v.Index(i))
			}
			return
		}
		if v.Kind() != reflect.Struct || v.Type() == reflect.TypeFor[time.Time]() {
			return
		}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			path := prefix + name
			if _, ok := seen[path]; !ok {
				seen[path] = false
			}
			fv := v.Field(i)
			if !fv.IsZero() {
				seen[path] = true
			}
			walk(path+".", fv)
		}
	}
	for range 5000 {
		walk("", reflect.ValueOf(randomRecord(rng)))
	}
	for path, set := range seen {
		if !set {
			t.Errorf("randomRecord never sets %s", path)
		}
	}
	for _, path := range []string{"blocked", "bytes_out", "timings.tls_ms", "error.kind", "history.proxy", "history.bytes_in"} {
		if _, ok := seen[path]; !ok {
			t.Errorf("%s not walked: the walk misses nested fields", path)
		}
	}
}
