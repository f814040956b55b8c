package report

import (
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
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
		{"unparsable host", "http://u:pw@ho st:99/", "http://u:***@ho st:99/"},
		{"not a URL", "hello world", "hello world"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := RedactURL(tt.raw); got != tt.want {
				t.Errorf("RedactURL(%q) = %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
}

func TestRedactURLAllocs(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		_ = RedactURL("https://example.com/a/b?q=1")
	})
	if allocs != 0 {
		t.Errorf("RedactURL of a URL without user info allocates %v times, want 0", allocs)
	}
}

func TestRedactHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, value, want string
	}{
		{"Authorization", "Bearer abc", Redacted},
		{"authorization", "Basic Ym9iOnB3", Redacted},
		{"PROXY-AUTHORIZATION", "Basic x", Redacted},
		{"Cookie", "session=1", Redacted},
		{"set-cookie", "session=1; Path=/", Redacted},
		{"Accept", "text/html", "text/html"},
		{"X-Authorization-Hint", "none", "none"},
		{"Cookies", "x", "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := RedactHeader(tt.name, tt.value); got != tt.want {
				t.Errorf("RedactHeader(%q, %q) = %q, want %q", tt.name, tt.value, got, tt.want)
			}
		})
	}
}

func TestRedactText(t *testing.T) {
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
			got := RedactText(tt.s, tt.secrets...)
			if got != tt.want {
				t.Errorf("RedactText(%q, %q) = %q, want %q", tt.s, tt.secrets, got, tt.want)
			}
			for _, secret := range tt.secrets {
				if secret != "" && strings.Contains(got, secret) {
					t.Errorf("RedactText left %q in %q", secret, got)
				}
			}
		})
	}
}
