package secret

import (
	"slices"
	"testing"
)

func TestBasic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, value string
		want        []string
	}{
		{name: "user and password", value: "Basic YXU6YXV0aHNlY3JldDc=", want: []string{"YXU6YXV0aHNlY3JldDc=", "au:authsecret7", "authsecret7"}},
		{name: "scheme in any case, spaces", value: "  basic   aHU6aGRyc2VjcmV0OQ== ", want: []string{"aHU6aGRyc2VjcmV0OQ==", "hu:hdrsecret9", "hdrsecret9"}},
		{name: "user alone", value: "Basic dTo=", want: []string{"dTo=", "u:"}},
		{name: "another scheme", value: "Bearer YXU6YXV0aHNlY3JldDc="},
		{name: "not base64", value: "Basic !!!"},
		{name: "no token", value: "Basic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Basic(tt.value); !slices.Equal(got, tt.want) {
				t.Errorf("Basic(%q) = %q, want %q", tt.value, got, tt.want)
			}
		})
	}
	// What Basic returns masks a quoted user:password as a URL's does.
	if got, want := Text("407 no hu:hdrsecret9 / hdrsecret9", Basic("Basic aHU6aGRyc2VjcmV0OQ==")...), "407 no *** / ***"; got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
}
