package server

import (
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/authn"
	"github.com/porthole-dev/porthole/signaling/store"
)

var (
	errBadLogin = proto.Errorf(proto.CodeUnauthorized, "wrong user name or password")
	errBadCode  = proto.Errorf(proto.CodeUnauthorized, "wrong or expired code")
)

// login answers POST /v1/login: the password step.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if err := s.csrf(r); err != nil {
		s.refuse(r, "cross-origin login")
		writeError(w, http.StatusForbidden, err)
		return
	}
	if s.localLoginOff(w, r) { // signin.go
		return
	}
	var req proto.Login
	if !decodeBody(w, r, &req) {
		return
	}
	ctx := r.Context()
	name, addr := strings.ToLower(strings.TrimSpace(req.Username)), clientAddr(r)
	if len(name) > 64 || len(req.Password) > authn.MaxPasswordLen {
		writeError(w, http.StatusUnauthorized, errBadLogin)
		return
	}
	if wait, ok := s.throttled(ctx, name, addr); ok {
		s.refuse(r, "login throttled", "user", name, "wait", wait)
		writeThrottled(w, wait)
		return
	}
	u, err := s.store.UserByName(ctx, name)
	ok := false
	if err == nil && !u.Disabled && u.PasswordHash != "" { // SSO and invited users have none
		ok = authn.VerifyPassword(u.PasswordHash, req.Password)
	} else {
		authn.VerifyPassword(s.dummyHash, req.Password) // same cost as a wrong password
	}
	if !ok {
		s.failed(ctx, name, addr)
		s.refuse(r, "login failed", "user", name)
		writeError(w, http.StatusUnauthorized, errBadLogin)
		return
	}
	if u.TOTPSecret != "" {
		secret, hash := authn.NewSecret()
		now := s.now()
		if err := s.store.PutToken(ctx, &store.Token{Hash: hash, Kind: store.TokenMFA, User: u.ID, Created: now, Expires: now.Add(mfaTTL)}); err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, http.StatusOK, &proto.LoginResult{MFARequired: true, MFAToken: secret})
		return
	}
	s.startLogin(w, r, u)
}

