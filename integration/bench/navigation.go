package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/integration/devtools"
	"github.com/porthole-dev/porthole/integration/stack"
)

// Figure names of the navigation figures (browser group).
const (
	figNavDirect = "navigation on the device's page, Chromium direct, link→load event"
	figNavFrame  = "navigation inside the session, Chromium, session window's frame, link→load event"
	figNavTab    = "navigation inside the session, Chromium, device page alone in its tab, link→load event"
)

// navPaths are the two device pages a navigation goes between: each
// navigation leaves one for the other, so the new document is told apart
// from the old by its path.
var navPaths = [2]string{"/", "/supplies"}

// navsPerRun is how many navigations each place gets per browser run.
const navsPerRun = 6

// navTimes are the navigations of one browser run in each place, and the
// peer connections the session window made in all.
type navTimes struct {
	frame, tab, direct navSamples
	peerConnections    int
	// shellVisibility is the session window's visibilityState while the
	// page was alone in its tab.
	shellVisibility string
}

// navLoadJS is the load event of the document at path, from its own
// navigation start (PerformanceNavigationTiming: the page's own clock, so
// DevTools round trips do not count), or 0 while it is not loaded.
const navLoadJS = `(() => {
	if (location.pathname !== %q || document.readyState !== 'complete') return 0;
	const n = performance.getEntriesByType('navigation')[0];
	return n && n.loadEventEnd > 0 ? n.loadEventEnd : 0;
})()`

// sessionNavigations opens a new session in the tab of ctx and navigates
// the device's page between navPaths, navsPerRun times in the session
// window's frame and navsPerRun times in a tab of its own (the toolbar's
// "Open in its own tab": the page is the top-level document, the peer
// connection stays in the session window). It ends the session afterwards.
func sessionNavigations(t testing.TB, ctx context.Context, st *stack.Stack) (nav navTimes) {
	info := benchSession(t, st)
	if err := chromedp.Do(ctx, chromedp.Navigate(info.ShellOrigin+navPaths[0]+"#token="+info.Token)); err != nil {
		t.Fatalf("open the shell: %v", err)
	}
	tg := devtools.New(ctx)
	defer tg.Close()
	inFrame := func() (context.Context, error) { return tg.Find("iframe", devtools.OnOrigin(info.DeviceOrigin)) }
	pollTarget(t, tg, inFrame, fmt.Sprintf(navLoadJS, navPaths[0]))
	nav.frame = navigateAll(t, tg, inFrame)

	// The page alone in its tab, at the path the frame showed last.
	// A click with a user gesture, as the technician's: opening a tab needs one.
	userGesture := func(p *runtime.EvaluateParams) { p.UserGesture = &[]bool{true}[0] }
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(document.querySelector('.toolbar .popout').click(), true)`, userGesture)); err != nil {
		t.Fatalf("pop the page out: %v", err)
	}
	inTab := func() (context.Context, error) { return tg.Find("page", devtools.OnOrigin(info.DeviceOrigin)) }
	pollTarget(t, tg, inTab, fmt.Sprintf(navLoadJS, navPaths[navsPerRun%2]))
	nav.tab = navigateAll(t, tg, inTab)
	// Whether the session window behind the tab counts as hidden (Chromium
	// throttles hidden pages' renderers): headless Chromium may keep it visible.
	if vis, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.visibilityState + (document.hasFocus() ? ', focused' : ', not focused')`)); err == nil {
		nav.shellVisibility = vis
	}
	if tab, err := inTab(); err == nil {
		_, _ = chromedp.Run(tab, chromedp.Evaluate[bool](`(window.close(), true)`))
	}
	pcs, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.__benchSteps?.pcs || 0`))
	if err != nil {
		t.Fatalf("count the peer connections: %v", err)
	}
	nav.peerConnections = pcs
	_, _ = chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { document.querySelector('.toolbar button.end')?.click(); return true; })()`))
	return nav
}

// directNavigations opens the device's page directly in the tab of ctx and
// navigates it between navPaths navsPerRun times.
func directNavigations(t testing.TB, ctx context.Context, st *stack.Stack) navSamples {
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+st.DeviceAddr+navPaths[0])); err != nil {
		t.Fatalf("open the device directly: %v", err)
	}
	tg := devtools.New(ctx)
	defer tg.Close()
	here := func() (context.Context, error) { return ctx, nil }
	pollTarget(t, tg, here, fmt.Sprintf(navLoadJS, navPaths[0]))
	return navigateAll(t, tg, here)
}

