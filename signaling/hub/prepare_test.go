package hub

import (
	"context"
	"crypto/ed25519"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// TestPrepareFillsTheGrant: the Prepare hook runs before the session
// exists, without the hub's lock (it calls back into the hub here), and
// what it decides reaches the agent in the signed grant: the approval, the
// scope and a shorter lifetime. A refusal never reaches the agent.
func TestPrepareFillsTheGrant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pub, key, _ := ed25519.GenerateKey(nil)
		approval := &proto.GrantApproval{Request: "r1", By: "u-admin", At: time.Now().Unix(), Reason: "toner", Comment: "ok"}
		scope := &proto.GrantScope{ReadOnly: true, Deny: []string{"/firmware"}, Ports: []int{80}}
		refuse := proto.Errorf(proto.CodeApprovalRequired, "needs approval")
		var h *Hub
		var mu sync.Mutex
		var events []Event
		type call struct{ user, agent, site, device string }
		var calls []call
		opt := Options{
			AgentSite: func(string) string { return "site-a" },
			Grant: func(g *proto.Grant) (string, error) {
				g.IssuedAt = time.Now().Unix()
				return proto.SignGrant(g, key)
			},
			Events: func(e Event) {
				mu.Lock()
				events = append(events, e)
				mu.Unlock()
			},
			Prepare: func(_ context.Context, user, agent, site, device string, _ *proto.AgentPolicy) (*Prepared, error) {
				_ = h.LiveSessions() // deadlocks if called with the lock held
				calls = append(calls, call{user, agent, site, device})
				if user == "mallory" {
					return nil, refuse
				}
				return &Prepared{Approval: approval, Scope: scope, TTL: 12 * time.Minute}, nil
			},
		}
		b := newBubble(t, opt)
		h = b.hub
		agent := b.dial("/agent")
		send(t, agent, proto.TypeHello, "", &proto.Hello{Role: proto.RoleAgent, Devices: []proto.Device{{ID: "printer-1"}}})
		recv(t, agent, proto.TypeWelcome, nil)

		if _, err := h.OpenSession(t.Context(), "mallory", "printer-1"); !errors.Is(err, refuse) {
			t.Fatalf("refused open: %v", err)
		}
		if _, err := h.OpenSession(t.Context(), "alice", "no-such-device"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("open of an unknown device: %v", err)
		}
		res := make(chan error, 1)
		var info *proto.SessionInfo
		go func() {
			var err error
			info, err = h.OpenSession(t.Context(), "alice", "printer-1")
			res <- err
		}()
		// The agent's first session.open is alice's: mallory's never came.
		var open proto.SessionOpen
		env := recv(t, agent, proto.TypeSessionOpen, &open)
		send(t, agent, proto.TypeSessionReady, env.Session, struct{}{})
		if err := <-res; err != nil {
			t.Fatal(err)
		}
		g, err := proto.VerifyGrant(open.Grant, pub)
		if err != nil {
			t.Fatal(err)
		}
		if g.Approval == nil || *g.Approval != *approval || g.Scope == nil || !g.Scope.ReadOnly || !slices.Equal(g.Scope.Deny, scope.Deny) {
			t.Fatalf("grant %+v", g)
		}
		if d := time.Until(info.Expires); d != 12*time.Minute || g.Expires != info.Expires.Unix() {
			t.Fatalf("session lasts %v (grant until %d, session %v), want 12m", d, g.Expires, info.Expires)
		}
		want := []call{{"mallory", "agent-1", "site-a", "printer-1"}, {"alice", "agent-1", "site-a", "printer-1"}}
		if !slices.Equal(calls, want) {
			t.Fatalf("Prepare calls %v, want %v", calls, want)
		}
		mu.Lock()
		defer mu.Unlock()
		if events[0].State != EventRequested || events[0].Approval == nil || events[0].Approval.By != "u-admin" {
			t.Fatalf("requested event %+v", events[0])
		}
	})
}
