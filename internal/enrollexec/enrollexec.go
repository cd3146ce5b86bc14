// Package enrollexec enrolls an agent by running the porthole-signaling and
// porthole-agent binaries, for the integration stack and the demo command.
package enrollexec

import (
	"fmt"
	"os/exec"
	"strings"
)

// EnrollToken makes a one-time enrollment token for agent on site with
// `porthole-signaling admin enroll-token` (signaling must not be running
// yet: the admin command opens its store) and returns it.
//
// extra are further flags of the admin command (e.g. "--redis", URL).
func EnrollToken(signalingBin, dataDir, site, agent string, extra ...string) (string, error) {
	args := append([]string{"admin", "enroll-token", "--site", site, "--id", agent, "--data-dir", dataDir}, extra...)
	out, err := exec.Command(signalingBin, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("porthole-signaling admin enroll-token: %v\n%s", err, out)
	}
	lines := strings.Fields(strings.TrimSpace(string(out)))
	tok := lines[len(lines)-1]
	if !strings.HasPrefix(tok, "phe_") {
		return "", fmt.Errorf("no token in %q", out)
	}
	return tok, nil
}

// Enroll runs `porthole-agent enroll` against a running signaling.
func Enroll(agentBin, server, token, stateDir string) error {
	out, err := exec.Command(agentBin, "enroll", "--server", server, "--token", token, "--state-dir", stateDir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("porthole-agent enroll: %v\n%s", err, out)
	}
	return nil
}
