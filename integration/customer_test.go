package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

// TestUICustomerApprovesDeniesAndTimeWindows walks issue 18's customer
// flow in Chromium, with the technician and the customer's site admin in
// two browser contexts: the site admin turns approval on in the Site
// view's policy editor; the technician's Request access asks for a reason
// and waits; the site admin sees the request live and approves it with a
// comment; the session opens and shows the device, and the site admin ends
// it. A denied request and one nobody answers (--request-expiry 15s) never
// reach the agent: it counts one session.open in all. A time window set in
// the editor refuses sessions, and the device shows the next window in the
// site's zone.
func TestUICustomerApprovesDeniesAndTimeWindows(t *testing.T) {
	const pw = "customer-ui-password-1"
	s := stack.Start(t, stack.Options{
		Users: []stack.User{
			{Name: "conf", Password: pw, Roles: []string{"configurer"}},
			{Name: "tech", Password: pw, Roles: []string{"user"}},
			{Name: "cust", Password: pw, Roles: []string{"siteadmin"}},
		},
		SignalingArgs: []string{"--request-expiry", "15s"},
	})
	axe := axeSource(t)
	agent := s.Procs["porthole-agent"]
	opens := func() int { return agent.Count("session opened") + agent.Count("session refused") }
	conf := apiLogin(t, s, "conf", pw)
	apiCall(t, s, conf, http.MethodPatch, "/v1/devices/"+stack.DeviceID, &proto.DeviceUpdate{Enabled: ptr(true)}, nil)

	tech := brBrowser(t)
	cust, cancel := chromedp.NewContext(tech, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	art := testenv.ArtifactsDir(t)
	defer func() {
		if t.Failed() {
			brShot(t, tech, art, "failure-technician")
			brShot(t, cust, art, "failure-site-admin")
		}
	}()
	js := func(ctx context.Context, expr string) { brEval[bool](t, ctx, "("+expr+", true)") }
	set := func(ctx context.Context, sel, v string) {
		js(ctx, fmt.Sprintf(`document.querySelector(%q).value = %q`, sel, v))
	}
	login := func(ctx context.Context, name, hash string) {
		if err := chromedp.Do(ctx, chromedp.Navigate(s.AppURL+"/"+hash)); err != nil {
			t.Fatal(err)
		}
		brWait(t, ctx, "the sign-in form", `document.querySelector('#login-form') && !document.querySelector('#signin').hidden`)
		set(ctx, "#login-username", name)
		set(ctx, "#login-password", pw)
		js(ctx, `document.querySelector('#login-form').requestSubmit()`)
	}

	visit := func(ctx context.Context) { // the app again, signed in
		if err := chromedp.Do(ctx, chromedp.Navigate(s.AppURL+"/#devices")); err != nil {
			t.Fatal(err)
		}
		brWait(t, ctx, "the device list", `!document.querySelector('#devices').hidden`)
	}

	// 1. The site admin turns approval on for the site.
	login(cust, "cust", "#site")
	sitePolicy := `form.site-policy[data-site="lab"]`
	brWait(t, cust, "the site's policy form", fmt.Sprintf(`!document.querySelector('#site').hidden && document.querySelector(%q)`, sitePolicy))
	if brEval[bool](t, cust, `document.querySelector('#nav-site').hidden`) {
		t.Fatal("no Site link for a site admin")
	}
	axeCheck(t, cust, axe, "site-view")
	js(cust, `document.querySelector('#sp-approval-lab').checked = true`)
	js(cust, fmt.Sprintf(`document.querySelector(%q).requestSubmit()`, sitePolicy))
	brWait(t, cust, "the policy saved", `document.querySelector('[data-note="policy:lab"]').textContent.includes('saved')`)

	// 2. The technician's Open is a request with a required reason.
	login(tech, "tech", "")
	open := fmt.Sprintf(`#sites li[data-device=%q] button.open`, stack.DeviceID)
	brWait(t, tech, "Request access", fmt.Sprintf(`document.querySelector(%q) && !document.querySelector(%q).disabled && document.querySelector(%q).textContent === 'Request access'`, open, open, open))
	if brEval[bool](t, tech, `!document.querySelector('#nav-site').hidden`) {
		t.Fatal("a technician sees the Site view")
	}
	js(tech, `document.querySelector('#same-tab').checked = true`)
	request := func(reason string) {
		brClick(t, tech, open)
		brWait(t, tech, "the reason dialog", `document.querySelector('#request-dialog[open]')`)
		set(tech, "#request-minutes", "5")
		if reason == "" {
			return
		}
		set(tech, "#request-reason", reason)
		js(tech, `document.querySelector('#request-dialog form').requestSubmit()`)
		brWait(t, tech, "the waiting state", fmt.Sprintf(`!document.querySelector('#request-dialog') && document.querySelector('[data-note="device:%s"]').textContent.includes('Waiting for a site admin')`, stack.DeviceID))
	}
	request("")
	axeCheck(t, tech, axe, "request-dialog")
	js(tech, `document.querySelector('#request-dialog form').requestSubmit()`)
	brWait(t, tech, "the reason required", `document.querySelector('[data-note="request-dialog"]').textContent.includes('reason is required')`)
	js(tech, `document.querySelector('#request-cancel').click()`)
	request("Toner alarm on tray 2")
	brShot(t, tech, art, "technician-waiting")

	// 3. The site admin sees it live and approves with a comment.
	pending := `#requests-pending li.request`
	brWait(t, cust, "the request in the Requests panel", fmt.Sprintf(`document.querySelector(%q) && document.querySelector(%q).textContent.includes('Toner alarm on tray 2') && document.querySelector(%q).textContent.includes('tech')`, pending, pending, pending))
	brShot(t, cust, art, "site-admin-request")
	noRawErrors(t, cust, "site-admin-request")
	axeCheck(t, cust, axe, "site-admin-request")
	if n := opens(); n != 0 {
		t.Fatalf("the agent saw %d session opens before the approval", n)
	}
	set(cust, pending+" input.decision-comment", "Go ahead, tray 2 only")
	approvedAt := time.Now()
	brClick(t, cust, pending+" button.approve")

	// 4. The session opens for the technician.
	brWait(t, tech, "the session window", `location.hostname.startsWith('shell-') && document.querySelector('iframe.device')`)
	shellOrigin := brEval[string](t, tech, `location.origin`)
	tab := newTab(t, tech, &proto.SessionInfo{ShellOrigin: shellOrigin, DeviceOrigin: strings.Replace(shellOrigin, "://shell-", "://", 1)})
	tab.waitDev(t, "the device's page in the session window", `d.readyState === 'complete' && d.body.innerText.includes('Porthole LaserJet 4000')`)
	t.Logf("approve click → the device's page in the technician's session window: %v (the technician's page polls every 2 s)", time.Since(approvedAt).Round(time.Millisecond))
	brShot(t, tech, art, "technician-session")

	// 5. The site admin sees the live session, approved, and ends it.
	live := `#site-sessions li.site-session`
	brWait(t, cust, "the live session", fmt.Sprintf(`document.querySelector(%q) && document.querySelector(%q).textContent.includes('Approved by cust')`, live, live))
	brShot(t, cust, art, "site-admin-live")
	brWait(t, cust, "the approval and the policy change in Recent changes", `document.querySelector('#site-changes li[data-action="request.approve"]') && document.querySelector('#site-changes li[data-action="policy.site"]').textContent.includes('"requireApproval":true')`)
	brClick(t, cust, live+" button.end-session")
	brWait(t, cust, "no live session", `!document.querySelector('#site-sessions li.site-session') && !document.querySelector('#sessions-none').hidden`)
	if n := opens(); n != 1 {
		t.Fatalf("the agent saw %d session opens, want 1", n)
	}

	// 6. Denied: the technician reads the comment; nothing reaches the agent.
	visit(tech)
	brWait(t, tech, "Request access", fmt.Sprintf(`document.querySelector(%q) && !document.querySelector(%q).disabled`, open, open))
	js(tech, `document.querySelector('#same-tab').checked = true`)
	request("Firmware update")
	brWait(t, cust, "the second request", fmt.Sprintf(`document.querySelector(%q) && document.querySelector(%q).textContent.includes('Firmware update')`, pending, pending))
	set(cust, pending+" input.decision-comment", "Not during production")
	brClick(t, cust, pending+" button.deny")
	brWait(t, tech, "the denial", fmt.Sprintf(`document.querySelector('[data-note="device:%s"]').textContent.includes('denied your session') && document.querySelector('[data-note="device:%s"]').textContent.includes('Not during production')`, stack.DeviceID, stack.DeviceID))
	brShot(t, tech, art, "technician-denied")

	// 7. Nobody answers: the request expires.
	request("Nobody home")
	brWaitFor(t, tech, 40*time.Second, "the expiry", fmt.Sprintf(`document.querySelector('[data-note="device:%s"]').textContent.includes('Nobody answered')`, stack.DeviceID))
	if n := opens(); n != 1 {
		t.Fatalf("the agent saw %d session opens after a denial and an expiry, want still 1", n)
	}
	brWait(t, cust, "the answered requests", `document.querySelector('#requests-answered li[data-state="denied"]') && document.querySelector('#requests-answered li[data-state="expired"]') && document.querySelector('#requests-answered li[data-state="used"]')`)

	// 8. A time window that is not now: sessions are refused and the
	// device shows the next window in the site's zone.
	now := time.Now().UTC()
	day := proto.WeekdayName(now.Add(48 * time.Hour).Weekday())
	sp := &proto.SitePolicy{TimeZone: "UTC", Windows: []proto.TimeWindow{{Days: []string{day}, From: "08:00", To: "09:00"}}}
	next, _ := sp.NextWindow(now)
	js(cust, `document.querySelector('[data-note="policy:lab"]').textContent = ''`)
	js(cust, `document.querySelector('#sp-approval-lab').checked = false`)
	set(cust, "#sp-zone-lab", "UTC")
	set(cust, "#sp-windows-lab", day+" 08:00-09:00")
	js(cust, fmt.Sprintf(`document.querySelector(%q).requestSubmit()`, sitePolicy))
	brWait(t, cust, "the windows saved", `document.querySelector('[data-note="policy:lab"]').textContent.includes('saved')`)
	visit(tech)
	want := next.Format("Mon 2 Jan, 15:04") + " (UTC)"
	brWait(t, tech, "the next window beside a disabled Open", fmt.Sprintf(`document.querySelector(%q) && document.querySelector(%q).disabled && document.querySelector('#sites li[data-device=%q] .window-closed').textContent.includes(%q)`, open, open, stack.DeviceID, want))
	brShot(t, tech, art, "technician-window")
	tc := apiLogin(t, s, "tech", pw)
	var pe proto.Error
	if st := apiStatus(t, s, tc, http.MethodPost, proto.PathSessions, &proto.CreateSession{Device: stack.DeviceID}, &pe); st != http.StatusForbidden || pe.Code != proto.CodeOutsideWindow ||
		!strings.Contains(pe.Message, next.Format("Mon 2 Jan 15:04")) {
		t.Fatalf("open outside the window: %d %+v, want 403 outside_window naming %v", st, pe, next)
	}
	if n := opens(); n != 1 {
		t.Fatalf("the agent saw %d session opens after the window refusal, want still 1", n)
	}
}

// apiStatus is apiCall for an answer that may be an error: it returns the
// status and decodes the body into out either way.
func apiStatus(t *testing.T, s *stack.Stack, c *http.Cookie, method, path string, in, out any) int {
	t.Helper()
	b, _ := json.Marshal(in)
	req, _ := http.NewRequest(method, s.SignalingURL+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.AddCookie(c)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}
