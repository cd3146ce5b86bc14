package hub

import (
	"crypto/sha256"
	"testing"

	"github.com/porthole-dev/porthole/proto"
)

// TestDrainStopsNewWork: once a hub drains, a session still waiting for its
// agent ends (the opener gets unavailable, a retry), no session opens,
// tokens are neither bound nor added (their state is being handed over as
// it is), no client joins and a reconnecting agent is sent away with a
// drain message; the accepted session is in Drain's state with its
// binding and holder, and Release hands it over without a session.end.
func TestDrainStopsNewWork(t *testing.T) {
	b := newBubble(t, Options{})
	agent := b.dial("/agent")
	send(t, agent, proto.TypeHello, "", &proto.Hello{Role: proto.RoleAgent, Devices: []proto.Device{{ID: "printer-1"}}})
	recv(t, agent, proto.TypeWelcome, nil)
	info := openAccepted(t, b, agent)
	if err := bind(t, b.hub, info.Session, info.Token, "window-cookie"); err != nil {
		t.Fatal(err)
	}
	tech := hello(t, b, info.Session, info.Token, "window-cookie", true)
	joined(t, tech)

	pending := make(chan error, 1)
	go func() {
		_, err := b.hub.OpenSession(t.Context(), "alice", "printer-1")
		pending <- err
	}()
	recv(t, agent, proto.TypeSessionOpen, nil)

	states := b.hub.Drain()
	if err := <-pending; proto.CodeOf(err) != proto.CodeUnavailable {
		t.Errorf("the pending session's opener got %v, want unavailable", err)
	}
	recv(t, agent, proto.TypeSessionEnd, nil) // the pending one, which never started
	st := states["agent-1"]
	if len(st) != 1 || st[0].ID != info.Session || !st[0].Held || st[0].Holder.BindHash != sha256.Sum256([]byte("window-cookie")) ||
		st[0].Bound[sha256.Sum256([]byte(info.Token))] != sha256.Sum256([]byte("window-cookie")) {
		t.Fatalf("drained state %+v", states)
	}
	if _, err := b.hub.OpenSession(t.Context(), "alice", "printer-1"); proto.CodeOf(err) != proto.CodeUnavailable {
		t.Errorf("a draining hub opened a session: %v", err)
	}
	if err := bind(t, b.hub, info.Session, info.Token, "other"); proto.CodeOf(err) != proto.CodeUnavailable {
		t.Errorf("a draining hub bound a token: %v", err)
	}
	if _, err := b.hub.AddToken(info.Session, sha256.Sum256([]byte("more"))); proto.CodeOf(err) != proto.CodeUnavailable {
		t.Errorf("a draining hub added a token: %v", err)
	}
	late := hello(t, b, info.Session, info.Token, "window-cookie", true)
	recv(t, late, proto.TypeDrain, nil)
	again := b.dial("/agent")
	send(t, again, proto.TypeHello, "", &proto.Hello{Role: proto.RoleAgent, Devices: []proto.Device{{ID: "printer-1"}}})
	recv(t, again, proto.TypeDrain, nil)

	if n := b.hub.Release("agent-1"); n != 1 {
		t.Fatalf("Release handed over %d sessions, want 1", n)
	}
	recv(t, tech, proto.TypeDrain, nil)
	recv(t, agent, proto.TypeDrain, nil) // no session.end before it: the peer path goes on
	if b.hub.SessionLive(info.Session) {
		t.Error("the handed-over session is still live here")
	}
}
