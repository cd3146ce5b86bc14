package server

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/accounts"
	"github.com/porthole-dev/porthole/signaling/authn"
	"github.com/porthole-dev/porthole/signaling/store"
)

// clock is a settable time source for TOTP, throttling windows and expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const password = "correct horse battery"

// authEnv is a server with two sites and users in every role:
// site-a holds agent-1, site-b holds agent-2.
type authEnv struct {
	*env
	clock *clock
	ids   map[string]string // user name → ID
}

var testUsers = []struct {
	name  string
	admin bool
	roles map[string][]string
}{
	{"admin", true, nil},
	{"conf-a", false, map[string][]string{"site-a": {"configurer"}}},
	{"user-a", false, map[string][]string{"site-a": {"user"}}},
	{"both-a", false, map[string][]string{"site-a": {"configurer", "user"}}},
	{"user-b", false, map[string][]string{"site-b": {"user"}}},
	{"conf-b", false, map[string][]string{"site-b": {"configurer"}}},
	{"nobody", false, nil},
}

func newAuthEnv(t *testing.T, mod func(*Config)) *authEnv {
	t.Helper()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	e := newEnv(t, func(cfg *Config) {
		cfg.Now = c.Now
		if mod != nil {
			mod(cfg)
		}
	})
	ae := &authEnv{env: e, clock: c, ids: map[string]string{}}
	m := &accounts.Manager{Store: e.srv.store, Params: authn.FastParams, Now: c.Now}
	ctx := context.Background()
	for _, id := range []string{"site-a", "site-b"} {
		if _, err := m.CreateSite(ctx, "test", id, strings.ToUpper(id)); err != nil {
			t.Fatal(err)
		}
	}
	for agent, site := range map[string]string{"agent-1": "site-a", "agent-2": "site-b"} {
		if _, err := m.AssignAgent(ctx, "test", agent, "", site); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range testUsers {
		su, err := m.CreateUser(ctx, "test", accounts.NewUser{Name: u.name, Password: password, Admin: u.admin})
		if err != nil {
			t.Fatal(err)
		}
		ae.ids[u.name] = su.ID
		for site, roles := range u.roles {
			if _, err := m.SetRoles(ctx, "test", su.ID, site, roles); err != nil {
				t.Fatal(err)
			}
		}
	}
	return ae
}

// browser headers of a same-origin fetch from the app.
func sameOrigin() http.Header {
	return http.Header{"Origin": {appOrigin}, "Sec-Fetch-Site": {"same-origin"}}
}

func withCookie(h http.Header, secret string) http.Header {
	out := http.Header{}
	for k, v := range h {
		out[k] = v
	}
	out.Set("Cookie", cookieLogin+"="+secret)
	return out
}

// login signs name in and returns the login secret from the cookie.
func (e *authEnv) login(name string) string {
	e.t.Helper()
	var res proto.LoginResult
	resp := e.request(http.MethodPost, proto.PathLogin, "", &proto.Login{Username: name, Password: password}, sameOrigin(), &res)
	if resp.StatusCode != http.StatusOK || res.MFARequired {
		e.t.Fatalf("login %s: %d %+v", name, resp.StatusCode, res)
	}
	return loginCookie(e.t, resp)
}

func loginCookie(t *testing.T, resp *http.Response) string {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == cookieLogin {
			return c.Value
		}
	}
	t.Fatalf("no %s cookie in %v", cookieLogin, resp.Header["Set-Cookie"])
	return ""
}

// as sends a cookie-authenticated same-origin request.
func (e *authEnv) as(secret, method, path string, body, out any) *http.Response {
	e.t.Helper()
	return e.request(method, path, "", body, withCookie(sameOrigin(), secret), out)
}

