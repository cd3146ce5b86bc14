package main

// Where the Windows service keeps the configuration and the state
// (%ProgramData%, readable by administrators and SYSTEM; the state
// directory is created 0700, which Go maps to an owner-only ACL).
const (
	defaultConfig   = `C:\ProgramData\Porthole\agent.json`
	defaultStateDir = `C:\ProgramData\Porthole\agent-state`
)
