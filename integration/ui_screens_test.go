package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/agent/technician"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/web"
)

// The app's screens as people see them, in Chromium at a desktop width
// (1280 px) and a phone's (390 px): each main screen is screenshotted into
// the test's artifacts, checked by axe-core (from npm, pinned in
// web/package-lock.json) for WCAG 2.1 A/AA with zero serious or critical
// violations, and checked for the layout rules of issue 23: Open visible
// and inside the page at 390 px, no page wider than the screen, no raw
// error text (codes such as bad_message, Go error strings) in what the
// page shows, feedback beside the control that caused it and gone after
// navigating.

// screenWidths are the widths every screen is checked at.
var screenWidths = []struct {
	name string
	w, h int64
}{{"1280", 1280, 800}, {"390", 390, 844}}

// rawErrorText matches what must never reach the page's visible text:
// stable error codes (lower_snake words), Go error strings, and what a
// script shows when it renders a value it should not.
var rawErrorText = regexp.MustCompile(`\b[a-z]+_[a-z_]+\b|dial tcp|connection refused|context deadline|i/o timeout|json: |\bEOF\b|\(bad|undefined|NaN|\[object Object\]`)

// axeSource reads axe-core from web/node_modules (`make web` installs it).
func axeSource(t *testing.T) string {
	t.Helper()
	p := filepath.Join(testenv.RepoRoot(t), "web", "node_modules", "axe-core", "axe.min.js")
	b, err := os.ReadFile(p)
	testenv.Require(t, "axe-core at web/node_modules/axe-core (run make web)", err == nil)
	return string(b)
}

type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// axeCheck runs axe-core on the page (injected once per document; the
// DevTools protocol is not subject to the page's CSP) and fails the test
// on serious or critical violations; milder ones are logged.
func axeCheck(t *testing.T, ctx context.Context, axe, screen string) {
	t.Helper()
	for _, v := range axeViolations(t, ctx, axe, screen) {
		msg := fmt.Sprintf("%s: axe %s (%s): %s\n\t%s", screen, v.ID, v.Impact, v.Help, strings.Join(v.Nodes, "\n\t"))
		if v.Impact == "serious" || v.Impact == "critical" {
			t.Error(msg)
		} else {
			t.Log(msg)
		}
	}
}

// axeViolations runs axe-core on the page and returns what it found.
func axeViolations(t *testing.T, ctx context.Context, axe, screen string) []axeViolation {
	t.Helper()
	if !brEval[bool](t, ctx, `typeof axe !== 'undefined'`) {
		brEval[bool](t, ctx, axe+";\ntrue")
	}
	return axeRun(t, ctx, screen, "")
}

// axeRun runs the axe-core already on the page with WCAG 2.1 A/AA rules
// and extra options opts ("" for none; "iframes: false", …).
func axeRun(t *testing.T, ctx context.Context, screen, opts string) []axeViolation {
	t.Helper()
	if opts != "" {
		opts = ", " + opts
	}
	out := brEval[string](t, ctx, `axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}, resultTypes: ['violations']`+opts+`})
		.then((r) => JSON.stringify(r.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
			nodes: v.nodes.slice(0, 4).map((n) => n.target.join(' ') + ' — ' + (n.failureSummary || '').replace(/\s+/g, ' '))}))))`)
	var vs []axeViolation
	if err := json.Unmarshal([]byte(out), &vs); err != nil {
		t.Fatalf("%s: axe answer %q: %v", screen, out, err)
	}
	return vs
}

// noRawErrors fails when the page's visible text holds raw error text.
// innerText leaves out what is not rendered, such as a closed details
// toggle, where the agent's own finding is kept on purpose.
func noRawErrors(t *testing.T, ctx context.Context, screen string) {
	t.Helper()
	text := brEval[string](t, ctx, `document.body.innerText`)
	if m := rawErrorText.FindString(text); m != "" {
		i := strings.Index(text, m)
		t.Errorf("%s: raw error text %q on the page: …%s…", screen, m, text[max(0, i-80):min(len(text), i+80)])
	}
}

