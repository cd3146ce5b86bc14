package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/porthole-dev/porthole/internal/fetchx"
	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/hub"
)

// Sessions is every operation on sessions and online agents that the HTTP
// layer asks for, wherever in the cluster the session or agent is. OneNode
// and Router implement it; their methods are safe for concurrent use.
type Sessions interface {
	// OpenSession opens a session for user on device (of agent, if not
	// empty) on whichever node holds the agent (hub.OpenAgentSession).
	OpenSession(ctx context.Context, user, agent, device string) (*proto.SessionInfo, error)
	// EndSession is hub.EndSession on the session's node.
	EndSession(ctx context.Context, id, user string) error
	// TerminateSession is hub.TerminateSession on the session's node.
	TerminateSession(ctx context.Context, id, admin string) error
	// SessionLive is hub.SessionLive on the session's node.
	SessionLive(ctx context.Context, id string) bool
	// SessionOwner is hub.SessionOwner on the session's node.
	SessionOwner(ctx context.Context, id string) (user string, expires time.Time, ok bool)
	// AddToken is hub.AddToken on the session's node; any node accepts the
	// token afterwards.
	AddToken(ctx context.Context, id string, hash [32]byte) (time.Time, error)
	// RevokeToken is hub.RevokeToken here and on the node of the token's
	// session.
	RevokeToken(ctx context.Context, hash [32]byte)
	// TokenSession returns the session a session token opens. err says why
	// a session known to the cluster cannot be reached (its node went away).
	TokenSession(ctx context.Context, token string) (ref Ref, ok bool, err error)
	// BindToken is hub.BindToken on the node of ref, from TokenSession.
	BindToken(ctx context.Context, ref Ref, tokenHash, bindHash [32]byte) error
	// ServeClient serves a technician's WebSocket for ref, from
	// TokenSession, on the session's node (hub.ServeClientAuth). It
	// returns at once.
	ServeClient(ws hub.Socket, ref Ref, auth hub.ClientAuth)
	// Devices lists the devices of every agent online on any node.
	Devices(ctx context.Context) []proto.DeviceStatus
	// OnlineAgents lists the agents online on any node.
	OnlineAgents(ctx context.Context) []string
	// OpenFetch opens a signaling-fallback exchange for session id with its
	// agent (hub.OpenFetch), checking the device cookie's SHA-256.
	OpenFetch(ctx context.Context, id string, cookie [32]byte) (*Exchange, error)
	// RedeemTicket is hub.RedeemTicket on the session's node.
	RedeemTicket(ctx context.Context, id, ticket string, cookie [32]byte) (time.Time, error)
	// PushInventory is hub.PushInventory on the agent's node: it reports
	// whether the agent is connected anywhere (and applies inventories).
	PushInventory(ctx context.Context, agent string) bool
	// RunDiscovery is hub.RunDiscovery on the agent's node.
	RunDiscovery(ctx context.Context, agent, reason string) bool
}

// Ref names a session found by TokenSession, and the node that owns it.
type Ref struct {
	ID   string
	node string // "" for this node
}

// Exchange is a signaling-fallback exchange with a session's agent: local
// (this node holds the agent) or across the cluster (fetch.go).
type Exchange struct {
	*fetchx.Exchange
	release func()
	once    sync.Once
}

// Close ends the exchange and forgets it; it may be called more than once.
func (x *Exchange) Close() {
	x.Exchange.Close()
	x.once.Do(x.release)
}

// OneNode returns the Sessions of a single node: its hub's.
func OneNode(h *hub.Hub) Sessions { return oneNode{h} }

type oneNode struct{ h *hub.Hub }

var (
	_ Sessions = oneNode{}
	_ Sessions = (*Router)(nil)
)

func (o oneNode) OpenSession(ctx context.Context, user, agent, device string) (*proto.SessionInfo, error) {
	return o.h.OpenAgentSession(ctx, user, agent, device)
}

func (o oneNode) EndSession(_ context.Context, id, user string) error {
	return o.h.EndSession(id, user)
}

func (o oneNode) TerminateSession(_ context.Context, id, admin string) error {
	return o.h.TerminateSession(id, admin)
}

func (o oneNode) SessionLive(_ context.Context, id string) bool { return o.h.SessionLive(id) }

func (o oneNode) SessionOwner(_ context.Context, id string) (string, time.Time, bool) {
	return o.h.SessionOwner(id)
}

func (o oneNode) AddToken(_ context.Context, id string, hash [32]byte) (time.Time, error) {
	return o.h.AddToken(id, hash)
}

func (o oneNode) RevokeToken(_ context.Context, hash [32]byte) { o.h.RevokeToken(hash) }

func (o oneNode) TokenSession(_ context.Context, token string) (Ref, bool, error) {
	id, ok := o.h.SessionForToken(token)
	return Ref{ID: id}, ok, nil
}

func (o oneNode) BindToken(_ context.Context, ref Ref, tokenHash, bindHash [32]byte) error {
	return o.h.BindToken(ref.ID, tokenHash, bindHash)
}

func (o oneNode) ServeClient(ws hub.Socket, ref Ref, auth hub.ClientAuth) {
	o.h.ServeClientAuth(ws, ref.ID, auth)
}

func (o oneNode) Devices(context.Context) []proto.DeviceStatus { return o.h.Devices() }

func (o oneNode) OnlineAgents(context.Context) []string { return o.h.OnlineAgents() }

func (o oneNode) PushInventory(ctx context.Context, agent string) bool {
	return o.h.PushInventory(ctx, agent)
}

func (o oneNode) RunDiscovery(_ context.Context, agent, reason string) bool {
	return o.h.RunDiscovery(agent, reason)
}

func (o oneNode) OpenFetch(_ context.Context, id string, cookie [32]byte) (*Exchange, error) {
	var x *fetchx.Exchange
	release, err := o.h.OpenFetch(id, cookie, func(xid uint64, send fetchx.Sender) hub.FetchRoute {
		x = fetchx.New(xid, send, 0)
		return x
	})
	if err != nil {
		return nil, err
	}
	return &Exchange{Exchange: x, release: release}, nil
}

func (o oneNode) RedeemTicket(_ context.Context, id, ticket string, cookie [32]byte) (time.Time, error) {
	return o.h.RedeemTicket(id, ticket, cookie)
}
