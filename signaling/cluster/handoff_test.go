package cluster

import (
	"context"
	"crypto/sha256"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/bus"
	"github.com/porthole-dev/porthole/signaling/hub"
)

var goldenState = hub.SessionState{
	ID: "abcdefghijklmnopqrstuvwxyz", User: "alice", Device: "printer-1", DeviceName: "Printer", Site: "site-1", SiteName: "Main office",
	Agent: "agent-1", Expires: goldenTime, TokenHash: goldenHash, ExtraTokens: [][32]byte{{9}},
	Bound:  map[[32]byte][32]byte{goldenHash: {7}},
	Holder: hub.ClientAuth{TokenHash: goldenHash, BindHash: [32]byte{7}, Browser: true}, Held: true,
	Cookies: [][32]byte{{5}},
}

// TestGoldenHandoff freezes the stored state of a drained node's sessions
// and checks it decodes to what was encoded.
func TestGoldenHandoff(t *testing.T) {
	b, err := encodeHandoff("node-a", "agent-1", []hub.SessionState{goldenState})
	if err != nil {
		t.Fatal(err)
	}
	want := checkGolden(t, "handoff", b)
	got, bad, err := decodeHandoff(want, "agent-1")
	if err != nil || len(bad) > 0 || len(got) != 1 {
		t.Fatalf("decode: %v %v %d", err, bad, len(got))
	}
	if !reflect.DeepEqual(got[0], goldenState) {
		t.Errorf("decoded %+v, want %+v", got[0], goldenState)
	}
}

// TestHandoffRefusesBadState: stored state for another agent, of another
// version, oversized or with malformed hashes is refused, each session on
// its own.
func TestHandoffRefusesBadState(t *testing.T) {
	good, _ := encodeHandoff("node-a", "agent-1", []hub.SessionState{goldenState})
	tests := []struct {
		name     string
		raw      string
		agent    string
		wantErr  string
		wantBad  int
		sessions int
	}{
		{"another agent", string(good), "agent-2", "names agent", 0, 0},
		{"another version", `{"v":9,"f":"n","a":"agent-1","s":[]}`, "agent-1", "another version", 0, 0},
		{"not json", `{`, "agent-1", "handed-over state", 0, 0},
		{"oversized", `"` + strings.Repeat("x", maxHandoff) + `"`, "agent-1", "over the bound", 0, 0},
		{"short token hash", `{"v":1,"f":"n","a":"agent-1","s":[{"id":"abcdefghijklmnopqrstuvwxyz","t":"AAAA"}]}`, "agent-1", "", 1, 0},
		{"bad session id", `{"v":1,"f":"n","a":"agent-1","s":[{"id":"../x","t":"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="}]}`, "agent-1", "", 1, 0},
		{"one good one bad", `{"v":1,"f":"n","a":"agent-1","s":[{"id":"abcdefghijklmnopqrstuvwxyz","t":"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="},{"id":"bbcdefghijklmnopqrstuvwxyz","t":"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=","bd":[{"t":"AA==","b":"AA=="}]}]}`, "agent-1", "", 1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, bad, err := decodeHandoff([]byte(tc.raw), tc.agent)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(bad) != tc.wantBad || len(got) != tc.sessions {
				t.Fatalf("err %v, %d refused (want %d), %d kept (want %d)", err, len(bad), tc.wantBad, len(got), tc.sessions)
			}
		})
	}
}

// drainNode is a node whose hub adopts what a draining node handed over.
func drainNode(t *testing.T, network *bus.Network, name string) *node {
	b := network.Join(name)
	var r *Router
	h := hub.New(hub.Options{Node: name, Presence: Presence(b), Adopt: func(agent string) []hub.SessionState { return r.Adopt(agent) }})
	r = New(Config{Hub: h, Bus: b})
	n := &node{hub: h, router: r}
	t.Cleanup(func() {
		h.Close()
		r.Close()
		b.Close()
	})
	return n
}

