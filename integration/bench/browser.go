package bench

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/agent/sigclient"
	"github.com/porthole-dev/porthole/integration/devtools"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/proto"
)

// ChromiumPath is the browser the browser group drives.
const ChromiumPath = "/usr/bin/chromium"

// browserWait bounds every wait for a page in the browser group.
const browserWait = 30 * time.Second

// Figure names of the browser group.
const (
	figBrowserDirect = "device page, Chromium direct, navigation→first contentful paint"
	figBrowserCold   = "session setup, Chromium, cold, navigation→device page first paint"
	figBrowserWarm   = "session setup, Chromium, warm, navigation→device page first paint"
)

// BrowserFigures measures session setup in headless Chromium against the
// real binaries, from the shell's navigation start to the first contentful
// paint of the device's page in the shell's frame (both clocks in the
// browser: the frame's FCP mapped onto the shell's time origin):
//   - cold: a fresh profile (a new browser) and a new session: the service
//     worker installs, signaling, the peer connection, then the page;
//   - warm: the same profile, another new session (another origin, so the
//     worker installs again; the browser's process, HTTP cache and
//     connections are warm).
//
// The same-run baseline is the device's page opened directly in the same
// browser (navigation start to its first contentful paint).
func BrowserFigures(t testing.TB, r *Report, cfg Config) {
	if _, err := os.Stat(ChromiumPath); err != nil {
		t.Skipf("browser group: no Chromium at %s", ChromiumPath)
	}
	st := stack.Start(t, stack.Options{})
	var direct []float64
	var cold, warm shellTimes
	var navFrame, navTab, navDirect navSamples
	pcs := 0
	for i := range cfg.BrowserRuns {
		c, w, d, nav := browserRun(t, st)
		cold.add(c)
		warm.add(w)
		direct = append(direct, d)
		navFrame.add(nav.frame)
		navTab.add(nav.tab)
		navDirect.add(nav.direct)
		pcs = max(pcs, nav.peerConnections)
		logf(t, "browser run %d: cold timeline: %s", i, timelineNote(one(c.Timeline)))
		logf(t, "browser run %d: warm timeline: %s", i, timelineNote(one(w.Timeline)))
		logf(t, "browser run %d: cold %.0f ms (worker %.0f, peer %.0f), warm %.0f ms (worker %.0f, peer %.0f), direct %.0f ms; "+
			"navigations: frame %.0f, own tab %.0f, direct %.0f ms (medians), %d peer connection(s)",
			i, c.Paint, c.Worker, c.Connected, w.Paint, w.Worker, w.Connected, d,
			medianOf(nav.frame.load), medianOf(nav.tab.load), medianOf(nav.direct.load), nav.peerConnections)
		logf(t, "browser run %d: the session window behind the page's own tab: %s", i, nav.shellVisibility)
	}
	r.Add(figBrowserDirect, "ms", direct)
	f := r.Against(r.Add(figBrowserCold, "ms", cold.paint), figBrowserDirect)
	f.Check("p50 ≤ 600 ms", f.Median <= 600)
	cold.annotate(f)
	f = r.Against(r.Add(figBrowserWarm, "ms", warm.paint), figBrowserDirect)
	f.Check("p50 ≤ 300 ms", f.Median <= 300)
	warm.annotate(f)

	// A navigation inside the session (issue 12, PERF.md): no new peer
	// connection, and at most 1.5× the same navigation on the device
	// directly (+1 RTT, none on loopback). The note says what it costs over
	// the direct one, the figure issue 12 holds to 50 ms over the design
	// before it (a same-origin frame, measured once: see the issue).
	base := r.Add(figNavDirect, "ms", navDirect.load)
	base.Annotate("document's first byte %.1f ms (p50), %d subresources", medianOf(navDirect.firstByte), navDirect.resources)
	base.Annotate("per request, ms (p50): %s", navDirect.hopNote())
	for _, name := range []string{figNavFrame, figNavTab} {
		s := navFrame
		if name == figNavTab {
			s = navTab
		}
		f := r.Against(r.Add(name, "ms", s.load), figNavDirect)
		f.Check("p50 ≤ 1.5× direct, one peer connection", f.Median <= 1.5*base.Median && pcs == 1)
		f.Annotate("%.1f ms over direct (p50); document's first byte %.1f ms (p50), %d subresources; "+
			"the session window made %d peer connection(s) over %d navigations",
			f.Median-base.Median, medianOf(s.firstByte), s.resources, pcs, 2*navsPerRun)
		f.Annotate("per request, ms (p50): %s", s.hopNote())
	}
}

