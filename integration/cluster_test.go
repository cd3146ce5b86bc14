package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/porthole-dev/porthole/agent/daemon"
	"github.com/porthole-dev/porthole/agent/technician"
	"github.com/porthole-dev/porthole/integration/proc"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/signaling/store"
	"github.com/porthole-dev/porthole/signaling/store/redisstore"
)

// Cluster test sizes: 200 sessions over few agents keeps the run within
// minutes on two cores.
const (
	clusterNodes    = 3
	clusterAgents   = 6
	clusterSessions = 200
	clusterParallel = 8
)

// TestClusterThreeNodes runs three porthole-signaling processes on one
// redis-server (with an append-only file, as in compose.yaml):
//
//   - 200 sessions, each with its agent on one node and its technician on
//     another, all succeed;
//   - one node is killed (SIGKILL) while sessions transfer and others are
//     being set up: its agents come back on the other nodes within a bound
//     measured here, established sessions keep transferring, sessions in
//     setup fail with a clear error and succeed when retried, and every
//     request served is in its session's audit log;
//   - Redis is restarted: signaling serves new sessions again without a
//     restart of its own.
//
// Agents reach signaling through a TCP forwarder per agent that tries the
// nodes in an order of the agent's own (what a load balancer in front of
// the nodes does); technicians talk to a chosen node directly.
func TestClusterThreeNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test starts processes")
	}
	rs := startPersistentRedis(t)
	bin := stack.Build(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	devPort := startDemoDevicePort(t, ctx, bin)

	const techToken = "cluster-tech-token"
	keys := agentKeys(clusterAgents, techToken)
	nodes := make([]*clusterNode, clusterNodes)
	for i := range nodes {
		nodes[i] = startNode(t, ctx, bin, dir, rs.url(), fmt.Sprintf("n%d", i), techToken, keys)
	}

	// Agents, in process, each behind its forwarder: agent i prefers node
	// i mod 3.
	log := slog.New(slog.DiscardHandler)
	type agentRun struct {
		a   *daemon.Agent
		fwd *forwarder
	}
	agents := make([]agentRun, clusterAgents)
	actx, acancel := context.WithCancel(context.Background())
	var awg sync.WaitGroup
	t.Cleanup(func() { acancel(); awg.Wait() })
	for i := range agents {
		order := make([]string, 0, clusterNodes)
		for k := range clusterNodes {
			order = append(order, nodes[(i+k)%clusterNodes].addr)
		}
		fwd := startForwarder(t, order)
		a, err := daemon.New(daemon.Config{
			Server: "http://" + fwd.addr(), Key: keys[agentName(i)], LoopbackOnly: true, Logger: log,
			MinBackoff: 200 * time.Millisecond, MaxBackoff: 2 * time.Second, MaxSessions: 64,
			Devices: []daemon.DeviceConfig{{ID: deviceName(i), Address: "127.0.0.1", HTTPPort: devPort}},
		})
		if err != nil {
			t.Fatal(err)
		}
		agents[i] = agentRun{a, fwd}
		awg.Go(func() { _ = a.Run(actx) })
	}
	nodeOf := func(i int) int { // the node agent i is connected to now
		addr := agents[i].fwd.current()
		for k, n := range nodes {
			if n.addr == addr {
				return k
			}
		}
		return -1
	}
	for _, n := range nodes {
		waitDevices(t, ctx, n.url, techToken, clusterAgents)
	}

	// 1. 200 sessions, every technician on another node than its agent.
	var (
		setupMu sync.Mutex
		setups  []time.Duration
	)
	var failed atomic.Int64
	sem := make(chan struct{}, clusterParallel)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range clusterSessions {
		ag := i % clusterAgents
		an := nodeOf(ag)
		client := nodes[(an+1+(i/clusterAgents)%(clusterNodes-1))%clusterNodes]
		if nodes[an] == client {
			t.Fatal("pair on one node")
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			t0 := time.Now()
			sess, err := openSession(ctx, client.url, techToken, deviceName(ag))
			if err != nil {
				failed.Add(1)
				t.Errorf("session %d (agent on n%d, technician on %s): %v", i, an, client.name, err)
				return
			}
			took := time.Since(t0)
			if err := getPage(ctx, sess); err != nil {
				failed.Add(1)
				t.Errorf("session %d: GET through the tunnel: %v", i, err)
			}
			sess.Close()
			setupMu.Lock()
			setups = append(setups, took)
			setupMu.Unlock()
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d of %d cross-node sessions failed", failed.Load(), clusterSessions)
	}
	slices.Sort(setups)
	t.Logf("%d cross-node sessions on %d nodes: all succeeded in %s; setup p50 %s, p95 %s, max %s",
		clusterSessions, clusterNodes, time.Since(start).Round(time.Millisecond),
		setups[len(setups)/2].Round(time.Millisecond), setups[len(setups)*95/100].Round(time.Millisecond),
		setups[len(setups)-1].Round(time.Millisecond))

	// 2. Kill node 0 while sessions transfer and others are being set up.
	const victim = 0
	type long struct {
		sess        *technician.Session
		agent       int
		owner, edge int
		ok, bad     atomic.Int64
		okAfterKill atomic.Int64
	}
	var longs []*long
	for i := range clusterAgents {
		an := nodeOf(i)
		edge := (an + 1) % clusterNodes
		sess, err := openSession(ctx, nodes[edge].url, techToken, deviceName(i))
		if err != nil {
			t.Fatalf("long session for agent %d: %v", i, err)
		}
		longs = append(longs, &long{sess: sess, agent: i, owner: an, edge: edge})
	}
	var killed atomic.Bool
	tctx, tstop := context.WithCancel(ctx)
	var twg sync.WaitGroup
	for _, l := range longs {
		twg.Go(func() {
			for tctx.Err() == nil {
				if err := getPage(tctx, l.sess); err != nil {
					if tctx.Err() == nil {
						l.bad.Add(1)
						t.Errorf("established session (agent %d, owner n%d, technician on n%d) failed a request: %v", l.agent, l.owner, l.edge, err)
					}
					return
				}
				l.ok.Add(1)
				if killed.Load() {
					l.okAfterKill.Add(1)
				}
			}
		})
	}
	// Sessions in setup across the kill: each attempt either succeeds or
	// fails with an error saying what happened; a failed one is retried.
	var setupOK, setupFailed, setupRetriedOK atomic.Int64
	var errMu sync.Mutex
	setupErrs := map[string]int{}
	for w := range 3 {
		twg.Go(func() {
			for i := 0; tctx.Err() == nil; i++ {
				ag := (w + i) % clusterAgents
				client := nodes[1+(i%2)] // technicians stay on the surviving nodes
				retried := false
				for attempt := 0; attempt < 10 && tctx.Err() == nil; attempt++ {
					sess, err := openSession(tctx, client.url, techToken, deviceName(ag))
					if err == nil {
						err = getPage(tctx, sess)
						sess.Close()
					}
					if err == nil {
						setupOK.Add(1)
						if retried {
							setupRetriedOK.Add(1)
						}
						break
					}
					if tctx.Err() != nil {
						return
					}
					setupFailed.Add(1)
					errMu.Lock()
					setupErrs[shortErr(err)]++
					errMu.Unlock()
					retried = true
				}
			}
		})
	}
	onVictim := []int{}
	for i := range clusterAgents {
		if nodeOf(i) == victim {
			onVictim = append(onVictim, i)
		}
	}
	// waitRequests waits until every established session has served min
	// requests, or has seen a failed one (which the checks below report).
	waitRequests := func(min func(*long) int64, what string) {
		t.Helper()
		testenv.Eventually(t, 20*time.Second, what, func() bool {
			for _, l := range longs {
				if l.ok.Load() < min(l) && l.bad.Load() == 0 {
					return false
				}
			}
			return true
		})
	}
	waitRequests(func(*long) int64 { return 5 }, "every established session to serve 5 requests")
	waitCount(t, &setupOK, 6)
	killAt := time.Now()
	killed.Store(true)
	if err := syscall.Kill(nodes[victim].proc.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-nodes[victim].proc.Exited()
	// Bound: every agent of the dead node connected to another node, its
	// device listed online there, and a new session to it set up.
	back := map[int]time.Duration{}
	testenv.Eventually(t, 60*time.Second, fmt.Sprintf("all %d agent(s) of the killed node to come back", len(onVictim)), func() bool {
		for _, i := range onVictim {
			if _, done := back[i]; done {
				continue
			}
			n := nodeOf(i)
			if n < 0 || n == victim || !agents[i].a.Connected() {
				continue
			}
			other := nodes[1+(n%2)]
			if other == nodes[n] {
				other = nodes[1+((n+1)%2)]
			}
			if !deviceOnline(ctx, other.url, techToken, deviceName(i)) {
				continue
			}
			sess, err := openSession(ctx, other.url, techToken, deviceName(i))
			if err != nil {
				continue
			}
			sess.Close()
			back[i] = time.Since(killAt)
		}
		return len(back) == len(onVictim)
	})
	var worst time.Duration
	for _, d := range back {
		worst = max(worst, d)
	}
	t.Logf("node n%d killed: its %d agent(s) reconnected to other nodes and took a new session within %s (each: %v)",
		victim, len(onVictim), worst.Round(time.Millisecond), back)
	if worst > 10*time.Second {
		t.Errorf("agents took %s to come back; the bound is 10 s", worst)
	}
	okAtBack := setupOK.Load()
	waitCount(t, &setupOK, okAtBack+12)
	before := map[*long]int64{}
	for _, l := range longs {
		before[l] = l.ok.Load()
	}
	waitRequests(func(l *long) int64 { return before[l] + 20 }, "every established session to serve 20 more requests")
	tstop()
	twg.Wait()
	for _, l := range longs {
		if l.okAfterKill.Load() == 0 || l.bad.Load() > 0 {
			t.Errorf("established session (agent %d, owner n%d, technician n%d): %d requests after the kill, %d failed",
				l.agent, l.owner, l.edge, l.okAfterKill.Load(), l.bad.Load())
		}
	}
	t.Logf("established sessions across the kill: %s", describeLongs(longs, func(l *long) (int, int, int64, int64) {
		return l.owner, l.edge, l.ok.Load(), l.okAfterKill.Load()
	}))
	t.Logf("sessions set up across the kill: %d succeeded (%d after a retry), %d attempts failed: %v",
		setupOK.Load(), setupRetriedOK.Load(), setupFailed.Load(), setupErrs)

	// Audit: every request served in an established session is in its
	// access log in Redis, the node that owned it dead or not.
	st, err := redisstore.Open(rs.url(), redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, l := range longs {
		id := l.sess.Info.Session
		want := l.ok.Load()
		l.sess.Close()
		var got []*store.AuditEntry
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			got, err = st.Audit(ctx, store.SessionStream(id), 0, 0)
			if err == nil && int64(countHTTP(got)) >= want {
				break
			}
			time.Sleep(100 * time.Millisecond) // the agent ships every second, re-sends after 10 s
		}
		if n := int64(countHTTP(got)); n < want {
			t.Errorf("session %s (owner n%d): %d requests served, %d in the audit log", id, l.owner, want, n)
		}
		if i := store.VerifyChain("", 1, got); i >= 0 {
			t.Errorf("session %s: audit chain broken at %d", id, i)
		}
	}

	// 3. Restart Redis; signaling recovers on its own.
	rs.restart(t)
	restartAt := time.Now()
	testenv.Eventually(t, 60*time.Second, "signaling to recover from a Redis restart", func() bool {
		ok := 0
		for i := range clusterAgents {
			n := nodeOf(i)
			if n < 0 || n == victim {
				continue
			}
			other := nodes[1+(n%2)]
			if other == nodes[n] {
				other = nodes[1+((n+1)%2)]
			}
			sess, err := openSession(ctx, other.url, techToken, deviceName(i))
			if err != nil {
				continue
			}
			if getPage(ctx, sess) == nil {
				ok++
			}
			sess.Close()
		}
		return ok == clusterAgents
	})
	t.Logf("Redis restarted: cross-node sessions to all %d agents work again after %s", clusterAgents, time.Since(restartAt).Round(time.Millisecond))
}

// waitCount waits (at most 30 s) until n reaches min, and fails the test if
// it does not.
func waitCount(t *testing.T, n *atomic.Int64, min int64) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, fmt.Sprintf("a counter to reach %d (it was at %d)", min, n.Load()), func() bool {
		return n.Load() >= min
	})
}