// noHorizontalScroll fails when the page is wider than the viewport (the
// tables scroll inside their own boxes instead).
func noHorizontalScroll(t *testing.T, ctx context.Context, screen string) {
	t.Helper()
	if w := brEval[string](t, ctx, `document.documentElement.scrollWidth > document.documentElement.clientWidth ? document.documentElement.scrollWidth + ' > ' + document.documentElement.clientWidth : ''`); w != "" {
		t.Errorf("%s: the page scrolls sideways: %s px", screen, w)
	}
}

func setViewport(t *testing.T, ctx context.Context, w, h int64) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(w, h)); err != nil {
		t.Fatal(err)
	}
}

// uiLogin signs name in through the form and waits for the app.
func uiLogin(t *testing.T, ctx context.Context, s *stack.Stack, name, pw string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(s.AppURL+"/")); err != nil {
		t.Fatal(err)
	}
	brWait(t, ctx, "the sign-in form", `document.querySelector('#login-form') && !document.querySelector('#signin').hidden`)
	brEval[bool](t, ctx, fmt.Sprintf(`(document.querySelector('#login-username').value = %q, document.querySelector('#login-password').value = %q, document.querySelector('#login-form').requestSubmit(), true)`, name, pw))
	brWait(t, ctx, "signed in as "+name, `!document.querySelector('#nav').hidden`)
}

