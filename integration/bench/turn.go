package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/integration/proc"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
)

// turnSecret is the TURN REST API secret of the relay comparison.
const turnSecret = "bench-turn-secret-0123456789abcdef"

// uclientResult is what one turnutils_uclient run reports.
type uclientResult struct {
	sent, recv int64
	wall       time.Duration
	cpu        time.Duration // the relay's CPU over the run
	// Kernel drop counters over the run: every UDP socket of the host
	// (/proc/net/snmp RcvbufErrors), the relay's listener sockets, its
	// relay sockets, and turnutils_peer's (/proc/net/udp drops).
	rcvbufErrors, listenerDrops, relayDrops, peerDrops int64
}

var (
	reTotals = regexp.MustCompile(`tot_send_msgs=(\d+), tot_recv_msgs=(\d+)`)
)

// runUclient drives a TURN server at port with turnutils_uclient.
func runUclient(t testing.TB, port, peerPort, sessions, packets int, serverPid, peerPid int) (uclientResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "turnutils_uclient", "-m", strconv.Itoa(sessions), "-n", strconv.Itoa(packets),
		"-l", "100", "-z", "1", "-c", "-X", "-e", "127.0.0.1", "-r", strconv.Itoa(peerPort),
		"-p", strconv.Itoa(port), "-W", turnSecret, "-u", "bench", "127.0.0.1")
	cpu0, err := procCPU(serverPid)
	if err != nil {
		return uclientResult{}, err
	}
	rcvbuf0 := udpRcvbufErrors()
	srv0, err := udpSocketDrops(serverPid)
	if err != nil {
		return uclientResult{}, err
	}
	peer0, err := udpSocketDrops(peerPid)
	if err != nil {
		return uclientResult{}, err
	}
	// Relay sockets close when their allocation ends, taking their drop
	// counter with them: sample the relay's sockets during the run and
	// keep the last value each one showed.
	srvSeen := map[string]udpSocket{}
	stopSampling, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if now, err := udpSocketDrops(serverPid); err == nil {
				for ino, s := range now {
					srvSeen[ino] = s
				}
			}
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	}()
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(t0)
	cpu1, _ := procCPU(serverPid)
	close(stopSampling)
	<-sampled
	if now, serr := udpSocketDrops(serverPid); serr == nil {
		for ino, s := range now {
			srvSeen[ino] = s
		}
	}
	peer1, perr := udpSocketDrops(peerPid)
	rcvbuf1 := udpRcvbufErrors()
	if err != nil {
		return uclientResult{}, fmt.Errorf("turnutils_uclient: %v\n%s", err, tail(out, 2000))
	}
	if perr != nil {
		return uclientResult{}, perr
	}
	listenerDrops, relayDrops := dropsSince(srv0, srvSeen, port)
	peerDrops, _ := dropsSince(peer0, peer1, peerPort)
	m := reTotals.FindAllSubmatch(out, -1)
	if len(m) == 0 {
		return uclientResult{}, fmt.Errorf("turnutils_uclient: no totals\n%s", tail(out, 2000))
	}
	last := m[len(m)-1]
	sent, _ := strconv.ParseInt(string(last[1]), 10, 64)
	recv, _ := strconv.ParseInt(string(last[2]), 10, 64)
	return uclientResult{sent: sent, recv: recv, wall: wall, cpu: cpu1 - cpu0,
		rcvbufErrors: int64(rcvbuf1 - rcvbuf0), listenerDrops: listenerDrops, relayDrops: relayDrops, peerDrops: peerDrops}, nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// waitSTUN waits until a STUN server answers on port.
func waitSTUN(port int) error {
	for range 50 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := exec.CommandContext(ctx, "turnutils_stunclient", "-p", strconv.Itoa(port), "127.0.0.1").Run()
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no STUN answer on port %d within 10 s", port)
}

// freeUDPPort returns a UDP port that was free a moment ago.
func freeUDPPort(t testing.TB) int {
	t.Helper()
	for range 20 {
		p := testenv.FreePort(t) // a free TCP port is usually a free UDP port
		if c, err := listenUDPPort(p); err == nil {
			c.Close()
			return p
		}
	}
	t.Fatal("no free UDP port")
	return 0
}

