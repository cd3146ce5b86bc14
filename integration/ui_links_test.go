package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

// TestUIInvitationAndResetLinks drives the local users' password links in
// Chromium: an admin creates a user without a password in Admin → Users
// and is shown an invitation link once; the user opens it (the secret
// leaves the address bar at once), chooses a password and is signed in;
// the same link a second time is refused in words. Then the admin makes a
// password reset link for that user, who sets a new password with it, and
// only the new password signs in.
func TestUIInvitationAndResetLinks(t *testing.T) {
	const pw = "ui-links-admin-password"
	s := stack.Start(t, stack.Options{Users: []stack.User{{Name: "boss", Password: pw, Admin: true}}})
	ctx := brBrowser(t)
	art := testenv.ArtifactsDir(t)
	defer func() {
		if t.Failed() {
			brShot(t, ctx, art, "failure")
		}
	}()
	js := func(expr string) { brEval[bool](t, ctx, "("+expr+", true)") }
	open := func(url string) {
		t.Helper()
		// about:blank first: a link differing from the page only in its
		// fragment must load the app afresh, as from a mail.
		for _, u := range []string{"about:blank", url} {
			if err := chromedp.Do(ctx, chromedp.Navigate(u)); err != nil {
				t.Fatal(err)
			}
		}
	}
	signOut := func() {
		t.Helper()
		js(`document.querySelector('#signout').click()`)
		brWait(t, ctx, "signed out", `!document.querySelector('#signin').hidden`)
	}
	adminUsers := func() {
		t.Helper()
		open(s.AppURL + "/")
		brWait(t, ctx, "the sign-in form", `document.querySelector('#login-form') && !document.querySelector('#signin').hidden`)
		js(`document.querySelector('#login-username').value = 'boss'`)
		js(fmt.Sprintf(`document.querySelector('#login-password').value = %q`, pw))
		js(`document.querySelector('#login-form').requestSubmit()`)
		brWait(t, ctx, "signed in as boss", `!document.querySelector('#user-box').hidden`)
		js(`location.hash = '#admin/users'`)
		brWait(t, ctx, "the users form", `!document.querySelector('#user-form').closest('[hidden]')`)
	}
	shownLink := func() string {
		t.Helper()
		brWait(t, ctx, "the link, shown once", `!document.querySelector('#user-link').hidden && document.querySelector('#user-link-url').textContent`)
		url := brEval[string](t, ctx, `document.querySelector('#user-link-url').textContent`)
		if !strings.HasPrefix(url, s.AppURL+"/"+proto.LinkFragment) {
			t.Fatalf("link %q, want %s/%s…", url, s.AppURL, proto.LinkFragment)
		}
		js(`document.querySelector('#user-link-done').click()`)
		if got := brEval[string](t, ctx, `document.querySelector('#user-link-url').textContent`); got != "" {
			t.Fatalf("the link stays on the page after Done: %q", got)
		}
		return url
	}
	choose := func(url, password string) {
		t.Helper()
		open(url)
		brWait(t, ctx, "the password-link page", `!document.querySelector('#password-link').hidden`)
		if h := brEval[string](t, ctx, `location.href`); strings.Contains(h, proto.LinkFragment) {
			t.Fatalf("the link's secret is still in the address: %s", h)
		}
		js(fmt.Sprintf(`document.querySelector('#password-link-new').value = %q`, password))
		js(fmt.Sprintf(`document.querySelector('#password-link-again').value = %q`, password))
		js(`document.querySelector('#password-link-form').requestSubmit()`)
	}
	passwordWorks := func(name, password string) bool {
		b, _ := json.Marshal(&proto.Login{Username: name, Password: password})
		res, err := http.Post(s.SignalingURL+proto.PathLogin, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}

	// 1. An invitation: a user created without a password.
	adminUsers()
	js(`document.querySelector('#user-name').value = 'carol'`)
	js(`document.querySelector('#user-form').requestSubmit()`)
	invite := shownLink()
	brShot(t, ctx, art, "invitation-link")
	signOut()

	choose(invite, "carol-first-password")
	brWait(t, ctx, "signed in as carol", `!document.querySelector('#user-box').hidden && document.querySelector('#who').textContent.includes('carol')`)
	signOut()

	// 2. The same link again: refused, in words.
	choose(invite, "carol-other-password")
	brWait(t, ctx, "the refusal", `!document.querySelector('[data-note="password-link"]').hidden`)
	if got := brEval[string](t, ctx, `document.querySelector('[data-note="password-link"]').textContent`); !strings.Contains(got, "unknown, used or expired") {
		t.Fatalf("a used link says %q", got)
	}
	if passwordWorks("carol", "carol-other-password") {
		t.Fatal("a used invitation set a password")
	}

	// 3. A reset link from Admin → Users: the button on carol's row.
	adminUsers()
	brWait(t, ctx, "carol's reset button", `[...document.querySelectorAll('#user-rows button')].some((b) => b.textContent === 'Password reset link')`)
	js(`[...document.querySelectorAll('#user-rows button')].find((b) => b.textContent === 'Password reset link').click()`)
	reset := shownLink()
	signOut()
	if !passwordWorks("carol", "carol-first-password") {
		t.Fatal("a reset link not yet used ended the old password")
	}
	choose(reset, "carol-second-password")
	brWait(t, ctx, "signed in as carol after the reset", `!document.querySelector('#user-box').hidden && document.querySelector('#who').textContent.includes('carol')`)
	if passwordWorks("carol", "carol-first-password") || !passwordWorks("carol", "carol-second-password") {
		t.Fatal("after the reset only the new password must sign in")
	}
}