// TestUIScreensResponsiveAndAccessible walks the main screens as a
// technician and an admin at both widths.
func TestUIScreensResponsiveAndAccessible(t *testing.T) {
	const pw = "ui-screens-password-1"
	axe := axeSource(t)
	testenv.Require(t, "the web foundation in the build (run make web)", len(web.MissingAssets()) == 0)
	dead := testenv.FreePort(t)
	s := stack.Start(t, stack.Options{
		Users: []stack.User{
			{Name: "boss", Password: pw, Admin: true},
			{Name: "conf", Password: pw, Roles: []string{"configurer"}},
			{Name: "tech", Password: pw, Roles: []string{"user"}},
		},
		ExtraDevices: []map[string]any{{
			"id": "scanner-1", "name": "Front desk scanner", "scheme": "http", "address": "127.0.0.1", "httpPort": dead,
		}},
	})
	// The printer is enabled; the technician opens a session over the API
	// (a job the admin sees live, then terminates from the Jobs screen).
	conf := apiLogin(t, s, "conf", pw)
	apiCall(t, s, conf, http.MethodPatch, "/v1/devices/"+stack.DeviceID, &proto.DeviceUpdate{Enabled: ptrTo(true)}, nil)
	// The technician stays connected (the CLI's peer), so the job stays
	// live however long the screens below take: a session nobody joins
	// ends with client_lost after 30 s, which a loaded CI machine reached
	// before the Terminate step.
	octx, ocancel := context.WithTimeout(context.Background(), 30*time.Second)
	sess, err := technician.Open(octx, technician.Config{Server: s.SignalingURL, Token: s.TechToken, Device: stack.DeviceID, LoopbackOnly: true})
	ocancel()
	if err != nil {
		t.Fatalf("technician opens the session: %v", err)
	}
	defer sess.Close()
	info := sess.Info

	ctx := brBrowser(t)
	art := testenv.ArtifactsDir(t)
	defer func() {
		if t.Failed() {
			brShot(t, ctx, art, "failure")
		}
	}()
	js := func(expr string) { brEval[bool](t, ctx, "("+expr+", true)") }
	// screen checks the current screen at one width and keeps its picture.
	screen := func(name, width string) {
		t.Helper()
		full := name + "-" + width
		// Let pending renders and fonts settle before measuring.
		brEval[bool](t, ctx, `document.fonts.ready.then(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(true)))))`)
		noRawErrors(t, ctx, full)
		noHorizontalScroll(t, ctx, full)
		axeCheck(t, ctx, axe, full)
		brShot(t, ctx, art, full)
	}
	at := func(hash, ready string) {
		t.Helper()
		js(fmt.Sprintf(`location.hash = %q`, hash))
		brWait(t, ctx, hash, ready)
	}

	// Sign in, at both widths.
	if err := chromedp.Do(ctx, chromedp.Navigate(s.AppURL+"/")); err != nil {
		t.Fatal(err)
	}
	brWait(t, ctx, "the sign-in form", `!document.querySelector('#signin').hidden`)
	for _, w := range screenWidths {
		setViewport(t, ctx, w.w, w.h)
		screen("signin", w.name)
	}
	// The checker itself finds what it should: an unlabelled field and
	// grey-on-white text, added for a moment.
	brEval[bool](t, ctx, `(() => { const i = document.createElement('input'); i.id = 'axe-probe'; document.querySelector('#login-form').append(i);
		const p = document.createElement('p'); p.id = 'axe-probe-text'; p.textContent = 'faint'; p.style.color = '#bbbbbb'; document.querySelector('#login-form').append(p); return true; })()`)
	found := map[string]string{}
	for _, v := range axeViolations(t, ctx, axe, "probe") {
		found[v.ID] = v.Impact
	}
	if found["label"] != "critical" || found["color-contrast"] != "serious" {
		t.Errorf("axe missed the planted problems: %v", found)
	}
	brEval[bool](t, ctx, `(document.querySelector('#axe-probe').remove(), document.querySelector('#axe-probe-text').remove(), true)`)

	// A wrong password: the reason in words, beside the form's button.
	brEval[bool](t, ctx, `(document.querySelector('#login-username').value = 'tech', document.querySelector('#login-password').value = 'wrong-password-1', document.querySelector('#login-form').requestSubmit(), true)`)
	brWait(t, ctx, "the refusal", `document.querySelector('[data-note="login-form"]').textContent !== ''`)
	if got := brEval[string](t, ctx, `document.querySelector('[data-note="login-form"]').textContent`); got != "Could not sign in. The user name or password is wrong." {
		t.Errorf("wrong password reads %q", got)
	}
	besideControl(t, ctx, "#login-submit", `[data-note="login-form"]`)
	noRawErrors(t, ctx, "signin-refused")

	// The technician: devices (Open reachable at 390 px) and the account.
	uiLogin(t, ctx, s, "tech", pw)
	open := fmt.Sprintf(`#sites li[data-device=%q] button.open`, stack.DeviceID)
	scanner := `#sites li[data-device="scanner-1"]`
	for _, w := range screenWidths {
		setViewport(t, ctx, w.w, w.h)
		at("#devices", fmt.Sprintf(`document.querySelector(%q) && !document.querySelector(%q).disabled && document.querySelector('%s .health')?.dataset.health === 'bad'`, open, open, scanner))
		visibleInPage(t, ctx, open, "Open at "+w.name+" px")
		// The unreachable scanner: in words, no green, Open disabled with
		// the reason written out (not only in a tooltip).
		health := brEval[string](t, ctx, fmt.Sprintf(`document.querySelector('%s .health').textContent`, scanner))
		if want := fmt.Sprintf("Unreachable — no answer on port %d", dead); health != want {
			t.Errorf("scanner at %s px reads %q, want %q", w.name, health, want)
		}
		if n := brEval[int](t, ctx, fmt.Sprintf(`document.querySelectorAll('%s .status-ok').length`, scanner)); n != 0 {
			t.Errorf("the unreachable scanner shows %d green status marks", n)
		}
		why := brEval[string](t, ctx, fmt.Sprintf(`(() => { const b = document.querySelector('%s button.open'); const w = document.getElementById(b.getAttribute('aria-describedby')); return b.disabled && w && w.checkVisibility() ? w.textContent : ''; })()`, scanner))
		if why != "Remote access is off; a configurer of the site can turn it on." {
			t.Errorf("disabled Open at %s px explains %q", w.name, why)
		}
		// The agent's own finding is one click away, not on the page.
		raw := brEval[string](t, ctx, fmt.Sprintf(`document.querySelector('%s .raw-detail').textContent`, scanner))
		if !strings.Contains(raw, "connect") && !strings.Contains(raw, "refused") && !strings.Contains(raw, "dial") {
			t.Errorf("scanner details %q, want the agent's finding", raw)
		}
		screen("devices", w.name)
		if w.name == "1280" {
			keyboardReaches(t, ctx, open)
		}
		at("#account", `!document.querySelector('#account').hidden && document.querySelector('#totp-status').textContent !== ''`)
		screen("account", w.name)
	}
	setViewport(t, ctx, 1280, 800)
	js(`document.querySelector('#signout').click()`)
	brWait(t, ctx, "signed out", `!document.querySelector('#signin').hidden`)

	// The admin: jobs with names (never user IDs), one job, each admin
	// section at its own address.
	uiLogin(t, ctx, s, "boss", pw)
	row := fmt.Sprintf(`#job-rows tr[data-job=%q]`, info.Session)
	for _, w := range screenWidths {
		setViewport(t, ctx, w.w, w.h)
		at("#jobs", fmt.Sprintf(`document.querySelector(%q)`, row))
		text := brEval[string](t, ctx, fmt.Sprintf(`document.querySelector(%q).innerText`, row))
		for _, want := range []string{"Open Device Webpage", "tech", "Demo printer", "Lab", "Live"} {
			if !strings.Contains(text, want) {
				t.Errorf("job row at %s px %q lacks %q", w.name, text, want)
			}
		}
		screen("jobs", w.name)
		at("#jobs/"+info.Session, `!document.querySelector('#job-detail').hidden && document.querySelector('#job-title').textContent !== ''`)
		screen("job", w.name)
		for _, sec := range []struct{ hash, ready string }{
			{"#admin/users", `document.querySelector('#user-rows tr[data-user="tech"]')`},
			{"#admin/sites", `document.querySelector('#site-rows tr[data-site="lab"]')`},
			{"#admin/agents", fmt.Sprintf(`document.querySelector('#agent-rows tr[data-agent=%q]')`, stack.AgentID)},
			{"#admin/audit", `document.querySelector('#audit-rows tr')`},
		} {
			at(sec.hash, `!document.querySelector('#admin-`+strings.TrimPrefix(sec.hash, "#admin/")+`').hidden && `+sec.ready)
			screen("admin-"+strings.TrimPrefix(sec.hash, "#admin/"), w.name)
		}
	}
	setViewport(t, ctx, 1280, 800)

	// Terminate the live job from its page: the job then names who ended it.
	at("#jobs/"+info.Session, `!document.querySelector('#job-terminate').hidden`)
	js(`window.confirm = () => true`)
	js(`document.querySelector('#job-terminate').click()`)
	brWait(t, ctx, "the job ended by the admin", fmt.Sprintf(`document.querySelector(%q)?.querySelector('.reason').dataset.reason === 'admin'`, row))
	brWait(t, ctx, "the job's summary", `document.querySelector('#job-summary').textContent.includes('(boss)')`)
	if got := brEval[string](t, ctx, `document.querySelector('[data-note="job-detail"]').textContent`); got != "Session terminated." {
		t.Errorf("terminate feedback %q", got)
	}
	// Beside the job's row of actions (Terminate itself is gone: the job is over).
	besideControl(t, ctx, "#job-detail .ph-actions", `[data-note="job-detail"]`)

	// A duplicate site: the error in words beside Create site; another
	// section clears it, and the back button returns to Sites without it.
	at("#admin/sites", `document.querySelector('#site-rows tr[data-site="lab"]')`)
	js(`document.querySelector('#site-name').value = 'Lab'`)
	js(`document.querySelector('#site-form').requestSubmit()`)
	note := `document.querySelector('[data-note="site-form"]')`
	brWait(t, ctx, "the refusal beside the form", note+`.textContent !== ''`)
	if got := brEval[string](t, ctx, note+`.textContent`); got != "Could not create the site. A site with this name exists already; choose another name." {
		t.Errorf("duplicate site reads %q", got)
	}
	if kind := brEval[string](t, ctx, note+`.dataset.kind`); kind != "error" {
		t.Errorf("duplicate site feedback kind %q", kind)
	}
	besideControl(t, ctx, "#site-submit", `[data-note="site-form"]`)
	noRawErrors(t, ctx, "site-refused")
	brShot(t, ctx, art, "site-refused-1280")
	at("#admin/users", `document.querySelector('#user-rows tr[data-user="tech"]')`)
	js(`history.back()`)
	brWait(t, ctx, "back at Sites", `location.hash === '#admin/sites' && !document.querySelector('#admin-sites').hidden`)
	if got := brEval[string](t, ctx, note+`.hidden + ' ' + `+note+`.textContent`); got != "true " {
		t.Errorf("the refusal follows the user: %q", got)
	}
	if n := brEval[int](t, ctx, `[...document.querySelectorAll('.feedback')].filter((e) => e.checkVisibility()).length`); n != 0 {
		t.Errorf("%d feedback messages still shown after navigating", n)
	}
}