// loginMFA answers POST /v1/login/mfa: the second-factor step.
func (s *Server) loginMFA(w http.ResponseWriter, r *http.Request) {
	if err := s.csrf(r); err != nil {
		writeError(w, http.StatusForbidden, err)
		return
	}
	var req proto.LoginMFA
	if !decodeBody(w, r, &req) {
		return
	}
	ctx := r.Context()
	t, err := s.store.Token(ctx, authn.HashSecret(req.MFAToken))
	if err != nil || t.Kind != store.TokenMFA {
		writeError(w, http.StatusUnauthorized, proto.Errorf(proto.CodeUnauthorized, "the sign-in has expired; start again"))
		return
	}
	u, err := s.store.User(ctx, t.User)
	if err != nil || u.Disabled {
		writeError(w, http.StatusUnauthorized, errBadLogin)
		return
	}
	addr := clientAddr(r)
	if wait, ok := s.throttled(ctx, u.Name, addr); ok {
		s.refuse(r, "second factor throttled", "user", u.Name, "wait", wait)
		writeThrottled(w, wait)
		return
	}
	now, name := s.now(), u.Name
	u, err = s.store.UpdateUser(ctx, u.ID, func(u *store.User) error {
		switch {
		case req.RecoveryCode != "":
			h := authn.HashRecoveryCode(req.RecoveryCode)
			i := slices.Index(u.RecoveryCodes, h)
			if i < 0 {
				return errBadCode
			}
			u.RecoveryCodes = slices.Delete(u.RecoveryCodes, i, i+1)
		case u.TOTPSecret != "":
			step, ok := authn.CheckTOTP(u.TOTPSecret, req.Code, now, u.TOTPLastStep)
			if !ok {
				return errBadCode
			}
			u.TOTPLastStep = step
		default:
			return errBadCode
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, errBadCode) {
			s.failed(ctx, name, addr)
		}
		s.refuse(r, "second factor failed", "user", t.User)
		writeError(w, http.StatusUnauthorized, errBadCode)
		return
	}
	_ = s.store.DeleteToken(ctx, t.Hash)
	if req.RecoveryCode != "" {
		s.log.Info("recovery code used", "user", u.ID, "left", len(u.RecoveryCodes))
	}
	s.startLogin(w, r, u)
}

// startLogin creates a login and sets its cookies.
func (s *Server) startLogin(w http.ResponseWriter, r *http.Request, u *store.User) {
	ctx := r.Context()
	s.signedIn(ctx, u.Name, clientAddr(r))
	secret, hash := authn.NewSecret()
	now := s.now()
	if err := s.store.PutToken(ctx, &store.Token{Hash: hash, Kind: store.TokenLogin, User: u.ID, Created: now, Expires: now.Add(s.cfg.LoginTTL)}); err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	s.setLoginCookies(w, secret, int(s.cfg.LoginTTL/time.Second))
	s.log.Info("user signed in", "user", u.ID, "name", u.Name, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, &proto.LoginResult{User: me(u)})
}

func (s *Server) setLoginCookies(w http.ResponseWriter, secret string, maxAge int) {
	for _, c := range []struct {
		name string
		ss   http.SameSite
	}{{cookieLogin, http.SameSiteStrictMode}, {cookieAuthz, http.SameSiteLaxMode}} {
		http.SetCookie(w, &http.Cookie{
			Name: c.name, Value: secret, Path: "/", MaxAge: maxAge,
			Secure: true, HttpOnly: true, SameSite: c.ss,
		})
	}
}

// logout answers POST /v1/logout.
func (s *Server) logout(w http.ResponseWriter, r *http.Request, p *principal) {
	if p.login != "" {
		_ = s.store.DeleteToken(r.Context(), p.login)
	}
	s.setLoginCookies(w, "", -1)
	w.WriteHeader(http.StatusNoContent)
}

func me(u *store.User) *proto.Me {
	return &proto.Me{ID: u.ID, Name: u.Name, DisplayName: u.DisplayName, Admin: u.Admin,
		TOTP: u.TOTPSecret != "", RecoveryCodes: len(u.RecoveryCodes), Roles: roleNames(u.Roles), SSO: u.SSO != ""}
}

func roleNames(m map[string][]store.Role) map[string][]string {
	out := make(map[string][]string, len(m))
	for site, rs := range m {
		for _, r := range rs {
			out[site] = append(out[site], string(r))
		}
	}
	return out
}

// getMe answers GET /v1/me.
func (s *Server) getMe(w http.ResponseWriter, _ *http.Request, p *principal) {
	writeJSON(w, http.StatusOK, me(p.user))
}

// changePassword answers POST /v1/me/password.
func (s *Server) changePassword(w http.ResponseWriter, r *http.Request, p *principal) {
	if !cookieOnly(w, p) {
		return
	}
	var req proto.PasswordChange
	if !decodeBody(w, r, &req) {
		return
	}
	if !s.checkPassword(w, r, p.user, req.Current) {
		return
	}
	if _, err := s.accounts.UpdateUser(r.Context(), p.id(), p.id(), accountsChange(req.New)); err != nil {
		writeError(w, httpStatus(asProto(err)), asProto(err))
		return
	}
	// Every login of the user ended with the change; this browser keeps
	// going with a fresh one.
	s.startLogin(w, r, p.user)
}

// checkPassword verifies the caller's current password for a sensitive
// change, counting failures like logins.
func (s *Server) checkPassword(w http.ResponseWriter, r *http.Request, u *store.User, pw string) bool {
	ctx, addr := r.Context(), clientAddr(r)
	if wait, ok := s.throttled(ctx, u.Name, addr); ok {
		writeThrottled(w, wait)
		return false
	}
	if !authn.VerifyPassword(u.PasswordHash, pw) {
		s.failed(ctx, u.Name, addr)
		writeError(w, http.StatusUnauthorized, proto.Errorf(proto.CodeUnauthorized, "wrong password"))
		return false
	}
	return true
}

// startTOTP answers POST /v1/me/totp: a new pending secret.
func (s *Server) startTOTP(w http.ResponseWriter, r *http.Request, p *principal) {
	if !cookieOnly(w, p) {
		return
	}
	if p.user.TOTPSecret != "" {
		writeError(w, http.StatusBadRequest, proto.Errorf(proto.CodeBadMessage, "two-factor login is already on; turn it off first"))
		return
	}
	secret, url, err := authn.NewTOTPSecret("Porthole", p.user.Name)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	if _, err := s.store.UpdateUser(r.Context(), p.id(), func(u *store.User) error { u.TOTPPending = secret; return nil }); err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, &proto.TOTPEnrollment{Secret: secret, URL: url})
}