// one makes a single timeline a timeline of samples.
func one(tl map[string]float64) map[string][]float64 {
	m := make(map[string][]float64, len(tl))
	for k, v := range tl {
		m[k] = []float64{v}
	}
	return m
}

func (s *navSamples) add(o navSamples) {
	s.load = append(s.load, o.load...)
	s.firstByte = append(s.firstByte, o.firstByte...)
	s.resources = max(s.resources, o.resources)
	for k, vs := range o.hops {
		if s.hops == nil {
			s.hops = map[string][]float64{}
		}
		s.hops[k] = append(s.hops[k], vs...)
	}
	for k, vs := range o.cpu {
		if s.cpu == nil {
			s.cpu = map[string][]float64{}
		}
		s.cpu[k] = append(s.cpu[k], vs...)
	}
}

// medianOf is the median of xs (0 for none).
func medianOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	ys := slices.Clone(xs)
	slices.Sort(ys)
	return median(ys)
}

// shellTime is one session setup in the browser, in milliseconds from the
// shell's navigation start: the service worker active, the peer connection
// connected, the device page's first contentful paint.
type shellTime struct {
	Worker, Connected, Paint float64
	// Timeline is every step of the setup that the shell, the relay frame
	// and the device frame mark (shell.js and relay.js step), in ms from
	// the shell's navigation start.
	Timeline map[string]float64 `json:"-"`
}

type shellTimes struct {
	worker, connected, paint []float64
	timeline                 map[string][]float64
}

func (s *shellTimes) add(t shellTime) {
	s.worker = append(s.worker, t.Worker)
	s.connected = append(s.connected, t.Connected)
	s.paint = append(s.paint, t.Paint)
	for k, v := range t.Timeline {
		if s.timeline == nil {
			s.timeline = map[string][]float64{}
		}
		s.timeline[k] = append(s.timeline[k], v)
	}
}

// annotate notes where the time went (medians of the steps).
func (s *shellTimes) annotate(f *Figure) {
	f.Annotate("medians from navigation start: service worker active %.0f ms, peer connection connected %.0f ms",
		medianOf(s.worker), medianOf(s.connected))
	if len(s.timeline) > 0 {
		f.Annotate("timeline, ms from navigation start (p50): %s", timelineNote(s.timeline))
	}
}

// timelineNote lists the steps of a timeline in the order of their
// medians: "name 12; name 40; …".
func timelineNote(tl map[string][]float64) string {
	type st struct {
		name string
		ms   float64
	}
	var steps []st
	for k, vs := range tl {
		steps = append(steps, st{k, medianOf(vs)})
	}
	slices.SortFunc(steps, func(a, b st) int { return cmp.Compare(a.ms, b.ms) })
	parts := make([]string, len(steps))
	for i, x := range steps {
		parts[i] = fmt.Sprintf("%s %.0f", x.name, x.ms)
	}
	return strings.Join(parts, "; ")
}

