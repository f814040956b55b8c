package secret

import "regexp"

// placeholdersOnly matches text made of session placeholders alone.
var placeholdersOnly = regexp.MustCompile(`^(?:\{session(?::[0-9]+)?\})+$`)

// PlaceholdersOnly reports whether s, a proxy password as written, is made
// of session placeholders alone ({session}, {session:N}): the run fills
// them in, and the filled password is the secret, not what was written,
// which messages quote to say what is wrong with it.
func PlaceholdersOnly(s string) bool {
	return placeholdersOnly.MatchString(s)
}
