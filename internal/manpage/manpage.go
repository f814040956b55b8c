// Package manpage writes fetchctl's man pages from its command tree. It is
// kept out of the fetchctl binary: the markdown renderer it brings in would
// cost every run its start-up work. `make man` builds fetchctl with the
// mangen tag, whose hidden gen-man command calls it.
package manpage

import (
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// Write writes a man page for root and each of its commands into dir,
// which it creates: fetchctl.1, fetchctl-run.1 and so on. version goes into
// the pages' footer.
func Write(root *cobra.Command, version, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root.DisableAutoGenTag = true
	header := &doc.GenManHeader{Title: "FETCHCTL", Section: "1", Source: "fetchctl " + version, Manual: "fetchctl manual"}
	return doc.GenManTree(root, header, dir)
}