// startDemoDevicePort starts porthole-demo-device on loopback and returns
// its port.
func startDemoDevicePort(t *testing.T, ctx context.Context, bin stack.Binaries) int {
	t.Helper()
	m := startProc(t, ctx, "porthole-demo-device", bin["porthole-demo-device"], []string{"--listen", "127.0.0.1:0"}, `listening on http://(\S+)`)
	_, port, err := net.SplitHostPort(m[1])
	if err != nil {
		t.Fatalf("demo device address %q: %v", m[1], err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("demo device port %q: %v", port, err)
	}
	return n
}

// agentKeys are the keys of agents 0..n-1 (agentName), for --agent-key.
func agentKeys(n int, techToken string) map[string]string {
	keys := make(map[string]string, n)
	for i := range n {
		keys[agentName(i)] = fmt.Sprintf("key-%d-%s", i, techToken)
	}
	return keys
}

func agentName(i int) string  { return fmt.Sprintf("agent-%d", i) }
func deviceName(i int) string { return fmt.Sprintf("printer-%d", i) }

func countHTTP(entries []*store.AuditEntry) int {
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Action, "access.") {
			n++
		}
	}
	return n
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

func describeLongs[L any](ls []L, f func(L) (owner, edge int, ok, after int64)) string {
	out := ""
	for _, l := range ls {
		o, e, ok, after := f(l)
		out += fmt.Sprintf("[agent on n%d, technician on n%d: %d requests, %d after the kill] ", o, e, ok, after)
	}
	return out
}

