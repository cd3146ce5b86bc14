// Package bench is Porthole's benchmark suite: every figure of issue 9 with
// its baseline measured in the same run, so that two runs or two commits
// compare by ratio even on a busy two-core machine.
//
// The scenarios live in this package as functions of a testing.TB, because
// most of them start the real binaries through integration/stack. They run
// from TestSuite (groups stack, inproc, turn, signaling, path, browser,
// bulk, fallback) when the test binary gets -suite=quick or -suite=full
// (make bench-quick, make bench); otherwise TestSuite runs a smoke version
// that only proves the code works. The Benchmark functions expose a few
// scenarios to `go test -bench` for profiling (-cpuprofile).
//
// Simulated delays come from user-space relays (delay.go): the kernel of
// the development machine has no netem. The WSS reflector of reflector.go
// is the server-relays-everything design Porthole is compared against.
package bench
