package secret

import (
	"encoding/base64"
	"strings"
)

// Basic returns the secrets inside an Authorization or Proxy-Authorization
// value of the Basic scheme ("Basic dXNlcjpwYXNz", the scheme in any
// case): its token, the "user:password" the token decodes to, and the
// password, as [UserInfo] returns them for a URL's user info. A peer may
// quote any of them back. It returns nil for another scheme or a token
// that is not base64.
func Basic(value string) []string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(value), " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return nil
	}
	token = strings.TrimSpace(token)
	b, err := base64.StdEncoding.DecodeString(token)
	if err != nil || len(b) == 0 {
		return nil
	}
	out := []string{token, string(b)}
	if _, pw, ok := strings.Cut(string(b), ":"); ok && pw != "" {
		out = append(out, pw)
	}
	return out
}