func TestLoginSetsStrictHostCookies(t *testing.T) {
	e := newAuthEnv(t, nil)
	resp := e.request(http.MethodPost, proto.PathLogin, "", &proto.Login{Username: "user-a", Password: password}, sameOrigin(), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login = %d", resp.StatusCode)
	}
	want := map[string]http.SameSite{cookieLogin: http.SameSiteStrictMode, cookieAuthz: http.SameSiteLaxMode}
	for _, c := range resp.Cookies() {
		ss, ok := want[c.Name]
		if !ok {
			t.Errorf("unexpected cookie %s", c.Name)
			continue
		}
		delete(want, c.Name)
		if !strings.HasPrefix(c.Name, "__Host-") || !c.Secure || !c.HttpOnly || c.SameSite != ss || c.Path != "/" || c.Domain != "" {
			t.Errorf("cookie %s = %+v: want __Host-, Secure, HttpOnly, SameSite %v, Path /, no Domain", c.Name, c, ss)
		}
	}
	if len(want) > 0 {
		t.Fatalf("missing cookies %v", want)
	}
	secret := loginCookie(t, resp)
	var me proto.Me
	if r := e.as(secret, http.MethodGet, proto.PathMe, nil, &me); r.StatusCode != 200 || me.Name != "user-a" {
		t.Fatalf("GET /v1/me = %d %+v", r.StatusCode, me)
	}
	// The Lax cookie alone does not authenticate the API.
	h := sameOrigin()
	h.Set("Cookie", cookieAuthz+"="+secret)
	if r := e.request(http.MethodGet, proto.PathMe, "", nil, h, nil); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("API with the authorization cookie only = %d, want 401", r.StatusCode)
	}
	// Logout ends the login.
	if r := e.as(secret, http.MethodPost, proto.PathLogout, nil, nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("logout = %d", r.StatusCode)
	}
	if r := e.as(secret, http.MethodGet, proto.PathMe, nil, nil); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after logout = %d, want 401", r.StatusCode)
	}
}

func TestLoginErrorsAreUniform(t *testing.T) {
	e := newAuthEnv(t, nil)
	if _, err := e.srv.accounts.UpdateUser(context.Background(), "test", e.ids["nobody"], accounts.UserChange{Disabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	var first proto.Error
	for i, l := range []proto.Login{
		{Username: "user-a", Password: "wrong password!"},
		{Username: "no-such-user", Password: password},
		{Username: "nobody", Password: password}, // disabled
		{Username: "", Password: ""},
	} {
		var got proto.Error
		resp := e.request(http.MethodPost, proto.PathLogin, "", &l, sameOrigin(), &got)
		if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
			t.Fatalf("%+v: %d with cookies %v", l, resp.StatusCode, resp.Cookies())
		}
		if i == 0 {
			first = got
		} else if got != first {
			t.Fatalf("%+v answered %+v, the wrong password %+v: user enumeration", l, got, first)
		}
	}
}

func TestLoginThrottlesPerAccountAndPerAddress(t *testing.T) {
	e := newAuthEnv(t, func(c *Config) { c.MaxAccountFailures, c.MaxAddressFailures = 3, 5 })
	try := func(name, pw string) int {
		return e.request(http.MethodPost, proto.PathLogin, "", &proto.Login{Username: name, Password: pw}, sameOrigin(), nil).StatusCode
	}
	for range 3 {
		if st := try("user-a", "wrong password!"); st != http.StatusUnauthorized {
			t.Fatalf("failure = %d", st)
		}
	}
	// Locked: even the right password is refused until the window ends.
	if st := try("user-a", password); st != http.StatusTooManyRequests {
		t.Fatalf("right password on a locked account = %d, want 429", st)
	}
	// Unknown accounts lock the same way (no enumeration through 429s).
	for range 2 {
		try("ghost", "wrong password!")
	}
	// The address has now failed 5 times: every account is refused from it.
	if st := try("user-b", password); st != http.StatusTooManyRequests {
		t.Fatalf("other account from a throttled address = %d, want 429", st)
	}
	e.waitLog("login throttled")
	e.clock.Add(15*time.Minute + time.Second)
	if st := try("user-a", password); st != http.StatusOK {
		t.Fatalf("after the window = %d, want 200", st)
	}
}

func ptr[T any](v T) *T { return &v }

// enableTOTP turns on TOTP for name and returns its secret and recovery codes.
func (e *authEnv) enableTOTP(name string) (string, []string) {
	e.t.Helper()
	secret := e.login(name)
	var en proto.TOTPEnrollment
	if r := e.as(secret, http.MethodPost, proto.PathTOTP, nil, &en); r.StatusCode != 200 {
		e.t.Fatalf("start TOTP = %d", r.StatusCode)
	}
	code, _ := authn.TOTPCode(en.Secret, e.clock.Now())
	var rc proto.RecoveryCodes
	if r := e.as(secret, http.MethodPost, proto.PathTOTPConf, &proto.TOTPVerify{Code: code}, &rc); r.StatusCode != 200 || len(rc.Codes) != 10 {
		e.t.Fatalf("verify TOTP = %d, %d codes", r.StatusCode, len(rc.Codes))
	}
	e.clock.Add(2 * authn.TOTPPeriod * time.Second) // past the enrolment code's window
	return en.Secret, rc.Codes
}

func (e *authEnv) mfaStep(name string) string {
	e.t.Helper()
	var res proto.LoginResult
	resp := e.request(http.MethodPost, proto.PathLogin, "", &proto.Login{Username: name, Password: password}, sameOrigin(), &res)
	if resp.StatusCode != 200 || !res.MFARequired || res.MFAToken == "" || len(resp.Cookies()) != 0 {
		e.t.Fatalf("password step = %d %+v cookies %v", resp.StatusCode, res, resp.Cookies())
	}
	return res.MFAToken
}

func TestTOTPLoginAcceptsOneStepEitherSideOnce(t *testing.T) {
	e := newAuthEnv(t, nil)
	key, _ := e.enableTOTP("user-a")
	step := authn.TOTPPeriod * time.Second
	for _, tc := range []struct {
		name   string
		offset time.Duration
		want   int
	}{
		{"two steps behind", -2 * step, 401},
		{"one step behind", -step, 200},
		{"current step", 0, 200},
		{"one step ahead", step, 200},
		{"two steps ahead", 2 * step, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.clock.Add(3 * step) // a fresh window for every case
			code, _ := authn.TOTPCode(key, e.clock.Now().Add(tc.offset))
			mfa := e.mfaStep("user-a")
			resp := e.request(http.MethodPost, proto.PathLoginMFA, "", &proto.LoginMFA{MFAToken: mfa, Code: code}, sameOrigin(), nil)
			if resp.StatusCode != tc.want {
				t.Fatalf("code at %v = %d, want %d", tc.offset, resp.StatusCode, tc.want)
			}
			if tc.want == 200 {
				loginCookie(t, resp)
				// The same code again, with a new password step: refused.
				mfa := e.mfaStep("user-a")
				if r := e.request(http.MethodPost, proto.PathLoginMFA, "", &proto.LoginMFA{MFAToken: mfa, Code: code}, sameOrigin(), nil); r.StatusCode != 401 {
					t.Fatalf("replayed TOTP code = %d, want 401", r.StatusCode)
				}
			}
		})
	}
	// A session without the second step has no login.
	mfa := e.mfaStep("user-a")
	if r := e.request(http.MethodGet, proto.PathMe, mfa, nil, nil, nil); r.StatusCode != 401 {
		t.Fatalf("MFA token as a bearer = %d, want 401", r.StatusCode)
	}
}

