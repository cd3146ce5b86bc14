package integration

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/web"
)

// TestUISessionToolbarAndEndedPage is issue 23's session window in
// Chromium at 1280 and 390 px: the toolbar names the device and its
// customer (never only the device ID) and keeps the time left and End
// session on the screen at a phone's width; the end panel, and the device
// origin's end page, are no dead end: they lead to the session's job,
// whose one button opens a new session on the same device (busy while it
// waits, deaf to a second click). Someone with no site first meets empty
// states that say what to do. Every screen is
// screenshotted, checked by axe-core (zero serious or critical) and for
// raw error text.
func TestUISessionToolbarAndEndedPage(t *testing.T) {
	const pw = "ui-session-password-1"
	axe := axeSource(t)
	testenv.Require(t, "the web foundation in the build (run make web)", len(web.MissingAssets()) == 0)
	s := stack.Start(t, stack.Options{Users: []stack.User{
		{Name: "conf", Password: pw, Roles: []string{"configurer"}},
		{Name: "tech", Password: pw, Roles: []string{"user"}},
		{Name: "newbie", Password: pw},
	}})
	apiCall(t, s, apiLogin(t, s, "conf", pw), http.MethodPatch, "/v1/devices/"+stack.DeviceID, &proto.DeviceUpdate{Enabled: ptrTo(true)}, nil)

	ctx := brBrowser(t)
	art := testenv.ArtifactsDir(t)
	defer func() {
		if t.Failed() {
			brShot(t, ctx, art, "failure")
		}
	}()
	check := func(name string) {
		t.Helper()
		brEval[bool](t, ctx, `document.fonts.ready.then(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(true)))))`)
		noRawErrors(t, ctx, name)
		noHorizontalScroll(t, ctx, name)
		// The device's frame is another origin, the device's content: not
		// Porthole's to check.
		for _, v := range axeViolationsWith(t, ctx, axe, name, `iframes: false`) {
			msg := fmt.Sprintf("%s: axe %s (%s): %s\n\t%s", name, v.ID, v.Impact, v.Help, strings.Join(v.Nodes, "\n\t"))
			if v.Impact == "serious" || v.Impact == "critical" {
				t.Error(msg)
			} else {
				t.Log(msg)
			}
		}
		brShot(t, ctx, art, name)
	}

	// Someone with no site yet: the empty states say what to do next.
	uiLogin(t, ctx, s, "newbie", pw)
	brWait(t, ctx, "the empty device list", `!document.querySelector('#empty').hidden`)
	if got := brEval[string](t, ctx, `document.querySelector('#empty').innerText`); !strings.Contains(got, "No devices yet") || !strings.Contains(got, "ask yours for access to a site") {
		t.Errorf("the empty device list says %q", got)
	}
	check("devices-empty-390")
	brEval[bool](t, ctx, `(location.hash = '#jobs', true)`)
	brWait(t, ctx, "the empty job list", `!document.querySelector('#jobs-empty').hidden`)
	if got := brEval[string](t, ctx, `document.querySelector('#jobs-empty').innerText`); !strings.Contains(got, "No jobs yet") || !strings.Contains(got, "Open one under Devices") {
		t.Errorf("the empty job list says %q", got)
	}
	brEval[bool](t, ctx, `(document.querySelector('#signout').click(), true)`)
	brWait(t, ctx, "signed out", `!document.querySelector('#signin').hidden`)

	// Open the printer from the app, in this tab.
	uiLogin(t, ctx, s, "tech", pw)
	open := fmt.Sprintf(`#sites li[data-device=%q] button.open`, stack.DeviceID)
	brWait(t, ctx, "an enabled Open", fmt.Sprintf(`document.querySelector(%q) && !document.querySelector(%q).disabled`, open, open))
	brEval[bool](t, ctx, `(document.querySelector('#same-tab').checked = true, true)`)
	brClick(t, ctx, open)
	ready := `location.hostname.startsWith('shell-') && document.querySelector('iframe.device') && document.querySelector('.toolbar .timer').textContent !== '' && document.querySelector('.toolbar .path').dataset.kind`
	brWait(t, ctx, "the session window", ready)
	shellOrigin := brEval[string](t, ctx, `location.origin`)
	session := strings.TrimPrefix(strings.SplitN(brEval[string](t, ctx, `location.hostname`), ".", 2)[0], "shell-")
	deviceOrigin := strings.Replace(shellOrigin, "://shell-", "://", 1)
	tab := newTab(t, ctx, &proto.SessionInfo{ShellOrigin: shellOrigin, DeviceOrigin: deviceOrigin})
	tab.waitDev(t, "the device's page", `d.readyState === 'complete' && d.body.innerText.includes('Porthole LaserJet 4000')`)

	for _, w := range screenWidths {
		setViewport(t, ctx, w.w, w.h)
		name := brEval[string](t, ctx, `document.querySelector('.toolbar .device').textContent`)
		site := brEval[string](t, ctx, `document.querySelector('.toolbar .site').textContent`)
		if name != "Demo printer" || site != "Lab" {
			t.Errorf("toolbar at %s px names %q at %q, want the device's and the site's names", w.name, name, site)
		}
		if title := brEval[string](t, ctx, `document.title`); title != "Demo printer · Lab — Porthole" {
			t.Errorf("window title %q", title)
		}
		for _, c := range []struct{ sel, what string }{
			{".toolbar .device", "the device's name"},
			{".toolbar .site", "the site's name"},
			{".toolbar .timer", "the time left"},
			{".toolbar .end", "End session"},
		} {
			onScreen(t, ctx, c.sel, c.what+" at "+w.name+" px")
		}
		check("session-" + w.name)
	}

	// End the session at a phone's width: the panel says so and offers a
	// new session on the same device.
	brClick(t, ctx, ".toolbar .end")
	brWait(t, ctx, "the end panel", `document.querySelector('.ended a.again')`)
	again := s.AppURL + "/#jobs/" + session
	if got := brEval[string](t, ctx, `document.querySelector('.ended a.again').textContent + ' → ' + document.querySelector('.ended a.again').href`); got != "Open a new session on Demo printer → "+again {
		t.Errorf("end panel offers %q", got)
	}
	for _, w := range screenWidths {
		setViewport(t, ctx, w.w, w.h)
		onScreen(t, ctx, ".ended a.again", "Open a new session at "+w.name+" px")
		check("ended-" + w.name)
	}

	// A device window (a popped-out tab, a bookmark) at the end page: the
	// same way on.
	if err := chromedp.Do(ctx, chromedp.Navigate(deviceOrigin+"/__t/ended")); err != nil {
		t.Fatal(err)
	}
	brWait(t, ctx, "the device origin's end page", `document.querySelector('#again')`)
	if got := brEval[string](t, ctx, `document.querySelector('#again').href`); got != again {
		t.Errorf("the device origin's end page leads to %q, want %q", got, again)
	}
	for _, w := range screenWidths {
		setViewport(t, ctx, w.w, w.h)
		check("ended-page-" + w.name)
	}

	// The job it leads to opens a new session on the printer in one click.
	if err := chromedp.Do(ctx, chromedp.Navigate(again)); err != nil {
		t.Fatal(err)
	}
	brWait(t, ctx, "the job with its Open again", `!document.querySelector('#job-again-box')?.hidden && document.querySelector('#job-again').textContent !== ''`)
	if got := brEval[string](t, ctx, `document.querySelector('#job-again').textContent`); got != "Open a new session on Demo printer" {
		t.Errorf("the job offers %q", got)
	}
	onScreen(t, ctx, "#job-again", "Open a new session on the job page")
	check("job-again-390")
	brEval[bool](t, ctx, `(document.querySelector('#same-tab').checked = true, true)`)
	// While it waits the button says so and takes no second click: the
	// session request is held for a moment to see it.
	brEval[bool](t, ctx, `(() => { const f = window.fetch; window.__posts = 0; window.fetch = (u, o) => {
		if (String(u).endsWith('/v1/sessions') && o?.method === 'POST') { window.__posts++; return new Promise((r) => setTimeout(r, 600)).then(() => f(u, o)); }
		return f(u, o); }; return true; })()`)
	brClick(t, ctx, "#job-again")
	if got := brEval[string](t, ctx, `document.querySelector('#job-again').getAttribute('aria-busy') + ' ' + document.querySelector('#job-again').disabled`); got != "true true" {
		t.Errorf("the waiting button: aria-busy disabled = %q", got)
	}
	brClick(t, ctx, "#job-again")
	if n := brEval[int](t, ctx, `window.__posts`); n != 1 {
		t.Errorf("two clicks sent %d session requests", n)
	}
	brWait(t, ctx, "a new session window", ready+fmt.Sprintf(` && !location.hostname.startsWith(%q)`, "shell-"+session+"."))
	if got := brEval[string](t, ctx, `document.querySelector('.toolbar .device').textContent`); got != "Demo printer" {
		t.Errorf("the new session's toolbar names %q", got)
	}
	brClick(t, ctx, ".toolbar .end")
	brWait(t, ctx, "the second session ended", `document.querySelector('.ended')`)
}

