package integration

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/agent/daemon"
	"github.com/porthole-dev/porthole/agent/technician"
	"github.com/porthole-dev/porthole/integration/proc"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/promserve"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/store"
	"github.com/porthole-dev/porthole/signaling/store/redisstore"
)

// The soak is not part of make test: `make soak` sets PORTHOLE_SOAK to
// its length (20m by default) and PORTHOLE_SOAK_SESSIONS to the number of
// concurrent sessions (200).
const (
	soakAgents   = 20
	soakParallel = 8 // sessions set up at once
	// soakGrace is how long after an injected failure a request touching
	// it may fail and count as injected, not as an error.
	soakGrace = 30 * time.Second
)

// TestSoak holds PORTHOLE_SOAK_SESSIONS sessions open at once across
// three signaling nodes on one real redis-server for PORTHOLE_SOAK, each
// making a request a second, half of them relayed through a real
// porthole-turn, while failures are injected on a schedule: an agent's
// signaling connection is cut (it reconnects through its load balancer),
// the relay is restarted, and every session ends at its expiry
// (--session-ttl) and is opened again. At the end:
//
//   - no request failed but those an injection explains (its agent cut,
//     its relay restarted, its session expiring under it);
//   - every request answered is in its session's access log in Redis;
//   - goroutines and heap of every node, of the relay and of the process
//     holding the agents and technicians are flat: their slopes (least
//     squares over the samples after the first fifth) are reported with
//     RSS, and the growth they project over the run is bounded.
func TestSoak(t *testing.T) {
	dur := soakEnv(t)
	sessions := 200
	if s := os.Getenv("PORTHOLE_SOAK_SESSIONS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 2 {
			t.Fatalf("PORTHOLE_SOAK_SESSIONS=%q: want a number of sessions ≥ 2", s)
		}
		sessions = n
	}
	ttl := max(time.Minute, dur/6).Round(time.Second)
	t.Logf("soak: %d sessions, %d agents, 3 nodes, %s, sessions expire after %s", sessions, soakAgents, dur, ttl)

	rs := startPersistentRedis(t)
	bin := stack.Build(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), dur+5*time.Minute)
	defer cancel()

	devPort := startDemoDevicePort(t, ctx, bin)

	secretFile := filepath.Join(dir, "turn.secret")
	if err := os.WriteFile(secretFile, []byte(rand.Text()), 0o600); err != nil {
		t.Fatal(err)
	}
	relay := &soakRelay{bin: bin["porthole-turn"], addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), secret: secretFile}
	relay.start(t, ctx)
	t.Cleanup(relay.stop)

	const techToken = "soak-tech-token"
	keys := agentKeys(soakAgents, techToken)
	nodes := make([]*clusterNode, 3)
	metrics := map[string]string{}
	for i := range nodes {
		nodes[i] = startNode(t, ctx, bin, dir, rs.url(), fmt.Sprintf("n%d", i), techToken, keys,
			"--turn-secret-file", secretFile, "--ice-url", "turn:"+relay.addr+"?transport=udp",
			"--session-ttl", ttl.String(), "--metrics-listen", "127.0.0.1:0", "--log-level", "warn")
		m, err := nodes[i].proc.WaitLine(ctx, regexp.MustCompile(`metrics on (http://\S+)`))
		if err != nil {
			t.Fatalf("%s metrics: %v", nodes[i].name, err)
		}
		metrics[nodes[i].name] = m[1]
	}

	// Agents, in this process, each behind a load balancer preferring
	// another node.
	log := slog.New(slog.DiscardHandler)
	fwds := make([]*forwarder, soakAgents)
	actx, acancel := context.WithCancel(context.Background())
	var awg sync.WaitGroup
	t.Cleanup(func() { acancel(); awg.Wait() })
	for i := range soakAgents {
		order := make([]string, 0, len(nodes))
		for k := range nodes {
			order = append(order, nodes[(i+k)%len(nodes)].addr)
		}
		fwds[i] = startForwarder(t, order)
		a, err := daemon.New(daemon.Config{
			Server: "http://" + fwds[i].addr(), Key: keys[agentName(i)], LoopbackOnly: true, Logger: log,
			MinBackoff: 200 * time.Millisecond, MaxBackoff: 2 * time.Second, MaxSessions: 64,
			Devices: []daemon.DeviceConfig{{ID: deviceName(i), Address: "127.0.0.1", HTTPPort: devPort}},
		})
		if err != nil {
			t.Fatal(err)
		}
		awg.Go(func() { _ = a.Run(actx) })
	}
	for _, n := range nodes {
		waitDevices(t, ctx, n.url, techToken, soakAgents)
	}

	inj := &soakInjections{}
	res := &soakResults{}
	start := time.Now()
	end := start.Add(dur)
	sem := make(chan struct{}, soakParallel)
	var wg sync.WaitGroup
	for i := range sessions {
		wg.Go(func() {
			w := &soakWorker{i: i, agent: i % soakAgents, relayed: i%2 == 1, node: nodes[i%len(nodes)],
				token: techToken, end: end, sem: sem, inj: inj, res: res}
			w.run(ctx)
		})
	}

	// The schedule of injected failures, and the samples.
	sampler := newSoakSampler(metrics, relay)
	tick := time.NewTicker(max(5*time.Second, dur/60))
	defer tick.Stop()
	cut := time.NewTicker(max(20*time.Second, dur/10))
	defer cut.Stop()
	// Not at a multiple of the TTL, when every session is being set up
	// again anyway.
	relayAt := start.Add(dur * 2 / 5)
	relayed := false
	cuts := 0
	for now := time.Now(); now.Before(end); now = time.Now() {
		select {
		case <-tick.C:
			sampler.sample(ctx, now.Sub(start))
		case <-cut.C:
			a := cuts % soakAgents
			cuts++
			inj.mark(fmt.Sprintf("agent %d cut", a), func(w *soakWorker) bool { return w.agent == a })
			fwds[a].cut()
		case <-ctx.Done():
			t.Fatal("soak ran past its deadline")
		}
		if !relayed && time.Now().After(relayAt) {
			relayed = true
			inj.mark("relay restarted", func(w *soakWorker) bool { return w.relayed })
			relay.stop()
			relay.start(t, ctx)
			sampler.restarted("relay") // a new process: a series of its own
		}
	}
	wg.Wait()
	sampler.sample(ctx, time.Since(start))

	t.Logf("soak: %d sessions opened (%d ended at expiry), %d requests answered, %d failed (%d explained by %d injections: %d agent cuts, relay restarted %v), %d session setups failed (%d explained)",
		res.opened.Load(), res.expired.Load(), res.ok.Load(), res.failed.Load(), res.explained.Load(), inj.count(), cuts, relayed,
		res.setupFailed.Load(), res.setupExplained.Load())
	for _, e := range res.errs() {
		t.Errorf("unexplained failure: %s", e)
	}
	if res.ok.Load() == 0 {
		t.Fatal("no request answered")
	}

	// The relayed half really went through the relay, after its restart too.
	if m, err := promserve.Scrape(ctx, relay.metricsURL()); err != nil || m["porthole_turn_allocations_total"] == 0 {
		t.Errorf("the restarted relay served no allocation (%v): relayed sessions did not use it", err)
	} else {
		t.Logf("relay after its restart: %.0f allocations", m["porthole_turn_allocations_total"])
	}

	// Every answered request is in its session's access log.
	st, err := redisstore.Open(rs.url(), redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	missing, checked := 0, 0
	for id, want := range res.served() {
		var got []*store.AuditEntry
		testenv.Eventually(t, 30*time.Second, "the access log of "+id, func() bool {
			got, err = st.Audit(ctx, store.SessionStream(id), 0, 0)
			return err == nil && int64(countHTTP(got)) >= want
		})
		checked++
		if n := int64(countHTTP(got)); n < want {
			missing += int(want - n)
		}
		if i := store.VerifyChain("", 1, got); i >= 0 {
			t.Errorf("session %s: audit chain broken at %d", id, i)
		}
	}
	if missing > 0 {
		t.Errorf("%d answered requests missing from the access logs of %d sessions", missing, checked)
	}
	t.Logf("access logs: %d sessions checked, every answered request present", checked)

	for _, line := range sampler.report(t) {
		t.Log(line)
	}
}

