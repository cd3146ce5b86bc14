package integration

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/integration/demodevice"
	"github.com/porthole-dev/porthole/integration/devtools"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
)

// visibleJS is true when the page shows its heading: nothing hides the
// document, the body or the heading.
const visibleJS = `(() => {
	const h = document.getElementById('title');
	const cs = (e) => getComputedStyle(e);
	return !!h && h.getBoundingClientRect().height > 0 &&
		cs(document.documentElement).display !== 'none' && cs(document.body).display !== 'none' &&
		cs(document.body).visibility !== 'hidden';
})()`

// TestFrameBustingPages shows every variant of the anti-clickjacking idiom
// (demodevice.BustVariants) the way a technician meets it: in the session
// window's frame the page hides itself or leaves (and the toolbar says
// "This page only works in its own tab"); after "Open in its own tab" it is
// alone in its tab and renders, its form posts through the session (to a
// device that checks Origin), its link leads to the next variant, the bar
// shows the session — and the session window still has its one peer
// connection, however many tabs and navigations.
func TestFrameBustingPages(t *testing.T) {
	_, err := os.Stat(chromiumPath)
	testenv.Require(t, "Chromium at "+chromiumPath, err == nil)
	s := stack.Start(t, stack.Options{DeviceArgs: []string{"--strict-origin"}})
	ctx := brBrowser(t)
	if _, err := chromedp.Run(ctx, addInitScript(pcSpy)); err != nil {
		t.Fatal(err)
	}
	info := brSession(t, s)
	tab := brOpen(t, ctx, info, "/")
	art := testenv.ArtifactsDir(t)
	tg := devtools.New(ctx)
	defer tg.Close()
	notice := `document.querySelector('.toolbar .notice').textContent`

	for i, v := range demodevice.BustVariants {
		next := demodevice.BustVariants[(i+1)%len(demodevice.BustVariants)]
		t.Run(v, func(t *testing.T) {
			brEval[bool](t, ctx, `(`+notice+` = '', true)`)
			tab.navigate(t, "/bust/"+v, `d.getElementById('title') || d.getElementById('refusal')`)
			// In the frame: the window stays the session window; the page
			// is blank, or refuses.
			if top := brEval[string](t, ctx, `location.origin`); top != info.ShellOrigin {
				t.Fatalf("the page moved the session window to %s", top)
			}
			framed := brDev[string](t, tab, `document.getElementById('alone')?.textContent || document.getElementById('refusal')?.textContent || ''`)
			if v != "caught" {
				brWait(t, ctx, "the toolbar's notice", notice+`.includes('only works in its own tab') && document.querySelector('.toolbar .popout').dataset.attention === '1'`)
			}
			// A page that hid itself gets the explanation over the blank frame.
			if hides := v != "caught" && v != "window-top"; hides {
				brWait(t, ctx, "the explanation over the frame", `document.querySelector('.stage .hidden-page button')`)
			}
			brShot(t, ctx, art, "bust-"+v+"-framed")

			// Its own tab: alone, and shown.
			brClick(t, ctx, ".toolbar .popout")
			pop := brWaitIn(t, tg, "page", devtools.Prefix(info.DeviceOrigin+"/bust/"+v), "the page in its own tab",
				`document.readyState === 'complete' && document.getElementById('alone')?.textContent === 'alone in its tab' && `+visibleJS)
			brShot(t, pop, art, "bust-"+v+"-tab")
			// It works: the form posts through the session, and the device,
			// which checks Origin, takes it.
			note := "note-" + v
			if _, err := chromedp.Run(pop, chromedp.Evaluate[bool](fmt.Sprintf(`(document.getElementById('note').value = %q, document.getElementById('save').click(), true)`, note))); err != nil {
				t.Fatal(err)
			}
			brWaitIn(t, tg, "page", devtools.Prefix(info.DeviceOrigin+"/bust/"+v+"?saved="), "the saved note",
				fmt.Sprintf(`document.getElementById('saved')?.textContent === %q && `+visibleJS, note))
			// Its link leads on, in the same tab, still in the session.
			if _, err := chromedp.Run(pop, chromedp.Evaluate[bool](`(document.getElementById('next').click(), true)`)); err != nil {
				t.Fatal(err)
			}
			pop = brWaitIn(t, tg, "page", devtools.Prefix(info.DeviceOrigin+"/bust/"+next), "the next variant in the tab",
				`document.readyState === 'complete' && document.getElementById('alone')?.textContent === 'alone in its tab' && `+visibleJS)
			// The bar shows the session, fed by the session window.
			brWaitIn(t, tg, "iframe", devtools.Prefix(info.ShellOrigin+"/__t/bar.html"), "the bar's time and device",
				`/^\d+:\d\d$/.test(document.getElementById('timer').textContent) && document.getElementById('device').textContent !== '' && !document.getElementById('end').hidden`)
			// One peer connection, whatever the tabs did.
			if n := brEval[int](t, ctx, `window.__portholePCs.length`); n != 1 {
				t.Errorf("the session window has %d peer connections, want 1", n)
			}
			t.Logf("%s: in the frame %q; in its own tab: rendered, form saved, next variant %s loaded", v, framed, next)
			_, _ = chromedp.Run(pop, chromedp.Evaluate[bool](`(window.close(), true)`))
			tg.Forget(pop)
		})
	}
	if n := brEval[int](t, ctx, `window.__portholePCs.length`); n != 1 {
		t.Errorf("after %d frame-busting pages the session window has %d peer connections, want 1", len(demodevice.BustVariants), n)
	}
	if strings.Contains(brEval[string](t, ctx, `document.body.innerText`), "Session ended") {
		t.Error("the session ended")
	}
}
