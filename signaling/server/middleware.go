package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/authn"
	"github.com/porthole-dev/porthole/signaling/store"
)

// Cookies on the app origin. Both hold the same login secret: the Strict
// one authenticates the API, the Lax one only the OAuth authorization
// endpoint, which session origins (another site in production) reach by a
// top-level navigation that Strict cookies do not follow.
const (
	cookieLogin = "__Host-porthole"
	cookieAuthz = "__Host-porthole-authz"
	mfaTTL      = 5 * time.Minute
)

// principal is an authenticated caller.
type principal struct {
	user   *store.User
	dev    bool     // a development technician token: admin-equivalent, bypasses the enable flag
	via    string   // "cookie", "token" or "dev"
	scopes []string // API tokens only
	login  string   // hash of the login secret (cookie logins)
}

func (p *principal) id() string { return p.user.ID }

// admin reports whether p may administer and see everything.
func (p *principal) admin() bool { return p.dev || p.user.Admin }

// allows reports whether p's credential carries scope. Cookies and dev
// tokens carry every scope.
func (p *principal) allows(scope string) bool {
	return p.via != "token" || slices.Contains(p.scopes, scope)
}

var errCrossSite = proto.Errorf(proto.CodeForbidden, "cross-site request refused")

// authenticate finds the caller of an API request: a bearer API token (or
// dev token), else the Strict login cookie. Cookie-authenticated requests
// must come from the app's own origin.
func (s *Server) authenticate(r *http.Request) (*principal, error) {
	unauth := proto.Errorf(proto.CodeUnauthorized, "sign in or present a valid API token")
	if tok := bearer(r); tok != "" {
		if s.cfg.InsecureDevTokens {
			if user, ok := lookup(s.techs, tok); ok {
				return &principal{user: &store.User{ID: user, Name: user, Admin: true}, dev: true, via: "dev"}, nil
			}
		}
		t, err := s.store.Token(r.Context(), authn.HashSecret(tok))
		if err != nil || t.Kind != store.TokenAPI {
			return nil, unauth
		}
		u, err := s.store.User(r.Context(), t.User)
		if err != nil || u.Disabled {
			return nil, unauth
		}
		return &principal{user: u, via: "token", scopes: t.Scopes}, nil
	}
	c, err := r.Cookie(cookieLogin)
	if err != nil || c.Value == "" {
		return nil, unauth
	}
	if err := sameOriginOnly(r); err != nil {
		return nil, err
	}
	return s.loginPrincipal(r.Context(), c.Value)
}

// loginPrincipal resolves a login secret.
func (s *Server) loginPrincipal(ctx context.Context, secret string) (*principal, error) {
	unauth := proto.Errorf(proto.CodeUnauthorized, "your login has ended; sign in again")
	hash := authn.HashSecret(secret)
	t, err := s.store.Token(ctx, hash)
	if err != nil || t.Kind != store.TokenLogin {
		return nil, unauth
	}
	u, err := s.store.User(ctx, t.User)
	if err != nil || u.Disabled {
		return nil, unauth
	}
	return &principal{user: u, via: "cookie", login: hash}, nil
}

// sameOriginOnly refuses a browser request that does not come from the
// app's own origin. Browsers send Sec-Fetch-Site; requests without it and
// without Origin come from other clients.
func sameOriginOnly(r *http.Request) error {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return nil
	case "":
		if r.Header.Get("Origin") == "" {
			return nil
		}
	}
	return errCrossSite
}

// csrf refuses state-changing browser requests from other origins (Go's
// cross-origin protection: Sec-Fetch-Site, else Origin against Host).
func (s *Server) csrf(r *http.Request) error {
	if err := s.cop.Check(r); err != nil {
		return errCrossSite
	}
	return sameOriginOnly(r)
}

// authed wraps an API handler that needs a caller with scope.
func (s *Server) authed(scope string, h func(http.ResponseWriter, *http.Request, *principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(r)
		if err != nil {
			s.refuse(r, "not authenticated", "err", err)
			if proto.CodeOf(err) == proto.CodeUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="porthole"`)
			}
			writeError(w, httpStatus(err), err)
			return
		}
		if !p.allows(scope) {
			s.refuse(r, "token lacks scope", "user", p.id(), "scope", scope)
			writeError(w, http.StatusForbidden, proto.Errorf(proto.CodeForbidden, "this token lacks the %q scope", scope))
			return
		}
		if p.via == "cookie" && r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := s.csrf(r); err != nil {
				s.refuse(r, "cross-origin state change", "user", p.id())
				writeError(w, http.StatusForbidden, err)
				return
			}
		}
		h(w, r, p)
	}
}

// cookieOnly refuses callers that are not signed-in browsers: account
// changes need the password login, not a token.
func cookieOnly(w http.ResponseWriter, p *principal) bool {
	if p.via != "cookie" {
		writeError(w, http.StatusForbidden, proto.Errorf(proto.CodeForbidden, "only a signed-in browser may change the account"))
		return false
	}
	return true
}

// decodeBody decodes a JSON body, refusing unknown fields, large bodies,
// invalid UTF-8 and repeated keys (proto.CheckJSON).
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err == nil {
		err = proto.CheckJSON(b)
	}
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		err = dec.Decode(v)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, proto.Errorf(proto.CodeBadMessage, "request body: %v", err))
		return false
	}
	return true
}

// clientAddr is the address throttling counts against: the peer's IP.
// Signaling does not trust forwarding headers.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
