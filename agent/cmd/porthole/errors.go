package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"

	"github.com/porthole-dev/porthole/agent/egress"
	"github.com/porthole-dev/porthole/agent/sigclient"
	"github.com/porthole-dev/porthole/proto"
)

// Exit codes (README: "Exit codes"). `porthole ssh` exits with ssh's own
// status instead.
const (
	exitOK          = 0
	exitError       = 1   // anything else: the session ended with an error, a local failure
	exitUsage       = 2   // bad flags or arguments
	exitAuth        = 3   // not signed in, or the token was refused: run porthole login
	exitDenied      = 4   // no such device, not allowed, port not declared
	exitUnavailable = 5   // server, agent or device unreachable, or the device failed its check
	exitInterrupted = 130 // Ctrl-C (128 + SIGINT)
)

// userError is an error as the user reads it: what happened, what to do
// next, and the exit code.
type userError struct {
	what, next string
	code       int
	err        error // the cause, shown with --verbose
}

func (e *userError) Error() string { return e.what }
func (e *userError) Unwrap() error { return e.err }

func usageErrorf(cmd, format string, args ...any) error {
	next := "run 'porthole help' for the commands"
	if cmd != "" {
		next = "run 'porthole help " + cmd + "' for its usage"
	}
	return &userError{what: fmt.Sprintf(format, args...), next: next, code: exitUsage}
}

// fail prints err for the user and returns its exit code.
func (a *app) fail(err error) int {
	ue := a.explain(err)
	if ue.what == "" {
		return ue.code // the program we ran (ssh) said it
	}
	fmt.Fprintf(a.stderr, "porthole: %s\n", ue.what)
	if ue.next != "" {
		fmt.Fprintf(a.stderr, "  %s\n", ue.next)
	}
	if a.verbose && ue.err != nil && ue.err.Error() != ue.what {
		fmt.Fprintf(a.stderr, "  (cause: %v)\n", ue.err)
	}
	return ue.code
}

// explain turns any error into what the user reads. The cases here are
// golden-tested (integration/cli_errors_test.go): server down, wrong URL,
// expired token, device disabled, device offline, undeclared port, port
// in use.
func (a *app) explain(err error) *userError {
	var ue *userError
	if errors.As(err, &ue) {
		return ue
	}
	if errors.Is(err, context.Canceled) {
		return &userError{what: "interrupted", code: exitInterrupted, err: err}
	}
	server := a.server
	var api *sigclient.APIError
	if errors.As(err, &api) && api.Foreign && api.Status >= 500 {
		return &userError{
			what: fmt.Sprintf("the server at %s answered HTTP %d without a Porthole error: a proxy in front of it may not reach Porthole", server, api.Status),
			next: "check that porthole-signaling runs behind that address; try again", code: exitUnavailable, err: err,
		}
	}
	if errors.As(err, &api) && api.Foreign {
		return &userError{
			what: fmt.Sprintf("%s is not a Porthole server (it answered HTTP %d to the API)", server, api.Status),
			next: "check --server or PORTHOLE_SERVER: it is the address of the Porthole app, e.g. https://porthole.example.com",
			code: exitUnavailable, err: err,
		}
	}
	var pe *proto.Error
	if errors.As(err, &pe) {
		return explainCode(pe, err)
	}
	var dnsErr *net.DNSError
	var uerr *url.Error
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var proxyErr *egress.Error
	switch {
	case errors.Is(err, egress.ErrInspected):
		return &userError{what: err.Error(), next: "give the proxy's CA in SSL_CERT_FILE, or ask for the server to be exempt from inspection",
			code: exitUnavailable, err: err}
	case errors.As(err, &proxyErr):
		next := "check HTTPS_PROXY / HTTP_PROXY (and NO_PROXY)"
		if errors.Is(err, egress.ErrAuth) {
			next = "give the proxy's credentials as user:password@ in HTTPS_PROXY"
		}
		return &userError{what: fmt.Sprintf("cannot reach the Porthole server at %s through the proxy: %v", server, proxyErr),
			next: next, code: exitUnavailable, err: err}
	case errors.As(err, &dnsErr):
		return &userError{what: fmt.Sprintf("cannot find the server %s: %s does not resolve", server, dnsErr.Name),
			next: "check --server or PORTHOLE_SERVER for a typo", code: exitUnavailable, err: err}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &userError{what: fmt.Sprintf("cannot reach the Porthole server at %s: connection refused", server),
			next: "check that the server runs and that --server or PORTHOLE_SERVER is its address", code: exitUnavailable, err: err}
	case errors.As(err, &certErr), errors.As(err, &unknownCA):
		return &userError{what: fmt.Sprintf("the server %s presented a certificate this machine does not trust", server),
			next: "check --server (a typo can reach another host); a private CA must be in the system's trust store", code: exitUnavailable, err: err}
	case errors.As(err, &uerr) && uerr.Timeout():
		return &userError{what: fmt.Sprintf("the server %s did not answer in time", server),
			next: "check your network and --server; try again", code: exitUnavailable, err: err}
	case errors.As(err, &uerr):
		return &userError{what: fmt.Sprintf("cannot reach the Porthole server at %s: %v", server, uerr.Err),
			next: "check that the server runs and that --server or PORTHOLE_SERVER is its address", code: exitUnavailable, err: err}
	}
	return &userError{what: err.Error(), code: exitError, err: err}
}