// Timeline scripts: each returns {step: ms}. The shell's marks are on its
// own clock; the relay's and the device frame's are wall-clock times
// (timeOrigin + …), which setupTimeline maps onto the shell's.
const (
	shellTimelineJS = `(() => {
		const o = {};
		for (const m of performance.getEntriesByType('mark')) if (m.name.startsWith('porthole.setup.')) o[m.name.slice(15)] = m.startTime;
		const n = performance.getEntriesByType('navigation')[0];
		if (n) {
			o['shell-first-byte'] = n.responseStart;
			o['shell-dom-interactive'] = n.domInteractive;
		}
		// The shell's own scripts, all loaded (its module graph).
		const js = performance.getEntriesByType('resource').filter((r) => r.name.startsWith(location.origin + '/__t/') && r.name.endsWith('.js'));
		if (js.length) o['shell-modules-loaded'] = Math.max(...js.map((r) => r.responseEnd));
		return o;
	})()`
	relayTimelineJS = `(() => {
		const o = {};
		for (const m of performance.getEntriesByType('mark')) if (m.name.startsWith('porthole.relay.')) o['relay-' + m.name.slice(15)] = performance.timeOrigin + m.startTime;
		return o;
	})()`
	frameTimelineJS = `(() => {
		const n = performance.getEntriesByType('navigation')[0];
		if (!n) return {};
		const at = (v) => v > 0 ? performance.timeOrigin + v : 0;
		return {'frame-start': performance.timeOrigin, 'frame-first-byte': at(n.responseStart), 'frame-dom': at(n.domContentLoadedEventEnd), 'frame-load': at(n.loadEventEnd)};
	})()`
)

// setupTimeline reads the marks of the shell, its relay frame and its
// device frame. A part it cannot read is left out (and logged): the
// timeline explains the figure, it is not the figure.
func setupTimeline(t testing.TB, ctx context.Context, tg *devtools.Targets, deviceOrigin string, shellOrigin float64) map[string]float64 {
	tl := map[string]float64{}
	own, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]float64](shellTimelineJS))
	if err != nil {
		logf(t, "setup timeline: the shell's marks: %v", err)
	}
	maps.Copy(tl, own)
	for _, part := range []struct {
		match func(string) bool
		js    string
	}{
		{devtools.Prefix(deviceOrigin + "/__t/relay.html"), relayTimelineJS},
		{devtools.OnOrigin(deviceOrigin), frameTimelineJS},
	} {
		fctx, err := tg.Find("iframe", part.match)
		if err == nil {
			var m map[string]float64
			if m, err = chromedp.Run(fctx, chromedp.Evaluate[map[string]float64](part.js)); err == nil {
				for k, v := range m {
					if v > 0 {
						tl[k] = v - shellOrigin
					}
				}
				continue
			}
		}
		logf(t, "setup timeline: a frame's marks: %v", err)
	}
	return tl
}

// stepSpy runs in every document before its scripts and records, in the
// shell, when the peer connection connects (performance.now, from
// navigation start) and how many peer connections it made. The shell marks when its relay's worker is active
// itself (performance mark porthole.relay-ready).
const stepSpy = `(() => {
	if (window.__benchSteps || window.top !== window) return;
	const T = window.__benchSteps = {connected: 0, pcs: 0};
	const Native = window.RTCPeerConnection;
	if (!Native) return;
	window.RTCPeerConnection = class extends Native {
		constructor(...args) {
			super(...args);
			T.pcs++;
			this.addEventListener('connectionstatechange', () => {
				if (this.connectionState === 'connected' && !T.connected) T.connected = performance.now();
			});
		}
	};
})()`

// browserRun starts a browser with a fresh profile and returns the cold
// and warm session setup, the direct page load and the navigations, in
// milliseconds. The browser is gone when it returns.
func browserRun(t testing.TB, st *stack.Stack) (cold, warm shellTime, direct float64, nav navTimes) {
	dir, err := os.MkdirTemp("", "porthole-bench-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	actx, acancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(ChromiumPath),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1280, 800),
	)
	defer acancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(ctx, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: stepSpy})
		return chromedp.Void{}, err
	}); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	cold = openShell(t, ctx, st)
	warm = openShell(t, ctx, st)
	direct = openDirect(t, ctx, "http://"+st.DeviceAddr+"/")
	nav = sessionNavigations(t, ctx, st)
	nav.direct = directNavigations(t, ctx, st)
	return cold, warm, direct, nav
}

