package store

import (
	"context"
	"time"
)

// EnrollToken is a single-use agent enrollment token, stored by the hex
// SHA-256 of the token only.
type EnrollToken struct {
	Hash      string    `json:"hash"`
	Site      string    `json:"site"`
	Agent     string    `json:"agent"` // the ID the enrolled agent gets
	Name      string    `json:"name,omitempty"`
	CreatedBy string    `json:"createdBy"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires"`
}

// AgentCert is the certificate state of one enrolled agent: which serials
// are good (the current one and, while a renewed certificate is not yet in
// use, the one before it) and whether it is revoked. Agent certificates
// are checked against it on every handshake.
type AgentCert struct {
	Agent      string    `json:"agent"`
	Site       string    `json:"site"`
	Serial     string    `json:"serial"`               // hex serial of the newest certificate
	PrevSerial string    `json:"prevSerial,omitempty"` // the one it renewed, still good until it expires
	Expires    time.Time `json:"expires"`              // NotAfter of the newest certificate
	Enrolled   time.Time `json:"enrolled"`
	Renewed    time.Time `json:"renewed,omitzero"`
	Revoked    bool      `json:"revoked,omitempty"`
	RevokedAt  time.Time `json:"revokedAt,omitzero"`
	RevokedBy  string    `json:"revokedBy,omitempty"`
}

// Good reports whether a certificate with serial may be used by the agent.
func (c *AgentCert) Good(serial string) bool {
	return !c.Revoked && serial != "" && (serial == c.Serial || serial == c.PrevSerial)
}

// PKI is the persistent state of agent enrollment, kept apart from Store
// so the CA can evolve without touching it. A backend implements both on
// the same data.
type PKI interface {
	// PutEnrollToken stores an unused token; ErrExists if its Hash is taken.
	PutEnrollToken(ctx context.Context, t *EnrollToken) error
	// ConsumeEnrollToken removes the token with hash and returns it, once:
	// ErrNotFound for an unknown, used or expired token.
	ConsumeEnrollToken(ctx context.Context, hash string) (*EnrollToken, error)
	// EnrollTokens lists unused, unexpired tokens, oldest first.
	EnrollTokens(ctx context.Context) ([]*EnrollToken, error)

	// AgentCert returns an agent's certificate state; ErrNotFound if it
	// never enrolled.
	AgentCert(ctx context.Context, agent string) (*AgentCert, error)
	// UpdateAgentCert applies fn to the agent's certificate state (a new
	// record with only Agent set if none exists) atomically and stores the
	// result, unless fn returns an error (returned as is). fn must not
	// change Agent (ErrConflict) and may run more than once.
	UpdateAgentCert(ctx context.Context, agent string, fn func(*AgentCert) error) (*AgentCert, error)
}
