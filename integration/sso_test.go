package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/integration/hydra"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

// TestSingleSignOnWithHydra signs in with OpenID Connect in Chromium
// against a real provider, Ory Hydra: the sign-in page's button, Hydra's
// authorization endpoint (code + PKCE), its login app, the code exchange
// and the ID token's verification by signaling. The directory's groups
// become Porthole roles: alice (technicians) gets the user role on the
// lab site, bob (admins) is an admin. A provider user named like a local
// account is refused, not joined to it. With local accounts turned off,
// password sign-in is refused and single sign-on still works.
func TestSingleSignOnWithHydra(t *testing.T) {
	const localPW = "local-admin-password"
	idp := hydra.Start(t, map[string]hydra.User{
		"alice": {Password: "alice-pw", Subject: "u-1001", Name: "Alice Example", Groups: []string{"porthole-techs", "everyone"}},
		"bob":   {Password: "bob-pw", Subject: "u-1002", Name: "Bob Example", Groups: []string{"porthole-admins"}},
		"root":  {Password: "root-pw", Subject: "u-6666", Name: "Not the local root", Groups: []string{"porthole-admins"}},
	})
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "oidc.secret")
	if err := os.WriteFile(secretFile, []byte("porthole-client-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := stack.Start(t, stack.Options{
		Users: []stack.User{{Name: "root", Password: localPW, Admin: true}},
		SignalingArgs: []string{
			"--oidc-issuer", idp.Issuer, "--oidc-client-id", "porthole", "--oidc-client-secret-file", secretFile,
			"--oidc-name", "Example directory",
			"--oidc-group-role", "porthole-techs=" + stack.SiteID + ":user",
			"--oidc-group-role", "porthole-admins=admin",
		},
	})
	idp.CreateClient(t, "porthole", "porthole-client-secret", s.AppURL+proto.PathSSOCallback)

	ctx := brBrowser(t)
	art := testenv.ArtifactsDir(t)
	defer func() {
		if t.Failed() {
			brShot(t, ctx, art, "failure")
		}
	}()
	js := func(expr string) { brEval[bool](t, ctx, "("+expr+", true)") }
	ssoSignIn := func(user, pw string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(s.AppURL+"/")); err != nil {
			t.Fatal(err)
		}
		brWait(t, ctx, "the single sign-on button", `!document.querySelector('#signin').hidden && !document.querySelector('#sso-box').hidden`)
		if got := brEval[string](t, ctx, `document.querySelector('#sso-button').textContent`); got != "Sign in with Example directory" {
			t.Fatalf("button says %q", got)
		}
		js(`document.querySelector('#sso-button').click()`)
		// Hydra redirects to its login app: another origin.
		brWait(t, ctx, "the provider's sign-in form", `location.origin !== `+fmt.Sprintf("%q", s.AppURL)+` && document.querySelector('#username')`)
		js(fmt.Sprintf(`document.querySelector('#username').value = %q`, user))
		js(fmt.Sprintf(`document.querySelector('#password').value = %q`, pw))
		js(`document.querySelector('#submit').click()`)
	}
	signOut := func() {
		js(`document.querySelector('#signout').click()`)
		brWait(t, ctx, "signed out", `!document.querySelector('#signin').hidden`)
	}

	// 1. alice: created at her first sign-in, a technician of the lab.
	ssoSignIn("alice", "alice-pw")
	brWait(t, ctx, "alice's device list", `location.origin === `+fmt.Sprintf("%q", s.AppURL)+` && document.querySelector('#who') && document.querySelector('#who').textContent === 'Alice Example'`)
	brWait(t, ctx, "the lab's printer", `document.querySelector('#sites li[data-device="printer-1"]')`)
	if brEval[bool](t, ctx, `!document.querySelector('#nav-admin').hidden`) {
		t.Fatal("alice, a technician, sees Admin")
	}
	brShot(t, ctx, art, "alice-signed-in")
	if got := brEval[string](t, ctx, `location.hash`); got != "#devices" {
		t.Fatalf("landed on %q", got)
	}
	// Her account page says where her password lives.
	js(`location.hash = '#account'`)
	brWait(t, ctx, "the SSO note on the account page", `!document.querySelector('#account-sso').hidden && document.querySelector('#account-password').hidden`)
	signOut()

	// 2. bob: an admin by his group; he sees alice as an SSO user with her role.
	ssoSignIn("bob", "bob-pw")
	brWait(t, ctx, "bob's Admin link", `document.querySelector('#who').textContent === 'Bob Example' && !document.querySelector('#nav-admin').hidden`)
	js(`location.hash = '#admin/users'`)
	brWait(t, ctx, "alice in the user list, marked single sign-on", `[...document.querySelectorAll('#user-rows tr')].some(r => r.dataset.user === 'alice' && r.textContent.includes('single sign-on') && r.textContent.includes('Lab: Remote Technician User'))`)
	brShot(t, ctx, art, "bob-admin-users")
	signOut()

	c := apiLogin(t, s, "root", localPW) // local accounts still work beside SSO
	var users proto.UserList
	apiCall(t, s, c, http.MethodGet, proto.PathUsers, nil, &users)
	byName := map[string]proto.UserView{}
	for _, u := range users.Users {
		byName[u.Name] = u
	}
	if a := byName["alice"]; !a.SSO || a.Admin || !slices.Equal(a.Roles[stack.SiteID], []string{"user"}) {
		t.Fatalf("alice is %+v", a)
	}
	if b := byName["bob"]; !b.SSO || !b.Admin {
		t.Fatalf("bob is %+v", b)
	}

	// 3. The provider's "root" is not the local root.
	ssoSignIn("root", "root-pw")
	brWait(t, ctx, "the conflict explained on the sign-in page", `!document.querySelector('#signin').hidden && document.querySelector('[data-note="signin"]').textContent.includes('not linked to single sign-on')`)
	apiCall(t, s, c, http.MethodGet, proto.PathUsers, nil, &users)
	for _, u := range users.Users {
		if u.Name == "root" && (u.SSO || !u.Admin) {
			t.Fatalf("the local root changed: %+v", u)
		}
	}
	if got := idp.Logins(); !slices.Equal(got, []string{"alice", "bob", "root"}) {
		t.Fatalf("provider logins %v", got)
	}

	// 4. Local accounts off: the page offers only the provider, password
	// sign-in is refused, and alice still gets in.
	s.RestartSignalingWith(t, "--local-login=false")
	if err := chromedp.Do(ctx, chromedp.Navigate(s.AppURL+"/")); err != nil {
		t.Fatal(err)
	}
	brWait(t, ctx, "a sign-in page without the password form", `!document.querySelector('#signin').hidden && document.querySelector('#login-form').hidden && !document.querySelector('#sso-box').hidden`)
	brShot(t, ctx, art, "sso-only")
	resp, err := http.Post(s.SignalingURL+proto.PathLogin, "application/json", strings.NewReader(`{"username":"root","password":"`+localPW+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	var pe proto.Error
	_ = json.NewDecoder(resp.Body).Decode(&pe)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || pe.Code != proto.CodeForbidden {
		t.Fatalf("password sign-in with local accounts off: %d %+v", resp.StatusCode, pe)
	}
	ssoSignIn("alice", "alice-pw")
	brWait(t, ctx, "alice signed in again", `document.querySelector('#who') && document.querySelector('#who').textContent === 'Alice Example'`)
}
