package stack

import "github.com/porthole-dev/porthole/internal/enrollexec"

// EnrollToken makes a one-time enrollment token for agent on site with
// `porthole-signaling admin enroll-token` (signaling must not be running
// yet: the admin command opens its store) and returns it.
func EnrollToken(signalingBin, dataDir, site, agent string, extra ...string) (string, error) {
	return enrollexec.EnrollToken(signalingBin, dataDir, site, agent, extra...)
}

// Enroll runs `porthole-agent enroll` against a running signaling.
func Enroll(agentBin, server, token, stateDir string) error {
	return enrollexec.Enroll(agentBin, server, token, stateDir)
}
