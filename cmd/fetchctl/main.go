// Command fetchctl fetches long URL lists through proxy pools and writes one
// NDJSON record per URL plus a success-ratio summary.
package main

import "os"

// Set by the build: -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "none"
)

func main() {
	os.Exit(Main())
}
