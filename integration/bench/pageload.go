package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/integration/demodevice"
	"github.com/porthole-dev/porthole/integration/devtools"
	"github.com/porthole-dev/porthole/integration/stack"
)

// The page-load group (issue 21): the demo device's EWS console (/ews, 40
// subresources: stylesheets whose background images are found only once
// they are parsed, deferred scripts, images, and JSON polls one after
// the other) loaded in Chromium through the session, against the same
// page opened directly in the same run, on loopback and at simulated path
// delays between the technician's browser and the site.
//
// The delay model: the round trip rtt is added on the browser's side of
// each path, half in each direction, by the user-space relays of
// delay.go in their own processes:
//   - direct: Chromium → TCP delay relay → device;
//   - session: the browser's peer connection is held to its relay
//     candidate (ICE transport policy "relay", set by the bench), and the
//     TURN server signaling hands out is a UDP delay relay in front of
//     porthole-turn, so every datagram between Chromium and the agent
//     crosses the delay once. The agent reaches the relayed address on
//     loopback (it is the site side).
//
// On loopback (rtt 0) the session takes its usual host path.
//
// Each figure is navigation start → the page complete: its load event and
// its last JSON poll answered (the page's "ews-ready" mark), whichever is
// later, on the page's own clock. The target is ≤ 1.5× direct + 1 RTT.

// pageLoadRTTs are the simulated round trips of the group.
var pageLoadRTTs = []time.Duration{0, 20 * time.Millisecond, 60 * time.Millisecond}

// pageLoadsPerRun is how many loads each place gets per browser run
// (after one that warms up the connections and the worker).
const pageLoadsPerRun = 5

// ewsPath is the console's path on the device.
const ewsPath = "/ews"

// pageLoadName names a figure of the group.
func pageLoadName(place string, rtt time.Duration) string {
	where := "loopback"
	if rtt > 0 {
		where = fmt.Sprintf("%d ms RTT", rtt.Milliseconds())
	}
	return fmt.Sprintf("40-resource EWS page, Chromium %s, %s, navigation→complete", place, where)
}

// pageLoadTarget is the target of the session's load against the direct
// one: at most 1.5× it plus one round trip (the session's one extra hop
// on the first request, at most).
func pageLoadTarget(session, direct float64, rtt time.Duration) bool {
	return session <= 1.5*direct+float64(rtt.Milliseconds())
}

// relaySpy runs in every document before its scripts: in the top window
// it holds every peer connection to relayed candidates (the bench's delay
// model: the TURN server is behind the delay relay), and keeps the peer
// connections in window.__benchPCs so the bench can read their selected
// pair's round trip.
const relaySpy = `(() => {
	if (window.__benchPCs || window.top !== window) return;
	window.__benchPCs = [];
	const Native = window.RTCPeerConnection;
	if (!Native) return;
	window.RTCPeerConnection = class extends Native {
		constructor(cfg, ...rest) {
			super({...(cfg || {}), iceTransportPolicy: 'relay'}, ...rest);
			window.__benchPCs.push(this);
		}
	};
})()`

// pcSpy keeps the peer connections without changing them (loopback).
const pcSpy = `(() => {
	if (window.__benchPCs || window.top !== window) return;
	window.__benchPCs = [];
	const Native = window.RTCPeerConnection;
	if (!Native) return;
	window.RTCPeerConnection = class extends Native {
		constructor(...args) { super(...args); window.__benchPCs.push(this); }
	};
})()`

// selectedPairJS is the selected candidate pair of the session window's
// peer connection: its local candidate type and its round trip in ms.
const selectedPairJS = `(async () => {
	const pc = (window.__benchPCs || []).find((p) => p.connectionState === 'connected');
	if (!pc) return 'no connected peer connection';
	const st = await pc.getStats();
	let out = 'no selected pair';
	st.forEach((s) => {
		if (s.type !== 'candidate-pair' || !s.nominated || s.state !== 'succeeded') return;
		const l = st.get(s.localCandidateId);
		out = (l ? l.candidateType : '?') + ', ' + (s.currentRoundTripTime * 1000).toFixed(1) + ' ms RTT';
	});
	return out;
})()`