func TestRecoveryCodeWorksOnce(t *testing.T) {
	e := newAuthEnv(t, nil)
	_, codes := e.enableTOTP("user-a")
	mfa := e.mfaStep("user-a")
	resp := e.request(http.MethodPost, proto.PathLoginMFA, "", &proto.LoginMFA{MFAToken: mfa, RecoveryCode: strings.ToUpper(codes[3])}, sameOrigin(), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("recovery code = %d", resp.StatusCode)
	}
	var me proto.Me
	e.as(loginCookie(t, resp), http.MethodGet, proto.PathMe, nil, &me)
	if me.RecoveryCodes != 9 {
		t.Fatalf("%d recovery codes left, want 9", me.RecoveryCodes)
	}
	mfa = e.mfaStep("user-a")
	if r := e.request(http.MethodPost, proto.PathLoginMFA, "", &proto.LoginMFA{MFAToken: mfa, RecoveryCode: codes[3]}, sameOrigin(), nil); r.StatusCode != 401 {
		t.Fatalf("used recovery code again = %d, want 401", r.StatusCode)
	}
}

func TestSecondFactorFailuresAreThrottled(t *testing.T) {
	e := newAuthEnv(t, func(c *Config) { c.MaxAccountFailures = 3 })
	key, _ := e.enableTOTP("user-a")
	mfa := e.mfaStep("user-a")
	for range 3 {
		e.request(http.MethodPost, proto.PathLoginMFA, "", &proto.LoginMFA{MFAToken: mfa, Code: "000000"}, sameOrigin(), nil)
	}
	code, _ := authn.TOTPCode(key, e.clock.Now())
	if r := e.request(http.MethodPost, proto.PathLoginMFA, "", &proto.LoginMFA{MFAToken: mfa, Code: code}, sameOrigin(), nil); r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("right code after 3 failures = %d, want 429", r.StatusCode)
	}
}

