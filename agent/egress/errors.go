package egress

import (
	"errors"
	"fmt"
	"strings"
)

// Why a connection through the proxy failed; *Error unwraps to one.
var (
	// ErrUnreachable: the proxy itself could not be reached.
	ErrUnreachable = errors.New("cannot reach the proxy")
	// ErrTimeout: the proxy did not answer in time.
	ErrTimeout = errors.New("the proxy did not answer in time")
	// ErrClosed: the proxy closed the connection before it answered.
	ErrClosed = errors.New("the proxy closed the connection before answering")
	// ErrBadAnswer: what the proxy sent is not an HTTP answer.
	ErrBadAnswer = errors.New("the proxy's answer is not HTTP")
	// ErrAuth: the proxy asks for credentials (407).
	ErrAuth = errors.New("the proxy asks for credentials")
	// ErrRefused: the proxy refused the tunnel (any other non-2xx).
	ErrRefused = errors.New("the proxy refused the tunnel")
	// ErrTLS: the TLS handshake with an https:// proxy failed.
	ErrTLS = errors.New("TLS with the proxy failed")
)

// Error is a failed CONNECT through a proxy. Its text names the proxy, the
// destination and what the proxy answered; it never holds credentials.
type Error struct {
	Proxy  string // the proxy's host:port
	Target string // the destination asked for
	Kind   error  // one of the Err… values above
	Status int    // the proxy's HTTP status, 0 if it sent none
	// Answer is the proxy's status line, or the start of what it sent
	// instead (at most 256 bytes), credentials redacted.
	Answer string
	cause  error // redacted
	hint   string
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "proxy %s, CONNECT %s: %s", e.Proxy, e.Target, e.Kind)
	switch {
	case e.Status != 0:
		fmt.Fprintf(&b, ": it answered %q", e.Answer)
	case e.Answer != "":
		fmt.Fprintf(&b, ": it sent %q", e.Answer)
	case e.cause != nil:
		fmt.Fprintf(&b, ": %v", e.cause)
	}
	if e.hint != "" {
		b.WriteString(" (" + e.hint + ")")
	}
	return b.String()
}

// Unwrap returns the kind, so errors.Is(err, egress.ErrAuth) works. The
// underlying network error is kept out of the chain on purpose: its text
// is only shown redacted.
func (e *Error) Unwrap() error { return e.Kind }
