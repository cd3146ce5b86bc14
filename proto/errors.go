package proto

import (
	"errors"
	"fmt"
	"net/http"
)

// Code is a stable, machine-readable error code. Codes reach users next to a
// readable message and never change meaning once released.
type Code string

// Error codes shared by signaling and the tunnel.
const (
	CodeBadMessage      Code = "bad_message"       // malformed, invalid or unknown message
	CodeTooLarge        Code = "too_large"         // over a size limit
	CodeUnsupported     Code = "unsupported"       // unknown version or message type
	CodeUnauthorized    Code = "unauthorized"      // missing or wrong credentials
	CodeForbidden       Code = "forbidden"         // authenticated but not allowed
	CodeNotFound        Code = "not_found"         // no such device or session (also used instead of forbidden to avoid existence leaks)
	CodeAgentOffline    Code = "agent_offline"     // the device's agent is not connected
	CodeSessionNotFound Code = "session_not_found" // message for a session the connection does not belong to
	CodeSessionEnded    Code = "session_ended"     // the session is over (expired or ended)
	CodeDeviceNotFound  Code = "device_not_found"  // the agent declares no such device
	CodePortNotAllowed  Code = "port_not_allowed"  // the device does not declare that port
	CodeDeviceFailed    Code = "device_failed"     // the device could not be reached or answered badly
	CodeDeviceTimeout   Code = "device_timeout"    // the device did not answer in time
	CodeBadRequest      Code = "bad_request"       // a tunnelled request the agent refuses to forward
	CodeCanceled        Code = "canceled"          // the peer cancelled the exchange
	CodeRateLimited     Code = "rate_limited"      // too many requests or sessions
	CodeUnavailable     Code = "unavailable"       // temporarily unable; retry later
	CodeInternal        Code = "internal"          // a bug or unexpected failure
	CodeAuditBacklog    Code = "audit_backlog"     // the agent cannot record more (its access log is not acknowledged yet): nothing is served until it can
	CodeExists          Code = "exists"            // a user, site or token with that name or ID exists already
	CodeSessionInUse    Code = "session_in_use"    // the session is already open in another window (one client per session)
	// The customer's policy (customer.go): the device needs a site admin's
	// approval first, or the site allows no sessions now.
	CodeApprovalRequired Code = "approval_required"
	CodeOutsideWindow    Code = "outside_window"
)

var knownCodes = map[Code]bool{
	CodeBadMessage: true, CodeTooLarge: true, CodeUnsupported: true,
	CodeUnauthorized: true, CodeForbidden: true, CodeNotFound: true,
	CodeAgentOffline: true, CodeSessionNotFound: true, CodeSessionEnded: true,
	CodeDeviceNotFound: true, CodePortNotAllowed: true, CodeDeviceFailed: true,
	CodeDeviceTimeout: true, CodeBadRequest: true, CodeCanceled: true,
	CodeRateLimited: true, CodeUnavailable: true, CodeInternal: true,
	CodeAuditBacklog: true, CodeExists: true, CodeSessionInUse: true,
	CodeApprovalRequired: true, CodeOutsideWindow: true,
}

// Known reports whether c is one of the codes defined here.
func (c Code) Known() bool { return knownCodes[c] }

// Error is a coded error as carried on the wire ({code, message}).
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message,omitempty"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Code)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Is makes errors.Is(err, &Error{Code: c}) match on the code alone.
func (e *Error) Is(target error) bool {
	var t *Error
	if !errors.As(target, &t) {
		return false
	}
	return t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
}

// Errorf builds a coded error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code carried by err, or CodeInternal if it carries none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// Sentinel errors returned by the decoders, wrapped with detail.
var (
	ErrTooLarge    = &Error{Code: CodeTooLarge}
	ErrBadMessage  = &Error{Code: CodeBadMessage}
	ErrUnsupported = &Error{Code: CodeUnsupported}
)

// HTTPStatus is the HTTP status that carries an error with code c in an API
// answer; every server of the module answers with it, so a client can read
// the status and the code alike. Unknown codes are 500.
func HTTPStatus(c Code) int {
	switch c {
	case CodeBadMessage, CodeUnsupported, CodeBadRequest:
		return http.StatusBadRequest
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeForbidden, CodePortNotAllowed, CodeApprovalRequired, CodeOutsideWindow:
		return http.StatusForbidden
	case CodeNotFound, CodeSessionNotFound, CodeDeviceNotFound:
		return http.StatusNotFound
	case CodeAgentOffline, CodeAuditBacklog:
		return http.StatusServiceUnavailable
	case CodeSessionEnded:
		return http.StatusGone
	case CodeDeviceFailed:
		return http.StatusBadGateway
	case CodeDeviceTimeout:
		return http.StatusGatewayTimeout
	case CodeUnavailable:
		return http.StatusGatewayTimeout // a server waited for a peer that did not answer
	case CodeCanceled:
		return 499 // client closed request (nginx, caddy)
	case CodeRateLimited:
		return http.StatusTooManyRequests
	case CodeExists, CodeSessionInUse:
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// CodeForHTTPStatus is the code a client assumes for an error answer whose
// body carries none (a proxy's page, an old server): the most general code
// HTTPStatus maps to that status.
func CodeForHTTPStatus(status int) Code {
	switch status {
	case http.StatusBadRequest:
		return CodeBadMessage
	case http.StatusUnauthorized:
		return CodeUnauthorized
	case http.StatusForbidden:
		return CodeForbidden
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusConflict:
		return CodeExists
	case http.StatusGone:
		return CodeSessionEnded
	case http.StatusRequestEntityTooLarge:
		return CodeTooLarge
	case http.StatusTooManyRequests:
		return CodeRateLimited
	case http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		// A 503 without a code says only "retry later": it may come from
		// a proxy in front, so it is not read as "agent offline".
		return CodeUnavailable
	case 499:
		return CodeCanceled
	case http.StatusBadGateway:
		return CodeDeviceFailed
	}
	return CodeInternal
}
