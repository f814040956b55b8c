//go:build !unix

package runner

import (
	"errors"
	"os"
)

// lockDir takes no lock here: with no way to tell that another run is
// saving in the folder, leftovers are never removed.
func lockDir(f *os.File, exclusive bool) error { return errors.ErrUnsupported }
