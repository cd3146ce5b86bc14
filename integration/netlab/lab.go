package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/internal/testenv"
)

// Prefix starts the name of every namespace netlab creates.
const Prefix = "phl-"

// netnsDir is where "ip netns" keeps its named namespaces.
const netnsDir = "/var/run/netns"

// cmdTimeout bounds every ip/nft/sysctl command the lab runs.
const cmdTimeout = 20 * time.Second

// staleName matches netlab namespaces and captures the creating PID.
var staleName = regexp.MustCompile(`^` + regexp.QuoteMeta(Prefix) + `(\d+)-`)

// nsSeq numbers namespaces across all labs of this process, so that two
// labs in one test binary (parallel tests, subtests) never share a name.
var nsSeq atomic.Uint64

// cleanStaleOnce runs CleanStale once per test process, from the first New.
var cleanStaleOnce sync.Once

// Lab is one test's set of namespaces. Create it with New; everything it
// made is removed when the test ends, pass or fail.
type Lab struct {
	t testing.TB

	mu         sync.Mutex
	namespaces []string // in creation order; removed in reverse
	ifSeq      int      // numbers segment-side veth ends: v1, v2, ...
	hosts      map[string]*Host
}

// New returns an empty lab. It skips the test (or fails it under
// PORTHOLE_REQUIRE_ALL=1) when the process is not root, when ip or nft is
// missing, or when network namespaces cannot be created; it removes stale
// namespaces of crashed runs first, once per process.
func New(t testing.TB) *Lab {
	t.Helper()
	Require(t)
	cleanStaleOnce.Do(func() {
		if n, err := CleanStale(); err != nil {
			t.Logf("netlab: cleaning stale namespaces: %v", err)
		} else if n > 0 {
			t.Logf("netlab: removed %d stale namespaces of crashed runs", n)
		}
	})
	l := &Lab{t: t, hosts: map[string]*Host{}}
	t.Cleanup(l.close)
	// Probe once: a container may run us as root without CAP_SYS_ADMIN.
	probe := l.newNamespace("probe")
	testenv.Require(t, "network namespaces (ip netns add)", probe != "")
	return l
}

// Require skips the test (or fails it under PORTHOLE_REQUIRE_ALL=1) unless
// the process is root and ip and nft are installed: call it first in a
// test that builds labs only in its subtests.
func Require(t testing.TB) {
	t.Helper()
	testenv.NeedRoot(t)
	testenv.NeedBinary(t, "ip")
	testenv.NeedBinary(t, "nft")
}

// newNamespace creates a namespace with its loopback up and returns its
// name, or "" if namespaces cannot be created at all (only New asks).
func (l *Lab) newNamespace(role string) string {
	l.t.Helper()
	name := fmt.Sprintf("%s%d-%d-%s", Prefix, os.Getpid(), nsSeq.Add(1), role)
	if _, err := run("ip", "netns", "add", name); err != nil {
		if role == "probe" {
			l.t.Logf("netlab: %v", err)
			return ""
		}
		l.t.Fatalf("netlab: %v", err)
	}
	l.mu.Lock()
	l.namespaces = append(l.namespaces, name)
	l.mu.Unlock()
	l.must("ip", "-n", name, "link", "set", "lo", "up")
	// No IPv6: it would only add link-local candidates and noise.
	l.sysctl(name, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	return name
}

// nextIf returns a fresh short interface name for a segment-side veth end.
func (l *Lab) nextIf() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ifSeq++
	return "v" + strconv.Itoa(l.ifSeq)
}

// must runs a command and fails the test if it fails.
func (l *Lab) must(name string, args ...string) string {
	l.t.Helper()
	out, err := run(name, args...)
	if err != nil {
		l.t.Fatalf("netlab: %v", err)
	}
	return out
}

// sysctl sets keys (key=value) inside namespace ns.
func (l *Lab) sysctl(ns string, kv ...string) {
	l.t.Helper()
	l.must("ip", append([]string{"netns", "exec", ns, "sysctl", "-q", "-w"}, kv...)...)
}

// nft loads an nftables ruleset into namespace ns.
func (l *Lab) nft(ns, ruleset string) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("netlab: nft in %s: %v\n%s\nruleset:\n%s", ns, err, out, ruleset)
	}
}

// Namespaces lists the namespaces this lab created and has not removed.
func (l *Lab) Namespaces() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.namespaces)
}

// Close removes every namespace of the lab now (processes still inside are
// killed) and reports what could not be removed. The test's cleanup calls
// it too; a second call does nothing.
func (l *Lab) Close() error {
	l.mu.Lock()
	names := l.namespaces
	l.namespaces = nil
	l.mu.Unlock()
	var errs []error
	for _, ns := range slices.Backward(names) {
		if err := removeNamespace(ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (l *Lab) close() {
	if err := l.Close(); err != nil {
		l.t.Errorf("netlab: teardown: %v", err)
	}
}

// removeNamespace kills what still runs in ns and deletes it.
func removeNamespace(ns string) error {
	if out, err := run("ip", "netns", "pids", ns); err == nil {
		for _, f := range strings.Fields(out) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if _, err := run("ip", "netns", "del", ns); err != nil {
		if _, statErr := os.Stat(netnsDir + "/" + ns); errors.Is(statErr, os.ErrNotExist) {
			return nil
		}
		return err
	}
	return nil
}

// List returns the names of all netlab namespaces on the machine, of any
// run.
func List() ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), Prefix) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// CleanStale removes netlab namespaces whose creating process is dead
// (leftovers of a crashed or killed test run) and returns how many it
// removed. Namespaces of runs still alive are left alone.
func CleanStale() (int, error) {
	names, err := List()
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, ns := range names {
		m := staleName.FindStringSubmatch(ns)
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pidAlive(pid) {
			continue
		}
		if err := removeNamespace(ns); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// pidAlive reports whether a process with this PID exists and is not a
// zombie (a killed test whose parent never reaped it is dead for us).
func pidAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the state follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return true
	}
	state := b[i+2]
	return state != 'Z' && state != 'X'
}

// run runs a command with the lab's timeout and returns its output.
func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return out.String(), nil
}
