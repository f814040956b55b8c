package secret

import (
	"encoding/base64"
	"net/url"
)

// UserInfo returns the secrets that the user info of u puts on the wire:
// its password, "user:password", and the Basic token of "user:password" that net/http sends
// in Authorization (a target's URL) or Proxy-Authorization (a proxy's), as
// it does for a user name alone. A peer that quotes them back, in a status
// line say, has them masked when they are passed to [Text]. It returns nil
// for a URL without user info.
func UserInfo(u *url.URL) []string {
	if u == nil || u.User == nil {
		return nil
	}
	var out []string
	pw, _ := u.User.Password()
	if pw != "" {
		// user:password as a peer that decodes the token quotes it.
		out = append(out, pw, u.User.Username()+":"+pw)
	}
	return append(out, base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pw)))
}
