package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/authn"
	"github.com/porthole-dev/porthole/signaling/store"
)

// The OAuth 2.1 authorization server. The app origin is the issuer; its
// clients are each live session's window, on its shell origin (client_id =
// session ID, redirect URI <shell origin>/__t/callback, exactly; never the
// device origin, where the device's page runs) and the CLI
// (client_id porthole-cli, a loopback redirect URI on any port, RFC 8252).
// Only the authorization-code grant with PKCE S256 exists.

// client is a validated OAuth client.
type client struct {
	id, redirect string
	session      string // session clients
	origin       string // session clients: the only origin allowed on the token endpoint
}

// oauthClient validates client_id and redirect_uri together. Nothing is
// redirected anywhere until both check out.
func (s *Server) oauthClient(id, redirect string) (*client, bool) {
	if id == proto.CLIClientID {
		if s.cliCodePage(redirect) {
			return &client{id: id, redirect: redirect}, true
		}
		u, err := url.Parse(redirect)
		if err != nil || u.Scheme != "http" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Path != "/callback" {
			return nil, false
		}
		host, port, err := net.SplitHostPort(u.Host)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n <= 0 || n > 65535 || (host != "127.0.0.1" && host != "::1") {
			return nil, false
		}
		return &client{id: id, redirect: redirect}, true
	}
	if !proto.ValidSessionID(id) || s.shellOrigin(id) == "" {
		return nil, false
	}
	if _, _, live := s.sessions.SessionOwner(context.Background(), id); !live {
		return nil, false
	}
	origin := s.shellOrigin(id)
	if redirect != origin+proto.PathSessionCallback {
		return nil, false
	}
	return &client{id: id, redirect: redirect, session: id, origin: origin}, true
}

