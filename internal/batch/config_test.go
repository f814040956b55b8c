package batch

import (
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