func openSession(ctx context.Context, url, token, device string) (*technician.Session, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return technician.Open(ctx, technician.Config{Server: url, Token: token, Device: device, LoopbackOnly: true})
}

func getPage(ctx context.Context, s *technician.Session) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://device/", nil)
	resp, err := (&http.Client{Transport: s.Client}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

type clusterNode struct {
	name, addr, url string
	proc            *proc.Proc
}

func startProc(t *testing.T, ctx context.Context, name, bin string, args []string, ready string) []string {
	t.Helper()
	p, err := proc.Start(name, bin, args, proc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(10 * time.Second) })
	m, err := p.WaitLine(ctx, regexp.MustCompile(ready))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func startNode(t *testing.T, ctx context.Context, bin stack.Binaries, dir, redisURL, name, techToken string, keys map[string]string, extra ...string) *clusterNode {
	t.Helper()
	var lastErr error
	for range 3 { // the free port may be taken meanwhile
		port := testenv.FreePort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		args := []string{"--listen", addr, "--data-dir", filepath.Join(dir, name), "--redis", redisURL,
			"--node", name, "--insecure-dev-tokens", "--tech-token", techToken + "=tech"}
		for id, k := range keys {
			args = append(args, "--agent-key", id+"="+k)
		}
		args = append(args, extra...)
		p, err := proc.Start("porthole-signaling-"+name, bin["porthole-signaling"], args, proc.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.WaitLine(ctx, regexp.MustCompile(`listening on`)); err != nil {
			lastErr = err
			_ = p.Stop(5 * time.Second)
			continue
		}
		t.Cleanup(func() {
			if err := p.Stop(10 * time.Second); err != nil && p.ExitErr() == nil {
				t.Logf("%s: %v\n%s", name, err, p.Tail(30))
			}
		})
		return &clusterNode{name: name, addr: addr, url: "http://" + addr, proc: p}
	}
	t.Fatalf("start node %s: %v", name, lastErr)
	return nil
}

func listDevices(ctx context.Context, url, token string) (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/devices", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var l struct {
		Devices []struct {
			ID     string `json:"id"`
			Online bool   `json:"online"`
		} `json:"devices"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&l); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, d := range l.Devices {
		out[d.ID] = d.Online
	}
	return out, nil
}

func deviceOnline(ctx context.Context, url, token, device string) bool {
	m, err := listDevices(ctx, url, token)
	return err == nil && m[device]
}

func waitDevices(t *testing.T, ctx context.Context, url, token string, n int) {
	t.Helper()
	var m map[string]bool
	done := false
	defer func() { // runs as Eventually's t.Fatalf unwinds
		if !done {
			t.Logf("%s lists %v", url, m)
		}
	}()
	testenv.Eventually(t, 20*time.Second, fmt.Sprintf("%s to list %d devices online", url, n), func() bool {
		var err error
		m, err = listDevices(ctx, url, token)
		online := 0
		for _, on := range m {
			if on {
				online++
			}
		}
		return err == nil && online >= n
	})
	done = true
}

// forwarder is a TCP load balancer with a fixed preference order: each
// connection goes to the first backend that accepts it.
type forwarder struct {
	ln       net.Listener
	backends []string
	// ready, if set, is asked before a backend is chosen: a load balancer's
	// health check (GET /readyz), which a draining node fails.
	ready func(backend string) bool
	mu    sync.Mutex
	cur   string
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startForwarder(t *testing.T, backends []string) *forwarder {
	f := &forwarder{ln: testenv.Listen(t), backends: backends, conns: map[net.Conn]struct{}{}}
	f.wg.Go(f.serve)
	t.Cleanup(func() {
		f.ln.Close()
		f.mu.Lock()
		for c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *forwarder) addr() string { return f.ln.Addr().String() }

func (f *forwarder) current() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur
}

func (f *forwarder) track(c net.Conn, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if on {
		f.conns[c] = struct{}{}
	} else {
		delete(f.conns, c)
	}
}

func (f *forwarder) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.wg.Go(func() { f.handle(c) })
	}
}

func (f *forwarder) handle(c net.Conn) {
	f.track(c, true)
	defer f.track(c, false)
	defer c.Close()
	for _, b := range f.backends {
		if f.ready != nil && !f.ready(b) {
			continue
		}
		up, err := net.DialTimeout("tcp", b, time.Second)
		if err != nil {
			continue
		}
		f.track(up, true)
		f.mu.Lock()
		f.cur = b
		f.mu.Unlock()
		done := make(chan struct{}, 2)
		go func() { _, _ = io.Copy(up, c); up.Close(); done <- struct{}{} }()
		go func() { _, _ = io.Copy(c, up); c.Close(); done <- struct{}{} }()
		<-done
		<-done
		f.track(up, false)
		return
	}
}

// persistentRedis is a redis-server with an append-only file that can be
// restarted on the same port and data.
type persistentRedis struct {
	bin, dir string
	port     int
	cmd      *exec.Cmd
	exited   chan struct{}
}

func startPersistentRedis(t *testing.T) *persistentRedis {
	t.Helper()
	r := &persistentRedis{bin: testenv.NeedBinary(t, "redis-server"), dir: t.TempDir()}
	var err error
	for range 3 {
		r.port = testenv.FreePort(t)
		if err = r.start(); err == nil {
			t.Cleanup(r.stop)
			return r
		}
	}
	t.Fatalf("redis-server: %v", err)
	return nil
}

func (r *persistentRedis) url() string { return fmt.Sprintf("redis://127.0.0.1:%d", r.port) }

func (r *persistentRedis) start() error {
	logf, err := os.OpenFile(filepath.Join(r.dir, "redis.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	r.cmd = exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "no", "--loglevel", "warning")
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		return err
	}
	r.exited = make(chan struct{})
	cmd, exited := r.cmd, r.exited
	go func() { _ = cmd.Wait(); close(exited) }()
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			out, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			return fmt.Errorf("redis-server exited: %s", out)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond) // polling for PONG, bounded by the deadline
	}
	r.stop()
	return errors.New("redis-server did not answer PING within 15 s")
}

func (r *persistentRedis) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
}

func (r *persistentRedis) restart(t *testing.T) {
	t.Helper()
	r.stop()
	if err := r.start(); err != nil {
		t.Fatalf("restart redis-server: %v", err)
	}
}
