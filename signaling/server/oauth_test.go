package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/authn"
)

const verifier = "a-very-long-code-verifier-with-at-least-43-characters.~_"

// noFollow sends a request without following redirects.
func (e *authEnv) noFollow(method, path string, form url.Values, hdr http.Header) *http.Response {
	e.t.Helper()
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	req, err := http.NewRequest(method, e.ts.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	c := *e.ts.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func authzCookie(secret string) http.Header {
	return http.Header{"Cookie": {cookieAuthz + "=" + secret}}
}

func authorizeQuery(clientID, redirect string, mod func(url.Values)) string {
	q := url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect},
		"code_challenge": {authn.S256(verifier)}, "code_challenge_method": {"S256"}, "state": {"st-123"},
	}
	if mod != nil {
		mod(q)
	}
	return proto.PathAuthorize + "?" + q.Encode()
}

// sessionFixture is a session of user-a with an enabled device.
type sessionFixture struct {
	e      *authEnv
	agent  *peer
	user   string // login secret of user-a
	info   proto.SessionInfo
	cb     string // redirect URI
	origin string
}

func newSessionFixture(t *testing.T) *sessionFixture {
	e := newAuthEnv(t, nil)
	agent := e.agent(agentKey, "printer-1")
	conf := e.login("conf-a")
	e.as(conf, http.MethodPatch, "/v1/devices/printer-1", &proto.DeviceUpdate{Enabled: ptr(true)}, nil)
	user := e.login("user-a")
	info := e.openAs(agent, user, "printer-1")
	return &sessionFixture{e: e, agent: agent, user: user, info: info, cb: info.ShellOrigin + proto.PathSessionCallback, origin: info.ShellOrigin}
}

// code runs the authorization request and returns the code.
func (f *sessionFixture) code(info proto.SessionInfo) string {
	f.e.t.Helper()
	cb := info.ShellOrigin + proto.PathSessionCallback
	resp := f.e.noFollow(http.MethodGet, authorizeQuery(info.Session, cb, nil), nil, authzCookie(f.user))
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), cb+"?") || loc.Query().Get("state") != "st-123" || loc.Query().Get("code") == "" {
		f.e.t.Fatalf("authorize = %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query().Get("code")
}

func tokenForm(code, clientID, redirect, verifier string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {clientID}, "redirect_uri": {redirect}, "code_verifier": {verifier}}
}