// navigateAll navigates the document that find reaches navsPerRun times,
// each time to the other of navPaths as a link would (the page sets its
// own location), and returns each new document's navigation start to load
// event, and to its first byte. The document is on navPaths[0] or [1] when
// it starts.
func navigateAll(t testing.TB, tg *devtools.Targets, find func() (context.Context, error)) (out navSamples) {
	for range navsPerRun {
		var next string
		for deadline := time.Now().Add(browserWait); ; {
			ctx, err := find()
			if err != nil {
				t.Fatalf("navigation: the page is gone: %v", err)
			}
			here, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname`))
			if err != nil {
				if time.Now().After(deadline) {
					t.Fatalf("navigation: the page does not answer: %v", err)
				}
				tg.Forget(ctx)
				continue
			}
			next = navPaths[0]
			if here == navPaths[0] {
				next = navPaths[1]
			}
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`(location.href = %q, true)`, next))); err != nil {
				t.Fatalf("navigate to %s: %v", next, err)
			}
			break
		}
		out.load = append(out.load, pollTarget(t, tg, find, fmt.Sprintf(navLoadJS, next)))
		if ctx, err := find(); err == nil {
			out.addParts(ctx)
		}
	}
	return out
}

// navParts is where a navigation's time went: its document's first byte
// (from navigation start), the subresources it loaded, and per request
// (document and subresources) the phases of Resource Timing and the
// session's hops (the worker's Server-Timing metrics, sw.js hopTiming), in
// milliseconds.
type navParts struct {
	FirstByte float64              `json:"firstByte"`
	Resources int                  `json:"resources"`
	Hops      map[string][]float64 `json:"hops"`
}

const navPartsJS = `(() => {
	const n = performance.getEntriesByType('navigation')[0];
	const res = performance.getEntriesByType('resource');
	const hops = {};
	const add = (k, v) => { (hops[k] ||= []).push(v); };
	for (const e of [n, ...res].filter(Boolean)) {
		const kind = e.entryType === 'navigation' ? 'doc' : 'sub';
		add(kind + ' request→head', e.responseStart - e.startTime);
		add(kind + ' body', e.responseEnd - e.responseStart);
		if (e.workerStart > 0) {
			add(kind + ' start→worker start', e.workerStart - e.startTime);
			add(kind + ' worker start→fetch event', e.fetchStart - e.workerStart);
		}
		for (const st of e.serverTiming || []) if (st.name.startsWith('ph-')) add(kind + ' ' + st.name, st.duration);
	}
	if (n) add('doc responseEnd→load', n.loadEventEnd - n.responseEnd);
	return {firstByte: n ? n.responseStart : 0, resources: res.length, hops};
})()`

// navSamples are the navigations of one place: navigation start to load
// event, and to the document's first byte, in milliseconds; and the most
// subresources one of its documents loaded.
type navSamples struct {
	load, firstByte []float64
	resources       int
	hops            map[string][]float64
	// cpu is CPU ms per load by process (the pageload group).
	cpu map[string][]float64
}

// addParts adds where the last navigation of the page in ctx spent its
// time; a page that cannot say (gone, or navigated on) adds nothing.
func (s *navSamples) addParts(ctx context.Context) {
	p, err := chromedp.Run(ctx, chromedp.Evaluate[navParts](navPartsJS))
	if err != nil {
		return
	}
	s.firstByte = append(s.firstByte, p.FirstByte)
	s.resources = max(s.resources, p.Resources)
	if s.hops == nil {
		s.hops = map[string][]float64{}
	}
	for k, vs := range p.Hops {
		s.hops[k] = append(s.hops[k], vs...)
	}
}

// hopNote is the medians of the per-request phases, in a stable order.
func (s navSamples) hopNote() string {
	keys := make([]string, 0, len(s.hops))
	for k := range s.hops {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %.1f; ", k, medianOf(s.hops[k]))
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// pollTarget evaluates expr in the target that find reaches (found again
// after its document was replaced) until it returns a positive number.
func pollTarget(t testing.TB, tg *devtools.Targets, find func() (context.Context, error), expr string) float64 {
	deadline := time.Now().Add(browserWait)
	last := ""
	for time.Now().Before(deadline) {
		ctx, err := find()
		if err != nil {
			last = err.Error()
		}
		if err == nil {
			if v, err := chromedp.Run(ctx, chromedp.Evaluate[float64](expr)); err == nil && v > 0 {
				return v
			} else if err != nil {
				tg.Forget(ctx)
			}
			last, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + ' | ' + JSON.stringify(performance.getEntriesByType('navigation')[0]?.toJSON()) + ' | ' + (document.body?.innerText || '').slice(0, 200)`))
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("navigation: not loaded within %s (%s); page: %s", browserWait, strings.TrimSpace(expr), last)
	return 0
}
