package server

import (
	"net/http"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/enroll"
)

// Agent enrollment, the agent listener and revocation (package enroll
// keeps the state; this file mounts it with the server's role checks).

func grantSigner(e *enroll.Service) func(g *proto.Grant) (string, error) {
	if e == nil {
		return nil
	}
	return e.GrantSigner()
}

// enrollRoutes mounts the enrollment endpoints on the app listener when
// enrollment is configured.
func (s *Server) enrollRoutes(mux *http.ServeMux) {
	if s.cfg.Enroll == nil {
		return
	}
	type methods = map[string]http.HandlerFunc
	// The token is the credential; agents have no Origin and no login.
	mux.Handle(proto.PathEnroll, s.cfg.Enroll.EnrollHandler())
	mux.Handle(proto.PathEnrollments, s.api(methods{"POST": s.adminOnly(proto.ScopeManage, s.createEnrollment)}))
	mux.Handle(proto.PathAgentRevoke, s.api(methods{"POST": s.adminOnly(proto.ScopeManage, s.revokeAgent)}))
}

// AgentHandler serves the agent listener: the agent socket for agents
// proven by client certificate, and certificate renewal. Serve it with
// Config.Enroll.AgentTLSConfig; nil without Config.Enroll.
func (s *Server) AgentHandler() http.Handler {
	if s.cfg.Enroll == nil {
		return nil
	}
	return s.cfg.Enroll.AgentHandler(s.serveCertifiedAgent)
}

// serveCertifiedAgent upgrades the socket of an agent whose certificate
// package enroll has checked.
func (s *Server) serveCertifiedAgent(w http.ResponseWriter, r *http.Request, agentID string) {
	if origin := r.Header.Get("Origin"); origin != "" {
		s.refuse(r, "browser origin on the agent listener", "agent", agentID)
		writeError(w, http.StatusForbidden, proto.Errorf(proto.CodeForbidden, "origin not allowed"))
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.log.Info("agent upgrade failed", "agent", agentID, "remote", r.RemoteAddr, "err", err)
		return
	}
	s.log.Info("agent connected", "agent", agentID, "remote", r.RemoteAddr, "auth", "certificate")
	s.hub.ServeAgent(ws, agentID)
}

// createEnrollment answers POST PathEnrollments (admins).
func (s *Server) createEnrollment(w http.ResponseWriter, r *http.Request, p *principal) {
	var req proto.NewEnrollment
	if !decodeBody(w, r, &req) {
		return
	}
	res, err := s.cfg.Enroll.CreateToken(r.Context(), p.id(), &req)
	if err != nil {
		status, pe := enroll.AsProto(err)
		writeError(w, status, pe)
		return
	}
	writeJSON(w, http.StatusCreated, res)
}

// revokeAgent answers POST PathAgentRevoke (admins): the agent's
// certificates are refused from now on and its connection is dropped.
func (s *Server) revokeAgent(w http.ResponseWriter, r *http.Request, p *principal) {
	id := r.PathValue("id")
	if err := s.cfg.Enroll.Revoke(r.Context(), p.id(), id); err != nil {
		status, pe := enroll.AsProto(err)
		if status == http.StatusForbidden {
			status, pe = http.StatusNotFound, proto.Errorf(proto.CodeNotFound, "no enrolled agent %s", id)
		}
		writeError(w, status, pe)
		return
	}
	dropped := s.hub.DisconnectAgent(id, "agent revoked")
	writeJSON(w, http.StatusOK, &proto.AgentRevoked{Agent: id, Disconnected: dropped})
}
