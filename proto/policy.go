package proto

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
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

// AgentPolicy is a site's own policy for a device, as the agent's file
// sets it (the floor under the DevicePolicy signaling stores) and the
// agent declares it in hello (Device.Policy): signaling puts a scope at
// least this narrow into the device's grants (GrantScope.Narrow) and asks
// for approval when it requires one; the agent enforces it whatever
// signaling does.
type AgentPolicy struct {
	// RequireApproval: the agent refuses a grant without an Approval.
	RequireApproval bool `json:"requireApproval,omitempty"`
	// The scope every session on the device is held to.
	GrantScope
}

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

// How the agent matches a request against a scope.
//
// A request's path is matched in a normal form (NormalizePath), so no
// spelling of it reaches a denied resource: percent escapes are decoded
// (repeatedly, so %2566 counts as f; %2f is a slash), backslashes count as
// slashes (as on IIS-style servers), ";" parameters are cut from every
// segment (/..;/ is ..), empty and "." segments are dropped and ".."
// removes the segment before it, and the result is lower-cased: many
// embedded web servers ignore case, and one rule set serves every device,
// so /FIRMWARE is /firmware everywhere. A path that still holds a control
// character, invalid UTF-8 or a malformed escape is refused outright.
//
// A deny rule covers every path that starts with its text (/firmware
// refuses /firmware, /firmware/, /firmware.cgi and /firmwareupdate); an
// allow rule covers itself and what lies under it (/status allows
// /status and /status/x, not /status-reset.cgi). Both err on the side of
// refusing.

// maxDecodeRounds bounds repeated percent-decoding.
const maxDecodeRounds = 4

