package server

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/porthole-dev/porthole/proto"
)

// statusOf maps every error code to the HTTP status that carries it.
var statusOf = map[proto.Code]int{
	proto.CodeBadMessage:      http.StatusBadRequest,
	proto.CodeTooLarge:        http.StatusRequestEntityTooLarge,
	proto.CodeUnsupported:     http.StatusBadRequest,
	proto.CodeUnauthorized:    http.StatusUnauthorized,
	proto.CodeForbidden:       http.StatusForbidden,
	proto.CodeNotFound:        http.StatusNotFound,
	proto.CodeAgentOffline:    http.StatusServiceUnavailable,
	proto.CodeSessionNotFound: http.StatusNotFound,
	proto.CodeSessionEnded:    http.StatusGone,
	proto.CodeDeviceNotFound:  http.StatusNotFound,
	proto.CodePortNotAllowed:  http.StatusForbidden,
	proto.CodeDeviceFailed:    http.StatusBadGateway,
	proto.CodeDeviceTimeout:   http.StatusGatewayTimeout,
	proto.CodeBadRequest:      http.StatusBadRequest,
	proto.CodeCanceled:        499, // client closed request (nginx, caddy)
	proto.CodeRateLimited:     http.StatusTooManyRequests,
	proto.CodeUnavailable:     http.StatusGatewayTimeout, // signaling waited for a peer that did not answer
	proto.CodeInternal:        http.StatusInternalServerError,
	proto.CodeExists:          http.StatusConflict,
	proto.CodeSessionInUse:    http.StatusConflict,
}

// httpStatus returns the status for err's code.
func httpStatus(err error) int {
	if st, ok := statusOf[proto.CodeOf(err)]; ok {
		return st
	}
	return http.StatusInternalServerError
}

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