// axeViolationsWith is axeViolations with more options for axe.run.
func axeViolationsWith(t *testing.T, ctx context.Context, axe, screen, opts string) []axeViolation {
	t.Helper()
	if !brEval[bool](t, ctx, `typeof axe !== 'undefined'`) {
		brEval[bool](t, ctx, axe+";\ntrue")
	}
	return axeRun(t, ctx, screen, opts)
}

// onScreen fails unless sel is rendered, at least 16 px wide, entirely
// inside the viewport, and what a tap at its centre reaches.
func onScreen(t *testing.T, ctx context.Context, sel, what string) {
	t.Helper()
	got := brEval[string](t, ctx, fmt.Sprintf(`(() => {
		const b = document.querySelector(%q);
		if (!b || !b.checkVisibility()) return 'not rendered';
		const r = b.getBoundingClientRect(), vw = document.documentElement.clientWidth, vh = document.documentElement.clientHeight;
		if (r.width < 16 || r.height < 10) return 'too small: ' + r.width + '×' + r.height;
		if (r.left < 0 || r.right > vw + 0.5 || r.top < 0 || r.bottom > vh) return 'outside the screen: ' + r.left + '..' + r.right + ' of ' + vw;
		if (b.scrollWidth > b.clientWidth + 1 && getComputedStyle(b).textOverflow === 'ellipsis' && r.width < 40) return 'cut to ' + r.width + ' px';
		const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
		if (hit !== b && !b.contains(hit)) return 'covered by ' + (hit ? hit.outerHTML.slice(0, 80) : 'nothing');
		return '';
	})()`, sel))
	if got != "" {
		t.Errorf("%s: %s", what, got)
	}
}
