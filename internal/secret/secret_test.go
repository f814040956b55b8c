package secret

import (
	"net/url"
	"slices"
	"strings"
	"testing"
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
		{"session placeholder in the user name", "http://user-{session:12}:Secretpw@127.0.0.1:18001", "http://user-{session:12}:***@127.0.0.1:18001"},
		{"placeholder out of range", "http://user-{session:0}:Secretpw@h:1", "http://user-{session:0}:***@h:1"},
		{"plain placeholder", "http://h-{session}:pw@h:1", "http://h-{session}:***@h:1"},
		{"placeholder in the password", "http://u:pw-{session:9}@h:1", "http://u:***@h:1"},
		{"not a placeholder", "http://a{session:x}:pw@h:1", "http://a{session:***@h:1"},
		{"unparsable host", "http://u:pw@ho st:99/", "http://u:***@ho st:99/"},
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

func TestURLAllocs(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		_ = URL("https://example.com/a/b?q=1")
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
		{"every occurrence", "pw then pw again", []string{"pw"}, "*** then *** again"},
		{"several secrets", "user bob token T0K3N cookie c=1", []string{"T0K3N", "c=1"}, "user bob token *** cookie ***"},
		{"longer secret first", "password and pass", []string{"pass", "password"}, "*** and ***"},
		{"escaped in user info", "Get http://bob:p%40ss%2Fw@proxy/", []string{"p@ss/w"}, "Get http://bob:***@proxy/"},
		{"escaped in query", "GET /?k=a+b%26c", []string{"a b&c"}, "GET /?k=***"},
		{"empty text", "", []string{"x"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Text(tt.s, tt.secrets...)
			if got != tt.want {
				t.Errorf("Text(%q, %q) = %q, want %q", tt.s, tt.secrets, got, tt.want)
			}
			for _, secret := range tt.secrets {
				if secret != "" && strings.Contains(got, secret) {
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
	}
	for _, tt := range tests {
		if got := URLsIn(tt.in); got != tt.want {
			t.Errorf("URLsIn(%q) = %q, want %q", tt.in, got, tt.want)
		}
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
	s.Add("T0K3N", "", "T0K3N")
	s.AddPassword("http://bob:p%40ss@proxy:1")
	s.AddPassword("not a url")
	if got, want := s.List(), []string{"T0K3N", "p@ss"}; !slices.Equal(got, want) {
		t.Errorf("List() = %q, want %q", got, want)
	}
	in := "token T0K3N via http://bob:p%40ss@proxy:1 and http://eve:other@h/ said p@ss"
	want := "token *** via http://bob:***@proxy:1 and http://eve:***@h/ said ***"
	if got := s.Mask(in); got != want {
		t.Errorf("Mask(%q) = %q, want %q", in, got, want)
	}
}