// verifyTOTP answers POST /v1/me/totp/verify: the pending secret becomes
// the second factor once a code from it checks out.
func (s *Server) verifyTOTP(w http.ResponseWriter, r *http.Request, p *principal) {
	if !cookieOnly(w, p) {
		return
	}
	var req proto.TOTPVerify
	if !decodeBody(w, r, &req) {
		return
	}
	codes, hashes := authn.NewRecoveryCodes(10)
	now := s.now()
	_, err := s.store.UpdateUser(r.Context(), p.id(), func(u *store.User) error {
		if u.TOTPPending == "" {
			return proto.Errorf(proto.CodeBadMessage, "start enrolment first")
		}
		step, ok := authn.CheckTOTP(u.TOTPPending, req.Code, now, 0)
		if !ok {
			return errBadCode
		}
		u.TOTPSecret, u.TOTPPending, u.TOTPLastStep, u.RecoveryCodes = u.TOTPPending, "", step, hashes
		return nil
	})
	if err != nil {
		writeError(w, httpStatus(asProto(err)), asProto(err))
		return
	}
	_ = s.accounts.Audit(r.Context(), p.id(), "user.totp.enable", p.id(), "", nil)
	writeJSON(w, http.StatusOK, &proto.RecoveryCodes{Codes: codes})
}

// deleteTOTP answers DELETE /v1/me/totp.
func (s *Server) deleteTOTP(w http.ResponseWriter, r *http.Request, p *principal) {
	if !cookieOnly(w, p) {
		return
	}
	var req proto.PasswordConfirm
	if !decodeBody(w, r, &req) || !s.checkPassword(w, r, p.user, req.Password) {
		return
	}
	if _, err := s.accounts.UpdateUser(r.Context(), p.id(), p.id(), accountsResetTOTP()); err != nil {
		writeError(w, httpStatus(asProto(err)), asProto(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

var validScopes = []string{proto.ScopeRead, proto.ScopeSessions, proto.ScopeManage}

func tokenView(t *store.Token) proto.TokenView {
	v := proto.TokenView{ID: t.Hash[:16], Name: t.Name, Scopes: t.Scopes, Created: t.Created}
	if !t.Expires.IsZero() {
		e := t.Expires
		v.Expires = &e
	}
	if v.Scopes == nil {
		v.Scopes = []string{}
	}
	return v
}

// listTokens answers GET /v1/me/tokens.
func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, p *principal) {
	if p.dev {
		writeJSON(w, http.StatusOK, &proto.TokenList{Tokens: []proto.TokenView{}})
		return
	}
	ts, err := s.store.UserTokens(r.Context(), p.id(), store.TokenAPI)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	out := proto.TokenList{Tokens: make([]proto.TokenView, 0, len(ts))}
	for _, t := range ts {
		out.Tokens = append(out.Tokens, tokenView(t))
	}
	writeJSON(w, http.StatusOK, &out)
}

// createToken answers POST /v1/me/tokens.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request, p *principal) {
	if !cookieOnly(w, p) {
		return
	}
	var req proto.NewToken
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Name == "" || len(req.Name) > 64 || len(req.Scopes) == 0 || req.ExpiresIn < 0 {
		writeError(w, http.StatusBadRequest, proto.Errorf(proto.CodeBadMessage, "a token needs a name (1-64 characters) and at least one scope"))
		return
	}
	for _, sc := range req.Scopes {
		if !slices.Contains(validScopes, sc) {
			writeError(w, http.StatusBadRequest, proto.Errorf(proto.CodeBadMessage, "unknown scope %q", sc))
			return
		}
	}
	secret, hash := authn.NewSecret()
	now := s.now()
	t := &store.Token{Hash: hash, Kind: store.TokenAPI, User: p.id(), Name: req.Name, Scopes: req.Scopes, Created: now}
	if req.ExpiresIn > 0 {
		t.Expires = now.Add(time.Duration(req.ExpiresIn) * time.Second)
	}
	if err := s.store.PutToken(r.Context(), t); err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	_ = s.accounts.Audit(r.Context(), p.id(), "token.create", t.Hash[:16], "", map[string]string{"name": req.Name, "scopes": strings.Join(req.Scopes, ",")})
	writeJSON(w, http.StatusCreated, &proto.CreatedToken{TokenView: tokenView(t), Token: secret})
}

// deleteToken answers DELETE /v1/me/tokens/{id}. Any caller may revoke
// their own token, including the token in use.
func (s *Server) deleteToken(w http.ResponseWriter, r *http.Request, p *principal) {
	id := r.PathValue("id")
	if _, err := hex.DecodeString(id); err != nil || len(id) != 16 || p.dev {
		writeError(w, http.StatusNotFound, proto.Errorf(proto.CodeNotFound, "no such token"))
		return
	}
	ts, err := s.store.UserTokens(r.Context(), p.id(), store.TokenAPI)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	for _, t := range ts {
		if strings.HasPrefix(t.Hash, id) {
			if err := s.store.DeleteToken(r.Context(), t.Hash); err != nil && !errors.Is(err, store.ErrNotFound) {
				writeError(w, http.StatusInternalServerError, err)
				return
			}
			_ = s.accounts.Audit(r.Context(), p.id(), "token.revoke", id, "", nil)
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	writeError(w, http.StatusNotFound, proto.Errorf(proto.CodeNotFound, "no such token"))
}