// ewsDoneJS is the console's load at ?i=%d: navigation start to the later
// of its load event and its ews-ready mark (0 until both), and how many
// subresources it fetched.
const ewsDoneJS = `(() => {
	if (location.pathname !== '` + ewsPath + `' || location.search !== '?i=%d' || document.readyState !== 'complete') return 0;
	const n = performance.getEntriesByType('navigation')[0];
	const m = performance.getEntriesByName('ews-ready')[0];
	if (!n || !(n.loadEventEnd > 0) || !m) return 0;
	return Math.max(n.loadEventEnd, m.startTime);
})()`

// ewsDumpJS lists every request of the document (for
// PORTHOLE_BENCH_PAGELOAD_DUMP): where its time went, one line each.
const ewsDumpJS = `(() => {
	const n = performance.getEntriesByType('navigation')[0];
	const f = (v) => (v || 0).toFixed(1).padStart(7);
	return [n, ...performance.getEntriesByType('resource')].map((e) => new URL(e.name).pathname.padEnd(22) + f(e.startTime) + f(e.workerStart) + f(e.fetchStart) + f(e.responseStart) + f(e.responseEnd) + '  ' + (e.serverTiming || []).map((s) => s.name + '=' + s.duration).join(' ')).join('\n') +
		'\nload ' + n.loadEventEnd.toFixed(1) + ', ready ' + (performance.getEntriesByName('ews-ready')[0]?.startTime || 0).toFixed(1);
})()`

// PageLoadFigures measures the EWS console's load in Chromium, in the
// session window's frame and directly, at each of pageLoadRTTs.
func PageLoadFigures(t testing.TB, r *Report, cfg Config) {
	if _, err := os.Stat(ChromiumPath); err != nil {
		t.Skipf("pageload group: no Chromium at %s", ChromiumPath)
	}
	rtts := pageLoadRTTs
	if v := os.Getenv("PORTHOLE_BENCH_PAGELOAD_RTTS"); v != "" {
		// For profiling one level: comma-separated round trips in ms.
		rtts = nil
		for _, f := range strings.Split(v, ",") {
			ms, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || ms < 0 {
				t.Fatalf("PORTHOLE_BENCH_PAGELOAD_RTTS: %q is not a round trip in ms", f)
			}
			rtts = append(rtts, time.Duration(ms)*time.Millisecond)
		}
	}
	for _, rtt := range rtts {
		var session, direct navSamples
		var pairs []string
		for i := range max(cfg.BrowserRuns/3, 3) {
			var s, d navSamples
			var pair string
			// A subtest of its own when it can, so that each run's stack
			// stops when the run ends instead of at the end of the group.
			if tt, ok := t.(*testing.T); ok {
				if !tt.Run(fmt.Sprintf("rtt=%v/run=%d", rtt, i), func(t *testing.T) { s, d, pair = pageLoadRun(t, rtt) }) {
					t.FailNow()
				}
			} else {
				s, d, pair = pageLoadRun(t, rtt)
			}
			session.add(s)
			direct.add(d)
			pairs = append(pairs, pair)
			logf(t, "pageload, %v RTT, run %d: session %.0f ms, direct %.0f ms (medians), path %s; CPU ms per load: session %s, direct %s; session per request (p50): %s",
				rtt, i, medianOf(s.load), medianOf(d.load), pair, cpuNote(s.cpu), cpuNote(d.cpu), s.hopNote())
		}
		base := r.Add(pageLoadName("direct", rtt), "ms", direct.load)
		base.Annotate("%d subresources; CPU ms per load (p50): %s; per request, ms (p50): %s", direct.resources, cpuNote(direct.cpu), direct.hopNote())
		f := r.Against(r.Add(pageLoadName("in the session", rtt), "ms", session.load), base.Name)
		f.Check(fmt.Sprintf("p50 ≤ 1.5× direct + 1 RTT (%.0f ms)", 1.5*base.Median+float64(rtt.Milliseconds())),
			pageLoadTarget(f.Median, base.Median, rtt) && session.resources >= demodevice.EWSSubresources)
		f.Annotate("%.1f ms over direct (p50), %d subresources; selected pair per run: %v; CPU ms per load (p50): %s; per request, ms (p50): %s",
			f.Median-base.Median, session.resources, pairs, cpuNote(session.cpu), session.hopNote())
	}
}

