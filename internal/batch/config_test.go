package batch

import (
	"fmt"
	"strings"
	"testing"

	"github.com/fetchctl/fetchctl/internal/transport"
)

// TestRepeatWarning: the warning about a proxy file's repeated lines names
// the lines, groups them by the line they repeat, and counts past a few.
func TestRepeatWarning(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		lines []transport.ProxyLine
		want  string
	}{
		{"none", []transport.ProxyLine{{Line: 1}, {Line: 2}}, ""},
		{"one", []transport.ProxyLine{{Line: 1, Repeats: []int{2}}}, "line 2 repeats line 1; it is used once"},
		{"one proxy, three repeats", []transport.ProxyLine{{Line: 2, Repeats: []int{3, 5, 9}}, {Line: 4}},
			"lines 3, 5 and 9 repeat line 2; it is used once"},
		{"two proxies", []transport.ProxyLine{{Line: 1, Repeats: []int{3}}, {Line: 2, Repeats: []int{4, 5}}},
			"line 3 repeats line 1, lines 4 and 5 repeat line 2; each is used once"},
		{"many", []transport.ProxyLine{{Line: 1, Repeats: []int{2, 3, 4, 5, 6}}, {Line: 10, Repeats: []int{11, 12, 13, 14}}, {Line: 20, Repeats: []int{21}}},
			"lines 2, 3, 4, 5 and 6 repeat line 1, lines 11, 12 and 13 repeat line 10, and 2 more lines repeat earlier ones; each is used once"},
		{"one more", []transport.ProxyLine{{Line: 1, Repeats: []int{2, 3, 4, 5, 6, 7, 8, 9, 10}}},
			"lines 2, 3, 4, 5, 6, 7, 8 and 9 repeat line 1, and 1 more line repeats an earlier one; it is used once"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := repeatWarning(tt.lines); got != tt.want {
				t.Errorf("repeatWarning = %q\nwant             %q", got, tt.want)
			}
		})
	}
}

// TestParseHeadersHost: a Host header must be a host name (with a port or
// not) that can go on the wire as given: net/http would send an empty
// Host instead of one with a space or a slash, without a word. An empty
// one is the URL's own.
func TestParseHeadersHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line    string
		wantErr string
	}{
		{line: "Host: vhost.example"},
		{line: "host: vhost.example:8080"},
		{line: "Host: [::1]:8080"},
		{line: "Host: bücher.example"},
		{line: "Host:"},
		{line: "Host: bad host", wantErr: `header Host "bad host" is not a host name`},
		{line: "Host: a/b", wantErr: `header Host "a/b" is not a host name`},
		{line: "Host: a@b", wantErr: `header Host "a@b" is not a host name`},
		{line: "Host: vhost.example."},
		{line: "Host: a-b.c1.example:65535"},
		{line: "Host: x:1"},
		{line: "Host: 1.2.3.4"},
		{line: "Host: 1.2.3.4:443"},
		{line: "Host: [2001:db8::1]"},
		{line: "Host: [::ffff:1.2.3.4]:80"},
		{line: "Host: :80", wantErr: `header Host ":80" is not a host name`},
		{line: "Host: x:abc", wantErr: `header Host "x:abc" is not a host name`},
		{line: "Host: x:99999", wantErr: `header Host "x:99999" is not a host name`},
		{line: "Host: 1.2.3.4:65536", wantErr: `header Host "1.2.3.4:65536" is not a host name`},
		{line: "Host: x:0", wantErr: `header Host "x:0" is not a host name`},
		{line: "Host: x:", wantErr: `header Host "x:" is not a host name`},
		{line: "Host: x:+80", wantErr: `header Host "x:+80" is not a host name`},
		{line: "Host: [::1", wantErr: `header Host "[::1" is not a host name`},
		{line: "Host: [::1]x", wantErr: `header Host "[::1]x" is not a host name`},
		{line: "Host: [1.2.3.4]", wantErr: `header Host "[1.2.3.4]" is not a host name`},
		{line: "Host: [vhost]", wantErr: `header Host "[vhost]" is not a host name`},
		{line: "Host: ::1", wantErr: `header Host "::1" is not a host name`},
		{line: "Host: x..y", wantErr: `header Host "x..y" is not a host name`},
		{line: "Host: .x", wantErr: `header Host ".x" is not a host name`},
		{line: "Host: x..", wantErr: `header Host "x.." is not a host name`},
		{line: "Host: -x", wantErr: `header Host "-x" is not a host name`},
		{line: "Host: x-.example", wantErr: `header Host "x-.example" is not a host name`},
		{line: "Host: a_b.example", wantErr: `header Host "a_b.example" is not a host name`},
		{line: "Host: 1.2.3.256", wantErr: `header Host "1.2.3.256" is not a host name`},
		{line: "Host: " + strings.Repeat("a", 64) + ".example", wantErr: `header Host "` + strings.Repeat("a", 64) + `.example" is not a host name`},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			t.Parallel()
			_, err := parseHeaders([]string{tt.line})
			if got := fmt.Sprint(err); tt.wantErr == "" && err != nil || tt.wantErr != "" && got != tt.wantErr {
				t.Errorf("parseHeaders(%q) = %v, want %q", tt.line, err, tt.wantErr)
			}
		})
	}
}
