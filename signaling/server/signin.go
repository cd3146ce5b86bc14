package server

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/accounts"
	"github.com/porthole-dev/porthole/signaling/authn"
	"github.com/porthole-dev/porthole/signaling/sso"
	"github.com/porthole-dev/porthole/signaling/store"
)

// Ways to sign in besides the password form: single sign-on with an
// OpenID Connect provider (Config.SSO) and one-time password links
// (invitations, resets, the first admin's link). Local sign-in can be
// turned off (Config.NoLocalLogin); password links go with it.

// cookieSSO holds a single sign-on in progress (sso.Flow). Lax, because
// the provider's redirect back is a cross-site top-level navigation.
const cookieSSO = "__Host-porthole-sso"

func (s *Server) signinRoutes(mux *http.ServeMux) {
	type methods = map[string]http.HandlerFunc
	mux.HandleFunc("GET "+proto.PathSignIn, s.signinOptions)
	mux.HandleFunc("GET "+proto.PathSSOStart, s.ssoStart)
	mux.HandleFunc("GET "+proto.PathSSOCallback, s.ssoCallback)
	mux.Handle(proto.PathLinkRedeem, s.api(methods{"POST": s.redeemLink}))
	mux.Handle(proto.PathUserLink, s.api(methods{"POST": s.adminOnly(proto.ScopeManage, s.createLink)}))
}

// localLoginOff refuses a password sign-in when local accounts are off.
func (s *Server) localLoginOff(w http.ResponseWriter, r *http.Request) bool {
	if !s.cfg.NoLocalLogin {
		return false
	}
	s.refuse(r, "password sign-in while local accounts are off")
	writeError(w, http.StatusForbidden, proto.Errorf(proto.CodeForbidden, "password sign-in is off on this server; use single sign-on"))
	return true
}

func (s *Server) signinOptions(w http.ResponseWriter, _ *http.Request) {
	out := proto.SignInOptions{LocalLogin: !s.cfg.NoLocalLogin}
	if s.cfg.SSO != nil {
		out.SSO = &proto.SSOOptions{Name: s.cfg.SSOName, URL: proto.PathSSOStart}
	}
	writeJSON(w, http.StatusOK, &out)
}

