//go:build !windows

package main

import (
	"errors"
	"io"
)

// runAsService is false off Windows: systemd runs the agent as a plain
// process (agent/packaging/systemd/porthole-agent.service).
func runAsService() (bool, error) { return false, nil }

// serviceCmd exists on Windows only.
func serviceCmd([]string, io.Writer) error {
	return errors.New("only on Windows; on Linux install the .deb or .rpm, whose systemd unit runs the agent (README, Agent packages)")
}
