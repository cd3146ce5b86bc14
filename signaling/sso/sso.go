// Package sso is single sign-on with an OpenID Connect identity provider:
// the authorization code flow with PKCE (S256), a nonce, and the ID
// token verified by github.com/coreos/go-oidc against the provider's
// published keys; the token exchange is golang.org/x/oauth2. What it
// yields is an accounts.SSOUser: the provider's stable subject, a login
// name from a configured claim, and the admin flag and site roles that
// the user's groups map to (GroupRole).
//
// The flow's secrets (state, nonce, PKCE verifier) travel in a cookie of
// the browser that started it (Flow), not in signaling's store, so any
// node of a cluster can finish what another began. The state in the
// provider's answer must equal the cookie's: an answer started by
// another browser (login CSRF) is refused.
//
// Provider discovery is done on first use, not at start, so a provider
// that is down when signaling starts only makes single sign-on fail
// until it is back; local sign-in is unaffected.
package sso

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/porthole-dev/porthole/signaling/accounts"
	"github.com/porthole-dev/porthole/signaling/store"
)

// FlowTTL is how long a started sign-in may take at the provider.
const FlowTTL = 10 * time.Minute

// Errors; compare with errors.Is.
var (
	ErrState       = errors.New("the sign-in answer does not belong to this browser's sign-in")
	ErrDenied      = errors.New("the identity provider refused the sign-in")
	ErrUnavailable = errors.New("the identity provider could not be used")
	ErrClaims      = errors.New("the identity provider's ID token lacks what Porthole needs")
)

// GroupRole maps members of an identity provider group to a Porthole
// role: admin, or roles on one site.
type GroupRole struct {
	Group string
	Admin bool
	Site  string
	Roles []store.Role
}

// ParseGroupRole reads "GROUP=admin" or "GROUP=SITE:ROLE[+ROLE…]". The
// last "=" separates, so a group may be an LDAP DN (CN=Ops,OU=Groups).
func ParseGroupRole(s string) (GroupRole, error) {
	i := strings.LastIndex(s, "=")
	if i <= 0 || i == len(s)-1 {
		return GroupRole{}, fmt.Errorf("%q: want GROUP=admin or GROUP=SITE:ROLE[+ROLE]", s)
	}
	group, target := s[:i], s[i+1:]
	if target == "admin" {
		return GroupRole{Group: group, Admin: true}, nil
	}
	site, roles, ok := strings.Cut(target, ":")
	if !ok || !accounts.ValidSiteID(site) {
		return GroupRole{}, fmt.Errorf("%q: %q is not admin or SITE:ROLE", s, target)
	}
	g := GroupRole{Group: group, Site: site}
	for _, r := range strings.Split(roles, "+") {
		role := store.Role(r)
		if !role.Valid() {
			return GroupRole{}, fmt.Errorf("%q: unknown role %q (configurer or user)", s, r)
		}
		g.Roles = append(g.Roles, role)
	}
	return g, nil
}

// Config configures a Provider.
type Config struct {
	// Issuer is the provider's issuer URL, exactly as its discovery
	// document states it.
	Issuer string
	// ClientID and ClientSecret are Porthole's registration at the
	// provider; an empty secret is a public client (PKCE alone).
	ClientID, ClientSecret string
	// RedirectURL is the app origin + proto.PathSSOCallback, registered
	// at the provider.
	RedirectURL string
	// Scopes are requested besides openid, profile and email (e.g.
	// "groups", which some providers need to include the claim).
	Scopes []string
	// GroupsClaim names the ID token claim listing groups; "" is "groups".
	GroupsClaim string
	// UsernameClaim names the claim that becomes the login name; ""
	// means preferred_username. The email claim is the fallback.
	UsernameClaim string
	// Groups map groups to roles.
	Groups []GroupRole
	// Client talks to the provider; nil means a client with a 15 s
	// timeout.
	Client *http.Client
	// Now is the clock the ID token's expiry is checked against; nil is
	// time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Provider runs sign-ins with one identity provider. Safe for concurrent
// use.
type Provider struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	oauth    *oauth2.Config
	verifier *oidc.IDTokenVerifier
}

// New checks cfg; it does no I/O.
func New(cfg Config) (*Provider, error) {
	if u, err := url.Parse(cfg.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("sso: issuer %q is not an http(s) URL", cfg.Issuer)
	}
	if cfg.ClientID == "" {
		return nil, errors.New("sso: a client ID is required")
	}
	if u, err := url.Parse(cfg.RedirectURL); err != nil || u.Host == "" {
		return nil, fmt.Errorf("sso: redirect URL %q is not absolute", cfg.RedirectURL)
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if cfg.UsernameClaim == "" {
		cfg.UsernameClaim = "preferred_username"
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 15 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &Provider{cfg: cfg, log: cfg.Logger}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	return p, nil
}

// discover fetches the provider's metadata once it succeeds.
func (p *Provider) discover(ctx context.Context) (*oauth2.Config, *oidc.IDTokenVerifier, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.oauth != nil {
		return p.oauth, p.verifier, nil
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, p.cfg.Client), 15*time.Second)
	defer cancel()
	op, err := oidc.NewProvider(ctx, p.cfg.Issuer)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: discovery at %s: %w", ErrUnavailable, p.cfg.Issuer, err)
	}
	p.oauth = &oauth2.Config{
		ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, RedirectURL: p.cfg.RedirectURL,
		Endpoint: op.Endpoint(), Scopes: append([]string{oidc.ScopeOpenID, "profile", "email"}, p.cfg.Scopes...),
	}
	// The key set is fetched with the provider's client too, in the
	// background context: it outlives this request.
	p.verifier = op.VerifierContext(oidc.ClientContext(context.Background(), p.cfg.Client),
		&oidc.Config{ClientID: p.cfg.ClientID, Now: p.cfg.Now})
	p.log.Info("identity provider discovered", "issuer", p.cfg.Issuer)
	return p.oauth, p.verifier, nil
}

