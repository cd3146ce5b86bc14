package integration

import (
	"os/exec"
	"testing"

	"github.com/porthole-dev/porthole/internal/testenv"
)

// TestComposeFileIsValid checks compose.yaml with `docker compose config`
// (or Debian's docker-compose), which needs no Docker engine.
func TestComposeFileIsValid(t *testing.T) {
	var cmd *exec.Cmd
	if path, err := exec.LookPath("docker-compose"); err == nil {
		cmd = exec.Command(path, "-f", "compose.yaml", "config", "-q")
	} else if path, err := exec.LookPath("docker"); err == nil && exec.Command(path, "compose", "version").Run() == nil {
		cmd = exec.Command(path, "compose", "-f", "compose.yaml", "config", "-q")
	}
	testenv.Require(t, "docker compose or docker-compose", cmd != nil)
	cmd.Dir = testenv.RepoRoot(t)
	cmd.Env = append(cmd.Environ(), "PORTHOLE_TURN_SECRET=test")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("compose.yaml does not validate: %v\n%s", err, out)
	}
}
