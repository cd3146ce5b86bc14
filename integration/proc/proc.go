// Package proc starts the project's binaries as real child processes for the
// demo and for end-to-end tests: it tees their output, waits for the lines
// that say they are ready, and stops them (and only them) reliably.
package proc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is a running child process.
type Proc struct {
	Name string
	cmd  *exec.Cmd

	mu      sync.Mutex
	lines   []string // bounded history for WaitLine and failure reports
	waiters []*waiter
	counts  map[string]int // Count's substrings: lines seen containing each
	exited  chan struct{}
	err     error
}

type waiter struct {
	re *regexp.Regexp
	ch chan []string
}

const maxLines = 2000

// Options for Start.
type Options struct {
	Env []string  // added to the current environment
	Out io.Writer // copy of combined output, each line prefixed with the name; nil for none
	Dir string
	// Netns runs the process inside a network namespace (needs root).
	Netns string
}

// Start runs bin with args.
func Start(name, bin string, args []string, opts Options) (*Proc, error) {
	var cmd *exec.Cmd
	if opts.Netns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", opts.Netns, bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	cmd.Env = append(os.Environ(), opts.Env...)
	cmd.Dir = opts.Dir
	// Own process group, so a stop reaches helpers a binary may start, and a
	// Ctrl-C in the terminal reaches only the launcher, which stops us in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, cmd: cmd, exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if opts.Out != nil {
				fmt.Fprintf(opts.Out, "[%s] %s\n", name, line)
			}
			p.addLine(line)
		}
	}()
	go func() {
		err := cmd.Wait()
		_ = pw.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.exited)
	}()
	return p, nil
}

func (p *Proc) addLine(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines = append(p.lines, line)
	if len(p.lines) > maxLines {
		p.lines = p.lines[len(p.lines)-maxLines:]
	}
	for sub := range p.counts {
		if strings.Contains(line, sub) {
			p.counts[sub]++
		}
	}
	kept := p.waiters[:0]
	for _, w := range p.waiters {
		if m := w.re.FindStringSubmatch(line); m != nil {
			w.ch <- m
			continue
		}
		kept = append(kept, w)
	}
	p.waiters = kept
}

// WaitLine waits until a line of output matches re (lines already printed
// count) and returns the submatches. It fails if the process exits first or
// ctx ends.
func (p *Proc) WaitLine(ctx context.Context, re *regexp.Regexp) ([]string, error) {
	w := &waiter{re: re, ch: make(chan []string, 1)}
	p.mu.Lock()
	for _, l := range p.lines {
		if m := re.FindStringSubmatch(l); m != nil {
			p.mu.Unlock()
			return m, nil
		}
	}
	p.waiters = append(p.waiters, w)
	p.mu.Unlock()
	select {
	case m := <-w.ch:
		return m, nil
	case <-p.exited:
		select {
		case m := <-w.ch:
			return m, nil
		default:
		}
		return nil, fmt.Errorf("%s exited (%v) before printing %q; last output:\n%s", p.Name, p.ExitErr(), re, p.Tail(20))
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: waiting for %q: %w; last output:\n%s", p.Name, re, context.Cause(ctx), p.Tail(20))
	}
}

// Count returns how many lines of output, from the first call with sub on
// (and among the bounded history before it), contained sub.
func (p *Proc) Count(sub string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n, ok := p.counts[sub]; ok {
		return n
	}
	if p.counts == nil {
		p.counts = map[string]int{}
	}
	n := 0
	for _, l := range p.lines {
		if strings.Contains(l, sub) {
			n++
		}
	}
	p.counts[sub] = n
	return n
}

// Tail returns the last n lines of output.
func (p *Proc) Tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	start := max(0, len(p.lines)-n)
	out := ""
	for _, l := range p.lines[start:] {
		out += "  " + l + "\n"
	}
	return out
}

// Exited is closed when the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// ExitErr is the process's exit error once it exited.
func (p *Proc) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Pid is the process ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Stop sends SIGTERM to the process group, waits up to grace, then kills
// it. It returns the exit error unless the process was killed by our
// signal.
func (p *Proc) Stop(grace time.Duration) error {
	select {
	case <-p.exited:
		return p.ExitErr()
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
		return errors.New(p.Name + " did not stop within " + grace.String() + "; killed")
	}
	var ee *exec.ExitError
	if err := p.ExitErr(); err != nil && !(errors.As(err, &ee) && ee.ExitCode() == -1) {
		return err
	}
	return nil
}