func TestPasswordChangeEndsOtherLogins(t *testing.T) {
	e := newAuthEnv(t, nil)
	a, b := e.login("user-a"), e.login("user-a")
	resp := e.as(a, http.MethodPost, proto.PathPassword, &proto.PasswordChange{Current: "wrong password!", New: "another good password"}, nil)
	if resp.StatusCode != 401 {
		t.Fatalf("wrong current password = %d", resp.StatusCode)
	}
	resp = e.as(a, http.MethodPost, proto.PathPassword, &proto.PasswordChange{Current: password, New: "short"}, nil)
	if resp.StatusCode != 400 {
		t.Fatalf("weak new password = %d", resp.StatusCode)
	}
	resp = e.as(a, http.MethodPost, proto.PathPassword, &proto.PasswordChange{Current: password, New: "another good password"}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("password change = %d", resp.StatusCode)
	}
	fresh := loginCookie(t, resp)
	if r := e.as(b, http.MethodGet, proto.PathMe, nil, nil); r.StatusCode != 401 {
		t.Fatalf("other login after the change = %d, want 401", r.StatusCode)
	}
	if r := e.as(fresh, http.MethodGet, proto.PathMe, nil, nil); r.StatusCode != 200 {
		t.Fatalf("this browser's new login = %d", r.StatusCode)
	}
	if r := e.request(http.MethodPost, proto.PathLogin, "", &proto.Login{Username: "user-a", Password: "another good password"}, sameOrigin(), nil); r.StatusCode != 200 {
		t.Fatalf("login with the new password = %d", r.StatusCode)
	}
}

func TestCrossOriginStateChangesAreRefused(t *testing.T) {
	e := newAuthEnv(t, nil)
	secret := e.login("conf-a")
	agent := e.agent(agentKey, "printer-1")
	_ = agent
	sessionOrigin := "http://abcdefghijklmnopqrstuvwxyz." + domain
	for _, tc := range []struct {
		name string
		hdr  http.Header
	}{
		{"cross-site fetch", http.Header{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}}},
		{"same-site session origin", http.Header{"Origin": {sessionOrigin}, "Sec-Fetch-Site": {"same-site"}}},
		{"old browser, foreign origin", http.Header{"Origin": {"https://evil.example"}}},
		// Only fetch metadata tells this one apart (a sandboxed or
		// privacy-stripped request without Origin).
		{"cross-site without origin", http.Header{"Sec-Fetch-Site": {"cross-site"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Login CSRF.
			if r := e.request(http.MethodPost, proto.PathLogin, "", &proto.Login{Username: "conf-a", Password: password}, tc.hdr, nil); r.StatusCode != 403 || len(r.Cookies()) != 0 {
				t.Fatalf("login = %d, want 403", r.StatusCode)
			}
			// A state change riding on the cookie.
			r := e.request(http.MethodPatch, "/v1/devices/printer-1", "", &proto.DeviceUpdate{Enabled: ptr(true)}, withCookie(tc.hdr, secret), nil)
			if r.StatusCode != 403 {
				t.Fatalf("PATCH = %d, want 403", r.StatusCode)
			}
			if r.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Fatalf("CORS answered to %v", tc.hdr)
			}
			// Reads with the cookie from another origin are refused as well.
			if r := e.request(http.MethodGet, proto.PathOverview, "", nil, withCookie(tc.hdr, secret), nil); r.StatusCode != 403 {
				t.Fatalf("GET overview = %d, want 403", r.StatusCode)
			}
		})
	}
	if d, err := e.srv.store.Device(context.Background(), "agent-1", "printer-1"); err == nil && d.Enabled {
		t.Fatal("a cross-origin request enabled the device")
	}
	e.waitLog("cross-site request refused")
}

func TestAppAPIAnswersNoCORSToSessionOrigins(t *testing.T) {
	e := newAuthEnv(t, nil)
	agent := e.agent(agentKey, "printer-1")
	info := e.open(agent, techToken, "printer-1")
	for _, path := range []string{proto.PathDevices, proto.PathOverview, proto.PathMe, proto.PathUsers} {
		for _, m := range []string{http.MethodGet, http.MethodOptions} {
			r := e.request(m, path, techToken, nil, http.Header{"Origin": {info.ShellOrigin}, "Sec-Fetch-Site": {"same-site"}}, nil)
			if r.StatusCode != 403 || r.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Fatalf("%s %s from the session origin = %d ACAO %q", m, path, r.StatusCode, r.Header.Get("Access-Control-Allow-Origin"))
			}
		}
	}
}

