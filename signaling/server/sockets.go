package server

import (
	"crypto/sha256"
	"net/http"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/hub"
)

// serveAgentSocket upgrades an agent's WebSocket after checking its key.
func (s *Server) serveAgentSocket(w http.ResponseWriter, r *http.Request) {
	if s.refuseDraining(w) {
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && !s.allowed[origin] {
		s.refuse(r, "origin not allowed on the agent socket")
		writeError(w, http.StatusForbidden, proto.Errorf(proto.CodeForbidden, "origin not allowed"))
		return
	}
	agentID, ok := lookup(s.agents, bearer(r))
	if !ok {
		s.refuse(r, "agent key missing or wrong")
		w.Header().Set("WWW-Authenticate", `Bearer realm="porthole"`)
		writeError(w, http.StatusUnauthorized, proto.Errorf(proto.CodeUnauthorized, "a valid agent key is required"))
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.log.Info("agent upgrade failed", "agent", agentID, "remote", r.RemoteAddr, "err", err)
		return
	}
	s.log.Info("agent connected", "agent", agentID, "remote", r.RemoteAddr)
	s.hub.ServeAgent(ws, agentID)
}

// serveSessionSocket upgrades a client's WebSocket for the one session its
// token opens. Browsers (requests with an Origin) must come from the
// session's shell origin or an allowed origin: anything else, the session's
// device origin included, is cross-site WebSocket hijacking and is refused
// before the upgrade. The hub then applies the binding and one-client
// rules (hub/binding.go) to what the request proved: the token, the bind
// cookie, and whether it came from a web page.
func (s *Server) serveSessionSocket(w http.ResponseWriter, r *http.Request) {
	if s.refuseDraining(w) {
		return
	}
	ref, ok, cerr := s.sessions.TokenSession(r.Context(), sessionToken(r))
	if cerr != nil {
		writeError(w, httpStatus(cerr), cerr)
		return
	}
	if !ok {
		s.refuse(r, "session token missing, wrong or expired")
		w.Header().Set("WWW-Authenticate", `Bearer realm="porthole"`)
		writeError(w, http.StatusUnauthorized, proto.Errorf(proto.CodeUnauthorized, "a valid session token is required"))
		return
	}
	id := ref.ID
	origin := r.Header.Get("Origin")
	if origin != "" && !s.allowed[origin] && (s.shellOrigin(id) == "" || origin != s.shellOrigin(id)) {
		s.refuse(r, "origin not allowed on the session socket", "session", id)
		writeError(w, http.StatusForbidden, proto.Errorf(proto.CodeForbidden, "origin not allowed"))
		return
	}
	if label, onSessionHost := s.sessionHost(r.Host); onSessionHost && label != proto.ShellHostPrefix+id {
		s.refuse(r, "token for another session", "session", id)
		writeError(w, http.StatusUnauthorized, proto.Errorf(proto.CodeUnauthorized, "a valid session token is required"))
		return
	}
	auth := hub.ClientAuth{TokenHash: sha256.Sum256([]byte(sessionToken(r))), Browser: origin != ""}
	if ck, err := r.Cookie(proto.BindCookie); err == nil && ck.Value != "" {
		auth.BindHash = sha256.Sum256([]byte(ck.Value))
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.log.Info("client upgrade failed", "session", id, "remote", r.RemoteAddr, "err", err)
		return
	}
	s.sessions.ServeClient(ws, ref, auth)
}
