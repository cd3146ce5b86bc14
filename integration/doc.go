// Package integration holds Porthole's end-to-end tests: real binaries as
// real processes, talking over loopback (and, in the lab tests, network
// namespaces), driven the way users drive them.
package integration
