package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// RelayHelperEnv makes the test binary run a delay relay instead of its
// tests (see TestMain): "udp|tcp <target> <delay>". The relay prints its
// address on one line and runs until its standard input closes. Relays in
// their own process keep their CPU out of the figures of the process
// measured.
const RelayHelperEnv = "PORTHOLE_BENCH_RELAY"

// RunRelayHelper runs the relay described by spec; it returns the exit
// code.
func RunRelayHelper(spec string) int {
	f := strings.Fields(spec)
	if len(f) != 3 {
		fmt.Fprintln(os.Stderr, "relay helper: want kind target delay")
		return 2
	}
	delay, err := time.ParseDuration(f[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "relay helper:", err)
		return 2
	}
	var addr string
	var stop func()
	switch f[0] {
	case "udp":
		r, err := NewUDPDelay(f[1], delay)
		if err != nil {
			fmt.Fprintln(os.Stderr, "relay helper:", err)
			return 1
		}
		addr, stop = r.Addr().String(), r.Close
	case "tcp":
		r, err := NewTCPDelay(f[1], delay)
		if err != nil {
			fmt.Fprintln(os.Stderr, "relay helper:", err)
			return 1
		}
		addr, stop = r.Addr(), r.Close
	default:
		fmt.Fprintln(os.Stderr, "relay helper: kind must be udp or tcp")
		return 2
	}
	fmt.Println(addr)
	_, _ = io.Copy(io.Discard, os.Stdin)
	stop()
	return 0
}

// relayProcess is a delay relay running in a child process.
type relayProcess struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	Addr  string
}

// startRelayProcess starts a delay relay in a copy of this test binary.
func startRelayProcess(kind, target string, delay time.Duration) (*relayProcess, error) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %s", RelayHelperEnv, kind, target, delay))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	rp := &relayProcess{cmd: cmd, stdin: in}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(s)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case rp.Addr = <-line:
	case <-time.After(10 * time.Second):
	}
	if rp.Addr == "" {
		rp.Close()
		return nil, fmt.Errorf("%s relay helper did not start", kind)
	}
	return rp, nil
}

// Close stops the relay process and waits for it.
func (rp *relayProcess) Close() {
	_ = rp.stdin.Close()
	done := make(chan struct{})
	go func() { _ = rp.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = rp.cmd.Process.Kill()
		<-done
	}
}
