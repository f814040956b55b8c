package report

import (
	"net/url"
	"testing"
)

func TestHostKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw, want string
	}{
		{"https://example.com/path", "example.com:443"},
		{"http://example.com", "example.com:80"},
		{"HTTPS://Example.COM:8443/x", "example.com:8443"},
		{"http://user:pass@Host.example:81/?q=@x", "host.example:81"},
		{"https://h?x@y", "h:443"},
		{"https://h#frag@other", "h:443"},
		{"http://127.0.0.1:8080/", "127.0.0.1:8080"},
		{"http://[::1]:8080/", "[::1]:8080"},
		{"https://[FE80::1]/", "[fe80::1]:443"},
		{"http://[fe80::1%25eth0]:80/", "[fe80::1%eth0]:80"},
		{"http://example.com:/", "example.com:80"},
		{"https://h%C3%A9.example/", "hé.example:443"},
		{"https://ÉCOLE.example/", "école.example:443"},
		{"ftp://example.com/", ""},
		{"example.com", ""},
		{"https:///path", ""},
		{"https://user@/", ""},
		{"https://:80/", ""},
		{"https://h:8a/", ""},
		{"https://a:b:80/", ""},
		{"https://h h/", ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			t.Parallel()
			if got := HostKey(tt.raw); got != tt.want {
				t.Errorf("HostKey(%q) = %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
}

func TestHostKeyAllocs(t *testing.T) {
	buf := make([]byte, 0, 64)
	allocs := testing.AllocsPerRun(100, func() {
		buf, _ = appendHostKey(buf[:0], "https://user:pw@WWW.Example.com:8443/some/path?q=1")
	})
	if allocs != 0 {
		t.Errorf("appendHostKey allocates %v times, want 0", allocs)
	}
}

// FuzzHostKey checks that the hand-written scan agrees with url.Parse on
// every URL url.Parse accepts.
func FuzzHostKey(f *testing.F) {
	for _, s := range []string{"https://example.com/", "http://[::1]:80/x", "http://u:p@H:1/?#", "https://h%C3%A9/", "http://a@b@c:9/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got := HostKey(raw)
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		if want := URLHostKey(u); got != want {
			t.Errorf("HostKey(%q) = %q, want %q (from url.Parse)", raw, got, want)
		}
	})
}
