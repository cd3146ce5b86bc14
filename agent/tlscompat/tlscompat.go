// Package tlscompat reaches devices whose TLS is older than what Go offers
// by default, stepping down a ladder one rung at a time and only as far as
// the device needs, and describes what a connection needed in words.
//
// The rungs, each a superset of the one before:
//
//	Modern       Go's defaults: TLS 1.2 and 1.3, ECDHE key exchange, AEAD and
//	             ECDHE-CBC suites.
//	LegacySuites TLS 1.2 and 1.3 with every suite Go implements but RC4: RSA
//	             key exchange, CBC with SHA-256, 3DES.
//	OldVersions  TLS 1.0 and 1.1 too.
//	RC4          RC4 suites too.
//
// A rung is tried only after the one before failed its handshake for a
// reason a newer rung cannot fix: a timeout, a cancelled context or a
// certificate the caller's VerifyConnection refused (a changed pin) never
// make the agent step down. What cannot be reached at all, and why, is in
// the README's compatibility section: SSL 3.0 (Go removed it), DHE key
// exchange without EC (Go never implemented it), export, NULL and
// anonymous suites, RSA keys under 1024 bits (crypto/rsa's minimum).
//
// SHA-1 signatures in a TLS 1.2 handshake are refused by Go 1.25 and later
// unless the process runs with GODEBUG tlssha1=1, a process-wide setting:
// porthole-agent's main package sets it with a //go:debug line, which
// lets a TLS 1.2 device that signs its key exchange with SHA-1 connect
// (TLS 1.0 and 1.1 always use MD5+SHA-1 and need no setting). Certificates
// signed with SHA-1, expired or self-signed are a matter of verification,
// which for devices is the certificate pin (agent/deviceid), not a CA.
package tlscompat

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
)

// Level is a rung of the ladder.
type Level int

// The rungs, from the default down.
const (
	Modern Level = iota
	LegacySuites
	OldVersions
	RC4
)

// Lowest is the last rung.
const Lowest = RC4

func (l Level) String() string {
	switch l {
	case Modern:
		return "modern"
	case LegacySuites:
		return "legacy-suites"
	case OldVersions:
		return "old-versions"
	case RC4:
		return "rc4"
	}
	return fmt.Sprintf("level(%d)", int(l))
}

// ParseLevel is String's inverse.
func ParseLevel(s string) (Level, error) {
	for l := Modern; l <= Lowest; l++ {
		if l.String() == s {
			return l, nil
		}
	}
	return 0, fmt.Errorf("tlscompat: unknown level %q", s)
}

// Config returns base (not modified) adjusted to rung l. Modern returns a
// clone of base as it is.
func Config(base *tls.Config, l Level) *tls.Config {
	c := base.Clone()
	if c == nil {
		c = &tls.Config{}
	}
	if l <= Modern {
		return c
	}
	c.CipherSuites = suites(l >= RC4)
	if l >= OldVersions {
		c.MinVersion = tls.VersionTLS10
	}
	return c
}

// suites lists every TLS 1.0–1.2 suite Go implements (Go orders them by
// its own preference, so the device gets the best one it shares); RC4
// only when asked.
func suites(rc4 bool) []uint16 {
	var out []uint16
	for _, s := range tls.CipherSuites() {
		if slices.Contains(s.SupportedVersions, tls.VersionTLS13) && len(s.SupportedVersions) == 1 {
			continue // TLS 1.3 suites are not configurable
		}
		out = append(out, s.ID)
	}
	for _, s := range tls.InsecureCipherSuites() {
		if strings.Contains(s.Name, "_RC4_") && !rc4 {
			continue
		}
		out = append(out, s.ID)
	}
	return out
}

// VerifyError wraps an error of the caller's VerifyConnection: such a
// failure is never a reason to step down.
type VerifyError struct{ Err error }

func (e *VerifyError) Error() string { return e.Err.Error() }
func (e *VerifyError) Unwrap() error { return e.Err }

// Handshake connects with dial and completes a TLS handshake with base,
// starting at rung from and stepping down to Lowest while handshakes fail
// for TLS reasons. It returns the connection and the rung that worked; on
// failure, the error of the first rung tried (the most telling one: "the
// device does not answer", "its certificate changed") unless a lower rung
// got further. Each rung is a new TCP connection, as a device that
// refused a ClientHello usually closes the connection.
func Handshake(ctx context.Context, dial func(ctx context.Context) (net.Conn, error), base *tls.Config, from Level) (*tls.Conn, Level, error) {
	if from < Modern || from > Lowest {
		from = Modern
	}
	var firstErr error
	for l := from; l <= Lowest; l++ {
		raw, err := dial(ctx)
		if err != nil {
			return nil, l, err // no TCP: no TLS rung will help
		}
		cfg := Config(base, l)
		if v := cfg.VerifyConnection; v != nil {
			cfg.VerifyConnection = func(cs tls.ConnectionState) error {
				if err := v(cs); err != nil {
					return &VerifyError{Err: err}
				}
				return nil
			}
		}
		tc := tls.Client(raw, cfg)
		err = tc.HandshakeContext(ctx)
		if err == nil {
			return tc, l, nil
		}
		_ = raw.Close()
		err = fmt.Errorf("TLS handshake (%s): %w", l, err)
		if firstErr == nil {
			firstErr = err
		}
		if !retryable(ctx, err) {
			return nil, l, err
		}
	}
	return nil, Lowest, firstErr
}

// retryable reports whether a failed handshake may work on a lower rung.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var ve *VerifyError
	if errors.As(err, &ve) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	var ce *tls.CertificateVerificationError
	return !errors.As(err, &ce)
}
