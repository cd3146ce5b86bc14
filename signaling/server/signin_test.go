package server

import (
	"net/http"
	"strings"
	"testing"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/sso"
)

func TestInvitationLinkFromTheAdminAPI(t *testing.T) {
	e := newAuthEnv(t, nil)
	admin := e.login("admin")
	var u proto.UserView
	if resp := e.as(admin, http.MethodPost, proto.PathUsers, &proto.NewUser{Name: "newbie"}, &u); resp.StatusCode != http.StatusCreated || !u.Invited {
		t.Fatalf("create without a password: %d %+v", resp.StatusCode, u)
	}
	// Without a password nobody can sign in as the invited user.
	if resp := e.request(http.MethodPost, proto.PathLogin, "", &proto.Login{Username: "newbie", Password: ""}, sameOrigin(), nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("empty password sign-in: %d", resp.StatusCode)
	}
	linkPath := strings.Replace(proto.PathUserLink, "{id}", u.ID, 1)
	// Not an admin: refused.
	if resp := e.as(e.login("user-a"), http.MethodPost, linkPath, &proto.NewPasswordLink{Kind: proto.LinkInvite}, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a non-admin made a link: %d", resp.StatusCode)
	}
	var link proto.CreatedPasswordLink
	if resp := e.as(admin, http.MethodPost, linkPath, &proto.NewPasswordLink{Kind: proto.LinkInvite}, &link); resp.StatusCode != http.StatusCreated {
		t.Fatalf("link: %d", resp.StatusCode)
	}
	secret, ok := strings.CutPrefix(link.URL, appOrigin+"/"+proto.LinkFragment)
	if !ok || secret == "" || link.User != "newbie" {
		t.Fatalf("link %+v", link)
	}
	// The secret is in no log line.
	if strings.Contains(e.logs.String(), secret) {
		t.Fatal("the link's secret is in the log")
	}
	// Cross-site redemption is refused before the link is spent.
	cross := http.Header{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}}
	if resp := e.request(http.MethodPost, proto.PathLinkRedeem, "", &proto.PasswordLinkRedeem{Token: secret, Password: "my own new password"}, cross, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site redeem: %d", resp.StatusCode)
	}
	var res proto.LoginResult
	resp := e.request(http.MethodPost, proto.PathLinkRedeem, "", &proto.PasswordLinkRedeem{Token: secret, Password: "my own new password"}, sameOrigin(), &res)
	if resp.StatusCode != http.StatusOK || res.User == nil || res.User.Name != "newbie" {
		t.Fatalf("redeem: %d %+v", resp.StatusCode, res)
	}
	loginCookie(t, resp) // signed in
	if resp := e.request(http.MethodPost, proto.PathLinkRedeem, "", &proto.PasswordLinkRedeem{Token: secret, Password: "another new password"}, sameOrigin(), nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("second use: %d", resp.StatusCode)
	}
	if resp := e.request(http.MethodPost, proto.PathLogin, "", &proto.Login{Username: "newbie", Password: "my own new password"}, sameOrigin(), nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign in with the chosen password: %d", resp.StatusCode)
	}
}

func TestGuessingLinksIsThrottled(t *testing.T) {
	e := newAuthEnv(t, func(c *Config) { c.MaxAddressFailures = 3 })
	for i := range 3 {
		if resp := e.request(http.MethodPost, proto.PathLinkRedeem, "", &proto.PasswordLinkRedeem{Token: "guess" + string(rune('a'+i)), Password: "whatever password"}, sameOrigin(), nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, resp.StatusCode)
		}
	}
	if resp := e.request(http.MethodPost, proto.PathLinkRedeem, "", &proto.PasswordLinkRedeem{Token: "guessd", Password: "whatever password"}, sameOrigin(), nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("fourth guess: %d", resp.StatusCode)
	}
}

func TestLocalLoginOff(t *testing.T) {
	p, err := sso.New(sso.Config{Issuer: "http://127.0.0.1:1/", ClientID: "porthole", RedirectURL: appOrigin + proto.PathSSOCallback})
	if err != nil {
		t.Fatal(err)
	}
	e := newAuthEnv(t, func(c *Config) { c.NoLocalLogin, c.SSO, c.SSOName = true, p, "Acme ID" })
	if resp := e.request(http.MethodPost, proto.PathLogin, "", &proto.Login{Username: "admin", Password: password}, sameOrigin(), nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("password sign-in with local accounts off: %d", resp.StatusCode)
	}
	var opts proto.SignInOptions
	e.request(http.MethodGet, proto.PathSignIn, "", nil, nil, &opts)
	if opts.LocalLogin || opts.SSO == nil || opts.SSO.Name != "Acme ID" || opts.SSO.URL != proto.PathSSOStart {
		t.Fatalf("sign-in options %+v", opts)
	}
	if resp := e.request(http.MethodPost, proto.PathLinkRedeem, "", &proto.PasswordLinkRedeem{Token: "x", Password: "whatever password"}, sameOrigin(), nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("password link with local accounts off: %d", resp.StatusCode)
	}
	// The provider is unreachable: the start sends the browser back to
	// the sign-in page with a code, not an error page.
	c := e.ts.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(e.ts.URL + proto.PathSSOStart)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/#signin?sso=unavailable" {
		t.Fatalf("start with the provider down: %d %q", resp.StatusCode, loc)
	}
	// A callback without this browser's flow cookie (login CSRF) is refused.
	resp, err = c.Get(e.ts.URL + proto.PathSSOCallback + "?code=stolen&state=x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != "/#signin?sso=state" {
		t.Fatalf("callback without a flow: %q", loc)
	}
	for _, c := range resp.Cookies() {
		if c.Name == cookieLogin && c.Value != "" {
			t.Fatal("signed in without a flow")
		}
	}
	if _, err := New(Config{Store: e.srv.store, NoLocalLogin: true}); err == nil {
		t.Fatal("a server nobody can sign in to was accepted")
	}
}
