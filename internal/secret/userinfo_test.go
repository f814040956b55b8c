package secret

import (
	"encoding/base64"
	"net/url"
	"slices"
	"testing"
)

func TestUserInfo(t *testing.T) {
	t.Parallel()
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name string
		u    *url.URL
		want []string
	}{
		{name: "nil", u: nil},
		{name: "no user info", u: &url.URL{Scheme: "http", Host: "gw:1"}},
		{name: "password", u: &url.URL{Scheme: "http", Host: "gw:1", User: url.UserPassword("u", "Sec-fixed-xyz")},
			want: []string{"Sec-fixed-xyz", "u:Sec-fixed-xyz", b64("u:Sec-fixed-xyz")}},
		{name: "escaped password, sent unescaped", u: mustURL(t, "http://u:p%40ss%2Fword@gw:1"),
			want: []string{"p@ss/word", "u:p@ss/word", b64("u:p@ss/word")}},
		{name: "user alone: net/http still sends a token", u: &url.URL{Scheme: "http", Host: "gw:1", User: url.User("u")},
			want: []string{b64("u:")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := UserInfo(tt.u); !slices.Equal(got, tt.want) {
				t.Errorf("UserInfo = %q, want %q", got, tt.want)
			}
		})
	}
	// What UserInfo returns masks a quoted token as the header value does.
	u := &url.URL{Scheme: "http", Host: "gw:1", User: url.UserPassword("u", "pw")}
	if got, want := Text("407 denied token Basic "+b64("u:pw"), UserInfo(u)...), "407 denied token Basic ***"; got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
	// And user:password, decoded from it, even when the password is too
	// short to be masked on its own.
	u = &url.URL{Scheme: "http", Host: "gw:1", User: url.UserPassword("cust", "p5")}
	if got, want := Text("/denied?who=cust%3Ap5&raw=cust:p5", UserInfo(u)...), "/denied?who=***&raw=***"; got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
