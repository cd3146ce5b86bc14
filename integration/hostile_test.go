package integration

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/integration/devtools"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
)

type evilViolation struct {
	Directive string `json:"directive"`
	Blocked   string `json:"blocked"`
}

type evilAttempt struct {
	OK    bool   `json:"ok"`
	Value string `json:"value"`
	Error string `json:"error"`
}

type evilReport struct {
	Violations []evilViolation        `json:"violations"`
	Attempts   map[string]evilAttempt `json:"attempts"`
	Loot       []string               `json:"loot"`
}

// TestHostileDevicePage runs the demo device's hostile page
// (demodevice/hostile.go, static/evil.js) in the session window's frame,
// beside a second session in another tab, and checks that every route out
// of the device origin fails: to the session window and its storage, to
// its secrets (token, bind cookie, TURN credentials), to signaling, to the
// app, to the other session; that what the page can read holds no secret;
// and that the technician's session window is never replaced and keeps
// working. What SECURITY.md lists as residual (the relay frame is
// reachable; the page sees its own session's requests) is checked to be
// exactly that.
func TestHostileDevicePage(t *testing.T) {
	_, err := os.Stat(chromiumPath)
	testenv.Require(t, "Chromium at "+chromiumPath, err == nil)
	s := stack.Start(t, stack.Options{})
	art := testenv.ArtifactsDir(t)
	ctx := brBrowser(t)
	info := brSession(t, s)
	tab := brOpen(t, ctx, info, "/")
	// A second session in a second tab: the page of the first must not
	// reach it.
	info2 := brSession(t, s)
	ctx2, cancel2 := chromedp.NewContext(ctx)
	defer cancel2()
	tab2 := brOpen(t, ctx2, info2, "/")

	api := s.AppURL + "/v1/devices"
	path := fmt.Sprintf("/evil?api=%s&other=%s", urlQueryEscape(api), urlQueryEscape(info2.DeviceOrigin))
	brDev[bool](t, tab, fmt.Sprintf(`(w.location.href = %q, true)`, path))
	tab.waitDev(t, "the evil page's attempts", `w.location.pathname === '/evil' && w.__evil && w.__evil.done`)
	// What needs a user gesture: popups carrying what it read, the session
	// window's origin opened from the page. The technician clicks the
	// page's innocent-looking button: a real click, through the window.
	type rect struct{ X, Y float64 }
	button := brDev[rect](t, tab, `(() => { const r = d.getElementById('popups').getBoundingClientRect(); return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()`)
	frame := brEval[rect](t, ctx, `(() => { const r = document.querySelector('iframe.device').getBoundingClientRect(); return {x: r.x, y: r.y}; })()`)
	if _, err := chromedp.Run(ctx, chromedp.MouseClickXY(frame.X+button.X, frame.Y+button.Y)); err != nil {
		t.Fatal(err)
	}
	tab.waitDev(t, "the popups", `w.__evil.popupsDone`)
	raw := brDev[string](t, tab, `JSON.stringify(w.__evil, null, 2)`)
	var r evilReport
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(art, "evil.json"), []byte(raw), 0o644)
	brShot(t, ctx, art, "evil")
	blockedBy := func(directive, urlPrefix string) bool {
		return slices.ContainsFunc(r.Violations, func(v evilViolation) bool {
			return v.Directive == directive && strings.HasPrefix(v.Blocked, urlPrefix)
		})
	}
	failed := func(name string, why ...*regexp.Regexp) {
		t.Helper()
		a, ok := r.Attempts[name]
		if !ok {
			t.Errorf("%s: not attempted", name)
			return
		}
		if a.OK {
			t.Errorf("%s succeeded: %q", name, a.Value)
			return
		}
		for _, re := range why {
			if !re.MatchString(a.Error) {
				t.Errorf("%s failed with %q, want it to match %s", name, a.Error, re)
			}
		}
	}
	securityError := regexp.MustCompile(`SecurityError`)
	shellWS := strings.Replace(info.ShellOrigin, "http", "ws", 1)

	// The app, and the other session.
	failed("appAPI")
	if !blockedBy("connect-src", api) {
		t.Errorf("app API: no connect-src violation for %s", api)
	}
	for _, o := range []string{info.ShellOrigin, info.DeviceOrigin} {
		req, _ := http.NewRequest(http.MethodGet, s.SignalingURL+"/v1/devices", nil)
		req.Header.Set("Origin", o)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
				t.Errorf("the app API answers session origin %s with Access-Control-Allow-Origin %q", o, v)
			}
		}
	}
	failed("otherSessionFetch")
	if !blockedBy("connect-src", info2.DeviceOrigin) {
		t.Error("other session by fetch: no connect-src violation")
	}
	if a := r.Attempts["otherSessionFrame"]; a.OK && a.Value != "" || !blockedBy("frame-src", info2.DeviceOrigin) {
		t.Errorf("other session by frame: %+v; want nothing read and a frame-src violation", a)
	}
	if !blockedBy("form-action", "http://example.invalid") {
		t.Errorf("form post off the device: no form-action violation (%+v)", r.Attempts["formPost"])
	}
	for i, b := range []*brTab{tab, tab2} {
		if echo := brDev[string](t, b, `w.fetch('/echo').then((r) => r.text())`); strings.Contains(echo, "tossed") {
			t.Errorf("session %d: the device received the cookie tossed at the parent domain: %.400s", i+1, echo)
		}
	}

	// The session window: no navigation, no reading, no storage, no
	// opener, no document.domain.
	failed("topNavigation", securityError)
	failed("parentDocument", securityError)
	failed("topLocationRead", securityError)
	failed("parentSessionStorage", securityError)
	failed("parentLocalStorage", securityError)
	failed("opener")
	failed("documentDomain")
	if top := brEval[string](t, ctx, `location.origin`); top != info.ShellOrigin {
		t.Errorf("the session window was navigated to %s", top)
	}

	// The relay frame is reachable (residual), but speaking in its name is
	// not: no eval, no script of the device in it; and messages from the
	// page's own window are not the relay's.
	if a := r.Attempts["relayFrame"]; !a.OK || a.Value != "/__t/relay.html" {
		t.Errorf("relay frame: %+v (SECURITY.md says the page can reach it)", a)
	}
	failed("relayEval", regexp.MustCompile(`EvalError`))
	failed("relayFunction", regexp.MustCompile(`EvalError`))
	failed("relayScript")
	failed("forgeFromOwnWindow")
	if a := r.Attempts["forgeToWorker"]; !a.OK || a.Value != "still served: 200" {
		t.Errorf("after forged messages to the worker: %+v", a)
	}
	t.Logf("residual, as SECURITY.md says: %s", r.Attempts["interceptRelay"].Value)

	// The session window's channels and socket; Porthole's own paths.
	if a := r.Attempts["broadcastChannel"]; !a.OK || a.Value != "nothing" {
		t.Errorf("broadcast channel: %+v", a)
	}
	failed("registerWorker")
	failed("registerWorkerOwnScope")
	if a := r.Attempts["workerAfter"]; !a.OK || a.Value != info.DeviceOrigin+"/__t/sw.js" {
		t.Errorf("the origin's worker after the page tried its own: %+v", a)
	}
	failed("shellSocket")
	if !blockedBy("connect-src", shellWS) {
		t.Errorf("no connect-src violation for the session window's socket %s", shellWS)
	}
	failed("ownOriginSocket")
	failed("shellAuthJSON")
	if !blockedBy("connect-src", info.ShellOrigin) {
		t.Error("no connect-src violation for the session window's auth.json")
	}
	if a := r.Attempts["ownAuthJSON"]; !a.OK || !strings.HasPrefix(a.Value, "404") {
		t.Errorf("/__t/auth.json on the device origin: %+v", a)
	}
	if a := r.Attempts["ownBind"]; !a.OK || !strings.HasPrefix(a.Value, "404") {
		t.Errorf("/__t/bind on the device origin: %+v", a)
	}
	if a := r.Attempts["namedWindow"]; a.OK && a.Value != "about:blank" {
		t.Errorf("a named window: %+v", a)
	}
	// The session window's origin opened from the page: cut off (COOP),
	// and it never joins. It did open, with a copy of the tab's
	// sessionStorage (Chromium copies it into popups): without its half in
	// window.name the token is noise to it, so it signs in anew, and would
	// be refused as a second window.
	if a := r.Attempts["openShellWindow"]; a.OK {
		t.Errorf("the page reached the session window it opened: %+v", a)
	}
	tg0 := devtools.New(ctx)
	defer tg0.Close()
	brWaitIn(t, tg0, "page", devtools.Prefix(s.AppURL+"/?next=%2Foauth%2Fauthorize"), "the session window the page opened, signing in anew", `true`)

	// Nothing the page could read, or send out, holds a secret.
	all := strings.Join(r.Loot, "\n")
	for what, secret := range map[string]string{"the session token": info.Token, "the other session's token": info2.Token} {
		if strings.Contains(all, secret) || strings.Contains(raw, secret) {
			t.Errorf("the page read %s", what)
		}
	}
	for _, marker := range []string{"__Host-porthole-bind", "credential", "turn:", "porthole.session-token"} {
		if strings.Contains(all, marker) {
			t.Errorf("the page read something with %q", marker)
		}
	}
	if len(r.Loot) < 5 {
		t.Errorf("the page gathered only %d items: the test would not see a leak", len(r.Loot))
	}

	// The technician's window was never replaced, and still works.
	if brEval[bool](t, ctx, `!!document.querySelector('.ended')`) {
		t.Fatal("the session ended")
	}
	if got := brDev[string](t, tab, `w.fetch('/api/status').then((r) => r.status + '')`); got != "200" {
		t.Errorf("the session after the attack: %s", got)
	}
	if got := brDev[string](t, tab2, `w.fetch('/api/status').then((r) => r.status + '')`); got != "200" {
		t.Errorf("the second session after the attack: %s", got)
	}
	sig := s.Procs["porthole-signaling"].Tail(2000)
	if strings.Contains(sig, "replaced by a newer one") {
		t.Error("a client connection was replaced")
	}
	if n := strings.Count(sig, `msg="client joined" session=`+info.Session); n != 1 {
		t.Errorf("%d clients joined the attacked session, want the technician's 1", n)
	}

	// The same page in its own tab: no opener, and the session window's
	// origin, opened from there, is cut off from it (COOP).
	brClick(t, ctx, ".toolbar .popout")
	tg := devtools.New(ctx)
	defer tg.Close()
	pop := brWaitIn(t, tg, "page", devtools.Prefix(info.DeviceOrigin+"/evil"), "the hostile page in its own tab", `window.__evil && window.__evil.done`)
	type xy struct{ X, Y float64 }
	b := brEval[xy](t, pop, `(() => { const r = document.getElementById('popups').getBoundingClientRect(); return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()`)
	if _, err := chromedp.Run(pop, chromedp.MouseClickXY(b.X, b.Y)); err != nil {
		t.Fatal(err)
	}
	brWaitIn(t, tg, "page", devtools.Prefix(info.DeviceOrigin+"/evil"), "the popups in its own tab", `window.__evil.popupsDone`)
	var rt evilReport
	rawTab := brEval[string](t, pop, `JSON.stringify(window.__evil, null, 2)`)
	_ = os.WriteFile(filepath.Join(art, "evil-tab.json"), []byte(rawTab), 0o644)
	if err := json.Unmarshal([]byte(rawTab), &rt); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"opener", "openShellWindow", "documentDomain"} {
		if a := rt.Attempts[name]; a.OK {
			t.Errorf("in its own tab, %s succeeded: %q", name, a.Value)
		}
	}
	if a := rt.Attempts["openShellWindow"]; !strings.Contains(a.Error, "closed=true") {
		t.Errorf("the session window opened from the tab: %+v; want a closed reference (COOP)", a)
	}
	if strings.Contains(strings.Join(rt.Loot, "\n"), info.Token) {
		t.Error("the page in its own tab read the session token")
	}
	t.Logf("in its own tab: opener %q; the session window it opened: %q", rt.Attempts["opener"].Error, rt.Attempts["openShellWindow"].Error)
	if n := strings.Count(s.Procs["porthole-signaling"].Tail(2000), `msg="client joined" session=`+info.Session); n != 1 {
		t.Errorf("%d clients joined the attacked session, want the technician's 1", n)
	}

	var outcome strings.Builder
	for _, k := range slices.Sorted(maps.Keys(r.Attempts)) {
		a := r.Attempts[k]
		fmt.Fprintf(&outcome, "  %-24s ok=%-5v %s%s\n", k, a.OK, a.Value, a.Error)
	}
	t.Logf("what the hostile page tried:\n%s%d CSP violations", outcome.String(), len(r.Violations))
}
