package proto

import (
	"crypto/ed25519"
	"reflect"
	"strings"
	"testing"
)

func TestGrantPolicyRoundTrip(t *testing.T) {
	g := goldenGrant()
	g.Approval = &GrantApproval{Request: "req-1", By: "alice", At: g.IssuedAt, Reason: "toner error 41", Comment: "ok until noon"}
	g.Scope = &GrantScope{ReadOnly: true, Allow: []string{"/"}, Deny: []string{"/firmware"}, Ports: []int{80, 443}}
	s, err := SignGrant(g, grantKey)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyGrant(s, grantKey.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, g) {
		t.Fatalf("decoded %+v, want %+v", got, g)
	}
}

func TestGrantPolicyRefused(t *testing.T) {
	long := strings.Repeat("x", MaxApprovalMsg+1)
	many := make([]string, MaxPathRules+1)
	for i := range many {
		many[i] = "/p"
	}
	cases := []struct {
		name string
		edit func(*Grant)
		want string
	}{
		{"approval without request", func(g *Grant) { g.Approval = &GrantApproval{By: "alice", At: 1} }, "request id"},
		{"approval by a malformed user", func(g *Grant) { g.Approval = &GrantApproval{Request: "r", By: "Al ice", At: 1} }, "approver"},
		{"approval without a time", func(g *Grant) { g.Approval = &GrantApproval{Request: "r", By: "alice"} }, "no time"},
		{"reason too long", func(g *Grant) { g.Approval = &GrantApproval{Request: "r", By: "alice", At: 1, Reason: long} }, "reason"},
		{"relative path rule", func(g *Grant) { g.Scope = &GrantScope{Deny: []string{"firmware"}} }, "must start with /"},
		{"control character in a rule", func(g *Grant) { g.Scope = &GrantScope{Allow: []string{"/a\nb"}} }, "must start with /"},
		{"too many rules", func(g *Grant) { g.Scope = &GrantScope{Deny: many} }, "path rules"},
		{"port zero", func(g *Grant) { g.Scope = &GrantScope{Ports: []int{0}} }, "out of range"},
		{"port too high", func(g *Grant) { g.Scope = &GrantScope{Ports: []int{65536}} }, "out of range"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := goldenGrant()
			c.edit(g)
			_, err := SignGrant(g, grantKey)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("SignGrant: %v, want an error with %q", err, c.want)
			}
		})
	}
}