// NormalizePath returns the normal form of a request path (without its
// query) for matching, or ok false for a path no rule can judge.
func NormalizePath(raw string) (string, bool) {
	p, _, _ := strings.Cut(raw, "?")
	p, _, _ = strings.Cut(p, "#")
	for range maxDecodeRounds {
		if !strings.Contains(p, "%") {
			break
		}
		d, ok := percentDecode(p)
		if !ok {
			return "", false
		}
		if d == p {
			break
		}
		p = d
	}
	if strings.Contains(p, "%") {
		// Still encoded after the rounds: too deep to be honest.
		if d, ok := percentDecode(p); !ok || d != p {
			return "", false
		}
	}
	if strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) || !utf8.ValidString(p) {
		// Invalid UTF-8 too: old servers read the overlong %c0%af as "/".
		return "", false
	}
	p = strings.ReplaceAll(p, `\`, "/")
	var out []string
	for seg := range strings.SplitSeq(p, "/") {
		seg, _, _ = strings.Cut(seg, ";")
		switch seg {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, strings.ToLower(seg))
		}
	}
	return "/" + strings.Join(out, "/"), true
}

// percentDecode decodes every %XX escape; ok is false for a malformed one.
func percentDecode(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return "", false
		}
		b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
		i += 2
	}
	return b.String(), true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// normalRule is a rule in the form NormalizePath gives paths.
func normalRule(r string) string {
	n, ok := NormalizePath(r)
	if !ok {
		return r
	}
	return n
}

// denies reports whether deny rule r covers normal path p.
func denies(r, p string) bool {
	r = normalRule(r)
	return r == "/" || strings.HasPrefix(p, r)
}

// allows reports whether allow rule r covers normal path p.
func allows(r, p string) bool {
	r = normalRule(r)
	return r == "/" || p == r || strings.HasPrefix(p, r+"/")
}

// SafeMethod reports whether a read-only session may use method: GET and
// HEAD only. OPTIONS is not among them: a browser sends it only before a
// request read-only refuses anyway, and a device's OPTIONS handler is not
// known to change nothing.
func SafeMethod(method string) bool {
	return method == "GET" || method == "HEAD"
}

// ReadOnlyRefusal is why a read-only session's request is refused.
const ReadOnlyRefusal = "This session is read-only: the site's policy allows viewing, not changes"

// CheckRequest says why s refuses a request (method, origin-form target),
// or "" when it allows it. A nil scope allows everything.
func (s *GrantScope) CheckRequest(method, target string) string {
	if s == nil {
		return ""
	}
	if s.ReadOnly && !SafeMethod(method) {
		return ReadOnlyRefusal + " (" + method + " refused)"
	}
	return s.CheckPath(target)
}

// CheckPath says why s refuses a request for target's path, or "".
func (s *GrantScope) CheckPath(target string) string {
	if s == nil || len(s.Allow) == 0 && len(s.Deny) == 0 {
		return ""
	}
	p, ok := NormalizePath(target)
	if !ok {
		return "The site's policy cannot judge this path (a malformed escape or a control character), so it is refused"
	}
	for _, r := range s.Deny {
		if denies(r, p) {
			return "The site's policy refuses " + normalRule(r) + " in this session"
		}
	}
	if len(s.Allow) == 0 {
		return ""
	}
	for _, r := range s.Allow {
		if allows(r, p) {
			return ""
		}
	}
	return "The site's policy allows only " + strings.Join(s.Allow, ", ") + " in this session"
}

// CheckPort says why s refuses a TCP service (SSH, VNC, a forwarded port)
// on port, or "". A read-only session has none: the agent cannot tell
// reading from changing in a byte stream (the agent lets it watch a VNC
// screen through a view-only stream, whose input it drops itself).
func (s *GrantScope) CheckPort(port int) string {
	if s == nil {
		return ""
	}
	if s.ReadOnly {
		return "This session is read-only: the site's policy allows viewing web pages, not terminals, screens or forwarded ports"
	}
	if len(s.Ports) > 0 && !slices.Contains(s.Ports, port) {
		return "The site's policy does not allow port " + strconv.Itoa(port) + " in this session"
	}
	return ""
}

// Within says how s is wider than floor, or "" when s is at least as
// narrow: read-only when the floor is, every deny rule of the floor
// covered by one of s, every allow rule of s inside one of the floor's,
// and its ports among the floor's.
func (s *GrantScope) Within(floor *GrantScope) string {
	if floor == nil {
		return ""
	}
	var zero GrantScope
	if s == nil {
		s = &zero
	}
	if floor.ReadOnly && !s.ReadOnly {
		return "the site requires read-only sessions and the grant is not read-only"
	}
	for _, d := range floor.Deny {
		nd := normalRule(d)
		if !slices.ContainsFunc(s.Deny, func(g string) bool { return denies(g, nd) }) {
			return "the site denies " + nd + " and the grant does not"
		}
	}
	if len(floor.Allow) > 0 {
		if len(s.Allow) == 0 {
			return "the site allows only " + strings.Join(floor.Allow, ", ") + " and the grant allows every path"
		}
		for _, a := range s.Allow {
			na := normalRule(a)
			if !slices.ContainsFunc(floor.Allow, func(f string) bool { return allows(f, na) }) {
				return "the grant allows " + na + ", outside what the site allows"
			}
		}
	}
	if len(floor.Ports) > 0 {
		if len(s.Ports) == 0 {
			return "the site allows only ports " + portList(floor.Ports) + " and the grant allows every port"
		}
		for _, p := range s.Ports {
			if !slices.Contains(floor.Ports, p) {
				return "the grant allows port " + strconv.Itoa(p) + ", outside the site's ports " + portList(floor.Ports)
			}
		}
	}
	return ""
}

func portList(ps []int) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = strconv.Itoa(p)
	}
	return strings.Join(out, ", ")
}

// CoversPath reports whether one of rules covers target's path the way a
// deny rule does (a prefix of its normal form); a path that cannot be
// normalised is covered by any rule.
func CoversPath(rules []string, target string) bool {
	if len(rules) == 0 {
		return false
	}
	p, ok := NormalizePath(target)
	if !ok {
		return true
	}
	for _, r := range rules {
		if denies(r, p) {
			return true
		}
	}
	return false
}

// Narrow returns a scope at least as narrow as both s and floor (either
// may be nil), so that it passes the agent's Within check against floor:
// read-only if either is, every deny rule of both, the allow prefixes and
// ports both allow. It is nil when neither narrows anything, and an error
// when the two allow no path or no port in common (a session could do
// nothing; saying so beats a grant the agent would refuse).
func (s *GrantScope) Narrow(floor *GrantScope) (*GrantScope, error) {
	var zero GrantScope
	if s == nil {
		s = &zero
	}
	if floor == nil {
		floor = &zero
	}
	out := GrantScope{ReadOnly: s.ReadOnly || floor.ReadOnly}
	out.Deny = slices.Clone(s.Deny)
	for _, d := range floor.Deny {
		if !slices.Contains(out.Deny, d) {
			out.Deny = append(out.Deny, d)
		}
	}
	switch {
	case len(floor.Allow) == 0:
		out.Allow = slices.Clone(s.Allow)
	case len(s.Allow) == 0:
		out.Allow = slices.Clone(floor.Allow)
	default:
		// A prefix both allow is the longer of two nested ones.
		for _, a := range s.Allow {
			na := normalRule(a)
			for _, f := range floor.Allow {
				nf := normalRule(f)
				switch {
				case allows(nf, na):
					out.Allow = appendNew(out.Allow, na)
				case allows(na, nf):
					out.Allow = appendNew(out.Allow, nf)
				}
			}
		}
		if len(out.Allow) == 0 {
			return nil, Errorf(CodeForbidden, "the device's policy allows %s and the agent's own allows %s: no path in common",
				strings.Join(s.Allow, ", "), strings.Join(floor.Allow, ", "))
		}
	}
	switch {
	case len(floor.Ports) == 0:
		out.Ports = slices.Clone(s.Ports)
	case len(s.Ports) == 0:
		out.Ports = slices.Clone(floor.Ports)
	default:
		for _, p := range s.Ports {
			if slices.Contains(floor.Ports, p) {
				out.Ports = append(out.Ports, p)
			}
		}
		if len(out.Ports) == 0 {
			return nil, Errorf(CodeForbidden, "the device's policy allows ports %s and the agent's own allows %s: no port in common",
				portList(s.Ports), portList(floor.Ports))
		}
	}
	if !out.ReadOnly && len(out.Allow) == 0 && len(out.Deny) == 0 && len(out.Ports) == 0 {
		return nil, nil
	}
	if err := out.Validate(); err != nil {
		return nil, err
	}
	return &out, nil
}

func appendNew(list []string, v string) []string {
	if slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}