// soakEnv is the soak's length from PORTHOLE_SOAK; the test is skipped
// without it (it is a long run, not part of make test).
func soakEnv(t *testing.T) time.Duration {
	t.Helper()
	s := os.Getenv("PORTHOLE_SOAK")
	if s == "" {
		t.Skip("soak: a long run; `make soak` runs it (PORTHOLE_SOAK=20m)")
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Minute {
		t.Fatalf("PORTHOLE_SOAK=%q: want a duration of at least 1m", s)
	}
	return d
}

// cut closes every connection through f, as a load balancer that loses a
// backend does; the agent behind it reconnects.
func (f *forwarder) cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.Close()
	}
}

// soakRelay is a porthole-turn that can be restarted on the same address.
type soakRelay struct {
	bin, addr, secret string
	mu                sync.Mutex
	p                 *proc.Proc
	metrics           string
}

func (r *soakRelay) start(t *testing.T, ctx context.Context) {
	t.Helper()
	p, err := proc.Start("porthole-turn", r.bin, []string{"--udp", r.addr, "--tcp", "", "--public-ip", "127.0.0.1",
		"--secret-file", r.secret, "--allow-peer", "127.0.0.0/8", "--allow-own-host", "--metrics-listen", "127.0.0.1:0"}, proc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := p.WaitLine(ctx, regexp.MustCompile(`metrics on (http://\S+)`))
	if err != nil {
		t.Fatalf("porthole-turn: %v\n%s", err, p.Tail(20))
	}
	r.mu.Lock()
	r.p, r.metrics = p, m[1]
	r.mu.Unlock()
}

func (r *soakRelay) stop() {
	r.mu.Lock()
	p := r.p
	r.mu.Unlock()
	if p != nil {
		_ = p.Stop(10 * time.Second)
	}
}

func (r *soakRelay) metricsURL() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.metrics
}

