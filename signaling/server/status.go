package server

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/porthole-dev/porthole/proto"
)

// httpStatus returns the status for err's code.
func httpStatus(err error) int { return proto.HTTPStatus(proto.CodeOf(err)) }

// writeError answers with a JSON proto.Error.
func writeError(w http.ResponseWriter, status int, err error) {
	pe := &proto.Error{Code: proto.CodeOf(err), Message: err.Error()}
	var e *proto.Error
	if errors.As(err, &e) {
		pe.Message = e.Message
	}
	writeJSON(w, status, pe)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