// ssoBack redirects the browser to the app's sign-in view with code.
func (s *Server) ssoBack(w http.ResponseWriter, r *http.Request, code string) {
	http.SetCookie(w, &http.Cookie{Name: cookieSSO, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/#signin?"+url.Values{proto.SSOErrorParam: {code}}.Encode(), http.StatusSeeOther)
}

// ssoStart answers GET /v1/sso/start: a top-level navigation from the
// sign-in page, redirected to the provider.
func (s *Server) ssoStart(w http.ResponseWriter, r *http.Request) {
	if s.cfg.SSO == nil {
		writeError(w, http.StatusNotFound, proto.Errorf(proto.CodeNotFound, "single sign-on is not configured"))
		return
	}
	dest, flow, err := s.cfg.SSO.Begin(r.Context())
	if err != nil {
		s.log.Warn("single sign-on cannot start", "err", err)
		s.ssoBack(w, r, proto.SSOErrorUnavailable)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieSSO, Value: flow.Encode(), Path: "/", MaxAge: int(sso.FlowTTL / time.Second),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, dest, http.StatusSeeOther)
}

// ssoCallback answers the provider's redirect: the flow's cookie must
// match its state; then the user is found or created, gets the roles of
// their groups, and is signed in like a password login.
func (s *Server) ssoCallback(w http.ResponseWriter, r *http.Request) {
	if s.cfg.SSO == nil {
		writeError(w, http.StatusNotFound, proto.Errorf(proto.CodeNotFound, "single sign-on is not configured"))
		return
	}
	var flow sso.Flow
	c, err := r.Cookie(cookieSSO)
	if err == nil {
		flow, err = sso.DecodeFlow(c.Value)
	}
	if err != nil {
		s.refuse(r, "single sign-on answer without this browser's flow")
		s.ssoBack(w, r, proto.SSOErrorState)
		return
	}
	in, groups, err := s.cfg.SSO.Finish(r.Context(), sso.CallbackFrom(r.URL.Query()), flow)
	if err != nil {
		s.refuse(r, "single sign-on failed", "err", err)
		switch {
		case errors.Is(err, sso.ErrState):
			s.ssoBack(w, r, proto.SSOErrorState)
		case errors.Is(err, sso.ErrDenied):
			s.ssoBack(w, r, proto.SSOErrorDenied)
		default:
			s.ssoBack(w, r, proto.SSOErrorUnavailable)
		}
		return
	}
	u, err := s.accounts.SignInSSO(r.Context(), in)
	if err != nil {
		s.refuse(r, "single sign-on user refused", "name", in.Name, "sso", in.Subject, "err", err)
		switch {
		case errors.Is(err, accounts.ErrSSOConflict):
			s.ssoBack(w, r, proto.SSOErrorConflict)
		case errors.Is(err, accounts.ErrDisabled):
			s.ssoBack(w, r, proto.SSOErrorDisabled)
		default:
			s.ssoBack(w, r, proto.SSOErrorUnavailable)
		}
		return
	}
	if !s.newLogin(w, r, u) {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieSSO, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	s.log.Info("user signed in with single sign-on", "user", u.ID, "name", u.Name, "groups", groups, "admin", u.Admin, "remote", r.RemoteAddr)
	http.Redirect(w, r, "/#devices", http.StatusSeeOther)
}

// newLogin stores a login for u and sets the login cookies; false (and
// an error written) if the store failed.
func (s *Server) newLogin(w http.ResponseWriter, r *http.Request, u *store.User) bool {
	secret, hash := authn.NewSecret()
	now := s.now()
	if err := s.store.PutToken(r.Context(), &store.Token{Hash: hash, Kind: store.TokenLogin, User: u.ID, Created: now, Expires: now.Add(s.cfg.LoginTTL)}); err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return false
	}
	s.setLoginCookies(w, secret, int(s.cfg.LoginTTL/time.Second))
	return true
}

// redeemLink answers POST /v1/password-link: a password link's secret
// and the password chosen; signs the user in. Failures count against the
// client's address like wrong passwords.
func (s *Server) redeemLink(w http.ResponseWriter, r *http.Request) {
	if err := s.csrf(r); err != nil {
		s.refuse(r, "cross-origin password link")
		writeError(w, http.StatusForbidden, err)
		return
	}
	if s.localLoginOff(w, r) {
		return
	}
	var req proto.PasswordLinkRedeem
	if !decodeBody(w, r, &req) {
		return
	}
	ctx, addr := r.Context(), clientAddr(r)
	if n, _ := s.store.Attempts(ctx, "link:addr:"+addr); n >= s.cfg.MaxAddressFailures {
		s.refuse(r, "password links throttled")
		writeThrottled(w, s.cfg.LoginWindow)
		return
	}
	u, err := s.accounts.RedeemLink(ctx, req.Token, req.Password)
	if err != nil {
		if errors.Is(err, accounts.ErrLinkUsed) {
			_, _ = s.store.Attempt(ctx, "link:addr:"+addr, s.cfg.LoginWindow)
			s.refuse(r, "password link refused")
			writeError(w, http.StatusUnauthorized, proto.Errorf(proto.CodeUnauthorized, "%v", err))
			return
		}
		s.fail(w, err)
		return
	}
	s.log.Info("password set with a link", "user", u.ID, "name", u.Name, "remote", r.RemoteAddr)
	if !s.newLogin(w, r, u) {
		return
	}
	writeJSON(w, http.StatusOK, &proto.LoginResult{User: me(u)})
}

// createLink answers POST /v1/users/{id}/link (admins): a one-time link
// shown once, for the admin to hand to the user.
func (s *Server) createLink(w http.ResponseWriter, r *http.Request, p *principal) {
	if s.cfg.NoLocalLogin {
		writeError(w, http.StatusForbidden, proto.Errorf(proto.CodeForbidden, "local accounts are off on this server: users sign in with single sign-on"))
		return
	}
	var req proto.NewPasswordLink
	if !decodeBody(w, r, &req) {
		return
	}
	kind := store.TokenKind(req.Kind)
	if req.Kind != proto.LinkInvite && req.Kind != proto.LinkReset {
		writeError(w, http.StatusBadRequest, proto.Errorf(proto.CodeBadMessage, "kind must be %q or %q", proto.LinkInvite, proto.LinkReset))
		return
	}
	secret, tok, err := s.accounts.CreateLink(r.Context(), p.id(), r.PathValue("id"), kind)
	if err != nil {
		s.fail(w, err)
		return
	}
	u, err := s.store.User(r.Context(), tok.User)
	if err != nil {
		s.fail(w, err)
		return
	}
	s.log.Info("password link created", "user", u.ID, "kind", req.Kind, "by", p.id(), "expires", tok.Expires)
	writeJSON(w, http.StatusCreated, &proto.CreatedPasswordLink{Kind: req.Kind, User: u.Name,
		URL: s.cfg.AppOrigin + "/" + proto.LinkFragment + secret, Expires: tok.Expires})
}
