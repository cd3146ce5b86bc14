package server

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/authn"
	"github.com/porthole-dev/porthole/signaling/hub"
)

// Each session has two origins under the sessions domain D (SECURITY.md,
// "Origins"):
//
//	shell-<id>.D  the session window: toolbar, peer connection, signaling
//	              socket, OAuth client, bound token. It never runs device
//	              content. Served here: /v1/session, /__t/auth.json,
//	              /__t/callback, /__t/bind, /__t/wipe; the rest by ShellWeb.
//	<id>.D        the device's pages, the service worker, the relay frame
//	              and the page shim. It holds nothing secret: whatever runs
//	              there, the device's page may also do. Served by DeviceWeb.
//
// Both are single labels under D, so one wildcard certificate covers them,
// and all sessions are same-site with each other (which is what lets the
// relay frame inside the shell share the device origin's service worker).

// sessionHost splits host into the session it names and whether it is the
// shell's host; ok is false for hosts that are not session hosts.
func (s *Server) sessionHost(host string) (label string, ok bool) {
	if s.cfg.SessionsDomain == "" {
		return "", false
	}
	label, ok = strings.CutSuffix(strings.ToLower(host), "."+s.cfg.SessionsDomain)
	return label, ok && label != ""
}

// shellOrigin and deviceOrigin are the origins of session id, or "" without
// a sessions domain.
func (s *Server) shellOrigin(id string) string {
	if s.cfg.SessionsDomain == "" {
		return ""
	}
	return s.cfg.SessionsScheme + "://" + proto.ShellHostPrefix + id + "." + s.cfg.SessionsDomain
}

func (s *Server) deviceOrigin(id string) string {
	if s.cfg.SessionsDomain == "" {
		return ""
	}
	return s.cfg.SessionsScheme + "://" + id + "." + s.cfg.SessionsDomain
}

// serveSessionHost routes a request for a session host by its label:
// shell-<id> to the shell origin, <id> to the device origin.
func (s *Server) serveSessionHost(w http.ResponseWriter, r *http.Request, label string) {
	if id, shell := strings.CutPrefix(label, proto.ShellHostPrefix); shell && proto.ValidSessionID(id) {
		s.serveShellHost(w, r, id)
		return
	}
	if proto.ValidSessionID(label) {
		s.serveDeviceHost(w, r, label)
		return
	}
	noSession(w)
}

// noSession answers a session host whose session does not exist (any
// more). It says nothing about which.
func noSession(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNotFound)
	fmt.Fprintln(w, "No such session. It may have ended or expired.")
}