// openShell creates a session, opens its shell in the tab and returns the
// time from the shell's navigation start to the device page's first
// contentful paint in the frame, and to the steps before it. It ends the
// session afterwards.
func openShell(t testing.TB, ctx context.Context, st *stack.Stack) shellTime {
	info := benchSession(t, st)
	if err := chromedp.Do(ctx, chromedp.Navigate(info.ShellOrigin+"/#token="+info.Token)); err != nil {
		t.Fatalf("open the shell: %v", err)
	}
	// The device frame is cross-origin to the shell (and a target of its
	// own): its first paint, on the wall clock, minus the shell's time
	// origin.
	tg := devtools.New(ctx)
	defer tg.Close()
	paint := pollFrame(t, tg, info.DeviceOrigin, `(() => {
		if (document.readyState !== 'complete') return 0;
		const p = performance.getEntriesByName('first-contentful-paint')[0];
		return p ? performance.timeOrigin + p.startTime : 0;
	})()`)
	origin, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`performance.timeOrigin`))
	if err != nil {
		t.Fatalf("read the shell's time origin: %v", err)
	}
	ms := paint - origin
	steps, err := chromedp.Run(ctx, chromedp.Evaluate[shellTime](`({worker: performance.getEntriesByName('porthole.relay-ready')[0]?.startTime || 0, connected: window.__benchSteps?.connected || 0})`))
	if err != nil {
		t.Fatalf("read the setup steps: %v", err)
	}
	steps.Paint = ms
	steps.Timeline = setupTimeline(t, ctx, tg, info.DeviceOrigin, origin)
	// End the session as the toolbar's button does; the next navigation
	// would end it too, a little later.
	_, _ = chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const b = document.querySelector('.toolbar button.end'); b?.click(); return true; })()`))
	return steps
}

// openDirect opens url in the tab and returns navigation start to its
// first contentful paint.
func openDirect(t testing.TB, ctx context.Context, url string) float64 {
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	return pollPositive(t, ctx, fmt.Sprintf(`(() => {
		if (location.href !== %q || document.readyState !== 'complete') return 0;
		const p = performance.getEntriesByName('first-contentful-paint')[0];
		return p ? p.startTime : 0;
	})()`, url))
}

// pollFrame evaluates expr in the device frame on origin until it returns
// a positive number.
func pollFrame(t testing.TB, tg *devtools.Targets, origin, expr string) float64 {
	deadline := time.Now().Add(browserWait)
	for time.Now().Before(deadline) {
		if fctx, err := tg.Find("iframe", devtools.OnOrigin(origin)); err == nil {
			if v, err := chromedp.Run(fctx, chromedp.Evaluate[float64](expr)); err == nil && v > 0 {
				return v
			} else if err != nil {
				tg.Forget(fctx)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no first contentful paint in the device frame within %s", browserWait)
	return 0
}

// pollPositive evaluates expr until it returns a positive number.
func pollPositive(t testing.TB, ctx context.Context, expr string) float64 {
	pctx, cancel := context.WithTimeout(ctx, browserWait)
	defer cancel()
	v, err := chromedp.Run(pctx, chromedp.Poll[float64](`(() => { const v = `+expr+`; return v > 0 ? v : null; })()`,
		chromedp.WithPollingInterval(10*time.Millisecond)))
	if err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + ' | ' + document.body.innerText.slice(0, 300)`))
		t.Fatalf("no first contentful paint within %s: %v; page: %s", browserWait, err, page)
	}
	return v
}

// benchSession creates a session on the demo device, as the app's Open
// button does.
func benchSession(t testing.TB, st *stack.Stack) *proto.SessionInfo {
	api := &sigclient.API{Base: st.SignalingURL, Token: st.TechToken}
	info, err := api.CreateSession(context.Background(), stack.DeviceID)
	if err != nil || info.ShellOrigin == "" {
		t.Fatalf("create session: %+v, %v", info, err)
	}
	return info
}