// join connects a technician to session ref through n with auth and
// returns its socket after hello.
func join(t *testing.T, n *node, token string, auth hub.ClientAuth) *pipe {
	t.Helper()
	ref, ok, err := n.router.TokenSession(context.Background(), token)
	if err != nil || !ok {
		t.Fatalf("token not found: %v %v", ok, err)
	}
	p := newPipe(t)
	n.router.ServeClient(p, ref, auth)
	p.send(proto.TypeHello, "", &proto.Hello{Role: proto.RoleClient})
	return p
}

func closed(t *testing.T, p *pipe) {
	t.Helper()
	select {
	case <-p.done:
	case b := <-p.out:
		t.Fatalf("got %s, want the socket closed", b)
	case <-timeAfter():
		t.Fatal("the socket was not closed")
	}
}

// TestRouterDrainHandsSessionsOver: node A drains. Its agent and the
// technicians of its two sessions (bridged through node C; one an API
// client, one a browser window with a bound token) are told to reconnect;
// neither side hears a session.end. The agent reconnects to node B, which
// adopts both sessions; each technician resumes through C under its own
// binding, signaling works end to end again, and copies of the tokens
// (no binding, a wrong binding, another window while the holder is live)
// are refused. A no longer opens sessions.
func TestRouterDrainHandsSessionsOver(t *testing.T) {
	ctx := context.Background()
	network := bus.NewNetwork()
	a, b, c := drainNode(t, network, "node-a"), drainNode(t, network, "node-b"), drainNode(t, network, "node-c")
	agent := a.agent(t, "agent-1", "printer-1")
	api := open(t, c, agent, "printer-1")
	web := open(t, c, agent, "printer-1")
	apiAuth := hub.ClientAuth{TokenHash: sha256.Sum256([]byte(api.Token))}
	webAuth := hub.ClientAuth{TokenHash: sha256.Sum256([]byte(web.Token)), BindHash: sha256.Sum256([]byte("window cookie")), Browser: true}
	ref, _, _ := c.router.TokenSession(ctx, web.Token)
	if err := c.router.BindToken(ctx, ref, webAuth.TokenHash, webAuth.BindHash); err != nil {
		t.Fatal(err)
	}
	techs := map[string]*pipe{}
	for _, s := range []struct {
		info *proto.SessionInfo
		auth hub.ClientAuth
	}{{api, apiAuth}, {web, webAuth}} {
		p := join(t, c, s.info.Token, s.auth)
		p.next(proto.TypeWelcome)
		p.next(proto.TypeSessionReady)
		techs[s.info.Session] = p
	}

	if n := a.router.Drain(ctx); n != 2 {
		t.Fatalf("Drain handed over %d sessions, want 2", n)
	}
	agent.next(proto.TypeDrain) // not a session.end: the agent keeps both peer connections
	closed(t, agent)
	for _, p := range techs {
		p.next(proto.TypeDrain)
		closed(t, p)
	}
	if _, n := a.hub.Remaining(); n != 0 {
		t.Errorf("A still holds %d sessions", n)
	}
	if _, err := a.router.OpenSession(ctx, "alice", "", "printer-1"); err == nil || proto.CodeOf(err) != proto.CodeUnavailable {
		t.Errorf("a draining node opened a session: %v", err)
	}

	if n := a.router.Unadopted(ctx); n != 1 {
		t.Errorf("before the agent reconnected: %d agents' sessions unadopted, want 1", n)
	}
	agent = b.agent(t, "agent-1", "printer-1")
	if n := a.router.Unadopted(ctx); n != 0 {
		t.Errorf("after the agent reconnected to B: %d agents' sessions unadopted, want 0", n)
	}
	for _, id := range []string{api.Session, web.Session} {
		if !b.hub.SessionLive(id) || a.hub.SessionLive(id) {
			t.Fatalf("session %s did not move to B", id)
		}
	}

	// Copies of the tokens get nothing.
	hostile := []struct {
		name  string
		token string
		auth  hub.ClientAuth
		code  proto.Code
	}{
		{"bound token without its cookie", web.Token, hub.ClientAuth{TokenHash: webAuth.TokenHash, Browser: true}, proto.CodeUnauthorized},
		{"bound token with another cookie", web.Token, hub.ClientAuth{TokenHash: webAuth.TokenHash, BindHash: sha256.Sum256([]byte("mallory")), Browser: true}, proto.CodeUnauthorized},
		{"API token from a web page", api.Token, hub.ClientAuth{TokenHash: apiAuth.TokenHash, Browser: true}, proto.CodeUnauthorized},
	}
	for _, h := range hostile {
		p := join(t, c, h.token, h.auth)
		var e proto.Error
		if err := proto.DecodeData(p.next(proto.TypeError), &e); err != nil || e.Code != h.code {
			t.Errorf("%s: refusal %+v %v, want %s", h.name, e, err, h.code)
		}
		closed(t, p)
	}

	// The holders resume, through C, on B.
	for _, s := range []struct {
		info *proto.SessionInfo
		auth hub.ClientAuth
	}{{api, apiAuth}, {web, webAuth}} {
		p := join(t, c, s.info.Token, s.auth)
		p.next(proto.TypeWelcome)
		p.next(proto.TypeSessionReady)
		p.send(proto.TypeOffer, s.info.Session, &proto.SessionDescription{Type: "offer", SDP: "v=0\r\n"})
		if env := agent.next(proto.TypeOffer); env.Session != s.info.Session {
			t.Fatalf("offer for %s reached the agent as %s", s.info.Session, env.Session)
		}
		agent.send(proto.TypeAnswer, s.info.Session, &proto.SessionDescription{Type: "answer", SDP: "v=0\r\n"})
		p.next(proto.TypeAnswer)
		techs[s.info.Session] = p
	}
	// The holder is live: another window of the same browser session, with
	// another cookie, is still refused.
	p := join(t, b, web.Token, hub.ClientAuth{TokenHash: webAuth.TokenHash, BindHash: sha256.Sum256([]byte("second window")), Browser: true})
	p.next(proto.TypeError)
	closed(t, p)
	// The state was taken once: nothing is left to adopt for the agent.
	if st := c.router.Adopt("agent-1"); st != nil {
		t.Errorf("handed-over state adopted twice: %+v", st)
	}
	if err := b.router.EndSession(ctx, api.Session, "alice"); err != nil {
		t.Fatal(err)
	}
	if env := agent.next(proto.TypeSessionEnd); env.Session != api.Session {
		t.Errorf("session.end for %s, want %s", env.Session, api.Session)
	}
}

