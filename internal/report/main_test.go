package report

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind, such as a
// Writer's flush ticker that Close did not stop.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
