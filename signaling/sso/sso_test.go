package sso

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/signaling/store"
)

func TestParseGroupRole(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want GroupRole
		err  string
	}{
		{in: "porthole-admins=admin", want: GroupRole{Group: "porthole-admins", Admin: true}},
		{in: "acme-techs=acme-hq:user", want: GroupRole{Group: "acme-techs", Site: "acme-hq", Roles: []store.Role{"user"}}},
		{in: "CN=Ops,OU=Groups=acme-hq:user+configurer", want: GroupRole{Group: "CN=Ops,OU=Groups", Site: "acme-hq", Roles: []store.Role{"user", "configurer"}}},
		{in: "acme=acme-hq:owner", err: "unknown role"},
		{in: "acme=Bad Site:user", err: "not admin or SITE:ROLE"},
		{in: "=admin", err: "want GROUP="},
		{in: "acme", err: "want GROUP="},
	} {
		got, err := ParseGroupRole(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got.Group != tc.want.Group || got.Admin != tc.want.Admin || got.Site != tc.want.Site || len(got.Roles) != len(tc.want.Roles) {
			t.Errorf("%q: got %+v, %v", tc.in, got, err)
		}
	}
}

func provider(t *testing.T, groups ...string) *Provider {
	t.Helper()
	var gs []GroupRole
	for _, g := range groups {
		gr, err := ParseGroupRole(g)
		if err != nil {
			t.Fatal(err)
		}
		gs = append(gs, gr)
	}
	p, err := New(Config{Issuer: "https://idp.example", ClientID: "porthole", RedirectURL: "https://app.example/v1/sso/callback", Groups: gs})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestClaimsMapToNameAndRoles(t *testing.T) {
	p := provider(t, "admins=admin", "techs=acme:user", "cfg=acme:configurer", "other=beta:user")
	for _, tc := range []struct {
		name      string
		claims    map[string]any
		wantName  string
		wantAdmin bool
		wantRoles string
		err       error
	}{
		{"groups as a list", map[string]any{"preferred_username": "Alice", "groups": []any{"techs", "cfg", "unrelated"}},
			"alice", false, "acme=configurer+user", nil},
		{"one group as a string", map[string]any{"preferred_username": "bob", "groups": "admins"}, "bob", true, "", nil},
		{"no groups", map[string]any{"preferred_username": "carol"}, "carol", false, "", nil},
		{"verified email as the fallback", map[string]any{"email": "dan@example.com", "email_verified": true}, "dan@example.com", false, "", nil},
		{"unverified email is not a name", map[string]any{"email": "eve@example.com"}, "", false, "", ErrClaims},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, _, err := p.user("https://idp.example", "sub-1", tc.claims)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var roles []string
			for site, rs := range u.Roles {
				var s []string
				for _, r := range rs {
					s = append(s, string(r))
				}
				// The order of groups in the claim decides the order here; sort.
				if len(s) == 2 && s[0] > s[1] {
					s[0], s[1] = s[1], s[0]
				}
				roles = append(roles, site+"="+strings.Join(s, "+"))
			}
			if u.Name != tc.wantName || u.Admin != tc.wantAdmin || strings.Join(roles, ";") != tc.wantRoles || u.Subject != "https://idp.example sub-1" {
				t.Fatalf("got %+v", u)
			}
		})
	}
}

func TestFinishRefusesAnAnswerOfAnotherBrowser(t *testing.T) {
	p := provider(t)
	now := time.Now()
	f := Flow{State: "mine", Nonce: "n", Verifier: "v", Expires: now.Add(time.Minute)}
	for _, tc := range []struct {
		name string
		cb   Callback
		f    Flow
		want error
	}{
		{"another state", Callback{Code: "c", State: "theirs"}, f, ErrState},
		{"no state", Callback{Code: "c"}, f, ErrState},
		{"flow expired", Callback{Code: "c", State: "mine"}, Flow{State: "mine", Nonce: "n", Verifier: "v", Expires: now.Add(-time.Second)}, ErrState},
		{"provider said no", Callback{State: "mine", Error: "access_denied"}, f, ErrDenied},
		{"no code", Callback{State: "mine"}, f, ErrDenied},
	} {
		if _, _, err := p.Finish(context.Background(), tc.cb, tc.f); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestFlowCookieRoundTripAndMalformed(t *testing.T) {
	f := Flow{State: "s", Nonce: "n", Verifier: "v", Expires: time.Unix(1e9, 0).UTC()}
	got, err := DecodeFlow(f.Encode())
	if err != nil || got != f {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for _, bad := range []string{"", "!!!", "e30", strings.Repeat("A", 2000)} {
		if _, err := DecodeFlow(bad); !errors.Is(err, ErrState) {
			t.Errorf("%q accepted", bad)
		}
	}
	cb := CallbackFrom(url.Values{"code": {"c"}, "state": {"s"}})
	if cb.Code != "c" || cb.State != "s" {
		t.Fatal(cb)
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Issuer: "idp.example", ClientID: "x", RedirectURL: "https://a/cb"},
		{Issuer: "https://idp.example", RedirectURL: "https://a/cb"},
		{Issuer: "https://idp.example", ClientID: "x", RedirectURL: "/cb"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("accepted %+v", cfg)
		}
	}
}