// serveShellHost serves the session window's origin.
func (s *Server) serveShellHost(w http.ResponseWriter, r *http.Request, id string) {
	if r.URL.Path == proto.PathSessionWipe {
		// The ended view's wipe, whether or not the session is still live.
		s.wipeShell(w, r)
		return
	}
	if !s.sessions.SessionLive(r.Context(), id) {
		noSession(w)
		return
	}
	switch r.URL.Path {
	case proto.PathSessionSocket:
		s.serveSessionSocket(w, r)
		return
	case proto.PathSessionAuth:
		if r.Method != http.MethodGet {
			writeError(w, http.StatusMethodNotAllowed, proto.Errorf(proto.CodeBadMessage, "GET only"))
			return
		}
		s.sessionAuth(w, id)
		return
	case proto.PathSessionBind:
		s.bindSessionToken(w, r, id)
		return
	case proto.PathSessionCallback:
		// The OAuth redirect lands on the shell page, which reads the code
		// from its own URL.
		if s.cfg.ShellWeb == nil {
			http.NotFound(w, r)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawPath = "/", ""
		s.cfg.ShellWeb.ServeHTTP(w, r2)
		return
	}
	if s.cfg.ShellWeb == nil {
		http.NotFound(w, r)
		return
	}
	s.cfg.ShellWeb.ServeHTTP(w, r)
}

// serveDeviceHost serves the device origin.
func (s *Server) serveDeviceHost(w http.ResponseWriter, r *http.Request, id string) {
	if s.cfg.DeviceWeb == nil {
		noSession(w)
		return
	}
	if r.URL.Path == proto.PathSessionEnded {
		// Every device window goes here when the session ends, after it
		// has ended: it wipes the origin (DeviceWeb sets Clear-Site-Data),
		// and the fallback's device cookie goes by name (device.go).
		expireDeviceCookie(w)
		s.cfg.DeviceWeb.ServeHTTP(w, r)
		return
	}
	if !s.sessions.SessionLive(r.Context(), id) {
		noSession(w)
		return
	}
	switch r.URL.Path {
	case proto.PathSessionSocket, proto.PathSessionAuth, proto.PathSessionBind, proto.PathSessionCallback:
		// What holds a secret lives on the shell origin only; the device's
		// page runs here and must not reach it.
		s.refuse(r, "shell path on the device origin", "session", id)
		writeError(w, http.StatusNotFound, proto.Errorf(proto.CodeNotFound, "not on this origin"))
		return
	case proto.PathRelayFrame:
		s.serveRelayFrame(w, r, id)
		return
	}
	if !strings.HasPrefix(r.URL.Path, proto.PathPrefix) {
		// What the service worker did not carry (device.go).
		s.serveDeviceFallback(w, r, id)
		return
	}
	s.cfg.DeviceWeb.ServeHTTP(w, r)
}

// serveRelayFrame serves the relay frame. The shell's page loads it
// without a ticket, before the session is joined; once joined, the shell
// asks for it again with the relay ticket of its session.ready (?t=…), an
// opaque request whose answer it never reads, which buys the device cookie
// of the server fallback (device.go). The relay frame itself holds
// nothing.
func (s *Server) serveRelayFrame(w http.ResponseWriter, r *http.Request, id string) {
	if r.URL.Query().Has("t") && !s.redeemRelayTicket(w, r, id) {
		return
	}
	s.cfg.DeviceWeb.ServeHTTP(w, r)
}

// bindSessionToken answers POST PathSessionBind on the shell origin: the
// shell binds its session token, presented as a bearer token, to a secret
// in an HttpOnly cookie of its own origin (hub/binding.go). Only the shell
// origin itself may ask (Origin and Sec-Fetch-Site), so no other page can
// bind a token it got hold of to a cookie of its own choosing.
func (s *Server) bindSessionToken(w http.ResponseWriter, r *http.Request, id string) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, proto.Errorf(proto.CodeBadMessage, "POST only"))
		return
	}
	if r.Header.Get("Origin") != s.shellOrigin(id) || r.Header.Get("Sec-Fetch-Site") != "same-origin" {
		s.refuse(r, "token binding from another origin", "session", id, "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
		writeError(w, http.StatusForbidden, proto.Errorf(proto.CodeForbidden, "only the session window may bind its token"))
		return
	}
	tok := bearer(r)
	ref, ok, err := s.sessions.TokenSession(r.Context(), tok)
	if err != nil {
		writeError(w, httpStatus(err), err)
		return
	}
	if !ok || ref.ID != id {
		s.refuse(r, "token binding: token missing, wrong or of another session", "session", id)
		w.Header().Set("WWW-Authenticate", `Bearer realm="porthole"`)
		writeError(w, http.StatusUnauthorized, proto.Errorf(proto.CodeUnauthorized, "a valid session token is required"))
		return
	}
	secret, _ := authn.NewSecret()
	tokenHash, bindHash := sha256.Sum256([]byte(tok)), sha256.Sum256([]byte(secret))
	if err := s.sessions.BindToken(r.Context(), ref, tokenHash, bindHash); err != nil {
		if errors.Is(err, hub.ErrNoSession) {
			noSession(w)
			return
		}
		s.refuse(r, "token binding refused", "session", id, "code", proto.CodeOf(err))
		writeError(w, httpStatus(err), err)
		return
	}
	_, expires, _ := s.sessions.SessionOwner(r.Context(), id)
	maxAge := int(time.Until(expires).Seconds()) + 60
	if maxAge <= 60 {
		maxAge = int(MaxSessionTTL.Seconds())
	}
	http.SetCookie(w, &http.Cookie{Name: proto.BindCookie, Value: secret, Path: "/", MaxAge: maxAge,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// wipeShell answers GET PathSessionWipe on the shell origin, which the
// shell's ended view fetches: it clears the origin's storage and cache and
// expires the bind cookie. Not "cookies" in Clear-Site-Data: Chromium clears
// cookies for the whole site with it, which is every other session's bind
// cookie too (measured in Chromium 156), so the one cookie of ours goes by
// name instead.
func (s *Server) wipeShell(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, proto.Errorf(proto.CodeBadMessage, "GET only"))
		return
	}
	h := w.Header()
	h.Set("Clear-Site-Data", proto.ClearSiteData)
	h.Set("Cache-Control", "no-store")
	http.SetCookie(w, &http.Cookie{Name: proto.BindCookie, Value: "", Path: "/", MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}
