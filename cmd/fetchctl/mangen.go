//go:build mangen

package main

import (
	"github.com/spf13/cobra"

	"github.com/fetchctl/fetchctl/internal/manpage"
)

// Built with -tags mangen (make man), fetchctl has a hidden command that
// writes its man pages; the released binary has none.
func init() {
	extraCommands = append(extraCommands, func(*deps) *cobra.Command {
		return &cobra.Command{
			Use:    "gen-man DIR",
			Hidden: true,
			Args:   cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				return manpage.Write(c.Root(), version, args[0])
			},
		}
	})
}
