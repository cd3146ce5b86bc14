package cluster

import (
	"context"
	"crypto/sha256"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/bus"
	"github.com/porthole-dev/porthole/signaling/hub"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every wait of these tests; none sleeps.
const wait = 10 * time.Second

// pipe is the test's end of a hub.Socket in memory: what the test sends
// the hub reads, what the hub writes the test receives.
type pipe struct {
	t    *testing.T
	in   chan []byte // to the hub
	out  chan []byte // from the hub
	done chan struct{}
	once sync.Once
}

func newPipe(t *testing.T) *pipe {
	p := &pipe{t: t, in: make(chan []byte, 64), out: make(chan []byte, 64), done: make(chan struct{})}
	t.Cleanup(func() { p.Close() })
	return p
}

func (p *pipe) ReadMessage() (int, []byte, error) {
	select {
	case b := <-p.in:
		return websocket.TextMessage, b, nil
	case <-p.done:
		return 0, nil, net.ErrClosed
	}
}
func (p *pipe) SetReadLimit(int64)                        {}
func (p *pipe) SetReadDeadline(time.Time) error           { return nil }
func (p *pipe) SetPongHandler(func(string) error)         {}
func (p *pipe) SetWriteDeadline(time.Time) error          { return nil }
func (p *pipe) WriteControl(int, []byte, time.Time) error { return nil }
func (p *pipe) WriteMessage(_ int, b []byte) error {
	select {
	case p.out <- b:
		return nil
	case <-p.done:
		return net.ErrClosed
	}
}
func (p *pipe) Close() error { p.once.Do(func() { close(p.done) }); return nil }

func (p *pipe) send(typ proto.MsgType, session string, payload any) {
	p.t.Helper()
	b, err := proto.Encode(typ, session, payload)
	if err != nil {
		p.t.Fatal(err)
	}
	p.in <- b
}

// next returns the next message from the hub, which must be of type typ.
func (p *pipe) next(typ proto.MsgType) *proto.Envelope {
	p.t.Helper()
	select {
	case b := <-p.out:
		env, err := proto.Decode(b)
		if err != nil || env.Type != typ {
			p.t.Fatalf("got %s (%v), want %s", b, err, typ)
		}
		return env
	case <-time.After(wait):
		p.t.Fatalf("no %s in %v", typ, wait)
	}
	return nil
}

// node is one signaling node without HTTP: a hub and its router.
type node struct {
	hub    *hub.Hub
	router *Router
}

func newNode(t *testing.T, network *bus.Network, name string, inv ...hub.InventoryHooks) *node {
	b := network.Join(name)
	opt := hub.Options{Node: name, Presence: Presence(b)}
	if len(inv) > 0 {
		opt.Inventory = inv[0]
	}
	h := hub.New(opt)
	n := &node{hub: h, router: New(Config{Hub: h, Bus: b})}
	t.Cleanup(func() {
		h.Close()
		n.router.Close()
		n.router.Close() // a second Close only waits (it closed a closed channel once)
		b.Close()
	})
	return n
}

// agent connects an agent declaring device to n.
func (n *node) agent(t *testing.T, id, device string) *pipe {
	p := newPipe(t)
	n.hub.ServeAgent(p, id)
	p.send(proto.TypeHello, "", &proto.Hello{Role: proto.RoleAgent, Devices: []proto.Device{{ID: device}}})
	p.next(proto.TypeWelcome)
	return p
}

// open opens a session on device through n, with agent answering.
func open(t *testing.T, n *node, agent *pipe, device string) *proto.SessionInfo {
	t.Helper()
	type result struct {
		info *proto.SessionInfo
		err  error
	}
	res := make(chan result, 1)
	go func() {
		info, err := n.router.OpenSession(context.Background(), "alice", "", device)
		res <- result{info, err}
	}()
	env := agent.next(proto.TypeSessionOpen)
	agent.send(proto.TypeSessionReady, env.Session, struct{}{})
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.info
}

// TestRouterServesASessionOwnedByAnotherNode: the agent is on node A; node
// B opens the session there, answers for it, and ends it there.
func TestRouterServesASessionOwnedByAnotherNode(t *testing.T) {
	network := bus.NewNetwork()
	a, b := newNode(t, network, "node-a"), newNode(t, network, "node-b")
	agent := a.agent(t, "agent-1", "printer-1")
	ctx := context.Background()
	if d := b.router.Devices(ctx); len(d) != 1 || d[0].ID != "printer-1" || d[0].Agent != "agent-1" {
		t.Fatalf("devices seen from B: %+v", d)
	}
	if got := b.router.OnlineAgents(ctx); len(got) != 1 || got[0] != "agent-1" {
		t.Fatalf("agents seen from B: %v", got)
	}
	info := open(t, b, agent, "printer-1")
	if !a.hub.SessionLive(info.Session) || b.hub.SessionLive(info.Session) {
		t.Fatal("the session is not on the agent's node")
	}
	if !b.router.SessionLive(ctx, info.Session) {
		t.Error("B does not see the session live")
	}
	if user, _, ok := b.router.SessionOwner(ctx, info.Session); !ok || user != "alice" {
		t.Errorf("owner seen from B: %q %v", user, ok)
	}
	ref, ok, err := b.router.TokenSession(ctx, info.Token)
	if err != nil || !ok || ref.ID != info.Session || ref.node != "node-a" {
		t.Fatalf("token seen from B: %+v %v %v", ref, ok, err)
	}
	second := sha256.Sum256([]byte("second token"))
	if _, err := b.router.AddToken(ctx, info.Session, second); err != nil {
		t.Fatal(err)
	}
	observer := network.Join("observer")
	defer observer.Close()
	if id, node, ok, _ := observer.TokenSession(ctx, second); !ok || id != info.Session || node != "node-a" {
		t.Errorf("the added token is not in the directory: %q %q %v", id, node, ok)
	}
	if err := b.router.EndSession(ctx, info.Session, "mallory"); err == nil {
		t.Error("another user ended the session")
	}
	if err := b.router.EndSession(ctx, info.Session, "alice"); err != nil {
		t.Fatal(err)
	}
	agent.next(proto.TypeSessionEnd)
	if a.hub.SessionLive(info.Session) {
		t.Error("the session outlived its end")
	}
	if err := b.router.EndSession(ctx, "no-such-session", "alice"); !errors.Is(err, hub.ErrNoSession) {
		t.Errorf("ending an unknown session: %v", err)
	}
}

// TestRouterBridgesATechnicianSocket: a technician's socket reaches node B
// for a session of node A; A's hub serves it through the bus (an
// ownerSocket, no WebSocket in memory), messages flow both ways, and
// closing the technician's socket closes A's side.
func TestRouterBridgesATechnicianSocket(t *testing.T) {
	network := bus.NewNetwork()
	a, b := newNode(t, network, "node-a"), newNode(t, network, "node-b")
	agent := a.agent(t, "agent-1", "printer-1")
	info := open(t, b, agent, "printer-1")
	ref, ok, err := b.router.TokenSession(context.Background(), info.Token)
	if err != nil || !ok {
		t.Fatal("token not found", err)
	}
	tech := newPipe(t)
	b.router.ServeClient(tech, ref, hub.ClientAuth{TokenHash: sha256.Sum256([]byte(info.Token))})
	tech.send(proto.TypeHello, "", &proto.Hello{Role: proto.RoleClient})
	tech.next(proto.TypeWelcome)
	tech.next(proto.TypeSessionReady)
	tech.send(proto.TypeOffer, info.Session, &proto.SessionDescription{Type: "offer", SDP: "v=0\r\n"})
	agent.next(proto.TypeOffer)
	agent.send(proto.TypeAnswer, info.Session, &proto.SessionDescription{Type: "answer", SDP: "v=0\r\n"})
	tech.next(proto.TypeAnswer)

	tech.Close()
	testenv.Eventually(t, wait, "both ends of the bridge to close", func() bool {
		a.router.mu.Lock()
		defer a.router.mu.Unlock()
		b.router.mu.Lock()
		defer b.router.mu.Unlock()
		return len(a.router.bridges)+len(b.router.bridges) == 0
	})
}

// TestRouterCallsFailWhenTheOwnerNodeIsGone: a session whose node left
// the cluster is answered unavailable or not found, never waited for.
func TestRouterCallsFailWhenTheOwnerNodeIsGone(t *testing.T) {
	network := bus.NewNetwork()
	b := newNode(t, network, "node-b")
	gone := network.Join("node-a")
	if err := gone.PutSession(context.Background(), "s-gone", time.Now().Add(time.Minute), sha256.Sum256([]byte("tok"))); err != nil {
		t.Fatal(err)
	}
	gone.Close()
	ctx := context.Background()
	if b.router.SessionLive(ctx, "s-gone") {
		t.Error("a session of a gone node is live")
	}
	if err := b.router.EndSession(ctx, "s-gone", "alice"); err == nil {
		t.Error("ending a session of a gone node succeeded")
	}
}

// TestRouterBridgeCarriesTheOwnersRefusal: the owner's hub refuses a
// bridged client (its token is not the session's); the refusal and the
// close reach the technician's socket on the edge.
func TestRouterBridgeCarriesTheOwnersRefusal(t *testing.T) {
	network := bus.NewNetwork()
	a, b := newNode(t, network, "node-a"), newNode(t, network, "node-b")
	agent := a.agent(t, "agent-1", "printer-1")
	info := open(t, b, agent, "printer-1")
	ref, ok, err := b.router.TokenSession(context.Background(), info.Token)
	if err != nil || !ok {
		t.Fatal("token not found", err)
	}
	tech := newPipe(t)
	b.router.ServeClient(tech, ref, hub.ClientAuth{TokenHash: sha256.Sum256([]byte("not the session's token"))})
	tech.send(proto.TypeHello, "", &proto.Hello{Role: proto.RoleClient})
	tech.next(proto.TypeError)
	select {
	case <-tech.done:
	case <-time.After(wait):
		t.Fatal("the edge did not close the refused technician's socket")
	}
}

// fixedInventory is an inventory of one adopted device for every agent.
type fixedInventory struct{}

func (fixedInventory) Declared(context.Context, string, []proto.Device) error { return nil }
func (fixedInventory) Applied(context.Context, string, *proto.InventoryApplied) error {
	return nil
}
func (fixedInventory) Report(context.Context, string, *proto.DiscoveryReport) error { return nil }
func (fixedInventory) Inventory(context.Context, string) (*proto.Inventory, error) {
	return &proto.Inventory{Devices: []proto.InventoryDevice{{ID: "adopted-1", Addr: "192.0.2.20",
		Services: []proto.Service{{Kind: proto.ServiceWeb, Port: 80, Scheme: "http"}}}}}, nil
}

// TestRouterReachesAnAgentOnAnotherNode: an edit made on node B reaches
// the agent connected to node A at once (its inventory and a scan
// request), and an agent connected nowhere is reported as such.
func TestRouterReachesAnAgentOnAnotherNode(t *testing.T) {
	ctx := context.Background()
	network := bus.NewNetwork()
	a, b := newNode(t, network, "node-a", fixedInventory{}), newNode(t, network, "node-b", fixedInventory{})
	p := newPipe(t)
	a.hub.ServeAgent(p, "agent-1")
	p.send(proto.TypeHello, "", &proto.Hello{Role: proto.RoleAgent, Inventory: true})
	p.next(proto.TypeWelcome)
	p.next(proto.TypeInventory) // after every hello
	if !b.router.PushInventory(ctx, "agent-1") {
		t.Fatal("PushInventory from node B did not reach the agent on node A")
	}
	env := p.next(proto.TypeInventory)
	var inv proto.Inventory
	if err := proto.DecodeData(env, &inv); err != nil || len(inv.Devices) != 1 {
		t.Fatalf("inventory %s: %v", env.Data, err)
	}
	if !b.router.RunDiscovery(ctx, "agent-1", "asked by alice") {
		t.Fatal("RunDiscovery from node B did not reach the agent")
	}
	var run proto.DiscoveryRun
	if err := proto.DecodeData(p.next(proto.TypeDiscoveryRun), &run); err != nil || run.Reason != "asked by alice" {
		t.Fatalf("discovery.run %+v: %v", run, err)
	}
	if b.router.PushInventory(ctx, "agent-9") || b.router.RunDiscovery(ctx, "agent-9", "") {
		t.Fatal("an agent connected nowhere was reported reached")
	}
}