func timeAfter() <-chan time.Time { return time.After(wait) }

// noHandoffBus is a bus whose store refuses handed-over state.
type noHandoffBus struct{ bus.Bus }

func (noHandoffBus) PutHandoff(context.Context, string, []byte, time.Duration) error {
	return errors.New("store unavailable")
}

// TestDrainKeepsSessionsItCannotHandOver: when the handed-over state
// cannot be stored, the agent is not sent away and its session stays on
// the draining node, which ends it (telling the agent) when it closes,
// rather than let it vanish.
func TestDrainKeepsSessionsItCannotHandOver(t *testing.T) {
	network := bus.NewNetwork()
	b := noHandoffBus{network.Join("node-a")}
	h := hub.New(hub.Options{Node: "node-a", Presence: Presence(b)})
	a := &node{hub: h, router: New(Config{Hub: h, Bus: b})}
	closeA := sync.OnceFunc(func() { h.Close(); a.router.Close(); b.Close() })
	t.Cleanup(closeA)
	agent := a.agent(t, "agent-1", "printer-1")
	info := open(t, a, agent, "printer-1")
	if n := a.router.Drain(context.Background()); n != 0 {
		t.Fatalf("Drain handed over %d sessions with no store", n)
	}
	if !a.hub.SessionLive(info.Session) {
		t.Fatal("the session left the node though its state was not stored")
	}
	closeA()
	if env := agent.next(proto.TypeSessionEnd); env.Session != info.Session {
		t.Errorf("session.end for %s, want %s", env.Session, info.Session)
	}
}
