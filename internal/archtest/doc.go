// Package archtest holds the module's architecture guards: tests that fail
// when a package has no doc comment or when a package depends on what its
// layer must not (signaling on pion or agent code, the technician's CLI on
// the site daemon, proto on anything but the standard library) or holds
// package-level mutable state (a pool, lock or atomic at package level, a
// package variable written outside init: state_test.go). They keep
// the house clean by rule rather than by care, the way tailscale's
// TestPackageDocs and deptest do. The package has no code of its own.
package archtest