func TestAPITokensAreScopedHashedAndRevocable(t *testing.T) {
	e := newAuthEnv(t, nil)
	secret := e.login("both-a")
	var tok proto.CreatedToken
	if r := e.as(secret, http.MethodPost, proto.PathTokens, &proto.NewToken{Name: "ci", Scopes: []string{proto.ScopeRead}}, &tok); r.StatusCode != 201 {
		t.Fatalf("create token = %d", r.StatusCode)
	}
	if _, err := e.srv.store.Token(context.Background(), tok.Token); err == nil {
		t.Fatal("token stored in the clear")
	}
	if r := e.request(http.MethodGet, proto.PathOverview, tok.Token, nil, nil, nil); r.StatusCode != 200 {
		t.Fatalf("read with a read token = %d", r.StatusCode)
	}
	if r := e.request(http.MethodPatch, "/v1/devices/printer-1", tok.Token, &proto.DeviceUpdate{Enabled: ptr(true)}, nil, nil); r.StatusCode != 403 {
		t.Fatalf("change with a read token = %d, want 403", r.StatusCode)
	}
	if r := e.request(http.MethodPost, proto.PathSessions, tok.Token, &proto.CreateSession{Device: "printer-1"}, nil, nil); r.StatusCode != 403 {
		t.Fatalf("session with a read token = %d, want 403", r.StatusCode)
	}
	// A token cannot mint tokens or change the password.
	if r := e.request(http.MethodPost, proto.PathTokens, tok.Token, &proto.NewToken{Name: "x", Scopes: []string{proto.ScopeManage}}, nil, nil); r.StatusCode != 403 {
		t.Fatalf("token minting a token = %d, want 403", r.StatusCode)
	}
	var list proto.TokenList
	e.as(secret, http.MethodGet, proto.PathTokens, nil, &list)
	if len(list.Tokens) != 1 || list.Tokens[0].ID != tok.ID {
		t.Fatalf("token list = %+v", list)
	}
	if r := e.as(secret, http.MethodDelete, proto.PathTokens+"/"+tok.ID, nil, nil); r.StatusCode != 204 {
		t.Fatalf("revoke = %d", r.StatusCode)
	}
	if r := e.request(http.MethodGet, proto.PathOverview, tok.Token, nil, nil, nil); r.StatusCode != 401 {
		t.Fatalf("revoked token = %d, want 401", r.StatusCode)
	}
}

func TestAdminChangesAreAudited(t *testing.T) {
	e := newAuthEnv(t, nil)
	e.agent(agentKey, "printer-1")
	admin, conf := e.login("admin"), e.login("conf-a")
	e.as(admin, http.MethodPut, "/v1/users/"+e.ids["nobody"]+"/roles/site-a", &proto.RoleUpdate{Roles: []string{"user"}}, nil)
	e.as(conf, http.MethodPatch, "/v1/devices/printer-1", &proto.DeviceUpdate{Enabled: ptr(true)}, nil)
	var log proto.AuditList
	if r := e.as(admin, http.MethodGet, proto.PathAudit, nil, &log); r.StatusCode != 200 {
		t.Fatalf("audit = %d", r.StatusCode)
	}
	n := len(log.Entries)
	if n < 2 {
		t.Fatalf("%d entries", n)
	}
	role, dev := log.Entries[n-2], log.Entries[n-1]
	if role.Actor != e.ids["admin"] || role.Action != "user.roles" || role.Target != e.ids["nobody"] || role.Site != "site-a" || role.Detail["after"] != "user" {
		t.Fatalf("role entry = %+v", role)
	}
	if dev.Actor != e.ids["conf-a"] || dev.Action != "device.enable" || dev.Target != "printer-1" || dev.Site != "site-a" || dev.Time.IsZero() {
		t.Fatalf("device entry = %+v", dev)
	}
	entries, _ := e.srv.store.Audit(context.Background(), accounts.AuditStream, 0, 0)
	if i := store.VerifyChain("", 1, entries); i >= 0 {
		t.Fatalf("audit chain broken at %d", i)
	}
	if r := e.as(conf, http.MethodGet, proto.PathAudit, nil, nil); r.StatusCode != 403 {
		t.Fatalf("audit as configurer = %d, want 403", r.StatusCode)
	}
}
