package integration

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/agent/daemon"
	"github.com/porthole-dev/porthole/agent/technician"
	"github.com/porthole-dev/porthole/integration/proc"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/store"
	"github.com/porthole-dev/porthole/signaling/store/redisstore"
)

// Rolling-restart sizes. 50 live sessions is the figure and runs
// in about a minute on two cores; PORTHOLE_DRAIN_SESSIONS raises it (make
// soak runs 200).
const (
	drainAgents   = 6
	drainSessions = 50
	drainParallel = 8
	drainTimeout  = 20 * time.Second
	// requestEvery paces each session's numbered requests, so 50 sessions
	// leave the two cores to the restarts they are measured across.
	requestEvery = 200 * time.Millisecond
)

// TestClusterRollingRestart restarts every node of a three-node cluster
// in turn (SIGTERM, wait for the exit, start it again on the same address)
// under live sessions that keep making numbered requests:
//
//   - a node that gets SIGTERM drains: /readyz fails (the load balancers
//     here, TCP forwarders with a health check, stop sending it anything),
//     its agents reconnect to another node at once and take their sessions
//     with them, their technicians rejoin there, and it exits well within
//     --drain-timeout;
//   - no session is lost: every request is answered, every session still
//     lives in signaling after the last restart (each rejoined signaling,
//     and its job ends "client" when the technician closes it, not with
//     the error a node's shutdown gave before);
//   - every request is in its session's access log in Redis exactly once.
func TestClusterRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("rolling-restart test starts processes")
	}
	nSessions := drainSessions
	if v := os.Getenv("PORTHOLE_DRAIN_SESSIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("PORTHOLE_DRAIN_SESSIONS=%q: want a positive number", v)
		}
		nSessions = n
	}
	rs := startPersistentRedis(t)
	bin := stack.Build(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	devPort := startDemoDevicePort(t, ctx, bin)

	const techToken = "drain-tech-token"
	keys := agentKeys(drainAgents, techToken)
	nodes := make([]*clusterNode, clusterNodes)
	for i := range nodes {
		nodes[i] = startNodeAt(t, ctx, bin, dir, rs.url(), fmt.Sprintf("n%d", i), fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), techToken, keys)
	}
	readyClient := &http.Client{Timeout: 500 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	ready := func(backend string) bool {
		resp, err := readyClient.Get("http://" + backend + proto.PathReady)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	balancer := func(first int) *forwarder {
		order := make([]string, 0, clusterNodes)
		for k := range clusterNodes {
			order = append(order, nodes[(first+k)%clusterNodes].addr)
		}
		f := startForwarder(t, order)
		f.ready = ready
		return f
	}

	log := slog.New(slog.DiscardHandler)
	agents := make([]*daemon.Agent, drainAgents)
	actx, acancel := context.WithCancel(context.Background())
	var awg sync.WaitGroup
	t.Cleanup(func() { acancel(); awg.Wait() })
	for i := range agents {
		fwd := balancer(i)
		a, err := daemon.New(daemon.Config{
			Server: "http://" + fwd.addr(), Key: keys[agentName(i)], LoopbackOnly: true, Logger: log,
			MinBackoff: 200 * time.Millisecond, MaxBackoff: 2 * time.Second, MaxSessions: 64,
			Devices: []daemon.DeviceConfig{{ID: deviceName(i), Address: "127.0.0.1", HTTPPort: devPort}},
		})
		if err != nil {
			t.Fatal(err)
		}
		agents[i] = a
		awg.Go(func() { _ = a.Run(actx) })
	}
	for _, n := range nodes {
		waitDevices(t, ctx, n.url, techToken, drainAgents)
	}
	// Technicians reach the cluster through balancers too, preferring
	// different nodes than their agents.
	techLB := []*forwarder{balancer(1), balancer(2), balancer(0)}

	type live struct {
		sess   *technician.Session
		agent  int
		served atomic.Int64 // numbered requests answered: 1..served
		failed atomic.Int64
	}
	sessions := make([]*live, nSessions)
	sem := make(chan struct{}, drainParallel)
	var owg sync.WaitGroup
	setupStart := time.Now()
	for i := range sessions {
		sem <- struct{}{}
		owg.Go(func() {
			defer func() { <-sem }()
			ag := i % drainAgents
			octx, ocancel := context.WithTimeout(ctx, 20*time.Second)
			defer ocancel()
			sess, err := technician.Open(octx, technician.Config{Server: "http://" + techLB[i%len(techLB)].addr(), Token: techToken,
				Device: deviceName(ag), LoopbackOnly: true, Logger: slog.New(slog.NewTextHandler(&testLog{t: t, prefix: fmt.Sprintf("technician %d: ", i)}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			if err != nil {
				t.Errorf("session %d: %v", i, err)
				return
			}
			sessions[i] = &live{sess: sess, agent: ag}
		})
	}
	owg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d live sessions on %d agents set up in %s", nSessions, drainAgents, time.Since(setupStart).Round(time.Millisecond))

	rctx, rstop := context.WithCancel(ctx)
	var rwg sync.WaitGroup
	for i, l := range sessions {
		rwg.Go(func() {
			tick := time.NewTicker(requestEvery)
			defer tick.Stop()
			for k := int64(1); ; k++ {
				if err := getNumbered(rctx, l.sess, k); err != nil {
					if rctx.Err() == nil {
						l.failed.Add(1)
						t.Errorf("session %d (%s): request %d failed: %v", i, l.sess.Info.Session, k, err)
					}
					return
				}
				l.served.Store(k)
				select {
				case <-rctx.Done():
					return
				case <-tick.C:
				}
			}
		})
	}
	defer func() { rstop(); rwg.Wait() }()
	progress := func(more int64, what string) {
		t.Helper()
		base := make([]int64, len(sessions))
		for i, l := range sessions {
			base[i] = l.served.Load()
		}
		testenv.Eventually(t, 60*time.Second, what, func() bool {
			for i, l := range sessions {
				if l.served.Load() < base[i]+more && l.failed.Load() == 0 {
					return false
				}
			}
			return true
		})
	}
	progress(3, "every session to answer 3 requests")

	var drains []time.Duration
	for i := range nodes {
		n := nodes[i]
		drains = append(drains, drainNode(t, n))
		nodes[i] = startNodeAt(t, ctx, bin, dir, rs.url(), n.name, n.addr, techToken, keys)
		waitDevices(t, ctx, nodes[i].url, techToken, drainAgents)
		progress(3, fmt.Sprintf("every session to answer 3 more requests after %s restarted", n.name))
	}
	rstop()
	rwg.Wait()
	// The last node's technicians may still be rejoining (a lookup that
	// reached the node that had just left waits for the call's timeout).
	rejoinStart := time.Now()
	testenv.Eventually(t, 30*time.Second, "every session to have rejoined signaling", func() bool {
		for _, l := range sessions {
			if l.sess.Rejoining() {
				return false
			}
		}
		return true
	})
	t.Logf("all technicians rejoined signaling %s after the requests stopped", time.Since(rejoinStart).Round(time.Millisecond))

	var total, resumed int64
	for i, l := range sessions {
		total += l.served.Load()
		if l.failed.Load() > 0 {
			continue // reported above
		}
		select {
		case <-l.sess.Ended():
			t.Errorf("session %d ended: %+v", i, l.sess.EndReason())
		default:
		}
		if l.sess.Resumes() == 0 {
			t.Errorf("session %d never rejoined signaling, though every node restarted", i)
		}
		resumed += l.sess.Resumes()
	}
	t.Logf("rolling restart of %d nodes under %d sessions: drains took %v; %d requests answered, none failed; %d signaling resumes",
		len(nodes), nSessions, drains, total, resumed)

	// Each session is still signaling's: the technician's end reaches the
	// agent and the job through whichever node owns it now.
	st, err := redisstore.Open(rs.url(), redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, l := range sessions {
		l.sess.Close()
	}
	for i, l := range sessions {
		id := l.sess.Info.Session
		var j *store.Job
		testenv.Eventually(t, 20*time.Second, fmt.Sprintf("session %d's job to end", i), func() bool {
			j, err = st.Job(ctx, id)
			return err == nil && j.State == store.JobEnded
		})
		if j.EndReason != string(proto.EndByClient) {
			t.Errorf("session %d's job ended %q (%s), want client: signaling lost the session", i, j.EndReason, j.EndMessage)
		}
	}

	// Every request in the access log exactly once.
	for i, l := range sessions {
		id, want := l.sess.Info.Session, l.served.Load()
		var got []*store.AuditEntry
		testenv.Eventually(t, 30*time.Second, fmt.Sprintf("session %d's %d requests in its access log", i, want), func() bool {
			got, err = st.Audit(ctx, store.SessionStream(id), 0, 0)
			return err == nil && int64(countHTTP(got)) >= want
		})
		seen := map[string]int{}
		for _, e := range got {
			if e.Action == "access."+string(proto.AccessHTTP) {
				seen[e.Detail["url"]]++
			}
		}
		for k := int64(1); k <= want; k++ {
			if n := seen[numberedPath(k)]; n != 1 {
				t.Errorf("session %d: request %d is in the access log %d times", i, k, n)
			}
			delete(seen, numberedPath(k))
		}
		// The request in flight when the loop stopped may have reached the
		// device (and the log) without its answer being read: once at most.
		if n := seen[numberedPath(want+1)]; n > 1 {
			t.Errorf("session %d: the request in flight at the stop is in the access log %d times", i, n)
		}
		delete(seen, numberedPath(want+1))
		for url, n := range seen {
			t.Errorf("session %d: %d access-log entries for %s, which it did not request", i, n, url)
		}
		if k := store.VerifyChain("", 1, got); k >= 0 {
			t.Errorf("session %d: audit chain broken at %d", i, k)
		}
	}
}

func numberedPath(k int64) string { return "/?n=" + strconv.FormatInt(k, 10) }

// getNumbered makes request k of a session through its tunnel.
func getNumbered(ctx context.Context, s *technician.Session, k int64) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://device"+numberedPath(k), nil)
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

// startNodeAt starts a signaling node on addr (a restart keeps its
// address, as behind a load balancer), draining for drainTimeout on
// SIGTERM.
func startNodeAt(t *testing.T, ctx context.Context, bin stack.Binaries, dir, redisURL, name, addr, techToken string, keys map[string]string, extra ...string) *clusterNode {
	t.Helper()
	args := []string{"--listen", addr, "--data-dir", filepath.Join(dir, name), "--redis", redisURL,
		"--node", name, "--insecure-dev-tokens", "--tech-token", techToken + "=tech", "--drain-timeout", drainTimeout.String()}
	for id, k := range keys {
		args = append(args, "--agent-key", id+"="+k)
	}
	args = append(args, extra...)
	var out io.Writer
	if f := os.Getenv("PORTHOLE_DRAIN_NODE_LOG"); f != "" { // a file for every node's output, to debug
		lf, err := os.OpenFile(f, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { lf.Close() })
		out = lf
	}
	p, err := proc.Start("porthole-signaling-"+name, bin["porthole-signaling"], args, proc.Options{Out: out})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(10 * time.Second) })
	if _, err := p.WaitLine(ctx, regexp.MustCompile(`listening on`)); err != nil {
		t.Fatalf("start %s on %s: %v\n%s", name, addr, err, p.Tail(20))
	}
	return &clusterNode{name: name, addr: addr, url: "http://" + addr, proc: p}
}

// testLog writes log lines to the test's log.
type testLog struct {
	t      *testing.T
	prefix string
}

func (l *testLog) Write(p []byte) (int, error) {
	line := string(p)
	if strings.Contains(line, "level=DEBUG") && !strings.Contains(line, "resum") {
		return len(p), nil // the resume attempts only
	}
	l.t.Log(l.prefix + strings.TrimRight(line, "\n"))
	return len(p), nil
}

// drainNode sends n SIGTERM, waits (bounded) for it to exit, checks that
// it drained completely and exited cleanly, and returns how long it took.
func drainNode(t *testing.T, n *clusterNode) time.Duration {
	t.Helper()
	start := time.Now()
	if err := syscall.Kill(n.proc.Pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n.proc.Exited():
	case <-time.After(drainTimeout + 15*time.Second):
		t.Fatalf("%s did not exit within its drain timeout:\n%s", n.name, n.proc.Tail(30))
	}
	took := time.Since(start)
	if err := n.proc.ExitErr(); err != nil {
		t.Errorf("%s exited with %v:\n%s", n.name, err, n.proc.Tail(30))
	}
	if n.proc.Count("drain timed out") > 0 || n.proc.Count(`msg=drained`) == 0 {
		t.Errorf("%s did not drain completely:\n%s", n.name, n.proc.Tail(30))
	}
	t.Logf("%s drained and exited in %s", n.name, took.Round(time.Millisecond))
	return took
}
