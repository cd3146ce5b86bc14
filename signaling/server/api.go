package server

import (
	"net/http"
	"slices"
	"strings"

	"github.com/porthole-dev/porthole/proto"
)

const maxRequestBody = 4 << 10

// api wraps an API endpoint answering the given methods: browsers may call
// it only from AllowedOrigins and the app origin (with CORS for those exact
// origins, preflight included, never for session origins); requests without
// an Origin header come from other clients.
func (s *Server) api(handlers map[string]http.HandlerFunc) http.Handler {
	var allow []string
	for m := range handlers {
		allow = append(allow, m)
	}
	slices.Sort(allow)
	methods := strings.Join(allow, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); origin != "" {
			if !s.allowed[origin] {
				s.refuse(r, "origin not allowed")
				writeError(w, http.StatusForbidden, proto.Errorf(proto.CodeForbidden, "origin not allowed"))
				return
			}
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Add("Vary", "Origin")
		}
		if h, ok := handlers[r.Method]; ok {
			h(w, r)
			return
		}
		if r.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Methods", methods)
			w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Allow", methods+", OPTIONS")
		writeError(w, http.StatusMethodNotAllowed, proto.Errorf(proto.CodeBadMessage, "method %s not allowed", r.Method))
	})
}

// createSession answers POST /v1/sessions: it opens a session on the named
// device and waits for its agent to accept.
func (s *Server) createSession(w http.ResponseWriter, r *http.Request, p *principal) {
	user := p.id()
	var req proto.CreateSession
	if !decodeBody(w, r, &req) {
		return
	}
	if err := req.Validate(); err != nil {
		writeError(w, httpStatus(err), err)
		return
	}
	agent, ok := s.mayOpen(w, r, p, req.Device, req.Agent)
	if !ok {
		return
	}
	info, err := s.sessions.OpenSession(r.Context(), user, agent, req.Device)
	if err != nil {
		s.log.Info("session not opened", "user", user, "device", req.Device, "code", proto.CodeOf(err), "err", err)
		writeError(w, httpStatus(err), err)
		return
	}
	info.ShellOrigin, info.DeviceOrigin = s.shellOrigin(info.Session), s.deviceOrigin(info.Session)
	writeJSON(w, http.StatusCreated, info)
}

// deleteSession answers DELETE /v1/sessions/{id}: the session's own user
// ends it. Anybody else's session is not found.
func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request, p *principal) {
	user := p.id()
	id := r.PathValue("id")
	if !proto.ValidSessionID(id) {
		writeError(w, http.StatusNotFound, proto.Errorf(proto.CodeNotFound, "no such session"))
		return
	}
	if err := s.sessions.EndSession(r.Context(), id, user); err != nil {
		writeError(w, httpStatus(err), err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