// exchange posts to the token endpoint from origin ("" for none).
func (f *sessionFixture) exchange(form url.Values, origin string) (*http.Response, proto.TokenResponse, proto.OAuthError) {
	f.e.t.Helper()
	var ok proto.TokenResponse
	var bad proto.OAuthError
	req, _ := http.NewRequest(http.MethodPost, f.e.ts.URL+proto.PathToken, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
	}
	resp, err := f.e.ts.Client().Do(req)
	if err != nil {
		f.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == 200 {
		decodeJSON(f.e.t, resp, &ok)
	} else {
		decodeJSON(f.e.t, resp, &bad)
	}
	return resp, ok, bad
}

func (f *sessionFixture) sessionSocketStatus(token, session string) int {
	f.e.t.Helper()
	// No Origin: the most permissive client; browsers on another
	// session's origin are refused earlier, for the origin (auth_test.go).
	h := http.Header{}
	if session != "" {
		h.Set("Host", proto.ShellHostPrefix+session+"."+domain)
	}
	p, resp, err := f.e.dial(proto.PathSessionSocket, dialOpts{header: h, protocols: []string{proto.SocketProtocol, proto.SessionTokenProtocolPrefix + token}, noRead: true})
	if err == nil {
		p.close()
		return 101
	}
	if resp == nil {
		f.e.t.Fatal(err)
	}
	return resp.StatusCode
}

func TestOAuthSessionFlow(t *testing.T) {
	f := newSessionFixture(t)
	e := f.e
	// The session origin's own configuration.
	var cfg proto.SessionAuth
	e.request(http.MethodGet, proto.PathSessionAuth, "", nil, http.Header{"Host": {proto.ShellHostPrefix + f.info.Session + "." + domain}}, &cfg)
	if cfg.ClientID != f.info.Session || cfg.RedirectURI != f.cb || cfg.TokenEndpoint != appOrigin+proto.PathToken || cfg.AuthorizationEndpoint != appOrigin+proto.PathAuthorize {
		t.Fatalf("auth.json = %+v", cfg)
	}

	code := f.code(f.info)
	resp, tok, bad := f.exchange(tokenForm(code, f.info.Session, f.cb, verifier), f.origin)
	if resp.StatusCode != 200 || tok.AccessToken == "" || tok.TokenType != "Bearer" || tok.Session != f.info.Session || tok.ExpiresIn <= 0 || tok.ExpiresIn > 1800 {
		t.Fatalf("token = %d %+v %+v", resp.StatusCode, tok, bad)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != f.origin {
		t.Fatalf("ACAO = %q, want the session origin", got)
	}
	if resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatal("token endpoint allows credentials")
	}
	// Issued to a browser, the token opens nothing until it is bound.
	e.refusedClient(bearerHeader(tok.AccessToken)).nextError(proto.CodeUnauthorized)
	// Bound, the token joins this session, and nothing else.
	client := e.boundClient(f.info, tok.AccessToken)
	client.close()
	if r := e.request(http.MethodGet, proto.PathDevices, tok.AccessToken, nil, nil, nil); r.StatusCode != 401 {
		t.Fatalf("session token on the API = %d, want 401", r.StatusCode)
	}
	// Session B of the same user: A's token does not open it.
	other := e.openAs(f.agent, f.user, "printer-1")
	if st := f.sessionSocketStatus(tok.AccessToken, other.Session); st != 401 {
		t.Fatalf("token of session A on session B = %d, want 401", st)
	}
	// After the session ends the token is useless.
	if r := e.as(f.user, http.MethodDelete, proto.PathSessions+"/"+f.info.Session, nil, nil); r.StatusCode != 204 {
		t.Fatalf("end session = %d", r.StatusCode)
	}
	if st := f.sessionSocketStatus(tok.AccessToken, f.info.Session); st != 404 {
		t.Fatalf("ended session's origin = %d, want 404", st)
	}
	if st := f.sessionSocketStatus(tok.AccessToken, ""); st != 401 {
		t.Fatalf("token after the session ended = %d, want 401", st)
	}
}

func TestOAuthAuthorizeRefusals(t *testing.T) {
	f := newSessionFixture(t)
	e := f.e
	other := e.login("both-a")
	tests := []struct {
		name      string
		query     string
		cookie    http.Header
		wantCode  int
		wantError string // OAuth error in the redirect; "" for none
		wantLoc   string // prefix of Location when not an error redirect
	}{
		{"code_challenge_method plain", authorizeQuery(f.info.Session, f.cb, func(q url.Values) {
			q.Set("code_challenge_method", "plain")
			q.Set("code_challenge", verifier)
		}), authzCookie(f.user), 302, proto.OAuthInvalidRequest, ""},
		{"no challenge method", authorizeQuery(f.info.Session, f.cb, func(q url.Values) { q.Del("code_challenge_method") }), authzCookie(f.user), 302, proto.OAuthInvalidRequest, ""},
		{"no state", authorizeQuery(f.info.Session, f.cb, func(q url.Values) { q.Del("state") }), authzCookie(f.user), 302, proto.OAuthInvalidRequest, ""},
		{"implicit grant", authorizeQuery(f.info.Session, f.cb, func(q url.Values) { q.Set("response_type", "token") }), authzCookie(f.user), 302, proto.OAuthUnsupportedResponseType, ""},
		{"another user's session", authorizeQuery(f.info.Session, f.cb, nil), authzCookie(other), 302, proto.OAuthAccessDenied, ""},
		{"not signed in", authorizeQuery(f.info.Session, f.cb, nil), nil, 302, "", "/?next=%2Foauth%2Fauthorize%3F"},
		{"strict cookie is not enough for the navigation", authorizeQuery(f.info.Session, f.cb, nil), http.Header{"Cookie": {cookieLogin + "=" + f.user}}, 302, "", "/?next="},
		{"redirect_uri with another path", authorizeQuery(f.info.Session, f.origin+"/evil", nil), authzCookie(f.user), 400, "", ""},
		{"redirect_uri of another origin", authorizeQuery(f.info.Session, "https://evil.example"+proto.PathSessionCallback, nil), authzCookie(f.user), 400, "", ""},
		{"redirect_uri with a query", authorizeQuery(f.info.Session, f.cb+"?x=1", nil), authzCookie(f.user), 400, "", ""},
		{"unknown session", authorizeQuery("abcdefghijklmnopqrstuvwxyz", "http://abcdefghijklmnopqrstuvwxyz."+domain+proto.PathSessionCallback, nil), authzCookie(f.user), 400, "", ""},
		{"CLI with a non-loopback redirect", authorizeQuery(proto.CLIClientID, "http://evil.example:8000/callback", nil), authzCookie(f.user), 400, "", ""},
		{"CLI over https to a name", authorizeQuery(proto.CLIClientID, "http://localhost.evil.example:8000/callback", nil), authzCookie(f.user), 400, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.noFollow(http.MethodGet, tt.query, nil, tt.cookie)
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("status %d, want %d (Location %q)", resp.StatusCode, tt.wantCode, resp.Header.Get("Location"))
			}
			loc := resp.Header.Get("Location")
			switch {
			case tt.wantCode == 400:
				if loc != "" {
					t.Fatalf("redirected to %q for an unvalidated client", loc)
				}
			case tt.wantError != "":
				u, _ := url.Parse(loc)
				if !strings.HasPrefix(loc, f.cb+"?") || u.Query().Get("error") != tt.wantError || u.Query().Get("code") != "" {
					t.Fatalf("Location %q, want error %s at the callback", loc, tt.wantError)
				}
			default:
				if !strings.HasPrefix(loc, tt.wantLoc) {
					t.Fatalf("Location %q, want prefix %q", loc, tt.wantLoc)
				}
			}
		})
	}
}

