package proto

import (
	"strings"
	"time"
)

// Agent enrollment and certificates.
//
// An admin creates an enrollment token for a site (PathEnrollments); it is
// shown once, single use and expiring. On the device, `porthole-agent
// enroll` generates the agent's key, sends a certificate signing request
// with the token (PathEnroll) and stores what comes back: its client
// certificate, the CA that issued it, and the public key that verifies
// session grants. The agent then connects to AgentURL with mutual TLS and
// renews its short-lived certificate over that same mutual TLS
// (PathAgentRenew) well before it expires. An admin revokes an agent with
// PathAgentRevoke: its connection is dropped at once and it is refused
// after.

// Enrollment API paths.
const (
	PathEnrollments = "/v1/enrollments"        // admin: POST NewEnrollment → CreatedEnrollment
	PathEnroll      = "/v1/enroll"             // POST EnrollRequest → EnrollResult (the token is the credential)
	PathAgentRenew  = "/v1/agent/renew"        // agent listener, mutual TLS: POST RenewRequest → EnrollResult
	PathAgentRevoke = "/v1/agents/{id}/revoke" // admin: POST → AgentRevoked
)

// Limits of the enrollment API.
const (
	MaxCSR               = 4096 // bytes of a PEM certificate signing request
	MaxEnrollmentTTL     = 7 * 24 * time.Hour
	DefaultEnrollmentTTL = time.Hour
)

// NewEnrollment is the body of POST PathEnrollments.
type NewEnrollment struct {
	Site string `json:"site"`
	// Agent is the ID the enrolled agent gets; empty derives one.
	// Enrolling an existing agent ID again replaces its certificate.
	Agent string `json:"agent,omitempty"`
	Name  string `json:"name,omitempty"`
	// ExpiresIn is the token's lifetime in seconds; 0 means one hour.
	ExpiresIn int64 `json:"expiresIn,omitempty"`
}

// Validate checks a token request.
func (n *NewEnrollment) Validate() error {
	switch {
	case !ValidID(n.Site):
		return Errorf(CodeBadMessage, "enrollment: malformed site id")
	case n.Agent != "" && !ValidID(n.Agent):
		return Errorf(CodeBadMessage, "enrollment: malformed agent id")
	case len(n.Name) > MaxText:
		return Errorf(CodeTooLarge, "enrollment: name too long")
	case n.ExpiresIn < 0 || time.Duration(n.ExpiresIn)*time.Second > MaxEnrollmentTTL:
		return Errorf(CodeBadMessage, "enrollment: expiresIn outside 0 … %d s", int64(MaxEnrollmentTTL/time.Second))
	}
	return nil
}

// CreatedEnrollment carries the token once; only its hash is kept.
type CreatedEnrollment struct {
	Token   string    `json:"token"`
	Site    string    `json:"site"`
	Agent   string    `json:"agent"`
	Expires time.Time `json:"expires"`
}

// EnrollRequest is the body of POST PathEnroll.
type EnrollRequest struct {
	Token string `json:"token"`
	CSR   string `json:"csr"` // PEM "CERTIFICATE REQUEST"
}

// Validate checks sizes and shapes; the CSR itself is checked by the CA.
func (e *EnrollRequest) Validate() error {
	if e.Token == "" || len(e.Token) > 256 {
		return Errorf(CodeUnauthorized, "enrollment: a valid token is required")
	}
	return validateCSR(e.CSR)
}

// RenewRequest is the body of POST PathAgentRenew.
type RenewRequest struct {
	CSR string `json:"csr"`
}

// Validate checks sizes and shapes.
func (r *RenewRequest) Validate() error { return validateCSR(r.CSR) }

func validateCSR(csr string) error {
	if len(csr) > MaxCSR {
		return Errorf(CodeTooLarge, "CSR is %d bytes, limit %d", len(csr), MaxCSR)
	}
	if !strings.Contains(csr, "-----BEGIN CERTIFICATE REQUEST-----") {
		return Errorf(CodeBadMessage, "CSR must be PEM (CERTIFICATE REQUEST)")
	}
	return nil
}

// EnrollResult answers an enrollment or a renewal.
type EnrollResult struct {
	Agent       string    `json:"agent"`
	Site        string    `json:"site"`
	Certificate string    `json:"certificate"` // PEM, the agent's client certificate
	CA          string    `json:"ca"`          // PEM, the CA that issued it and the agent listener's certificate
	GrantKey    string    `json:"grantKey"`    // base64 (standard) Ed25519 public key that verifies session grants
	AgentURL    string    `json:"agentUrl"`    // wss:// URL of the agent socket (mutual TLS)
	Expires     time.Time `json:"expires"`     // the certificate's NotAfter
}

// AgentRevoked answers POST PathAgentRevoke.
type AgentRevoked struct {
	Agent        string `json:"agent"`
	Disconnected bool   `json:"disconnected"` // a live connection was dropped
}
