package proto

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
)

// Session grants.
//
// For every session signaling signs a grant that tells the agent which
// session it may serve, for which device, user and agent, and until when.
// The agent verifies it with the public key it received at enrollment and
// enforces the expiry itself, so it closes the session on time even when
// signaling is unreachable.
//
// A grant is compact, in the manner of a JWS with an Ed25519 signature:
//
//	pg1.<base64url(payload)>.<base64url(signature)>
//
// where payload is the JSON encoding of Grant produced by the signer
// (fields in declaration order, no insignificant white space) and the
// signature is Ed25519 over the bytes "pg1." followed by the payload's
// base64url text, so the version prefix is signed too. Verifiers check the
// signature over the bytes they received, never over a re-encoding.

// GrantPrefix starts every grant; it names the format version.
const GrantPrefix = "pg1."

// MaxGrant bounds an encoded grant, as SessionOpen.Grant does.
const MaxGrant = 4096

// MaxGrantLifetime is the longest a grant may be valid: the longest session
// (30 minutes) with room for clock skew.
const MaxGrantLifetime = 35 * time.Minute

// Grant is the signed statement behind one session.
type Grant struct {
	Session  string `json:"session"`
	Agent    string `json:"agent"`
	Device   string `json:"device"`
	User     string `json:"user,omitempty"`
	IssuedAt int64  `json:"iat"` // Unix seconds
	Expires  int64  `json:"exp"` // Unix seconds
	// Approval is set when the session needed a site admin's approval
	// (policy.go); Scope narrows what the session may do. Both are absent
	// from grants that need neither, so older grants decode unchanged.
	Approval *GrantApproval `json:"approval,omitempty"`
	Scope    *GrantScope    `json:"scope,omitempty"`
}

// ExpiresAt returns the grant's expiry as a time.
func (g *Grant) ExpiresAt() time.Time { return time.Unix(g.Expires, 0) }

// Validate checks a grant's fields (not its signature or its expiry against
// a clock).
func (g *Grant) Validate() error {
	switch {
	case !ValidSessionID(g.Session):
		return Errorf(CodeBadMessage, "grant: malformed session id")
	case !ValidID(g.Agent):
		return Errorf(CodeBadMessage, "grant: malformed agent id")
	case !ValidID(g.Device):
		return Errorf(CodeBadMessage, "grant: malformed device id")
	case g.User != "" && !ValidID(g.User):
		return Errorf(CodeBadMessage, "grant: malformed user id")
	case g.IssuedAt <= 0 || g.Expires <= g.IssuedAt:
		return Errorf(CodeBadMessage, "grant: expiry must follow issue time")
	case time.Duration(g.Expires-g.IssuedAt)*time.Second > MaxGrantLifetime:
		return Errorf(CodeBadMessage, "grant: lifetime over %v", MaxGrantLifetime)
	}
	if g.Approval != nil {
		if err := g.Approval.Validate(); err != nil {
			return err
		}
	}
	if g.Scope != nil {
		if err := g.Scope.Validate(); err != nil {
			return err
		}
	}
	return nil
}

var b64 = base64.RawURLEncoding.Strict()

// SignGrant validates g and returns its signed encoding.
func SignGrant(g *Grant, key ed25519.PrivateKey) (string, error) {
	if err := g.Validate(); err != nil {
		return "", err
	}
	if len(key) != ed25519.PrivateKeySize {
		return "", Errorf(CodeInternal, "grant: bad signing key")
	}
	payload, err := json.Marshal(g)
	if err != nil {
		return "", Errorf(CodeInternal, "grant: %v", err)
	}
	signed := GrantPrefix + b64.EncodeToString(payload)
	sig := ed25519.Sign(key, []byte(signed))
	out := signed + "." + b64.EncodeToString(sig)
	if len(out) > MaxGrant {
		return "", Errorf(CodeTooLarge, "grant is %d bytes, limit %d", len(out), MaxGrant)
	}
	return out, nil
}

// VerifyGrant checks the signature of an encoded grant with pub, decodes it
// strictly and validates its fields. It does not look at a clock: the
// caller compares ExpiresAt with its own.
func VerifyGrant(s string, pub ed25519.PublicKey) (*Grant, error) {
	if len(s) > MaxGrant {
		return nil, Errorf(CodeTooLarge, "grant is %d bytes, limit %d", len(s), MaxGrant)
	}
	if len(pub) != ed25519.PublicKeySize {
		return nil, Errorf(CodeInternal, "grant: no verification key")
	}
	rest, ok := strings.CutPrefix(s, GrantPrefix)
	if !ok {
		return nil, Errorf(CodeUnauthorized, "grant: unknown format")
	}
	payload64, sig64, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(sig64, ".") {
		return nil, Errorf(CodeUnauthorized, "grant: malformed")
	}
	sig, err := b64.DecodeString(sig64)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, Errorf(CodeUnauthorized, "grant: malformed signature")
	}
	if !ed25519.Verify(pub, []byte(s[:len(GrantPrefix)+len(payload64)]), sig) {
		return nil, Errorf(CodeUnauthorized, "grant: bad signature")
	}
	payload, err := b64.DecodeString(payload64)
	if err != nil {
		return nil, Errorf(CodeUnauthorized, "grant: malformed payload")
	}
	if err := checkJSON(payload, 3); err != nil {
		return nil, err
	}
	var g Grant
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		return nil, Errorf(CodeBadMessage, "grant: %v", err)
	}
	if dec.More() {
		return nil, Errorf(CodeBadMessage, "grant: trailing data")
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	return &g, nil
}

// MaxSessionTTL is the longest any session may last: signaling refuses a
// longer configuration and the agent caps whatever signaling says to it.
const MaxSessionTTL = 30 * time.Minute
