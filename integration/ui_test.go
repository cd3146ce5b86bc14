package integration

import (
	"bytes"
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
	"github.com/porthole-dev/porthole/signaling/authn"
)

// apiLogin signs in over HTTP and returns the login cookie.
func apiLogin(t *testing.T, s *stack.Stack, name, pw string) *http.Cookie {
	t.Helper()
	b, _ := json.Marshal(&proto.Login{Username: name, Password: pw})
	resp, err := http.Post(s.SignalingURL+proto.PathLogin, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-porthole" {
			return c
		}
	}
	t.Fatalf("login %s: %s, no cookie", name, resp.Status)
	return nil
}

func apiCall(t *testing.T, s *stack.Stack, c *http.Cookie, method, path string, in, out any) {
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
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}

// TestUIEnableAsConfigurerOpenAsUserWith2FA walks the identity issue's
// flow in Chromium: a configurer signs in and enables the printer, which
// starts disabled; a technician with two-factor login signs in with a code,
// opens the printer in the same tab, and the session origin signs itself in
// with OAuth (PKCE) and shows the device's page.
func TestUIEnableAsConfigurerOpenAsUserWith2FA(t *testing.T) {
	const pw = "ui-test-password-1"
	s := stack.Start(t, stack.Options{Users: []stack.User{
		{Name: "conf", Password: pw, Roles: []string{"configurer"}},
		{Name: "tech", Password: pw, Roles: []string{"user"}},
	}})
	ctx := brBrowser(t)
	art := testenv.ArtifactsDir(t)
	defer func() {
		if t.Failed() {
			brShot(t, ctx, art, "failure")
		}
	}()

	// The technician turns on two-factor login (over the API, as the
	// account page would).
	tc := apiLogin(t, s, "tech", pw)
	var en proto.TOTPEnrollment
	apiCall(t, s, tc, http.MethodPost, proto.PathTOTP, nil, &en)
	code, _ := authn.TOTPCode(en.Secret, time.Now())
	var rc proto.RecoveryCodes
	apiCall(t, s, tc, http.MethodPost, proto.PathTOTPConf, &proto.TOTPVerify{Code: code}, &rc)

	js := func(expr string) { brEval[bool](t, ctx, "("+expr+", true)") }
	fill := func(sel, v string) {
		js(fmt.Sprintf(`document.querySelector(%q).value = %q`, sel, v))
	}
	login := func(name string) {
		if err := chromedp.Do(ctx, chromedp.Navigate(s.AppURL+"/")); err != nil {
			t.Fatal(err)
		}
		brWait(t, ctx, "the sign-in form", `document.querySelector('#login-form') && !document.querySelector('#signin').hidden`)
		fill("#login-username", name)
		fill("#login-password", pw)
		js(`document.querySelector('#login-form').requestSubmit()`)
	}

	// 1. The configurer sees the printer disabled and enables it.
	login("conf")
	toggle := `#sites li[data-device="printer-1"] input.enable-toggle`
	brWait(t, ctx, "the printer's toggle", fmt.Sprintf(`document.querySelector(%q)`, toggle))
	if brEval[bool](t, ctx, fmt.Sprintf(`document.querySelector(%q).checked`, toggle)) {
		t.Fatal("the printer starts with remote access enabled")
	}
	if n := brEval[int](t, ctx, `document.querySelectorAll('button.open').length`); n != 0 {
		t.Fatalf("configurer sees %d Open buttons", n)
	}
	js(fmt.Sprintf(`document.querySelector(%q).click()`, toggle))
	brWait(t, ctx, "the confirmation beside the switch", `document.querySelector('#sites li[data-device="printer-1"] [data-note="device:printer-1"]').textContent.includes('Remote access enabled for')`)
	brShot(t, ctx, art, "configurer-enabled")
	js(`document.querySelector('#signout').click()`)
	brWait(t, ctx, "signed out", `!document.querySelector('#signin').hidden`)

	// 2. The technician signs in with a code from the next time step (the
	// enrolment used the current one, and codes are single-use).
	login("tech")
	brWait(t, ctx, "the second-factor form", `!document.querySelector('#mfa-form').hidden`)
	next, _ := authn.TOTPCode(en.Secret, time.Now().Add(authn.TOTPPeriod*time.Second))
	fill("#mfa-code", next)
	js(`document.querySelector('#mfa-form').requestSubmit()`)
	open := `#sites li[data-device="printer-1"] button.open`
	brWait(t, ctx, "an enabled Open button", fmt.Sprintf(`document.querySelector(%q) && !document.querySelector(%q).disabled`, open, open))
	brShot(t, ctx, art, "technician-devices")

	// 3. Open in this tab: the session origin runs OAuth and shows the device.
	js(`document.querySelector('#same-tab').checked = true`)
	js(fmt.Sprintf(`document.querySelector(%q).click()`, open))
	brWait(t, ctx, "the session window", `location.hostname.startsWith('shell-') && location.hostname.endsWith('.sessions.localhost') && document.querySelector('iframe.device')`)
	shellOrigin := brEval[string](t, ctx, `location.origin`)
	tab := newTab(t, ctx, &proto.SessionInfo{ShellOrigin: shellOrigin, DeviceOrigin: strings.Replace(shellOrigin, "://shell-", "://", 1)})
	tab.waitDev(t, "the device's page in the session window", `d.readyState === 'complete' && d.body.innerText.includes('Porthole LaserJet 4000')`)
	brShot(t, ctx, art, "session")
	href := brEval[string](t, ctx, `location.href`)
	if strings.Contains(href, "code=") || strings.Contains(href, "token") || strings.Contains(href, "state=") {
		t.Fatalf("credential left in the address bar: %s", href)
	}
	if brEval[bool](t, ctx, `sessionStorage.getItem('porthole.session-oauth') !== null`) {
		t.Fatal("the PKCE verifier outlived the exchange")
	}
}