// soakInjections records when each injected failure happened and which
// sessions it touches.
type soakInjections struct {
	mu  sync.Mutex
	all []soakInjection
}

type soakInjection struct {
	what    string
	at      time.Time
	touches func(*soakWorker) bool
}

func (in *soakInjections) mark(what string, touches func(*soakWorker) bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.all = append(in.all, soakInjection{what, time.Now(), touches})
}

func (in *soakInjections) count() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.all)
}

// explains says which injection, if any, explains a failure of w at t.
func (in *soakInjections) explains(w *soakWorker, t time.Time) string {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, j := range in.all {
		if !t.Before(j.at) && t.Sub(j.at) < soakGrace && j.touches(w) {
			return j.what
		}
	}
	return ""
}

type soakResults struct {
	opened, expired, ok, failed, explained atomic.Int64
	setupFailed, setupExplained            atomic.Int64
	mu                                     sync.Mutex
	unexplained                            []string
	perSession                             map[string]int64
}

func (r *soakResults) fail(w *soakWorker, setup bool, err error, inj *soakInjections) {
	now := time.Now()
	if setup {
		r.setupFailed.Add(1)
	} else {
		r.failed.Add(1)
	}
	if why := inj.explains(w, now); why != "" {
		if setup {
			r.setupExplained.Add(1)
		} else {
			r.explained.Add(1)
		}
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.unexplained) < 20 { // the first ones say enough
		r.unexplained = append(r.unexplained, fmt.Sprintf("%s session %d (agent %d, relayed %v): %v",
			now.Format("15:04:05.000"), w.i, w.agent, w.relayed, err))
	}
}

func (r *soakResults) answered(id string) {
	r.ok.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.perSession == nil {
		r.perSession = map[string]int64{}
	}
	r.perSession[id]++
}

func (r *soakResults) errs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.unexplained)
}

func (r *soakResults) served() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.perSession)
}

// soakWorker is one technician: it keeps a session open to its agent's
// device until the soak ends, a request a second, and opens a new one
// when the session ends.
type soakWorker struct {
	i, agent int
	relayed  bool
	node     *clusterNode
	token    string
	end      time.Time
	sem      chan struct{}
	inj      *soakInjections
	res      *soakResults
}

func (w *soakWorker) run(ctx context.Context) {
	for time.Now().Before(w.end) && ctx.Err() == nil {
		w.sem <- struct{}{}
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		sess, err := technician.Open(octx, technician.Config{Server: w.node.url, Token: w.token,
			Device: deviceName(w.agent), LoopbackOnly: true, RelayOnly: w.relayed})
		cancel()
		<-w.sem
		if err != nil {
			w.res.fail(w, true, err, w.inj)
			pause(ctx, time.Second)
			continue
		}
		w.res.opened.Add(1)
		w.serve(ctx, sess)
		sess.Close()
	}
}

func (w *soakWorker) serve(ctx context.Context, sess *technician.Session) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for time.Now().Before(w.end) {
		select {
		case <-ctx.Done():
			return
		case <-sess.Ended():
			if e := sess.EndReason(); e != nil && e.Reason == proto.EndExpired {
				w.res.expired.Add(1)
			} else {
				w.res.fail(w, false, fmt.Errorf("session ended: %+v", e), w.inj)
			}
			return
		case <-tick.C:
		}
		if err := getPage(ctx, sess); err != nil {
			// At expiry the agent may close the data path a moment before
			// signaling's session.end reaches this side: a request failing
			// then is the expiry's, which says so within a few seconds.
			t := time.NewTimer(5 * time.Second)
			select {
			case <-sess.Ended(): // the session ended under the request: counted above
				t.Stop()
				continue
			case <-t.C:
			}
			w.res.fail(w, false, err, w.inj)
			continue
		}
		w.res.answered(sess.Info.Session)
	}
}

