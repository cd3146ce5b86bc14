package stack

import (
	"context"
	"io"
	"net"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/integration/proc"
)

// RestartSignaling stops porthole-signaling — with SIGKILL when crash is
// set, as a crash would, else with SIGTERM — and starts it again on the
// same address with the same data directory, returning once it listens.
func (s *Stack) RestartSignaling(t testing.TB, crash bool) {
	t.Helper()
	const name = "porthole-signaling"
	old := s.Procs[name]
	if crash {
		_ = syscall.Kill(old.Pid(), syscall.SIGKILL)
		<-old.Exited()
	} else if err := old.Stop(10 * time.Second); err != nil {
		t.Logf("%s: %v\n%s", name, err, old.Tail(30))
	}
	p, err := proc.Start(name, s.Bin[name], s.sigArgs, proc.Options{Out: s.out})
	if err != nil {
		t.Fatal(err)
	}
	s.Procs[name] = p
	t.Cleanup(func() {
		if err := p.Stop(10 * time.Second); err != nil {
			t.Logf("%s: %v\n%s", name, err, p.Tail(30))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The listening address is free again at once (SO_REUSEADDR); retry
	// is not needed.
	if _, err := p.WaitLine(ctx, regexp.MustCompile(`listening on`)); err != nil {
		t.Fatalf("%s did not restart: %v\n%s", name, err, p.Tail(30))
	}
}

// CutAgentLink drops every connection between the agent and signaling's
// agent listener (with Options.AgentRelay), as a broken network would; the
// agent reconnects through the relay.
func (s *Stack) CutAgentLink(t testing.TB) {
	t.Helper()
	if s.relay == nil {
		t.Fatal("CutAgentLink needs Options.AgentRelay")
	}
	if n := s.relay.cut(); n == 0 {
		t.Fatal("no agent connection to cut")
	}
}

// agentRelay is a TCP relay that can cut its connections.
type agentRelay struct {
	addr   string
	target string
	ln     net.Listener

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startAgentRelay(t testing.TB, target string) *agentRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &agentRelay{addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(func() {
		ln.Close()
		r.cut()
		r.wg.Wait()
	})
	return r
}

func (r *agentRelay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.DialTimeout("tcp", r.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		r.conns[c], r.conns[up] = struct{}{}, struct{}{}
		r.mu.Unlock()
		r.wg.Add(2)
		go r.pipe(c, up)
		go r.pipe(up, c)
	}
}

func (r *agentRelay) pipe(dst, src net.Conn) {
	defer r.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	r.mu.Lock()
	delete(r.conns, dst)
	delete(r.conns, src)
	r.mu.Unlock()
}

// cut closes every relayed connection and reports how many there were.
func (r *agentRelay) cut() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.conns)
	for c := range r.conns {
		c.Close()
	}
	return n
}

// RestartSignalingWith restarts signaling (as RestartSignaling, without a
// crash) with args added to its flags, for the rest of the test.
func (s *Stack) RestartSignalingWith(t testing.TB, args ...string) {
	t.Helper()
	s.sigArgs = append(s.sigArgs, args...)
	s.RestartSignaling(t, false)
}

// StopAgent stops porthole-agent (SIGTERM), as a machine switched off.
func (s *Stack) StopAgent(t testing.TB) {
	t.Helper()
	if err := s.Procs["porthole-agent"].Stop(10 * time.Second); err != nil {
		t.Logf("porthole-agent: %v", err)
	}
}

// StartAgent starts porthole-agent again with its state directory and
// flags, returning once it is connected to signaling.
func (s *Stack) StartAgent(t testing.TB) {
	t.Helper()
	const name = "porthole-agent"
	p, err := proc.Start(name, s.Bin[name], s.agentArgs, proc.Options{Out: s.out})
	if err != nil {
		t.Fatal(err)
	}
	s.Procs[name] = p
	t.Cleanup(func() {
		if err := p.Stop(10 * time.Second); err != nil {
			t.Logf("%s: %v\n%s", name, err, p.Tail(30))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := p.WaitLine(ctx, regexp.MustCompile(`connected to signaling`)); err != nil {
		t.Fatalf("%s did not connect: %v\n%s", name, err, p.Tail(40))
	}
}
