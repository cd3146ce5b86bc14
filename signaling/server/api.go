package server

import (
	"encoding/json"
	"net/http"

	"github.com/porthole-dev/porthole/proto"
)

const maxRequestBody = 4 << 10

// api wraps an API endpoint answering method: browsers may call it only
// from AllowedOrigins (with CORS for those exact origins, preflight
// included); requests without an Origin header come from other clients.
func (s *Server) api(method string, h http.HandlerFunc) http.Handler {
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
		switch r.Method {
		case method:
			h(w, r)
		case http.MethodOptions:
			w.Header().Set("Access-Control-Allow-Methods", method)
			w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
		default:
			w.Header().Set("Allow", method+", OPTIONS")
			writeError(w, http.StatusMethodNotAllowed, proto.Errorf(proto.CodeBadMessage, "method %s not allowed", r.Method))
		}
	})
}

// listDevices answers GET /v1/devices.
func (s *Server) listDevices(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.technician(w, r); !ok {
		return
	}
	writeJSON(w, http.StatusOK, &proto.DeviceList{Devices: s.hub.Devices()})
}

// createSession answers POST /v1/sessions: it opens a session on the named
// device and waits for its agent to accept.
func (s *Server) createSession(w http.ResponseWriter, r *http.Request) {
	user, ok := s.technician(w, r)
	if !ok {
		return
	}
	var req proto.CreateSession
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, proto.Errorf(proto.CodeBadMessage, "request body: %v", err))
		return
	}
	if err := req.Validate(); err != nil {
		writeError(w, httpStatus(err), err)
		return
	}
	info, err := s.hub.OpenSession(r.Context(), user, req.Device)
	if err != nil {
		s.log.Info("session not opened", "user", user, "device", req.Device, "code", proto.CodeOf(err), "err", err)
		writeError(w, httpStatus(err), err)
		return
	}
	info.Origin = s.sessionOrigin(info.Session)
	writeJSON(w, http.StatusCreated, info)
}

// deleteSession answers DELETE /v1/sessions/{id}: the session's own user
// ends it. Anybody else's session is not found.
func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request) {
	user, ok := s.technician(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if !proto.ValidSessionID(id) {
		writeError(w, http.StatusNotFound, proto.Errorf(proto.CodeNotFound, "no such session"))
		return
	}
	if err := s.hub.EndSession(id, user); err != nil {
		writeError(w, httpStatus(err), err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