// pause waits d or until ctx ends: the pace of a retry, not a
// synchronisation.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// soakSampler samples goroutines and memory of each process over time.
type soakSampler struct {
	nodes  map[string]string
	relay  *soakRelay
	mu     sync.Mutex
	series map[string][][2]float64 // name → (minutes, value)
	gen    map[string]int          // process → restarts so far
}

func newSoakSampler(nodes map[string]string, relay *soakRelay) *soakSampler {
	return &soakSampler{nodes: nodes, relay: relay, series: map[string][][2]float64{}, gen: map[string]int{}}
}

func (s *soakSampler) add(name string, at time.Duration, v float64) {
	if g := s.gen[strings.Fields(name)[0]]; g > 0 {
		name = fmt.Sprintf("%s#%d%s", strings.Fields(name)[0], g+1, strings.TrimPrefix(name, strings.Fields(name)[0]))
	}
	s.series[name] = append(s.series[name], [2]float64{at.Minutes(), v})
}

// restarted starts new series for a process that was restarted: its
// memory starts again from nothing and would read as growth.
func (s *soakSampler) restarted(process string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen[process]++
}

func (s *soakSampler) sample(ctx context.Context, at time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	scrape := func(name, url string) {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		m, err := promserve.Scrape(sctx, url)
		if err != nil {
			return // a node or the relay restarting: a gap in its series
		}
		s.add(name+" goroutines", at, m["go_goroutines"])
		s.add(name+" heap MiB", at, m["go_memstats_heap_inuse_bytes"]/(1<<20))
		s.add(name+" RSS MiB", at, m["process_resident_memory_bytes"]/(1<<20))
	}
	for name, url := range s.nodes {
		scrape(name, url)
	}
	scrape("relay", s.relay.metricsURL())
	runtime.GC() // the heap in use, not what the collector has not reached yet
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.add("agents+technicians goroutines", at, float64(runtime.NumGoroutine()))
	s.add("agents+technicians heap MiB", at, float64(ms.HeapInuse)/(1<<20))
}

// report gives each series' slope per minute after the first fifth of its
// own span (a restarted process starts a new series), and fails the test
// when the growth it projects over that span is more than a fifth of the
// series' mean (and more than a small absolute floor: 25 goroutines,
// 8 MiB). RSS is reported only.
func (s *soakSampler) report(t *testing.T) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.series))
	for n := range s.series {
		names = append(names, n)
	}
	slices.Sort(names)
	var lines []string
	for _, n := range names {
		all := s.series[n]
		var pts [][2]float64
		if len(all) > 0 {
			// The first fifth of each series' own span is its warm-up.
			warm := all[0][0] + (all[len(all)-1][0]-all[0][0])/5
			for _, p := range all {
				if p[0] >= warm {
					pts = append(pts, p)
				}
			}
		}
		if len(pts) < 3 {
			lines = append(lines, fmt.Sprintf("%-36s too few samples (%d)", n, len(pts)))
			continue
		}
		slope, mean := leastSquares(pts)
		growth := slope * (pts[len(pts)-1][0] - pts[0][0])
		floor := 25.0
		if strings.HasSuffix(n, "MiB") {
			floor = 8
		}
		verdict := "flat"
		switch {
		case strings.HasSuffix(n, "RSS MiB"):
			// Reported, not judged: the runtime returns freed pages to the
			// kernel lazily, so RSS follows the peak of the heap, not its
			// level; the heap in use is judged instead.
			verdict = "(not judged)"
		case growth > max(mean/5, floor):
			verdict = "GROWING"
			t.Errorf("%s grows: %+.2f/min (%.1f over the run, mean %.1f)", n, slope, growth, mean)
		}
		lines = append(lines, fmt.Sprintf("%-36s mean %8.1f  slope %+8.2f/min  %s", n, mean, slope, verdict))
	}
	return lines
}

// leastSquares returns the slope and the mean of y over x.
func leastSquares(pts [][2]float64) (slope, mean float64) {
	var sx, sy, sxx, sxy float64
	for _, p := range pts {
		sx += p[0]
		sy += p[1]
		sxx += p[0] * p[0]
		sxy += p[0] * p[1]
	}
	n := float64(len(pts))
	den := n*sxx - sx*sx
	if math.Abs(den) < 1e-12 {
		return 0, sy / n
	}
	return (n*sxy - sx*sy) / den, sy / n
}