// Flow is a sign-in in progress, kept in the browser's cookie.
type Flow struct {
	State    string    `json:"s"`
	Nonce    string    `json:"n"`
	Verifier string    `json:"v"`
	Expires  time.Time `json:"e"`
}

// Encode is the cookie value.
func (f Flow) Encode() string {
	b, _ := json.Marshal(f)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeFlow reads a cookie value; an error for anything malformed.
func DecodeFlow(v string) (Flow, error) {
	var f Flow
	if len(v) > 1024 {
		return f, ErrState
	}
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || json.Unmarshal(b, &f) != nil || f.State == "" || f.Nonce == "" || f.Verifier == "" {
		return Flow{}, ErrState
	}
	return f, nil
}

func random() string { return rand.Text() + rand.Text() } // 260 bits

// Begin starts a sign-in: the provider's authorization URL to redirect
// the browser to, and the Flow to keep in its cookie.
func (p *Provider) Begin(ctx context.Context) (string, Flow, error) {
	oc, _, err := p.discover(ctx)
	if err != nil {
		return "", Flow{}, err
	}
	f := Flow{State: random(), Nonce: random(), Verifier: oauth2.GenerateVerifier(), Expires: p.cfg.Now().Add(FlowTTL)}
	return oc.AuthCodeURL(f.State, oauth2.S256ChallengeOption(f.Verifier), oidc.Nonce(f.Nonce)), f, nil
}

// Callback is what the provider sent back to the redirect URL.
type Callback struct {
	Code, State, Error, ErrorDescription string
}

// CallbackFrom reads a callback request's query.
func CallbackFrom(q url.Values) Callback {
	return Callback{Code: q.Get("code"), State: q.Get("state"), Error: q.Get("error"), ErrorDescription: q.Get("error_description")}
}

// Finish checks the provider's answer against the browser's flow,
// exchanges the code (with the PKCE verifier), verifies the ID token and
// its nonce, and returns who signed in. groups are the user's groups, for
// the log.
func (p *Provider) Finish(ctx context.Context, cb Callback, f Flow) (u accounts.SSOUser, groups []string, err error) {
	if cb.State == "" || subtle.ConstantTimeCompare([]byte(cb.State), []byte(f.State)) != 1 || p.cfg.Now().After(f.Expires) {
		return u, nil, ErrState
	}
	if cb.Error != "" {
		return u, nil, fmt.Errorf("%w: %s %s", ErrDenied, cb.Error, cb.ErrorDescription)
	}
	if cb.Code == "" {
		return u, nil, fmt.Errorf("%w: no code in the answer", ErrDenied)
	}
	oc, verifier, err := p.discover(ctx)
	if err != nil {
		return u, nil, err
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, p.cfg.Client), 15*time.Second)
	defer cancel()
	tok, err := oc.Exchange(ctx, cb.Code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		return u, nil, fmt.Errorf("%w: code exchange: %w", ErrUnavailable, err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return u, nil, fmt.Errorf("%w: no ID token in the token response", ErrClaims)
	}
	idt, err := verifier.Verify(ctx, raw)
	if err != nil {
		return u, nil, fmt.Errorf("%w: ID token: %w", ErrClaims, err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(f.Nonce)) != 1 {
		return u, nil, fmt.Errorf("%w: ID token nonce does not match", ErrState)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return u, nil, fmt.Errorf("%w: %w", ErrClaims, err)
	}
	return p.user(idt.Issuer, idt.Subject, claims)
}

// user maps verified claims to a Porthole user.
func (p *Provider) user(issuer, subject string, claims map[string]any) (accounts.SSOUser, []string, error) {
	str := func(k string) string { s, _ := claims[k].(string); return s }
	name := str(p.cfg.UsernameClaim)
	if name == "" {
		if v, _ := claims["email_verified"].(bool); v {
			name = str("email")
		}
	}
	if name == "" || subject == "" {
		return accounts.SSOUser{}, nil, fmt.Errorf("%w: no %s claim (nor a verified email)", ErrClaims, p.cfg.UsernameClaim)
	}
	display := str("name")
	groups := stringsOf(claims[p.cfg.GroupsClaim])
	u := accounts.SSOUser{Subject: issuer + " " + subject, Name: strings.ToLower(name), DisplayName: display,
		Roles: map[string][]store.Role{}}
	for _, g := range p.cfg.Groups {
		if !slices.Contains(groups, g.Group) {
			continue
		}
		if g.Admin {
			u.Admin = true
			continue
		}
		u.Roles[g.Site] = append(u.Roles[g.Site], g.Roles...)
	}
	return u, groups, nil
}

// stringsOf reads a claim that is a list of strings or one string.
func stringsOf(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
