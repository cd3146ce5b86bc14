package integration

import (
	"os"
	"testing"

	"github.com/porthole-dev/porthole/integration/stack"
)

// TestMain removes the binaries stack.Build compiled for this process's
// tests once they have all run.
func TestMain(m *testing.M) {
	code := m.Run()
	stack.RemoveBuilt()
	os.Exit(code)
}