// keyboardReaches: Tab from the top of the page reaches sel with a visible
// focus ring, and Enter on a navigation link changes the view.
func keyboardReaches(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	brEval[bool](t, ctx, `(document.activeElement?.blur(), window.scrollTo(0, 0), true)`)
	focused := func(s string) bool {
		return brEval[bool](t, ctx, fmt.Sprintf(`document.activeElement === document.querySelector(%q)`, s))
	}
	tab := func(to, what string) {
		t.Helper()
		for range 30 {
			if err := chromedp.Do(ctx, chromedp.KeyEvent("\t")); err != nil {
				t.Fatal(err)
			}
			if focused(to) {
				ring := brEval[string](t, ctx, `(() => { const s = getComputedStyle(document.activeElement); return s.outlineStyle + ' ' + s.outlineWidth; })()`)
				if !strings.HasPrefix(ring, "solid ") || ring == "solid 0px" {
					t.Errorf("%s has no visible focus ring: outline %q", what, ring)
				}
				return
			}
		}
		t.Errorf("30 presses of Tab never reached %s", what)
	}
	tab(sel, "Open")
	brEval[bool](t, ctx, `(document.activeElement?.blur(), window.scrollTo(0, 0), true)`)
	tab("#nav-jobs", "the Jobs link")
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\r")); err != nil {
		t.Fatal(err)
	}
	brWait(t, ctx, "Jobs by keyboard", `location.hash === '#jobs' && !document.querySelector('#jobs').hidden`)
	brEval[bool](t, ctx, `(history.back(), true)`)
	brWait(t, ctx, "back to Devices", `location.hash === '#devices' && !document.querySelector('#devices').hidden`)
}

