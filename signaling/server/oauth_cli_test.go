package server

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/porthole-dev/porthole/proto"
)

// cliToken runs `porthole login`'s flow for the fixture's user and returns
// the API token.
func (f *sessionFixture) cliToken(cb string) string {
	f.e.t.Helper()
	u, _ := url.Parse(authorizeQuery(proto.CLIClientID, cb, nil))
	form := u.Query()
	form.Set("decision", "allow")
	both := http.Header{"Cookie": {cookieLogin + "=" + f.user + "; " + cookieAuthz + "=" + f.user}, "Origin": {appOrigin}, "Sec-Fetch-Site": {"same-origin"}}
	r := f.e.noFollow(http.MethodPost, proto.PathAuthorize, form, both)
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.StatusCode != http.StatusFound || loc == nil || loc.Query().Get("code") == "" {
		f.e.t.Fatalf("consent = %d Location %q", r.StatusCode, r.Header.Get("Location"))
	}
	_, tok, bad := f.exchange(tokenForm(loc.Query().Get("code"), proto.CLIClientID, cb, verifier), "")
	if tok.AccessToken == "" {
		f.e.t.Fatalf("CLI token: %+v", bad)
	}
	return tok.AccessToken
}

func TestOAuthMetadataNamesTheAppOriginEndpoints(t *testing.T) {
	e := newAuthEnv(t, nil)
	var m proto.AuthServerMetadata
	if r := e.request(http.MethodGet, proto.PathOAuthMetadata, "", nil, nil, &m); r.StatusCode != 200 {
		t.Fatalf("metadata = %d", r.StatusCode)
	}
	if m.Issuer != appOrigin || m.AuthorizationEndpoint != appOrigin+proto.PathAuthorize || m.TokenEndpoint != appOrigin+proto.PathToken ||
		m.RevocationEndpoint != appOrigin+proto.PathRevoke || len(m.CodeChallengeMethods) != 1 || m.CodeChallengeMethods[0] != "S256" {
		t.Fatalf("metadata %+v", m)
	}
}

// TestCLITokenOpensSessionsUntilRevoked: the API token `porthole login`
// gets lists devices and opens sessions; after RFC 7009 revocation it does
// neither. The revocation endpoint refuses browsers and does not touch
// login secrets.
func TestCLITokenOpensSessionsUntilRevoked(t *testing.T) {
	f := newSessionFixture(t)
	e := f.e
	tok := f.cliToken("http://127.0.0.1:45678/callback")

	var l proto.DeviceList
	if r := e.request(http.MethodGet, proto.PathDevices, tok, nil, nil, &l); r.StatusCode != 200 || len(l.Devices) != 1 {
		t.Fatalf("GET /v1/devices with the CLI token = %d, %d devices", r.StatusCode, len(l.Devices))
	}
	info := e.open(f.agent, tok, "printer-1")
	if r := e.request(http.MethodDelete, proto.PathSessions+"/"+info.Session, tok, nil, nil, nil); r.StatusCode != 204 {
		t.Fatalf("DELETE own session with the CLI token = %d", r.StatusCode)
	}

	revoke := func(token string, hdr http.Header) int {
		t.Helper()
		return e.noFollow(http.MethodPost, proto.PathRevoke, url.Values{"token": {token}, "client_id": {proto.CLIClientID}}, hdr).StatusCode
	}
	// A browser page holding the token cannot use the endpoint.
	if s := revoke(tok, http.Header{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}}); s != 403 {
		t.Fatalf("revocation from a browser origin = %d, want 403", s)
	}
	// The login secret is no API token: the endpoint says 200 (RFC 7009)
	// and the login goes on.
	if s := revoke(f.user, nil); s != 200 {
		t.Fatalf("revoking a login secret = %d, want 200", s)
	}
	if r := e.as(f.user, http.MethodGet, proto.PathMe, nil, nil); r.StatusCode != 200 {
		t.Fatalf("login after a revocation attempt = %d, want 200", r.StatusCode)
	}
	if s := revoke(tok, nil); s != 200 {
		t.Fatalf("revocation = %d, want 200", s)
	}
	if r := e.request(http.MethodGet, proto.PathDevices, tok, nil, nil, nil); r.StatusCode != 401 {
		t.Fatalf("GET /v1/devices after revocation = %d, want 401", r.StatusCode)
	}
	if r := e.request(http.MethodPost, proto.PathSessions, tok, &proto.CreateSession{Device: "printer-1"}, nil, nil); r.StatusCode != 401 {
		t.Fatalf("POST /v1/sessions after revocation = %d, want 401", r.StatusCode)
	}
	// Unknown tokens: 200 as well, nothing to tell.
	if s := revoke("no-such-token", nil); s != 200 {
		t.Fatalf("revoking an unknown token = %d, want 200", s)
	}
	if r := e.noFollow(http.MethodGet, proto.PathRevoke+"?token="+url.QueryEscape(tok), nil, nil); r.StatusCode != 405 {
		t.Fatalf("GET revocation = %d, want 405", r.StatusCode)
	}
	if !strings.Contains(e.logs.String(), "API token revoked") {
		t.Fatal("revocation not logged")
	}
}
