package report

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestClip(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 9<<20)
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"short", "text/html", "text/html"},
		{"at the limit", strings.Repeat("x", MaxServerText), strings.Repeat("x", MaxServerText)},
		{"one over", strings.Repeat("x", MaxServerText+1), strings.Repeat("x", MaxServerText) + "..."},
		{"9 MB", long, long[:MaxServerText] + "..."},
		// A cut never splits a UTF-8 sequence.
		{"multibyte at the cut", strings.Repeat("x", MaxServerText-1) + "é" + "tail", strings.Repeat("x", MaxServerText-1) + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Clip(tt.in)
			if got != tt.want {
				t.Errorf("Clip(%d bytes) = %d bytes %.40q..., want %d bytes", len(tt.in), len(got), got, len(tt.want))
			}
			if len(got) > MaxServerText+len("...") || !utf8.ValidString(got) {
				t.Errorf("Clip gave %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
			}
		})
	}
}

func TestSummaryCountsProtocol(t *testing.T) {
	t.Parallel()
	s := NewSummary()
	s.Add(&Record{URL: "http://a.example/", Attempts: 1, Error: &Error{Kind: KindProtocol, Message: "m"}})
	res := s.Result(time.Second, false)
	if res.Errors[KindProtocol] != 1 || res.Errors[KindOther] != 0 {
		t.Errorf("errors %v, want protocol 1", res.Errors)
	}
}