// besideControl fails unless the feedback element is shown right below
// the control that caused it (within 160 px) and overlaps it horizontally.
func besideControl(t *testing.T, ctx context.Context, control, feedback string) {
	t.Helper()
	got := brEval[string](t, ctx, fmt.Sprintf(`(() => {
		const c = document.querySelector(%q).getBoundingClientRect(), f = document.querySelector(%q);
		if (!f || !f.checkVisibility()) return 'feedback not shown';
		const r = f.getBoundingClientRect();
		const gap = r.top - c.bottom;
		if (gap < -4 || gap > 160) return 'feedback ' + Math.round(gap) + ' px below the control';
		if (r.right < c.left || r.left > c.right) return 'feedback not under the control';
		return '';
	})()`, control, feedback))
	if got != "" {
		t.Errorf("%s → %s: %s", control, feedback, got)
	}
}

// visibleInPage fails unless sel is rendered inside the page's width, and
// is what a tap at its centre reaches once scrolled into view.
func visibleInPage(t *testing.T, ctx context.Context, sel, what string) {
	t.Helper()
	got := brEval[string](t, ctx, fmt.Sprintf(`(() => {
		const b = document.querySelector(%q);
		if (!b || !b.checkVisibility()) return 'not rendered';
		b.scrollIntoView({block: 'center'});
		const r = b.getBoundingClientRect(), vw = document.documentElement.clientWidth;
		if (r.width < 40 || r.height < 24) return 'too small: ' + r.width + '×' + r.height;
		if (r.left < 0 || r.right > vw) return 'outside the page: ' + r.left + '..' + r.right + ' of ' + vw;
		const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
		if (hit !== b && !b.contains(hit)) return 'covered by ' + (hit ? hit.outerHTML.slice(0, 80) : 'nothing');
		window.scrollTo(0, 0);
		return '';
	})()`, sel))
	if got != "" {
		t.Errorf("%s: %s", what, got)
	}
}