func TestOAuthTokenRefusals(t *testing.T) {
	f := newSessionFixture(t)
	e := f.e
	other := e.openAs(f.agent, f.user, "printer-1")
	otherCB := other.ShellOrigin + proto.PathSessionCallback

	t.Run("wrong verifier burns the code", func(t *testing.T) {
		code := f.code(f.info)
		_, _, bad := f.exchange(tokenForm(code, f.info.Session, f.cb, verifier+"x"), f.origin)
		if bad.Error != proto.OAuthInvalidGrant {
			t.Fatalf("wrong verifier: %+v", bad)
		}
		if _, _, bad := f.exchange(tokenForm(code, f.info.Session, f.cb, verifier), f.origin); bad.Error != proto.OAuthInvalidGrant {
			t.Fatalf("right verifier after a wrong one: %+v", bad)
		}
	})
	t.Run("reused code revokes its token", func(t *testing.T) {
		code := f.code(f.info)
		resp, tok, _ := f.exchange(tokenForm(code, f.info.Session, f.cb, verifier), f.origin)
		if resp.StatusCode != 200 {
			t.Fatalf("first exchange = %d", resp.StatusCode)
		}
		client := e.boundClient(f.info, tok.AccessToken)
		_, _, bad := f.exchange(tokenForm(code, f.info.Session, f.cb, verifier), f.origin)
		if bad.Error != proto.OAuthInvalidGrant || !strings.Contains(bad.Description, "revoked") {
			t.Fatalf("replay: %+v", bad)
		}
		if err := client.waitClosed(); closeCode(err) != 1008 {
			t.Fatalf("client with the revoked token closed with %v, want 1008", err)
		}
		if st := f.sessionSocketStatus(tok.AccessToken, f.info.Session); st != 401 {
			t.Fatalf("revoked token = %d, want 401", st)
		}
		e.waitLog("authorization code replayed")
	})
	t.Run("expired code", func(t *testing.T) {
		code := f.code(f.info)
		e.clock.Add(61 * time.Second)
		if _, _, bad := f.exchange(tokenForm(code, f.info.Session, f.cb, verifier), f.origin); bad.Error != proto.OAuthInvalidGrant {
			t.Fatalf("expired code: %+v", bad)
		}
	})
	t.Run("redirect_uri mismatch", func(t *testing.T) {
		code := f.code(f.info)
		if _, _, bad := f.exchange(tokenForm(code, f.info.Session, f.origin+"/", verifier), f.origin); bad.Error != proto.OAuthInvalidGrant {
			t.Fatalf("mismatch: %+v", bad)
		}
	})
	t.Run("code of session A for client B", func(t *testing.T) {
		code := f.code(f.info)
		if _, _, bad := f.exchange(tokenForm(code, other.Session, otherCB, verifier), other.ShellOrigin); bad.Error != proto.OAuthInvalidGrant {
			t.Fatalf("cross-client code: %+v", bad)
		}
	})
	t.Run("origin of another session", func(t *testing.T) {
		code := f.code(f.info)
		resp, _, bad := f.exchange(tokenForm(code, f.info.Session, f.cb, verifier), other.ShellOrigin)
		if resp.StatusCode != 403 || bad.Error != proto.OAuthInvalidClient || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("foreign origin: %d %+v ACAO %q", resp.StatusCode, bad, resp.Header.Get("Access-Control-Allow-Origin"))
		}
		// The refused request did not burn the code.
		if resp, _, _ := f.exchange(tokenForm(code, f.info.Session, f.cb, verifier), f.origin); resp.StatusCode != 200 {
			t.Fatalf("code after a refused origin = %d", resp.StatusCode)
		}
	})
	t.Run("app origin is not a session client", func(t *testing.T) {
		code := f.code(f.info)
		if resp, _, _ := f.exchange(tokenForm(code, f.info.Session, f.cb, verifier), appOrigin); resp.StatusCode != 403 {
			t.Fatalf("app origin on the token endpoint = %d, want 403", resp.StatusCode)
		}
	})
	for _, gt := range []string{"password", "client_credentials", "implicit", "refresh_token"} {
		t.Run("grant "+gt, func(t *testing.T) {
			form := url.Values{"grant_type": {gt}, "client_id": {f.info.Session}, "redirect_uri": {f.cb}, "username": {"user-a"}, "password": {password}}
			if _, _, bad := f.exchange(form, f.origin); bad.Error != proto.OAuthUnsupportedGrantType {
				t.Fatalf("%s grant: %+v", gt, bad)
			}
		})
	}
	t.Run("token after the session ended", func(t *testing.T) {
		code := f.code(other)
		e.as(f.user, http.MethodDelete, proto.PathSessions+"/"+other.Session, nil, nil)
		resp, _, bad := f.exchange(tokenForm(code, other.Session, otherCB, verifier), "")
		if resp.StatusCode != 400 || bad.Error != proto.OAuthInvalidGrant {
			t.Fatalf("exchange for an ended session: %d %+v", resp.StatusCode, bad)
		}
	})
}