// sessionAuth answers GET /__t/auth.json on a session's shell origin.
func (s *Server) sessionAuth(w http.ResponseWriter, id string) {
	writeJSON(w, http.StatusOK, &proto.SessionAuth{
		AuthorizationEndpoint: s.cfg.AppOrigin + proto.PathAuthorize,
		TokenEndpoint:         s.cfg.AppOrigin + proto.PathToken,
		ClientID:              id,
		RedirectURI:           s.shellOrigin(id) + proto.PathSessionCallback,
		FragmentTokens:        s.cfg.InsecureDevTokens,
	})
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>{{.Title}} — Porthole</title><link rel="stylesheet" href="/app.css"></head>
<body><header class="top"><span class="brand">Porthole</span></header><main class="page"><section class="signin">
<h1>{{.Title}}</h1><p>{{.Text}}</p>
{{if .Form}}<form method="post" action="/oauth/authorize">{{range $k, $v := .Form}}<input type="hidden" name="{{$k}}" value="{{$v}}">{{end}}
<button type="submit" name="decision" value="allow" id="allow">Allow</button> <button type="submit" name="decision" value="deny" id="deny">Deny</button></form>{{end}}
</section></main></body></html>`))

func (s *Server) page(w http.ResponseWriter, status int, title, text string, form map[string]string, formTarget string) {
	h := w.Header()
	action := "'self'"
	if formTarget != "" {
		action += " " + formTarget // the redirect after the form goes there
	}
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; form-action "+action+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, map[string]any{"Title": title, "Text": text, "Form": form})
}

// redirectError sends an OAuth error back to a validated client.
func redirectError(w http.ResponseWriter, r *http.Request, c *client, state, code, desc string) {
	q := url.Values{"error": {code}, "error_description": {desc}}
	if state != "" {
		q.Set("state", state)
	}
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, c.redirect+"?"+q.Encode(), http.StatusFound)
}

// authorize answers GET and POST /oauth/authorize.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		s.page(w, http.StatusMethodNotAllowed, "Not allowed", "Use GET or POST.", nil, "")
		return
	}
	if s.cfg.AppOrigin == "" {
		s.page(w, http.StatusNotFound, "No authorization server", "This signaling server has no app origin configured.", nil, "")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
	if err := r.ParseForm(); err != nil {
		s.page(w, http.StatusBadRequest, "Bad request", "The request could not be read.", nil, "")
		return
	}
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		q = r.PostForm
	}
	c, ok := s.oauthClient(q.Get("client_id"), q.Get("redirect_uri"))
	if !ok {
		s.refuse(r, "authorize: unknown client or redirect URI mismatch", "client", q.Get("client_id"))
		s.page(w, http.StatusBadRequest, "Cannot continue",
			"The application that sent you here is unknown, its session has ended, or its redirect address does not match. Start again from Porthole.", nil, "")
		return
	}
	state := q.Get("state")
	switch {
	case q.Get("response_type") != "code":
		redirectError(w, r, c, state, proto.OAuthUnsupportedResponseType, "only response_type=code is supported")
		return
	case state == "" || len(state) > 256:
		redirectError(w, r, c, "", proto.OAuthInvalidRequest, "state is required")
		return
	case q.Get("code_challenge_method") != "S256":
		redirectError(w, r, c, state, proto.OAuthInvalidRequest, "code_challenge_method must be S256")
		return
	case !authn.ValidChallenge(q.Get("code_challenge")):
		redirectError(w, r, c, state, proto.OAuthInvalidRequest, "code_challenge must be an S256 challenge")
		return
	}

	// Who is asking: the Lax cookie, which survives the top-level
	// navigation from a session origin on another site.
	var p *principal
	if ck, err := r.Cookie(cookieAuthz); err == nil && ck.Value != "" {
		p, _ = s.loginPrincipal(r.Context(), ck.Value)
	}
	if p == nil {
		if r.Method == http.MethodPost {
			redirectError(w, r, c, state, proto.OAuthLoginRequired, "sign in first")
			return
		}
		// Sign in on the app, then come back here.
		http.Redirect(w, r, "/?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
		return
	}

	if c.session != "" {
		owner, _, live := s.sessions.SessionOwner(r.Context(), c.session)
		if !live || owner != p.id() {
			s.refuse(r, "authorize: session of another user", "session", c.session, "user", p.id())
			redirectError(w, r, c, state, proto.OAuthAccessDenied, "this session belongs to somebody else")
			return
		}
		s.issueCode(w, r, c, p, state, q.Get("code_challenge"))
		return
	}

	// The CLI: the user says yes on a page of ours, in a same-origin POST.
	if r.Method == http.MethodGet {
		form := map[string]string{}
		for _, k := range []string{"client_id", "redirect_uri", "response_type", "state", "code_challenge", "code_challenge_method"} {
			form[k] = q.Get(k)
		}
		u, _ := url.Parse(c.redirect)
		where, target := "on this computer", "http://"+u.Host
		if s.cliCodePage(c.redirect) {
			where, target = "on this or another computer", "" // the code page is on this origin
		}
		s.page(w, http.StatusOK, "Allow the porthole command?",
			"The porthole command-line client "+where+" asks to act as "+p.user.Name+
				": list your devices and open sessions. Allow it only if you just ran `porthole login`.", form, target)
		return
	}
	if err := s.csrf(r); err != nil {
		s.refuse(r, "authorize: cross-origin consent", "user", p.id())
		s.page(w, http.StatusForbidden, "Refused", "The consent did not come from this page.", nil, "")
		return
	}
	if ck, err := r.Cookie(cookieLogin); err != nil || ck.Value == "" || authn.HashSecret(ck.Value) != p.login {
		redirectError(w, r, c, state, proto.OAuthLoginRequired, "sign in first")
		return
	}
	if q.Get("decision") != "allow" {
		redirectError(w, r, c, state, proto.OAuthAccessDenied, "the user denied access")
		return
	}
	s.issueCode(w, r, c, p, state, q.Get("code_challenge"))
}

func (s *Server) issueCode(w http.ResponseWriter, r *http.Request, c *client, p *principal, state, challenge string) {
	code, hash := authn.NewSecret()
	err := s.store.PutCode(r.Context(), &store.Code{
		Hash: hash, User: p.id(), ClientID: c.id, RedirectURI: c.redirect, Challenge: challenge,
		Session: c.session, Expires: s.now().Add(s.cfg.CodeTTL),
	})
	if err != nil {
		s.log.Warn("authorization code not stored", "err", err)
		redirectError(w, r, c, state, "server_error", "try again")
		return
	}
	s.log.Info("authorization code issued", "user", p.id(), "client", c.id)
	q := url.Values{"code": {code}, "state": {state}}
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, c.redirect+"?"+q.Encode(), http.StatusFound)
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, status, &proto.OAuthError{Error: code, Description: desc})
}

// tokenCORS allows a browser origin on the token endpoint only when it is
// the shell origin of the session the request is for (never its device
// origin). It answers the refusal itself.
func (s *Server) tokenCORS(w http.ResponseWriter, r *http.Request, c *client) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if c == nil || c.origin == "" || origin != c.origin {
		s.refuse(r, "token endpoint: origin is not the session's origin")
		oauthError(w, http.StatusForbidden, proto.OAuthInvalidClient, "origin not allowed for this client")
		return false
	}
	w.Header().Set("Access-Control-Allow-Origin", origin)
	w.Header().Add("Vary", "Origin")
	return true
}

// token answers POST /oauth/token.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodOptions:
		// A preflight carries no client_id: allow exactly the shell origin
		// of a live session, which the POST checks against its client again.
		origin := r.Header.Get("Origin")
		label, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(origin, "https://"), "http://"), ".")
		id, _ := strings.CutPrefix(label, proto.ShellHostPrefix)
		if c, ok := s.oauthClient(id, s.shellOrigin(id)+proto.PathSessionCallback); !ok || origin != c.origin {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Set("Access-Control-Allow-Methods", "POST")
		w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
		w.Header().Add("Vary", "Origin")
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		oauthError(w, http.StatusMethodNotAllowed, proto.OAuthInvalidRequest, "POST only")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
	if err := r.ParseForm(); err != nil || len(r.URL.RawQuery) > 0 {
		oauthError(w, http.StatusBadRequest, proto.OAuthInvalidRequest, "send the parameters form-encoded in the body")
		return
	}
	f := r.PostForm
	// The client as named; its redirect URI and session are checked
	// against the code below, after the code is burnt.
	c := &client{id: f.Get("client_id"), redirect: f.Get("redirect_uri")}
	if proto.ValidSessionID(c.id) {
		c.session, c.origin = c.id, s.shellOrigin(c.id)
	}
	if !s.tokenCORS(w, r, c) {
		return
	}
	if gt := f.Get("grant_type"); gt != "authorization_code" {
		s.refuse(r, "token endpoint: grant type refused", "grant_type", gt)
		oauthError(w, http.StatusBadRequest, proto.OAuthUnsupportedGrantType, "only authorization_code is supported")
		return
	}
	code, verifier := f.Get("code"), f.Get("code_verifier")
	if code == "" || verifier == "" {
		oauthError(w, http.StatusBadRequest, proto.OAuthInvalidRequest, "code and code_verifier are required")
		return
	}
	secret, hash := authn.NewSecret()
	ctx := r.Context()
	stored, err := s.store.ConsumeCode(ctx, authn.HashSecret(code), hash)
	switch {
	case errors.Is(err, store.ErrCodeUsed):
		s.revokeIssued(r, stored)
		oauthError(w, http.StatusBadRequest, proto.OAuthInvalidGrant, "the code was already used; what it issued is revoked")
		return
	case err != nil:
		s.refuse(r, "token endpoint: unknown or expired code")
		oauthError(w, http.StatusBadRequest, proto.OAuthInvalidGrant, "unknown or expired code")
		return
	}
	switch {
	case stored.ClientID != c.id:
		s.refuse(r, "token endpoint: code of another client", "client", c.id)
		oauthError(w, http.StatusBadRequest, proto.OAuthInvalidGrant, "the code was issued to another client")
		return
	case stored.RedirectURI != c.redirect:
		s.refuse(r, "token endpoint: redirect URI mismatch", "client", c.id)
		oauthError(w, http.StatusBadRequest, proto.OAuthInvalidGrant, "redirect_uri does not match the authorization request")
		return
	case !authn.VerifyPKCE(stored.Challenge, verifier):
		s.refuse(r, "token endpoint: PKCE verifier mismatch", "client", c.id)
		oauthError(w, http.StatusBadRequest, proto.OAuthInvalidGrant, "code_verifier does not match the code_challenge")
		return
	}
	now := s.now()
	if stored.Session != "" {
		owner, _, live := s.sessions.SessionOwner(ctx, stored.Session)
		if !live || owner != stored.User {
			oauthError(w, http.StatusBadRequest, proto.OAuthInvalidGrant, "the session has ended")
			return
		}
		raw := sha256.Sum256([]byte(secret))
		expires, err := s.sessions.AddToken(ctx, stored.Session, raw)
		if err != nil {
			oauthError(w, http.StatusBadRequest, proto.OAuthInvalidGrant, "the session has ended")
			return
		}
		s.log.Info("session token issued", "session", stored.Session, "user", stored.User)
		writeJSON(w, http.StatusOK, &proto.TokenResponse{AccessToken: secret, TokenType: "Bearer",
			ExpiresIn: int64(expires.Sub(now).Seconds()), Session: stored.Session})
		return
	}
	t := &store.Token{Hash: hash, Kind: store.TokenAPI, User: stored.User, Name: "porthole login " + now.UTC().Format("2006-01-02 15:04"),
		Scopes: []string{proto.ScopeRead, proto.ScopeSessions}, Created: now, Expires: now.Add(s.cfg.CLITokenTTL)}
	if err := s.store.PutToken(ctx, t); err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", "try again")
		return
	}
	s.log.Info("CLI token issued", "user", stored.User)
	writeJSON(w, http.StatusOK, &proto.TokenResponse{AccessToken: secret, TokenType: "Bearer",
		ExpiresIn: int64(s.cfg.CLITokenTTL.Seconds()), Scope: strings.Join(t.Scopes, " ")})
}

// revokeIssued revokes what a replayed code issued the first time.
func (s *Server) revokeIssued(r *http.Request, c *store.Code) {
	if c == nil || c.Issued == "" {
		return
	}
	s.log.Warn("authorization code replayed; revoking what it issued", "user", c.User, "client", c.ClientID, "remote", r.RemoteAddr)
	if c.Session != "" {
		raw, err := hex.DecodeString(c.Issued)
		if err == nil && len(raw) == sha256.Size {
			s.sessions.RevokeToken(r.Context(), [sha256.Size]byte(raw))
		}
		return
	}
	_ = s.store.DeleteToken(r.Context(), c.Issued)
}

// metadata answers GET PathOAuthMetadata (RFC 8414): where the CLI sends
// the user to approve, and where it exchanges and revokes.
func (s *Server) metadata(w http.ResponseWriter, _ *http.Request) {
	if s.cfg.AppOrigin == "" {
		writeError(w, http.StatusNotFound, proto.Errorf(proto.CodeNotFound, "this signaling server has no app origin configured"))
		return
	}
	o := s.cfg.AppOrigin
	writeJSON(w, http.StatusOK, &proto.AuthServerMetadata{
		Issuer:                        o,
		AuthorizationEndpoint:         o + proto.PathAuthorize,
		TokenEndpoint:                 o + proto.PathToken,
		RevocationEndpoint:            o + proto.PathRevoke,
		ResponseTypes:                 []string{"code"},
		GrantTypes:                    []string{"authorization_code"},
		CodeChallengeMethods:          []string{"S256"},
		TokenEndpointAuthMethods:      []string{"none"},
		RevocationEndpointAuthMethods: []string{"none"},
		Scopes:                        []string{proto.ScopeRead, proto.ScopeSessions},
		CLICodeRedirectURI:            o + proto.PathCLICode,
	})
}

// revoke answers POST PathRevoke (RFC 7009) for `porthole logout`: the
// presented API token stops working. Possession is the authority, as for
// DELETE /v1/me/tokens/{id}; the answer is 200 whether or not the token
// was valid. Login secrets and session tokens are not revoked here, and
// browsers are refused (no CORS, no cross-site form posts).
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		oauthError(w, http.StatusMethodNotAllowed, proto.OAuthInvalidRequest, "POST only")
		return
	}
	if r.Header.Get("Origin") != "" {
		s.refuse(r, "revocation endpoint: browser origin")
		oauthError(w, http.StatusForbidden, proto.OAuthInvalidClient, "origin not allowed")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
	if err := r.ParseForm(); err != nil || len(r.URL.RawQuery) > 0 {
		oauthError(w, http.StatusBadRequest, proto.OAuthInvalidRequest, "send the parameters form-encoded in the body")
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		oauthError(w, http.StatusBadRequest, proto.OAuthInvalidRequest, "token is required")
		return
	}
	ctx := r.Context()
	if t, err := s.store.Token(ctx, authn.HashSecret(tok)); err == nil && t.Kind == store.TokenAPI {
		if err := s.store.DeleteToken(ctx, t.Hash); err != nil && !errors.Is(err, store.ErrNotFound) {
			oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again")
			return
		}
		_ = s.accounts.Audit(ctx, t.User, "token.revoke", t.Hash[:16], "", map[string]string{"via": "oauth revoke"})
		s.log.Info("API token revoked", "user", t.User, "client", r.PostForm.Get("client_id"))
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}
