//go:build !windows

package main

// Where the packages (agent/packaging/) put the configuration and the state.
const (
	defaultConfig   = "/etc/porthole/agent.json"
	defaultStateDir = "/var/lib/porthole-agent"
)