func TestOAuthCLIFlow(t *testing.T) {
	f := newSessionFixture(t)
	e := f.e
	cb := "http://127.0.0.1:45678/callback"
	q := authorizeQuery(proto.CLIClientID, cb, nil)
	resp := e.noFollow(http.MethodGet, q, nil, authzCookie(f.user))
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "form-action 'self' http://127.0.0.1:45678") {
		t.Fatalf("consent page = %d CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
	u, _ := url.Parse(q)
	form := u.Query()
	form.Set("decision", "allow")
	both := http.Header{"Cookie": {cookieLogin + "=" + f.user + "; " + cookieAuthz + "=" + f.user}, "Origin": {appOrigin}, "Sec-Fetch-Site": {"same-origin"}}
	// The consent must be a same-origin POST.
	cross := http.Header{"Cookie": both["Cookie"], "Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}}
	if r := e.noFollow(http.MethodPost, proto.PathAuthorize, form, cross); r.StatusCode != 403 {
		t.Fatalf("cross-site consent = %d, want 403", r.StatusCode)
	}
	r := e.noFollow(http.MethodPost, proto.PathAuthorize, form, both)
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.StatusCode != 302 || loc == nil || !strings.HasPrefix(loc.String(), cb+"?") || loc.Query().Get("code") == "" {
		t.Fatalf("consent = %d Location %q", r.StatusCode, r.Header.Get("Location"))
	}
	_, tok, bad := f.exchange(tokenForm(loc.Query().Get("code"), proto.CLIClientID, cb, verifier), "")
	if tok.AccessToken == "" || tok.Scope != "read sessions" {
		t.Fatalf("CLI token: %+v %+v", tok, bad)
	}
	if r := e.request(http.MethodGet, proto.PathOverview, tok.AccessToken, nil, nil, nil); r.StatusCode != 200 {
		t.Fatalf("CLI token reads = %d", r.StatusCode)
	}
	if r := e.request(http.MethodPatch, "/v1/devices/printer-1", tok.AccessToken, &proto.DeviceUpdate{Enabled: ptr(false)}, nil, nil); r.StatusCode != 403 {
		t.Fatalf("CLI token changes settings = %d, want 403", r.StatusCode)
	}
	// A browser page cannot exchange a CLI code.
	form.Set("decision", "allow")
	r = e.noFollow(http.MethodPost, proto.PathAuthorize, form, both)
	loc, _ = url.Parse(r.Header.Get("Location"))
	if resp, _, _ := f.exchange(tokenForm(loc.Query().Get("code"), proto.CLIClientID, cb, verifier), "https://evil.example"); resp.StatusCode != 403 {
		t.Fatalf("CLI code exchanged from a browser origin = %d, want 403", resp.StatusCode)
	}
	// Denied consent.
	form.Set("decision", "deny")
	r = e.noFollow(http.MethodPost, proto.PathAuthorize, form, both)
	if loc, _ := url.Parse(r.Header.Get("Location")); loc == nil || loc.Query().Get("error") != proto.OAuthAccessDenied {
		t.Fatalf("deny: Location %q", r.Header.Get("Location"))
	}
}

func decodeJSON(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decode: %v", err)
	}
}

// TestOAuthCLICodePage: client porthole-cli may name the app's own code
// page as its redirect URI, exactly; the code it shows is exchanged with
// the PKCE verifier like a loopback one. Near misses are refused before
// anything is redirected.
func TestOAuthCLICodePage(t *testing.T) {
	f := newSessionFixture(t)
	e := f.e
	page := appOrigin + proto.PathCLICode
	for _, bad := range []string{page + "?x=1", page + "x", "https://evil.example" + proto.PathCLICode, strings.Replace(page, "://", "s://", 1), page + "#f"} {
		if r := e.noFollow(http.MethodGet, authorizeQuery(proto.CLIClientID, bad, nil), nil, authzCookie(f.user)); r.StatusCode != 400 || r.Header.Get("Location") != "" {
			t.Errorf("redirect_uri %q: %d Location %q, want 400 and no redirect", bad, r.StatusCode, r.Header.Get("Location"))
		}
	}
	q := authorizeQuery(proto.CLIClientID, page, nil)
	req, _ := http.NewRequest(http.MethodGet, e.ts.URL+q, nil)
	req.Header = authzCookie(f.user)
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "on this or another computer") || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "form-action 'self';") {
		t.Fatalf("consent page = %d CSP %q\n%s", resp.StatusCode, resp.Header.Get("Content-Security-Policy"), body)
	}
	u, _ := url.Parse(q)
	form := u.Query()
	form.Set("decision", "allow")
	both := http.Header{"Cookie": {cookieLogin + "=" + f.user + "; " + cookieAuthz + "=" + f.user}, "Origin": {appOrigin}, "Sec-Fetch-Site": {"same-origin"}}
	r := e.noFollow(http.MethodPost, proto.PathAuthorize, form, both)
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.StatusCode != 302 || loc == nil || !strings.HasPrefix(loc.String(), page+"?") {
		t.Fatalf("consent = %d Location %q", r.StatusCode, r.Header.Get("Location"))
	}
	shown, err := e.ts.Client().Get(e.ts.URL + proto.PathCLICode + "?" + loc.RawQuery)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(shown.Body)
	shown.Body.Close()
	want := form.Get("state") + "." + loc.Query().Get("code")
	if shown.StatusCode != 200 || !strings.Contains(string(b), ">"+want+"</pre>") || shown.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("code page = %d\n%s", shown.StatusCode, b)
	}
	for _, q := range []string{"", "?state=abc", "?state=a.b&code=c", "?state=abc&code=" + url.QueryEscape("Call +1-555 now to finish signing in"), "?state=<b>&code=x"} {
		if r := e.noFollow(http.MethodGet, proto.PathCLICode+q, nil, nil); r.StatusCode != 400 {
			t.Errorf("code page %q = %d, want 400 and no code shown", q, r.StatusCode)
		}
	}
	if _, tok, bad := f.exchange(tokenForm(loc.Query().Get("code"), proto.CLIClientID, page, verifier), ""); tok.AccessToken == "" {
		t.Fatalf("code page code: %+v", bad)
	}
	var md proto.AuthServerMetadata
	mr, err := e.ts.Client().Get(e.ts.URL + proto.PathOAuthMetadata)
	if err != nil {
		t.Fatal(err)
	}
	decodeJSON(t, mr, &md)
	mr.Body.Close()
	if md.CLICodeRedirectURI != page {
		t.Fatalf("metadata names the code page %q, want %q", md.CLICodeRedirectURI, page)
	}
}
