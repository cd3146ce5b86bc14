package enroll

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/ca"
	"github.com/porthole-dev/porthole/signaling/store"
)

// maxBody bounds enrollment request bodies.
const maxBody = 16 << 10

// AsProto maps the package's errors to coded API errors and their HTTP
// status.
func AsProto(err error) (int, *proto.Error) {
	var pe *proto.Error
	switch {
	case errors.As(err, &pe):
		return proto.HTTPStatus(pe.Code), pe
	case errors.Is(err, ErrBadToken):
		return http.StatusUnauthorized, proto.Errorf(proto.CodeUnauthorized, "the enrollment token is unknown, used or expired")
	case errors.Is(err, ErrRevoked), errors.Is(err, ErrStale), errors.Is(err, ErrExpired), errors.Is(err, ErrTooOld), errors.Is(err, ErrReplaced), errors.Is(err, ErrWrongSite), errors.Is(err, ErrUnknown), errors.Is(err, ca.ErrNotAgent):
		return http.StatusForbidden, proto.Errorf(proto.CodeForbidden, "%v", err)
	case errors.Is(err, ErrNoSite), errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, proto.Errorf(proto.CodeNotFound, "%v", err)
	case errors.Is(err, ca.ErrBadCSR), errors.Is(err, ca.ErrBadIdentity):
		return http.StatusBadRequest, proto.Errorf(proto.CodeBadMessage, "%v", err)
	}
	return http.StatusInternalServerError, proto.Errorf(proto.CodeInternal, "internal error")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, pe := AsProto(err)
	s.log.Info("enrollment request refused", "path", r.URL.Path, "remote", r.RemoteAddr, "status", status, "err", err)
	writeJSON(w, status, pe)
}

// decode reads a bounded, strict JSON body (proto.CheckJSON) into v and
// validates it.
func decode(r *http.Request, v proto.Validator) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return proto.Errorf(proto.CodeBadMessage, "read body: %v", err)
	}
	if len(b) > maxBody {
		return proto.Errorf(proto.CodeTooLarge, "body over %d bytes", maxBody)
	}
	// Strict like every wire decoder: encoding/json alone would take the
	// last of two "token" keys and mend invalid UTF-8.
	if err := proto.CheckJSON(b); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return proto.Errorf(proto.CodeBadMessage, "malformed JSON: %v", err)
	}
	if dec.More() {
		return proto.Errorf(proto.CodeBadMessage, "malformed JSON: data after the object")
	}
	return v.Validate()
}

// EnrollHandler serves POST PathEnroll. The token is the only credential;
// it goes on the app's listener, which agents reach before they have a
// certificate.
func (s *Service) EnrollHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSON(w, http.StatusMethodNotAllowed, proto.Errorf(proto.CodeBadMessage, "POST only"))
			return
		}
		var req proto.EnrollRequest
		if err := decode(r, &req); err != nil {
			s.fail(w, r, err)
			return
		}
		res, err := s.Enroll(r.Context(), &req)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
}

// AgentHandler serves the agent listener (whose TLS is AgentTLSConfig):
// GET PathAgentSocket goes to socket with the agent's ID, POST
// PathAgentRenew renews the certificate. The certificate is checked
// against the store again on every request, because a keep-alive
// connection may outlive a revocation.
func (s *Service) AgentHandler(socket func(w http.ResponseWriter, r *http.Request, agent string)) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+proto.PathAgentSocket, func(w http.ResponseWriter, r *http.Request) {
		id, ok := s.requestIdentity(w, r)
		if ok {
			socket(w, r, id.Agent)
		}
	})
	mux.HandleFunc("POST "+proto.PathAgentRenew, func(w http.ResponseWriter, r *http.Request) {
		var id ca.Identity
		var ok bool
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && s.now().After(r.TLS.PeerCertificates[0].NotAfter) {
			id, ok = s.renewExpired(w, r, r.TLS.PeerCertificates[0]) // grace.go
		} else {
			id, ok = s.requestIdentity(w, r)
		}
		if !ok {
			return
		}
		var req proto.RenewRequest
		if err := decode(r, &req); err != nil {
			s.fail(w, r, err)
			return
		}
		res, err := s.Renew(r.Context(), id, &req)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, proto.Errorf(proto.CodeNotFound, "no such path on the agent listener"))
	})
	return mux
}

// requestIdentity authenticates the request's client certificate, which
// must be current (an expired one reaches only the renewal, grace.go).
func (s *Service) requestIdentity(w http.ResponseWriter, r *http.Request) (ca.Identity, bool) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		s.fail(w, r, proto.Errorf(proto.CodeUnauthorized, "a client certificate is required"))
		return ca.Identity{}, false
	}
	if s.now().After(r.TLS.PeerCertificates[0].NotAfter) {
		s.fail(w, r, ErrExpired)
		return ca.Identity{}, false
	}
	id, err := s.Authenticate(r.Context(), r.TLS.PeerCertificates[0])
	if err != nil {
		s.fail(w, r, err)
		return ca.Identity{}, false
	}
	return id, true
}
