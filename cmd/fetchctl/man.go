package main

import (
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// writeManPages writes a man page for root and each of its commands into
// dir, which it creates: fetchctl.1, fetchctl-run.1 and so on.
func writeManPages(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root.DisableAutoGenTag = true
	header := &doc.GenManHeader{Title: "FETCHCTL", Section: "1", Source: "fetchctl " + version, Manual: "fetchctl manual"}
	return doc.GenManTree(root, header, dir)
}
