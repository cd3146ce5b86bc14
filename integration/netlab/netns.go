package netlab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/porthole-dev/porthole/integration/proc"
)

// Do runs fn on an OS thread switched into the host's namespace, so the
// sockets fn opens belong to that namespace (and keep belonging to it after
// fn returns, wherever they are used). fn must not start goroutines that
// open sockets: they would run on other threads, in the test's namespace.
func (h *Host) Do(fn func() error) error { return doInNamespace(h.ns, fn) }

func doInNamespace(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is returned to the scheduler only if it is back in
		// its own namespace; otherwise it exits with this goroutine.
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netlab: open own namespace: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open(netnsDir + "/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netlab: open namespace %s: %w", ns, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netlab: enter namespace %s: %w", ns, err)
			return
		}
		err = fn()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// ListenUDP opens a UDP socket in the host's namespace on addr
// ("ip:port"; ":0" for any port on every address).
func (h *Host) ListenUDP(addr string) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := h.Do(func() error {
		ua, err := net.ResolveUDPAddr("udp4", addr)
		if err != nil {
			return err
		}
		c, err = net.ListenUDP("udp4", ua)
		return err
	})
	return c, err
}

// Listen opens a TCP listener in the host's namespace on addr.
func (h *Host) Listen(addr string) (net.Listener, error) {
	var ln net.Listener
	err := h.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", addr)
		return err
	})
	return ln, err
}

// DialContext connects from the host's namespace to addr (an IP literal
// and port: names are not resolved in the lab).
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() error {
		var err error
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// HTTPClient returns a client whose connections start in the host's
// namespace.
func (h *Host) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:         h.DialContext,
			MaxIdleConnsPerHost: 4,
		},
	}
}

// Run runs a command inside the host's namespace and returns its combined
// output.
func (h *Host) Run(ctx context.Context, name string, args ...string) (string, error) {
	return runIn(ctx, h.ns, name, args...)
}

func runIn(ctx context.Context, ns, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in %s: %s %s: %w: %s", ns, name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Start starts bin with args as a process inside the host's namespace,
// logging its output to the test log when verbose testing is on (and its
// last lines when the test fails), and stops it when the test ends.
func (h *Host) Start(name, bin string, args []string, env ...string) *proc.Proc {
	t := h.lab.t
	t.Helper()
	var out io.Writer
	lw := &logWriter{t: t}
	if testing.Verbose() {
		out = lw
	}
	p, err := proc.Start(h.name+"/"+name, bin, args, proc.Options{Netns: h.ns, Env: env, Out: out})
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	t.Cleanup(func() {
		err := p.Stop(5 * time.Second)
		lw.close()
		if err != nil {
			t.Logf("%s/%s: %v", h.name, name, err)
		}
		if t.Failed() && out == nil {
			t.Logf("%s/%s last output:\n%s", h.name, name, p.Tail(40))
		}
	})
	return p
}

// StartAndWait is Start followed by WaitLine for ready (a regular
// expression) within timeout; it returns the submatches.
func (h *Host) StartAndWait(name, bin string, args []string, ready string, timeout time.Duration, env ...string) (*proc.Proc, []string) {
	t := h.lab.t
	t.Helper()
	p := h.Start(name, bin, args, env...)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	m, err := p.WaitLine(ctx, regexp.MustCompile(ready))
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	return p, m
}

// logWriter copies process output to the test log until closed: a line
// logged after the test has completed would panic.
type logWriter struct {
	t      testing.TB
	mu     sync.Mutex
	closed bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *logWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}
