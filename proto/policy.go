package proto

import (
	"strings"
)

// Customer policy carried in a session's grant (issue 18).
//
// Signaling decides whether a session may start (approval, time windows)
// and what it may do (scope); the agent checks the grant for the same
// facts and enforces the scope itself, so a compromised signaling node
// alone cannot widen a device's scope beyond what the site configured
// locally, nor skip an approval the site requires locally. What the agent
// cannot check is that the approver named in the grant really approved:
// the approval is signed by signaling's grant key like the rest.

// Limits of the policy parts of a grant.
const (
	MaxPathRules   = 32  // allow and deny prefixes, each
	MaxPathRule    = 256 // bytes of one prefix
	MaxScopePorts  = 16
	MaxApprovalMsg = 500 // bytes of a reason or an approver's comment
)

// GrantApproval records who approved a session that needed approval.
type GrantApproval struct {
	Request string `json:"request"`           // the approval request's id
	By      string `json:"by"`                // the approving site admin's user id
	At      int64  `json:"at"`                // Unix seconds of the approval
	Reason  string `json:"reason,omitempty"`  // the technician's reason
	Comment string `json:"comment,omitempty"` // the approver's comment
}

// GrantScope narrows what a session may do on its device. The zero value
// narrows nothing beyond the device's own declaration at the agent.
type GrantScope struct {
	// ReadOnly allows only GET and HEAD (and the requests a page makes to
	// read); any other method is refused by the agent with a page that says
	// why.
	ReadOnly bool `json:"readOnly,omitempty"`
	// Allow, when not empty, are the only path prefixes the session may
	// request; Deny prefixes are refused even when allowed.
	Allow []string `json:"allow,omitempty"`
	Deny  []string `json:"deny,omitempty"`
	// Ports, when not empty, are the only device ports the session's TCP
	// services may reach.
	Ports []int `json:"ports,omitempty"`
}

// Validate checks an approval's fields.
func (a *GrantApproval) Validate() error {
	switch {
	case a.Request == "" || len(a.Request) > 64:
		return Errorf(CodeBadMessage, "grant approval: malformed request id")
	case !ValidID(a.By):
		return Errorf(CodeBadMessage, "grant approval: malformed approver")
	case a.At <= 0:
		return Errorf(CodeBadMessage, "grant approval: no time")
	case len(a.Reason) > MaxApprovalMsg || len(a.Comment) > MaxApprovalMsg:
		return Errorf(CodeTooLarge, "grant approval: reason or comment over %d bytes", MaxApprovalMsg)
	}
	return nil
}

// Validate checks a scope's fields.
func (s *GrantScope) Validate() error {
	if len(s.Allow) > MaxPathRules || len(s.Deny) > MaxPathRules {
		return Errorf(CodeTooLarge, "grant scope: over %d path rules", MaxPathRules)
	}
	for _, list := range [][]string{s.Allow, s.Deny} {
		for _, p := range list {
			if !ValidPathRule(p) {
				return Errorf(CodeBadMessage, "grant scope: path rule %q must start with / and be at most %d bytes", p, MaxPathRule)
			}
		}
	}
	if len(s.Ports) > MaxScopePorts {
		return Errorf(CodeTooLarge, "grant scope: over %d ports", MaxScopePorts)
	}
	for _, p := range s.Ports {
		if p < 1 || p > 65535 {
			return Errorf(CodeBadMessage, "grant scope: port %d out of range", p)
		}
	}
	return nil
}

// ValidPathRule reports whether p can be a path prefix rule: absolute, no
// control characters, bounded.
func ValidPathRule(p string) bool {
	if p == "" || p[0] != '/' || len(p) > MaxPathRule {
		return false
	}
	return !strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f })
}