// pageLoadRun starts a stack and a browser for one round trip and returns
// the session's and the direct loads of the console (after one warm-up
// load each) and the session's selected pair.
func pageLoadRun(t testing.TB, rtt time.Duration) (session, direct navSamples, pair string) {
	var relays []*relayProcess
	defer func() {
		for _, rp := range relays {
			rp.Close()
		}
	}()
	opts := stack.Options{}
	if rtt > 0 {
		opts.ICEFront = func(turn string) string {
			rp, err := startRelayProcess("udp", turn, rtt/2)
			if err != nil {
				t.Fatalf("UDP delay relay in front of porthole-turn: %v", err)
			}
			relays = append(relays, rp)
			return rp.Addr
		}
	}
	st := stack.Start(t, opts)
	deviceAddr := st.DeviceAddr
	if rtt > 0 {
		rp, err := startRelayProcess("tcp", st.DeviceAddr, rtt/2)
		if err != nil {
			t.Fatalf("TCP delay relay in front of the device: %v", err)
		}
		relays = append(relays, rp)
		deviceAddr = rp.Addr
	}
	ctx, cancel, browserPid := newChromium(t)
	defer cancel()
	spy := pcSpy
	if rtt > 0 {
		spy = relaySpy
	}
	if err := chromedp.Do(ctx, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: spy})
		return chromedp.Void{}, err
	}); err != nil {
		t.Fatalf("Chromium: %v", err)
	}

	// Through the session, in the session window's frame.
	info := benchSession(t, st)
	if err := chromedp.Do(ctx, chromedp.Navigate(info.ShellOrigin+ewsPath+"?i=0#token="+info.Token)); err != nil {
		t.Fatalf("open the shell: %v", err)
	}
	tg := devtools.New(ctx)
	defer tg.Close()
	inFrame := func() (context.Context, error) { return tg.Find("iframe", devtools.OnOrigin(info.DeviceOrigin)) }
	pollTarget(t, tg, inFrame, fmt.Sprintf(ewsDoneJS, 0))
	procs := bulkProcs{st: st, browser: browserPid}
	cpu0, conns0 := procs.cpu(), deviceConns(t, st)
	session = ewsLoads(t, tg, inFrame)
	session.cpu = cpuPerLoad(cpu0, procs.cpu())
	session.cpu["device connections"] = []float64{float64(deviceConns(t, st)-conns0) / pageLoadsPerRun}
	pair, err := chromedp.Run(ctx, chromedp.Evaluate[string](selectedPairJS, func(p *runtime.EvaluateParams) { p.AwaitPromise = &[]bool{true}[0] }))
	if err != nil {
		pair = "unknown: " + err.Error()
	}
	_, _ = chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { document.querySelector('.toolbar button.end')?.click(); return true; })()`))

	// Directly, in the tab.
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+deviceAddr+ewsPath+"?i=0")); err != nil {
		t.Fatalf("open the device directly: %v", err)
	}
	here := func() (context.Context, error) { return ctx, nil }
	pollTarget(t, tg, here, fmt.Sprintf(ewsDoneJS, 0))
	cpu0, conns0 = procs.cpu(), deviceConns(t, st)
	direct = ewsLoads(t, tg, here)
	direct.cpu = cpuPerLoad(cpu0, procs.cpu())
	direct.cpu["device connections"] = []float64{float64(deviceConns(t, st)-conns0) / pageLoadsPerRun}
	return session, direct, pair
}

// cpuPerLoad is the CPU each process (Chromium's summed) spent between two
// samples, in ms per load of the console.
func cpuPerLoad(before, after map[string]time.Duration) map[string][]float64 {
	out := map[string][]float64{}
	sum := map[string]time.Duration{}
	for k, v := range after {
		name := k
		if pid, ok := strings.CutPrefix(k, chromiumPid); ok {
			name = "chromium " + chromiumType(pid)
		}
		sum[name] += v - before[k]
	}
	for k, v := range sum {
		out[k] = []float64{float64(v.Microseconds()) / 1000 / pageLoadsPerRun}
	}
	return out
}

// chromiumType is a Chromium process's --type (renderer, gpu-process,
// utility: the network service among them), "browser" for the browser
// process.
func chromiumType(pid string) string {
	b, err := os.ReadFile("/proc/" + pid + "/cmdline")
	if err != nil {
		return "gone"
	}
	// Chromium rewrites its children's command lines as one string
	// (setproctitle): split on spaces as well as NULs.
	for _, a := range strings.Fields(strings.ReplaceAll(string(b), "\x00", " ")) {
		if v, ok := strings.CutPrefix(a, "--type="); ok {
			if v == "utility" && strings.Contains(string(b), "network.mojom.NetworkService") {
				return "network"
			}
			return v
		}
	}
	return "browser"
}

// deviceConns is how many TCP connections the demo device has accepted
// before this call (its /api/stats, on a connection of its own).
func deviceConns(t testing.TB, st *stack.Stack) int64 {
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: browserWait}
	resp, err := hc.Get("http://" + st.DeviceAddr + "/api/stats")
	if err != nil {
		t.Fatalf("device stats: %v", err)
	}
	defer resp.Body.Close()
	var s demodevice.StatsSnapshot
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatalf("device stats: %v", err)
	}
	return s.TotalConns - 1
}

// cpuNote is the medians of per-load CPU, in a stable order, and the
// device's new connections per load.
func cpuNote(cpu map[string][]float64) string {
	keys := slices.Sorted(maps.Keys(cpu))
	parts := make([]string, 0, len(keys))
	var total, conns float64
	for _, k := range keys {
		m := medianOf(cpu[k])
		if k == "device connections" {
			conns = m
			continue
		}
		total += m
		parts = append(parts, fmt.Sprintf("%s %.0f", strings.TrimPrefix(k, "porthole-"), m))
	}
	return fmt.Sprintf("%.0f (%s), device connections opened %.1f", total, strings.Join(parts, ", "), conns)
}

// ewsLoads loads the console pageLoadsPerRun times in the document that
// find reaches, each from the page itself as a link would (?i=1, 2, …),
// and returns each load, and the per-request phases (navPartsJS).
func ewsLoads(t testing.TB, tg *devtools.Targets, find func() (context.Context, error)) (out navSamples) {
	for i := 1; i <= pageLoadsPerRun; i++ {
		ctx, err := find()
		if err != nil {
			t.Fatalf("page load: the page is gone: %v", err)
		}
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`(location.href = %q, true)`, fmt.Sprintf("%s?i=%d", ewsPath, i)))); err != nil {
			t.Fatalf("page load %d: %v", i, err)
		}
		out.load = append(out.load, pollTarget(t, tg, find, fmt.Sprintf(ewsDoneJS, i)))
		if ctx, err := find(); err == nil && i == pageLoadsPerRun && os.Getenv("PORTHOLE_BENCH_PAGELOAD_DUMP") != "" {
			dump, _ := chromedp.Run(ctx, chromedp.Evaluate[string](ewsDumpJS))
			logf(t, "page load %d, every request (name start workerStart fetchStart responseStart responseEnd; server timing):\n%s", i, dump)
		}
		if ctx, err := find(); err == nil {
			out.addParts(ctx)
		}
	}
	return out
}
