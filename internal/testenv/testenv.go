// Package testenv holds the helpers that every test tier shares: skipping (or, in CI, failing)
// when something a test needs is missing, finding binaries, starting a throwaway redis-server,
// and a per-test artifacts directory.
//
// Set PORTHOLE_REQUIRE_ALL=1 (as .ci/run does) to turn every "skipping: X not available" into
// a failure, so that CI cannot pass by skipping. This package reads the environment; it is for
// tests only.
package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RequireAllEnv names the environment variable that turns skips into failures when set to 1.
const RequireAllEnv = "PORTHOLE_REQUIRE_ALL"

// RequireAll reports whether missing prerequisites must fail tests rather than skip them.
func RequireAll() bool { return os.Getenv(RequireAllEnv) == "1" }

// Require skips the test when ok is false, saying what is missing, or fails it when
// PORTHOLE_REQUIRE_ALL=1.
func Require(t testing.TB, what string, ok bool) {
	t.Helper()
	if ok {
		return
	}
	if RequireAll() {
		t.Fatalf("%s not available, and %s=1 requires it", what, RequireAllEnv)
		return
	}
	t.Skipf("skipping: %s not available", what)
}

// NeedRoot requires that the test runs as root (for network namespaces, nftables and the like).
func NeedRoot(t testing.TB) {
	t.Helper()
	Require(t, "root", os.Geteuid() == 0)
}

// NeedBinary requires that name is on PATH and returns its path.
func NeedBinary(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	Require(t, "binary "+name, err == nil)
	return path
}

// Listen returns a TCP listener on a free loopback port, closed when the test ends. Prefer it to
// FreePort wherever the code under test accepts a listener.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on loopback: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// FreePort returns a TCP port that was free a moment ago on every address, for a separate
// process that must be told its port. It is drawn below the kernel's ephemeral range
// (32768–60999 by default), where no outgoing connection's source port can take it before
// the process binds it — a port the kernel hands out for listen(":0") is in that range, and a
// busy machine's connections took one in CI. Another test may still draw the same port:
// callers that can, retry on "address in use".
func FreePort(t testing.TB) int {
	t.Helper()
	for range 200 {
		port := 20000 + rand.IntN(12000) // 20000–31999
		ln, err := net.Listen("tcp", ":"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		ln.Close()
		return port
	}
	t.Fatalf("no free TCP port in 20000–31999 after 200 tries")
	return 0
}

// RepoRoot returns the module root: the nearest directory at or above the working directory
// that holds go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// ArtifactsDir returns artifacts/<TestName> under the repository root, created (subtests nest:
// artifacts/TestX/case). Files left there (logs, screenshots, captures) survive the test run for
// people and CI to read; the directory is not emptied first.
func ArtifactsDir(t testing.TB) string {
	t.Helper()
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.', r == '/':
			return r
		}
		return '_'
	}, t.Name())
	name = strings.ReplaceAll(name, "..", "__")
	dir := filepath.Join(RepoRoot(t), "artifacts", filepath.FromSlash(name))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts dir: %v", err)
	}
	return dir
}

// redisStartTimeout bounds how long StartRedis waits for PONG.
const redisStartTimeout = 15 * time.Second

// StartRedis starts a private redis-server on a free loopback port, without persistence, and
// returns its address (host:port) once it answers PING. The server is stopped when the test ends.
// It skips (or fails under PORTHOLE_REQUIRE_ALL=1) when redis-server is not installed.
func StartRedis(t testing.TB) string {
	t.Helper()
	return StartRedisWith(t)
}

// StartRedisWith is StartRedis with further redis-server arguments, e.g.
// "--aclfile", path (the server then counts as up when it answers PING with
// NOAUTH).
func StartRedisWith(t testing.TB, args ...string) string {
	t.Helper()
	bin := NeedBinary(t, "redis-server")
	dir := t.TempDir()
	var lastErr error
	for attempt := range 3 {
		addr, err := startRedis(t, bin, dir, attempt, args...)
		if err == nil {
			return addr
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	t.Fatalf("start redis-server: %v", lastErr)
	return ""
}

var errPortTaken = errors.New("port taken")

func startRedis(t testing.TB, bin, dir string, attempt int, extra ...string) (string, error) {
	port := FreePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	logPath := filepath.Join(dir, fmt.Sprintf("redis-%d.log", attempt))
	logFile, err := os.Create(logPath)
	if err != nil {
		return "", err
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, append([]string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--daemonize", "no",
		"--protected-mode", "no",
		"--loglevel", "warning",
	}, extra...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}

	deadline := time.NewTimer(redisStartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := ping(addr); err == nil {
			t.Cleanup(stop)
			return addr, nil
		}
		select {
		case <-exited:
			out, _ := os.ReadFile(logPath)
			if strings.Contains(string(out), "Address already in use") {
				return "", fmt.Errorf("%w: %s", errPortTaken, addr)
			}
			return "", fmt.Errorf("redis-server exited: %s", strings.TrimSpace(string(out)))
		case <-deadline.C:
			stop()
			out, _ := os.ReadFile(logPath)
			return "", fmt.Errorf("no PONG from %s within %s; log: %s", addr, redisStartTimeout, out)
		case <-tick.C:
		}
	}
}

// ping sends one RESP PING to addr and expects +PONG.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" && !strings.HasPrefix(line, "-NOAUTH") {
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}

// pollInterval is how often Eventually re-checks its condition.
const pollInterval = 10 * time.Millisecond

// Eventually polls cond (at once, then every 10 ms) until it returns true, and fails the test
// with "timed out after <within> waiting for <what>" if it has not by the time within has
// passed. cond runs one last time at the deadline. Use it for state the test can only observe
// by polling, not to synchronise with I/O the test itself drives.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if cond() {
		return
	}
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if cond() {
				return
			}
		case <-deadline.C:
			if cond() {
				return
			}
			t.Fatalf("timed out after %s waiting for %s", within, what)
			return // for a testing.TB whose Fatalf does not stop the goroutine
		}
	}
}