// explainDial words a failure to open a stream to port of device.
func explainDial(err error, device string, port int) error {
	var pe *proto.Error
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code {
	case proto.CodeDeviceFailed, proto.CodeDeviceTimeout:
		return &userError{what: fmt.Sprintf("the agent could not connect to %s port %d: %s", device, port, pe.Message),
			next: "check that the service runs on the device; the agent reaches it at the address its configuration declares", code: exitUnavailable, err: err}
	case proto.CodePortNotAllowed:
		return &userError{what: fmt.Sprintf("the agent refused port %d: %s", port, pe.Message),
			next: "run 'porthole devices' for the ports it declares; the site's admin declares more in the agent's configuration (services)", code: exitDenied, err: err}
	}
	return err
}

// explainCode words a refusal from signaling or the agent.
func explainCode(pe *proto.Error, err error) *userError {
	msg := pe.Message
	switch pe.Code {
	case proto.CodeUnauthorized:
		return &userError{what: "the server refused your token: it expired, was revoked, or is for another server",
			next: "run 'porthole login' (or check --token / PORTHOLE_TOKEN)", code: exitAuth, err: err}
	case proto.CodeForbidden:
		next := "ask an administrator for the Remote Technician User role on the device's site"
		if strings.Contains(msg, "not enabled") {
			next = "ask a configurer of the site to switch on Remote access for the device in the app"
		}
		return &userError{what: "not allowed: " + msg, next: next, code: exitDenied, err: err}
	case proto.CodeNotFound, proto.CodeDeviceNotFound:
		return &userError{what: msg, next: "run 'porthole devices' to see the devices you may open", code: exitDenied, err: err}
	case proto.CodePortNotAllowed:
		return &userError{what: msg, next: "run 'porthole devices' for the ports it declares; the site's admin declares more in the agent's configuration (services)", code: exitDenied, err: err}
	case proto.CodeAgentOffline:
		return &userError{what: msg, next: "check that porthole-agent runs at the site and reaches the server; 'porthole devices' shows when it is back", code: exitUnavailable, err: err}
	case proto.CodeDeviceFailed, proto.CodeDeviceTimeout:
		return &userError{what: "the agent could not verify the device: " + msg, next: "see its health in 'porthole devices'; the site's admin can check the device and the agent's configuration", code: exitUnavailable, err: err}
	case proto.CodeUnavailable, proto.CodeRateLimited:
		return &userError{what: msg, next: "try again in a moment", code: exitUnavailable, err: err}
	}
	return &userError{what: fmt.Sprintf("%s (%s)", msg, pe.Code), code: exitError, err: err}
}