// TestUIBrandingWithoutRebuilding: the operator's brand file (the one in
// deploy/branding, as the README shows) gives the app its product name,
// logo and colours, still passing the accessibility check, with the app's
// CSP untouched; a brand file the app could not show well stops
// porthole-signaling at start with a sentence saying what to change.
func TestUIBrandingWithoutRebuilding(t *testing.T) {
	const pw = "ui-brand-password-1"
	axe := axeSource(t)
	root := testenv.RepoRoot(t)
	brand := filepath.Join(root, "deploy", "branding", "brand.json")

	// Refused at start: white text on a light orange does not read.
	bin := stack.Build(t)
	bad := filepath.Join(t.TempDir(), "brand.json")
	if err := os.WriteFile(bad, []byte(`{"name":"Acme","colors":{"primary":"#fdba74"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin["porthole-signaling"], "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--brand", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--brand: brand file") || !strings.Contains(string(out), "colors.primary: white text on #fdba74 has contrast 1.7:1; WCAG AA needs 4.5:1, so pick a darker shade") {
		t.Fatalf("a low-contrast brand: %v\n%s", err, out)
	}

	s := stack.Start(t, stack.Options{
		Users:         []stack.User{{Name: "tech", Password: pw, Roles: []string{"user"}}},
		SignalingArgs: []string{"--brand", brand},
	})
	ctx := brBrowser(t)
	art := testenv.ArtifactsDir(t)
	defer func() {
		if t.Failed() {
			brShot(t, ctx, art, "failure")
		}
	}()
	if err := chromedp.Do(ctx, chromedp.Navigate(s.AppURL+"/")); err != nil {
		t.Fatal(err)
	}
	brWait(t, ctx, "the brand's name and logo", `document.querySelector('#brand-name').textContent === 'Acme Remote Service' && document.querySelector('#brand-logo').complete && document.querySelector('#brand-logo').naturalWidth > 0`)
	brWait(t, ctx, "the branded title", `!document.querySelector('#signin').hidden && document.title === 'Sign in · Acme Remote Service'`)
	colors := brEval[string](t, ctx, `getComputedStyle(document.querySelector('#login-submit')).backgroundColor + ' ' + getComputedStyle(document.querySelector('.ph-top')).backgroundColor`)
	if colors != "rgb(194, 65, 12) rgb(28, 25, 23)" {
		t.Errorf("button and header colours %q, want the brand's #c2410c and #1c1917", colors)
	}
	axeCheck(t, ctx, axe, "signin-branded")
	uiLogin(t, ctx, s, "tech", pw)
	brWait(t, ctx, "the devices", fmt.Sprintf(`document.querySelector('#sites li[data-device=%q]')`, stack.DeviceID))
	for _, w := range screenWidths {
		setViewport(t, ctx, w.w, w.h)
		brEval[bool](t, ctx, `new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`)
		axeCheck(t, ctx, axe, "devices-branded-"+w.name)
		noHorizontalScroll(t, ctx, "devices-branded-"+w.name)
		brShot(t, ctx, art, "devices-branded-"+w.name)
	}
	// The branding arrived as files: the page's policy still allows no
	// inline style or script.
	resp, err := http.Get(s.AppURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "style-src 'self'") {
		t.Errorf("app CSP %q", csp)
	}
}