// TURNFigures compares porthole-turn with coturn under turnutils_uclient.
func TURNFigures(t testing.TB, r *Report, cfg Config) {
	testenv.NeedBinary(t, "turnutils_uclient")
	testenv.NeedBinary(t, "turnutils_peer")
	testenv.NeedBinary(t, "turnserver")
	bins := stack.Build(t)
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte(turnSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	peerPort := freeUDPPort(t)
	peer, err := proc.Start("turnutils_peer", "turnutils_peer", []string{"-p", strconv.Itoa(peerPort), "-L", "127.0.0.1"}, proc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Stop(5 * time.Second)

	type server struct {
		name string
		bin  string
		args func(port int) []string
	}
	servers := []server{
		{"porthole-turn", bins["porthole-turn"], func(port int) []string {
			return []string{"--udp", fmt.Sprintf("127.0.0.1:%d", port), "--tcp", "", "--public-ip", "127.0.0.1",
				"--secret-file", secretFile, "--allow-peer", "127.0.0.0/8", "--allow-own-host", "--max-allocations", "1000",
				"--max-credential-lifetime", "48h", "--log-level", "info", "--socket-buffer", strconv.Itoa(cfg.TURNSocketBuffer)}
		}},
		{"coturn", "turnserver", func(port int) []string {
			return []string{"-n", "--listening-ip=127.0.0.1", fmt.Sprintf("--listening-port=%d", port),
				"--relay-ip=127.0.0.1", "--use-auth-secret", "--static-auth-secret=" + turnSecret, "--realm=porthole",
				"--allow-loopback-peers", "--no-cli", "--no-tls", "--no-dtls", "--no-tcp", "--log-file=stdout",
				"--pidfile=" + filepath.Join(dir, "coturn.pid"), "--min-port=40000", "--max-port=60000"}
		}},
	}
	for _, sessions := range cfg.TURNSessions {
		for _, s := range servers {
			port := freeUDPPort(t)
			p, err := proc.Start(s.name, s.bin, s.args(port), proc.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := waitSTUN(port); err != nil {
				p.Stop(5 * time.Second)
				t.Fatalf("%s: %v\n%s", s.name, err, p.Tail(20))
			}
			var pps, loss, cpu, rcvbuf, lDrops, rDrops, pDrops []float64
			for range cfg.turnRuns() {
				res, err := runUclient(t, port, peerPort, sessions, cfg.TURNPackets, p.Pid(), peer.Pid())
				if err != nil {
					p.Stop(5 * time.Second)
					t.Fatalf("%s: %v", s.name, err)
				}
				relayed := 2 * res.recv
				pps = append(pps, float64(relayed)/res.wall.Seconds())
				loss = append(loss, 100*float64(res.sent-res.recv)/float64(max(1, res.sent)))
				cpu = append(cpu, float64(res.cpu)/float64(time.Microsecond)/float64(max(1, relayed)))
				rcvbuf = append(rcvbuf, float64(res.rcvbufErrors))
				lDrops = append(lDrops, float64(res.listenerDrops))
				rDrops = append(rDrops, float64(res.relayDrops))
				pDrops = append(pDrops, float64(res.peerDrops))
				logf(t, "%s, %d sessions: sent %d, received %d, relay CPU %v, wall %v; kernel drops: all UDP %d, relay listener %d, relay sockets %d, turnutils_peer %d; load average %s",
					s.name, sessions, res.sent, res.recv, res.cpu, res.wall.Round(time.Millisecond),
					res.rcvbufErrors, res.listenerDrops, res.relayDrops, res.peerDrops, loadAverage())
			}
			if s.name == "porthole-turn" {
				for _, l := range strings.Split(p.Tail(1<<20), "\n") {
					if strings.Contains(l, "socket buffers") {
						logf(t, "%s: %s", s.name, l)
					}
				}
			}
			_ = p.Stop(5 * time.Second)
			if s.name == "porthole-turn" {
				// Logged at shutdown: how many of its writes the batching took.
				for _, l := range strings.Split(p.Tail(1<<20), "\n") {
					if strings.Contains(l, "udp listener writes") {
						logf(t, "%s: %s", s.name, l)
					}
				}
			}
			prefix := fmt.Sprintf("%s, %d uclient sessions", s.name, sessions)
			r.Add(prefix+", relayed packets/s", "pkt/s", pps).Annotate("100-byte packets every 1 ms per session; wall time includes allocation")
			r.Add(prefix+", loss", "%", loss)
			r.Add(prefix+", CPU per relayed packet", "µs", cpu)
			r.Add(prefix+", kernel UDP RcvbufErrors", "datagrams", rcvbuf).Annotate("/proc/net/snmp over the run: every socket of the host (uclient, peer, relay)")
			r.Add(prefix+", drops in the relay's listener sockets", "datagrams", lDrops).Annotate("/proc/net/udp drops column")
			r.Add(prefix+", drops in the relay's relay sockets", "datagrams", rDrops).Annotate("/proc/net/udp drops column, sampled every 100 ms")
			r.Add(prefix+", drops in turnutils_peer's socket", "datagrams", pDrops)
		}
		pt := fmt.Sprintf("porthole-turn, %d uclient sessions", sessions)
		ct := fmt.Sprintf("coturn, %d uclient sessions", sessions)
		r.Against(r.Get(pt+", relayed packets/s"), ct+", relayed packets/s")
		l := r.Against(r.Get(pt+", loss"), ct+", loss")
		c := r.Against(r.Get(pt+", CPU per relayed packet"), ct+", CPU per relayed packet")
		l.Check("loss ≤ coturn's", l.Median <= l.BaselineMedian)
		r.Against(r.Get(pt+", kernel UDP RcvbufErrors"), ct+", kernel UDP RcvbufErrors")
		r.Against(r.Get(pt+", drops in the relay's listener sockets"), ct+", drops in the relay's listener sockets")
		r.Against(r.Get(pt+", drops in the relay's relay sockets"), ct+", drops in the relay's relay sockets")
		if sessions >= 100 {
			c.Check("CPU per packet ≤ coturn's", c.Median <= c.BaselineMedian)
		}
	}
}

// loadAverage is the host's 1-minute load average, for the log: the relay
// figures mean little on a machine that other work keeps busy.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "unknown"
}
