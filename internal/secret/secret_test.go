package secret

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode"
)

func TestURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, raw, want string
	}{
		{"proxy with password", "http://bob:s3cret@proxy.example:8080", "http://bob:***@proxy.example:8080"},
		{"socks proxy", "socks5://bob:s3cret@10.0.0.1:1080", "socks5://bob:***@10.0.0.1:1080"},
		{"target with path", "https://u:p@example.com/a?b=c#d", "https://u:***@example.com/a?b=c#d"},
		{"user only", "https://token@example.com/", "https://token@example.com/"},
		{"no user info", "https://example.com/a", "https://example.com/a"},
		{"empty user", "http://:pw@h/", "http://:***@h/"},
		{"empty password", "http://u:@h/", "http://u:***@h/"},
		{"password with colon and at", "http://u:p:a@ss@h/", "http://u:***@h/"},
		{"escaped password", "http://u:p%40ss%2F@h/", "http://u:***@h/"},
		{"already redacted", "http://u:***@h/", "http://u:***@h/"},
		{"at sign in path", "https://example.com:8443/@user", "https://example.com:8443/@user"},
		{"at sign in query", "https://x.com/?a=b:c@d", "https://x.com/?a=b:c@d"},
		{"unescaped slash in password", "https://user:pa/ss@host/p", "https://user:***@host/p"},
		{"unescaped hash in password", "http://user:pa#ss@host", "http://user:***@host"},
		{"no scheme", "bob:pw@proxy:3128", "bob:***@proxy:3128"},
		{"no scheme, with a path", "bob:pw@host/a", "bob:***@host/a"},
		{"scheme with one slash", "https:/user:secret@127.0.0.1/", "https:/user:***@127.0.0.1/"},
		{"other scheme with one slash", "ws:/user:secret@h/", "ws:/user:***@h/"},
		{"scheme without slashes", "http:user:secret@h/", "http:***@h/"},
		{"host and port, then a path with at", "localhost:8080/a@b", "localhost:8080/a@b"},
		{"session placeholder in the user name", "http://user-{session:12}:Secretpw@127.0.0.1:18001", "http://user-{session:12}:***@127.0.0.1:18001"},
		{"placeholder out of range", "http://user-{session:0}:Secretpw@h:1", "http://user-{session:0}:***@h:1"},
		{"plain placeholder", "http://h-{session}:pw@h:1", "http://h-{session}:***@h:1"},
		{"placeholder in the password", "http://u:pw-{session:9}@h:1", "http://u:***@h:1"},
		{"not a placeholder", "http://a{session:x}:pw@h:1", "http://a{session:***@h:1"},
		{"unparsable host", "http://u:pw@ho st:99/", "http://u:***@ho st:99/"},
		{"password of a URL in the query", "http://127.0.0.1:18081/nf?next=http://u:qpass123456@127.0.0.1:18082/", "http://127.0.0.1:18081/nf?next=http://u:***@127.0.0.1:18082/"},
		{"passwords of the URL and of one in it", "https://a:b@h/?n=https://c:d@e/&m=ftp://f:g@i", "https://a:***@h/?n=https://c:***@e/&m=ftp://f:***@i"},
		{"URL in the path", "https://h/go/http://u:pw@e/x", "https://h/go/http://u:***@e/x"},
		{"URL in the query, user only", "https://h/?n=https://u@e/", "https://h/?n=https://u@e/"},
		{"percent-encoded URL in the query", "http://127.0.0.1:18081/x?m=ok&next=http%3A%2F%2Fu%3Aencpw12345%40h%2F", "http://127.0.0.1:18081/x?m=ok&next=http%3A%2F%2Fu%3A***%40h%2F"},
		{"percent-encoded in lower case", "https://h/?next=http%3a%2f%2fu%3apw%40h%2f", "https://h/?next=http%3a%2f%2fu%3a***%40h%2f"},
		{"percent-encoded in mixed case", "https://h/?next=HTTPS%3a%2F%2fu%3Apw%40h", "https://h/?next=HTTPS%3a%2F%2fu%3A***%40h"},
		{"percent-encoded but the slashes", "https://h/?next=http%3A//u%3Apw%40h/x", "https://h/?next=http%3A//u%3A***%40h/x"},
		{"percent-encoded, then another parameter", "https://h/?next=http%3A%2F%2Fu%3Apw%40h&x=y:z@w", "https://h/?next=http%3A%2F%2Fu%3A***%40h&x=y:z@w"},
		{"percent-encoded, a password with escapes", "https://h/?next=http%3A%2F%2Fu%3Ap%2540s%253As%40h%2F", "https://h/?next=http%3A%2F%2Fu%3A***%40h%2F"},
		{"percent-encoded, the user's escapes", "https://h/?next=http%3A%2F%2Fa%253Ab%3Apw%40h%2F", "https://h/?next=http%3A%2F%2Fa%253Ab%3A***%40h%2F"},
		{"percent-encoded, unescaped slash in the password", "https://h/?next=https%3A%2F%2Fuser%3Apa%2Fss%40host%2Fp", "https://h/?next=https%3A%2F%2Fuser%3A***%40host%2Fp"},
		{"percent-encoded, user only", "https://h/?next=http%3A%2F%2Fu%40h%2F", "https://h/?next=http%3A%2F%2Fu%40h%2F"},
		{"percent-encoded, at sign in the path", "https://h/?next=http%3A%2F%2Fh%3A80%2Fa%40b", "https://h/?next=http%3A%2F%2Fh%3A80%2Fa%40b"},
		{"percent-encoded, already masked", "https://h/?next=http%3A%2F%2Fu%3A***%40h%2F", "https://h/?next=http%3A%2F%2Fu%3A***%40h%2F"},
		{"percent-encoded in the path", "https://h/go/http%3A%2F%2Fu%3Apw%40e%2Fx", "https://h/go/http%3A%2F%2Fu%3A***%40e%2Fx"},
		{"percent-encoded in the fragment", "https://h/#next=http%3A%2F%2Fu%3Apw%40e", "https://h/#next=http%3A%2F%2Fu%3A***%40e"},
		{"percent-encoded alone", "http%3A%2F%2Fu%3Apw%40e", "http%3A%2F%2Fu%3A***%40e"},
		{"percent-encoded in a literal one", "https://a:b@h/?n=http://c:d@e/?m=http%3A%2F%2Ff%3Ag%40i", "https://a:***@h/?n=http://c:***@e/?m=http%3A%2F%2Ff%3A***%40i"},
		{"percent-encoded twice, in a percent-encoded one",
			"https://h/?n=https%3A%2F%2Fa%3Ab%40h%2F%3Fm%3Dhttp%253A%252F%252Fu%253Apw%2540e%26x%3D1",
			"https://h/?n=https%3A%2F%2Fa%3A***%40h%2F%3Fm%3Dhttp%253A%252F%252Fu%253A***%2540e%26x%3D1"},
		{"percent-encoded twice, ended by a once-encoded slash", "https://h/?n=x%3Fm%3Dhttp%253A%252F%252Fu%253Apw%2540e%2Fa%40b", "https://h/?n=x%3Fm%3Dhttp%253A%252F%252Fu%253A***%2540e%2Fa%40b"},
		{"percent-encoded, a password that starts with slashes", "https://h/?next=http%3a%2f%2f0%3a%25252F%25252F%2525%25252F%40%5b%3a%3a%5d%2f%40&b=2", "https://h/?next=http%3a%2f%2f0%3a***%40%5b%3a%3a%5d%2f%40&b=2"},
		{"percent-encoded, a URL in the password", "https://h/?next=http%3A%2F%2Fu%3A%25253A%25252F%25252Fa%25252Fb%25253Ac%40h%2F%40", "https://h/?next=http%3A%2F%2Fu%3A***%40h%2F%40"},
		{"percent-encoded separator, no user info", "https://h/?a=b%3A%2F%2F&c=d%40e", "https://h/?a=b%3A%2F%2F&c=d%40e"},
		{"cut short escapes", "https://h/?a=b%3A%2F%2Fu%3", "https://h/?a=b%3A%2F%2Fu%3"},
		{"not a URL", "hello world", "hello world"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := URL(tt.raw); got != tt.want {
				t.Errorf("URL(%q) = %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
}

// TestURLAgreesWithText: a URL masked by URL reads the same as in a line
// masked by Text (a -v line, a message): a record and the lines about it
// agree.
func TestURLAgreesWithText(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"http://127.0.0.1:18081/nf?next=http://u:qpass123456@127.0.0.1:18082/",
		"https://a:b@h/?n=https://c:d@e/&m=ftp://f:g@i",
		"https://h/?a=http%3A%2F%2Fu%3Apw%40e&b=http://u:p@e:1/x?y=http://v:q@w",
		"https://u:p@h/",
		"https://h/a@b?c=d:e@f",
		"http://127.0.0.1:18081/x?m=ok&next=http%3A%2F%2Fu%3Aencpw12345%40h%2F",
		"https://h/?next=http%3a%2f%2fu%3apw%40h%2f&n=http%3A//v%3Aq%40i/",
		"https://h/?n=https%3A%2F%2Fa%3Ab%40h%2F%3Fm%3Dhttp%253A%252F%252Fu%253Apw%2540e%26x%3D1",
	} {
		want := URL(raw)
		if got := Text("fail " + raw + ": status: 404"); got != "fail "+want+": status: 404" {
			t.Errorf("Text of a line with %q = %q; URL gives %q", raw, got, want)
		}
		if got := URL(want); got != want {
			t.Errorf("URL(%q) = %q, masked again %q", raw, want, got)
		}
	}
}

func TestURLAllocs(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		_ = URL("https://example.com/a/b?q=1")
		_ = URL("https://example.com/a%20b?q=%3A%2F%2F&r=http%3A%2F%2Fh%2Fx%3Fy%3D1&e=a%40b")
	})
	if allocs != 0 {
		t.Errorf("RedactURL of a URL without user info allocates %v times, want 0", allocs)
	}
}

func TestHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, value, want string
	}{
		{"Authorization", "Bearer abc", Mask},
		{"authorization", "Basic Ym9iOnB3", Mask},
		{"PROXY-AUTHORIZATION", "Basic x", Mask},
		{"Cookie", "session=1", Mask},
		{"set-cookie", "session=1; Path=/", Mask},
		{"Accept", "text/html", "text/html"},
		{"X-Authorization-Hint", "none", "none"},
		{"Cookies", "x", "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Header(tt.name, tt.value); got != tt.want {
				t.Errorf("Header(%q, %q) = %q, want %q", tt.name, tt.value, got, tt.want)
			}
		})
	}
}

func TestText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		s       string
		secrets []string
		want    string
	}{
		{"no secrets", "proxyconnect tcp: dial tcp 10.0.0.1:8080: refused", nil, "proxyconnect tcp: dial tcp 10.0.0.1:8080: refused"},
		{"empty secret ignored", "abc", []string{""}, "abc"},
		{"every occurrence", "s3cr3t-pw then s3cr3t-pw again", []string{"s3cr3t-pw"}, "*** then *** again"},
		{"several secrets", "user bob token T0K3N-X cookie sid=c0ffee", []string{"T0K3N-X", "sid=c0ffee"}, "user bob token *** cookie ***"},
		{"longer secret first", "s3cret-longer and s3cret", []string{"s3cret", "s3cret-longer"}, "*** and ***"},
		{"escaped in user info", "Get http://bob:p%40ss%2Fw@proxy/", []string{"p@ss/w"}, "Get http://bob:***@proxy/"},
		{"escaped in query", "GET /?k=a+b%26cdef", []string{"a b&cdef"}, "GET /?k=***"},
		{"empty text", "", []string{"x"}, ""},

		// Where a password stands as a secret, it is masked whatever its
		// length.
		{"short password in a proxy URL", "proxy http://user:1@127.0.0.1:18999: dial tcp 127.0.0.1:18999: connect: connection refused", []string{"1"},
			"proxy http://user:***@127.0.0.1:18999: dial tcp 127.0.0.1:18999: connect: connection refused"},
		{"password p", "proxy http://user:p@127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused", []string{"p"},
			"proxy http://user:***@127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused"},
		{"password proxy", "run stopped: every proxy is failing: 3 proxy failures in a row on http://user:proxy@h:1, the last: proxy http://user:proxy@h:1: refused", []string{"proxy"},
			"run stopped: every proxy is failing: 3 proxy failures in a row on http://user:***@h:1, the last: proxy http://user:***@h:1: refused"},
		{"password part of a port", "proxy http://user:8000@127.0.0.1:18000: dial tcp 127.0.0.1:18000: refused", []string{"8000"},
			"proxy http://user:***@127.0.0.1:18000: dial tcp 127.0.0.1:18000: refused"},
		{"user name equal to the password", "proxy http://admin:admin@h:1: answered 407", []string{"admin"}, "proxy http://admin:***@h:1: answered 407"},
		{"another proxy's port", "proxy http://b:***@127.0.0.1:21999: dial tcp 127.0.0.1:21999: refused", []string{"99"},
			"proxy http://b:***@127.0.0.1:21999: dial tcp 127.0.0.1:21999: refused"},
		{"long password inside a longer token", "Secretpw2 xSecretpw Secretpw_3", []string{"Secretpw"}, "Secretpw2 xSecretpw Secretpw_3"},
		{"long password as a token", "said Secretpw. (Secretpw) -Secretpw-", []string{"Secretpw"}, "said ***. (***) -***-"},
		{"long password next to a separator it holds", "pass: Fixed-abcd1234-Part99", []string{"Fixed-", "-Part99"}, "pass: ***abcd1234***"},

		// The appearances the substring pass exists for.
		{"quoted by net/url, with a space", `parse "http://u:p w@h/": invalid character " " in host name`, []string{"p w"},
			`parse "http://u:***@h/": invalid character " " in host name`},
		{"password alone in a port error", `invalid port ":Secretpw" after host`, []string{"Secretpw"}, `invalid port ":***" after host`},
		{"proxy URL inside a net/http error", `Get "http://t/": proxyconnect tcp: http://u:pw@127.0.0.1:1: refused`, []string{"pw"},
			`Get "http://t/": proxyconnect tcp: http://u:***@127.0.0.1:1: refused`},
		{"user info without a scheme", "bob:pw@proxy:3128 refused", []string{"pw"}, "bob:***@proxy:3128 refused"},
		{"short header value", "header Cookie: c=1 and cookie=c=1", []string{"c=1"}, "header Cookie: *** and cookie=***"},
		{"escaped short password", "Get http://bob:p%40s@proxy/", []string{"p@s"}, "Get http://bob:***@proxy/"},
		{"panic text", "token s3cr3t leaked", []string{"s3cr3t"}, "token *** leaked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Text(tt.s, tt.secrets...)
			if got != tt.want {
				t.Errorf("Text(%q, %q) = %q, want %q", tt.s, tt.secrets, got, tt.want)
			}
			// A secret long enough for the substring pass is gone unless
			// it is part of a longer token.
			for _, secret := range tt.secrets {
				if len(secret) >= minBare && !strings.Contains(tt.want, secret) && strings.Contains(got, secret) {
					t.Errorf("Text left %q in %q", secret, got)
				}
			}
		})
	}
}

func TestURLOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		u    *url.URL
		want string
	}{
		{"nil", nil, ""},
		{"no user", &url.URL{Scheme: "http", Host: "h:1"}, "http://h:1"},
		{"user only", &url.URL{Scheme: "http", Host: "h:1", User: url.User("alice")}, "http://alice@h:1"},
		{"password", &url.URL{Scheme: "socks5", Host: "h:1", User: url.UserPassword("alice", "s3cret")}, "socks5://alice:***@h:1"},
		{"escaped user", &url.URL{Scheme: "http", Host: "h:1", User: url.UserPassword("a@b", "p:w/x")}, "http://a%40b:***@h:1"},
		{"empty password", &url.URL{Scheme: "http", Host: "h:1", User: url.UserPassword("alice", "")}, "http://alice:***@h:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := URLOf(tt.u); got != tt.want {
				t.Errorf("URLOf = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestURLsIn(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"no URL here", "no URL here"},
		{`input http://u:pw@h/x: no such file`, `input http://u:***@h/x: no such file`},
		{`unknown command "https://u:p%40w@h:8080/" for fetchctl`, `unknown command "https://u:***@h:8080/" for fetchctl`},
		{"proxy socks5://bob:x/y@h:1080 failed", "proxy socks5://bob:***@h:1080 failed"},
		{"two: http://a:1@h and http://b:2@i", "two: http://a:***@h and http://b:***@i"},
		{"http://h/?next=http://c:d@e", "http://h/?next=http://c:***@e"},
		{"user only http://u@h/", "user only http://u@h/"},
		{`Get "http://h/?next=http%3A%2F%2Fc%3Ad%40e%2F": EOF`, `Get "http://h/?next=http%3A%2F%2Fc%3A***%40e%2F": EOF`},
		{"encoded alone http%3a%2f%2fc%3ad%40e and http%3A//f%3Ag%40i", "encoded alone http%3a%2f%2fc%3a***%40e and http%3A//f%3A***%40i"},
	}
	for _, tt := range tests {
		if got := URLsIn(tt.in); got != tt.want {
			t.Errorf("URLsIn(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestHeadersIn(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"quoted request head",
			`starting with "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer tok\r\nCookie: c=1; d=2\r\nUser-Agent: x\r\n\r\n"; err=<nil>`,
			`starting with "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: ***\r\nCookie: ***\r\nUser-Agent: x\r\n\r\n"; err=<nil>`},
		{"head cut in a value", `starting with "GET / HTTP/1.1\r\nAuthorization: Bearer to"; err=<nil>`, `starting with "GET / HTTP/1.1\r\nAuthorization: ***"; err=<nil>`},
		{"raw lines", "Set-Cookie: a=b; Path=/\r\nproxy-authorization:Basic eA==\nX: y", "Set-Cookie: ***\r\nproxy-authorization:***\nX: y"},
		{"value to the end", "header cookie: sid=1 x", "header cookie: ***"},
		{"other headers", "X-Cookie: 1, Cookies: 2, X-Authorization-Hint: 3", "X-Cookie: 1, Cookies: 2, X-Authorization-Hint: 3"},
		{"already masked", "Authorization: ***", "Authorization: ***"},
		{"no value", "Authorization:", "Authorization:"},
		{"no header", "connection reset by peer", "connection reset by peer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := HeadersIn(tt.in); got != tt.want {
				t.Errorf("HeadersIn(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestPassword(t *testing.T) {
	t.Parallel()
	tests := []struct{ raw, want string }{
		{"http://bob:pw@h:1", "pw"},
		{"http://bob:p%40w@h:1", "p@w"},
		{"http://bob@h:1", ""},
		{"h:1", ""},
		{"bob:pw@h:1", "pw"},
		{"http://bob:pa ss@h:1", "pa ss"},
		{"http://bob:x/y@h:1", "x/y"},
		{"  socks5://bob:pw@h:1  ", "pw"},
		{"http://user-{session:12}:Secretpw@h:1", "Secretpw"},
		{"http://u:pw-{session:8}@h:1", "pw-{session:8}"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := Password(tt.raw); got != tt.want {
			t.Errorf("Password(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

func TestHeaderLine(t *testing.T) {
	t.Parallel()
	tests := []struct{ line, masked, value string }{
		{"Authorization: Bearer T", "Authorization: ***", "Bearer T"},
		{"cookie:a=1", "cookie: ***", "a=1"},
		{"Cookie=a=1", "Cookie=a=1", "a=1"},
		{"Proxy-Authorization Basic x", "Proxy-Authorization Basic x", "Basic x"},
		{"Accept: text/html", "Accept: text/html", ""},
		{"X-Cookie: 1", "X-Cookie: 1", ""},
		{"Authorization", "Authorization", ""},
	}
	for _, tt := range tests {
		if got := HeaderLine(tt.line); got != tt.masked {
			t.Errorf("HeaderLine(%q) = %q, want %q", tt.line, got, tt.masked)
		}
		if got := HeaderLineValue(tt.line); got != tt.value {
			t.Errorf("HeaderLineValue(%q) = %q, want %q", tt.line, got, tt.value)
		}
	}
}

func TestSet(t *testing.T) {
	t.Parallel()
	var s Set
	s.Add("T0K3N-1", "", "T0K3N-1")
	s.AddPassword("http://bob:p%40ss-w0rd@proxy:1")
	s.AddPassword("not a url")
	if got, want := s.List(), []string{"T0K3N-1", "p@ss-w0rd"}; !slices.Equal(got, want) {
		t.Errorf("List() = %q, want %q", got, want)
	}
	in := "token T0K3N-1 via http://bob:p%40ss-w0rd@proxy:1 and http://eve:other@h/ said p@ss-w0rd"
	want := "token *** via http://bob:***@proxy:1 and http://eve:***@h/ said ***"
	if got := s.Mask(in); got != want {
		t.Errorf("Mask(%q) = %q, want %q", in, got, want)
	}
}

// FuzzURLHidesPassword checks that whatever the user name, password, host
// and path, a URL that net/url writes reads back with the password masked
// and every other part as it was, but for the path or query when it holds
// a URL of its own, whose password is masked too (see TestURL).
func FuzzURLHidesPassword(f *testing.F) {
	f.Add("bob", "pw", "proxy.example:8080", "/a", "q=1")
	f.Add("c-{session:8}", "p@ss:w/rd?#", "127.0.0.1:1", "", "")
	f.Add("", "x", "[::1]:80", "/p@th:x", "u=http://a:b@c/")
	f.Add("u:1", "***", "h", "/", "a=@")
	f.Fuzz(func(t *testing.T, user, pass, host, path, query string) {
		if pass == "" {
			return
		}
		u := &url.URL{Scheme: "http", User: url.UserPassword(user, pass), Host: host, Path: path, RawQuery: query}
		raw := u.String()
		back, err := url.Parse(raw)
		if err != nil || back.Host != host {
			return // not a URL net/url reads back: nothing to compare
		}
		masked := URL(raw)
		m, err := url.Parse(masked)
		if err != nil {
			t.Fatalf("URL(%q) = %q, which does not parse: %v", raw, masked, err)
		}
		if pw, _ := m.User.Password(); pw != Mask {
			t.Fatalf("URL(%q) = %q: password reads %q, want %q", raw, masked, pw, Mask)
		}
		if m.User.Username() != back.User.Username() || m.Host != back.Host ||
			!holdsURL(back.Path) && m.Path != back.Path || !holdsURL(back.RawQuery) && m.RawQuery != back.RawQuery {
			t.Fatalf("URL(%q) = %q: changed more than the password", raw, masked)
		}
	})
}

// holdsURL reports whether s may hold a URL, plain or percent-encoded
// any number of times: whether it holds "://" once every "%25" is read as
// "%", and "%3A" and "%2F" in any case as ":" and "/".
func holdsURL(s string) bool {
	s = strings.ToLower(s)
	for strings.Contains(s, "%25") {
		s = strings.ReplaceAll(s, "%25", "%")
	}
	s = strings.NewReplacer("%3a", ":", "%2f", "/").Replace(s)
	return strings.Contains(s, "://")
}

// FuzzEncodedURLHidesPassword checks that a URL percent-encoded as the
// value of another URL's query parameter, the way a query string holds
// one (in upper- or lower-case hex, encoded twice, or with its slashes
// left as Python's quote leaves them), reads back with its password
// masked and all else as it was, in a record (URL) and in a line (Text)
// alike.
func FuzzEncodedURLHidesPassword(f *testing.F) {
	f.Add("u", "encpw12345", "h", "/", uint8(0))
	f.Add("bob", "p@ss:w/rd?#&=", "127.0.0.1:1", "/a/b", uint8(1))
	f.Add("a:b", "%3A%2F%2F", "[::1]:80", "/x@y:z", uint8(2))
	f.Add("", "***", "h", "/http://c:d@e/", uint8(3))
	f.Fuzz(func(t *testing.T, user, pass, host, path string, form uint8) {
		if pass == "" {
			return
		}
		u := &url.URL{Scheme: "http", User: url.UserPassword(user, pass), Host: host, Path: path}
		back, err := url.Parse(u.String())
		if err != nil || back.Host != host {
			return // not a URL net/url reads back: nothing to compare
		}
		enc := url.QueryEscape(u.String())
		switch form % 4 {
		case 1:
			enc = lowerHex(enc)
		case 2:
			enc = url.QueryEscape(enc)
		case 3:
			enc = strings.ReplaceAll(enc, "%2F", "/")
		}
		raw := "https://o.example/x?a=1&next=" + enc + "&b=2"
		masked := URL(raw)
		if line := Text("fail " + raw + ": status 404"); line != "fail "+masked+": status 404" {
			t.Fatalf("Text of a line with %q = %q; URL gives %q", raw, line, masked)
		}
		if again := URL(masked); again != masked {
			t.Fatalf("URL(%q) = %q, masked again %q", raw, masked, again)
		}
		m, err := url.Parse(masked)
		if err != nil {
			t.Fatalf("URL(%q) = %q, which does not parse: %v", raw, masked, err)
		}
		q := m.Query()
		next := q.Get("next")
		if form%4 == 2 {
			if next, err = url.QueryUnescape(next); err != nil {
				t.Fatalf("URL(%q) = %q: next does not decode: %v", raw, masked, err)
			}
		}
		in, err := url.Parse(next)
		if err != nil {
			t.Fatalf("URL(%q) = %q: next reads %q, which does not parse: %v", raw, masked, next, err)
		}
		if pw, _ := in.User.Password(); pw != Mask {
			t.Fatalf("URL(%q) = %q: password reads %q, want %q", raw, masked, pw, Mask)
		}
		if q.Get("a") != "1" || q.Get("b") != "2" || len(q) != 3 || m.Host != "o.example" || m.Path != "/x" ||
			in.User.Username() != back.User.Username() || in.Host != back.Host || !holdsURL(back.Path) && in.Path != back.Path {
			t.Fatalf("URL(%q) = %q: changed more than the password", raw, masked)
		}
	})
}

// lowerHex writes the hex digits of s's percent-encodings in lower case.
func lowerHex(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1] = byte(unicode.ToLower(rune(b[i+1])))
			b[i+2] = byte(unicode.ToLower(rune(b[i+2])))
		}
	}
	return string(b)
}
