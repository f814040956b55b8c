package secret

import "testing"

func TestPlaceholdersOnly(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"{session}":               true,
		"{session:0}":             true,
		"{session:65}{session:0}": true,
		"pw{session:99}":          false,
		"{session}-x":             false,
		"{session:abc}":           false,
		"":                        false,
	} {
		if got := PlaceholdersOnly(s); got != want {
			t.Errorf("PlaceholdersOnly(%q) = %v, want %v", s, got, want)
		}
	}
}
