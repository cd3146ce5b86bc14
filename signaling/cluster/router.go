package cluster

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/bus"
	"github.com/porthole-dev/porthole/signaling/hub"
)

// Config configures a Router.
type Config struct {
	// Hub is this node's hub. Required.
	Hub *hub.Hub
	// Bus connects this node to the others. Required.
	Bus bus.Bus
	// Logger; nil discards.
	Logger *slog.Logger
	// ReadyTimeout is how long the agent's node may take to open a
	// session (the hub's Options.ReadyTimeout); zero means
	// hub.DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// PingInterval and PongWait keep a bridged technician WebSocket alive
	// on the node that holds it; zero means the hub's defaults.
	PingInterval, PongWait time.Duration
	// Limits are the hub's: the node holding a bridged technician socket
	// applies its per-connection client rate itself (bridge.go).
	Limits hub.Limits
	// Now defaults to time.Now.
	Now func() time.Time
}

// callTimeout bounds a call to another node beyond the time the call
// itself may take (ReadyTimeout for open).
const callTimeout = 5 * time.Second

// ErrClosed is what calls in flight get when the router closes.
var ErrClosed = &proto.Error{Code: proto.CodeUnavailable, Message: "signaling is shutting down"}

// Router is the Sessions of one node of a cluster: the local hub first,
// the node that holds the session or agent next.
type Router struct {
	cfg   Config
	hub   *hub.Hub
	local oneNode
	bus   bus.Bus
	log   *slog.Logger

	seq     atomic.Uint64
	mu      sync.Mutex
	calls   map[uint64]chan *msg
	bridges map[bridgeKey]bridgeEnd
	closed  bool
	fx      *fetchRelay // the fallback's exchanges across nodes (fetch.go)
	// handedOver lists the agents whose sessions Drain stored for another
	// node and that no node had taken when Unadopted last looked.
	handedOver []string

	stop chan struct{}
	wg   sync.WaitGroup
}

// New starts routing over cfg.Bus, which it starts; the caller closes the
// bus after the router.
func New(cfg Config) *Router {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = hub.DefaultReadyTimeout
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = hub.DefaultPingInterval
	}
	if cfg.PongWait <= 0 {
		cfg.PongWait = hub.DefaultPongWait
	}
	c := &Router{
		cfg: cfg, hub: cfg.Hub, local: oneNode{cfg.Hub}, bus: cfg.Bus,
		log:     cfg.Logger.With("node", cfg.Bus.Node()),
		calls:   map[uint64]chan *msg{},
		bridges: map[bridgeKey]bridgeEnd{},
		stop:    make(chan struct{}),
	}
	c.fx = newFetchRelay(c)
	c.bus.OnLost(func(agent string) { c.hub.DisconnectAgent(agent, "connected to another signaling node") })
	c.bus.Start(c.deliver)
	c.wg.Go(c.watch)
	return c
}

// Presence returns the hub's Options.Presence for a node on b (nil for
// none): it tells the bus which agents this node holds.
func Presence(b bus.Bus) func(agent string, devices []proto.Device, online bool) {
	if b == nil {
		return nil
	}
	return b.SetAgent
}

// Close ends every bridge and exchange and fails the calls in flight, and
// returns once the router's goroutines have returned. Close the hub first.
// Later calls only wait (the signaling main closes the server twice: on
// its way out and deferred).
func (c *Router) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.wg.Wait()
		return
	}
	c.closed = true
	bridges := make([]bridgeEnd, 0, len(c.bridges))
	for _, b := range c.bridges {
		bridges = append(bridges, b)
	}
	for id, ch := range c.calls {
		close(ch)
		delete(c.calls, id)
	}
	c.mu.Unlock()
	close(c.stop)
	for _, b := range bridges {
		b.end(websocket.CloseGoingAway, "signaling is shutting down", true)
	}
	c.fx.close()
	c.wg.Wait()
}

func (c *Router) send(node string, m *msg) bool {
	b, err := encodeMsg(c.bus.Node(), m)
	if err != nil {
		return false
	}
	return c.bus.Send(node, b)
}

// deliver handles one message from another node. It runs on the bus's
// delivery goroutine: anything that may wait runs on its own.
func (c *Router) deliver(raw []byte) {
	m, err := decodeMsg(raw)
	if err != nil {
		c.log.Warn("bad bus message", "err", err)
		return
	}
	switch m.Kind {
	case kindReply:
		c.mu.Lock()
		ch := c.calls[m.Call]
		delete(c.calls, m.Call)
		c.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	case kindFrame, kindClose:
		key := bridgeKey{edge: m.From, id: m.Bridge}
		if m.ToEdge {
			key.edge = c.bus.Node()
		}
		c.mu.Lock()
		b := c.bridges[key]
		c.mu.Unlock()
		if b == nil {
			return
		}
		if m.Kind == kindClose {
			b.end(m.Code, m.Data, false)
		} else {
			b.push([]byte(m.Data))
		}
	case kindJoin:
		c.join(m)
	case kindFetchMsg, kindFetchDone:
		c.fx.deliver(m)
	default:
		c.mu.Lock()
		closed := c.closed
		if !closed {
			c.wg.Add(1)
		}
		c.mu.Unlock()
		if closed {
			return
		}
		go func() {
			defer c.wg.Done()
			if r := c.serve(m); r != nil {
				r.Kind, r.Call = kindReply, m.Call
				c.send(m.From, r)
			}
		}()
	}
}

func protoErr(err error) *proto.Error {
	if err == nil {
		return nil
	}
	var pe *proto.Error
	if errors.As(err, &pe) {
		return pe
	}
	return &proto.Error{Code: proto.CodeOf(err), Message: err.Error()}
}

// serve answers a call from another node with this node's hub.
func (c *Router) serve(m *msg) *msg {
	h := c.hub
	switch m.Kind {
	case kindOpen:
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ReadyTimeout+time.Second)
		defer cancel()
		info, err := h.OpenAgentSession(ctx, m.User, m.Agent, m.Device)
		if err == nil {
			err = c.publishSession(ctx, info.Session, info.Expires, sha256.Sum256([]byte(info.Token)))
		}
		return &msg{Info: info, Err: protoErr(err)}
	case kindCheck:
		id, ok := h.SessionForToken(m.Token)
		if !ok && h.Draining() {
			// The session may be on its way to another node: the client
			// should retry, not give up.
			return &msg{Err: hub.ErrDraining}
		}
		return &msg{Session: id, OK: ok}
	case kindLive:
		return &msg{OK: h.SessionLive(m.Session)}
	case kindInventory:
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		return &msg{OK: h.PushInventory(ctx, m.Agent)}
	case kindDiscover:
		return &msg{OK: h.RunDiscovery(m.Agent, m.Data)}
	case kindOwner:
		user, exp, ok := h.SessionOwner(m.Session)
		return &msg{User: user, Expires: exp, OK: ok}
	case kindAddToken:
		if len(m.Hash) != sha256.Size {
			return &msg{Err: proto.Errorf(proto.CodeBadMessage, "bad token hash")}
		}
		exp, err := h.AddToken(m.Session, [32]byte(m.Hash))
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			err = c.publishSession(ctx, m.Session, exp, [32]byte(m.Hash))
			cancel()
		}
		return &msg{Expires: exp, Err: protoErr(err)}
	case kindRevoke:
		if len(m.Hash) == sha256.Size {
			h.RevokeToken([32]byte(m.Hash))
		}
		return nil
	case kindBind:
		if len(m.Hash) != sha256.Size || len(m.Bind) != sha256.Size {
			return &msg{Err: proto.Errorf(proto.CodeBadMessage, "bad token or bind hash")}
		}
		return &msg{Err: protoErr(h.BindToken(m.Session, [32]byte(m.Hash), [32]byte(m.Bind)))}
	case kindEnd:
		return &msg{Err: protoErr(h.EndSession(m.Session, m.User))}
	case kindTerminate:
		return &msg{Err: protoErr(h.TerminateSession(m.Session, m.User))}
	case kindFetchOpen:
		return c.fx.open(m)
	case kindTicket:
		return c.fx.ticket(m)
	}
	c.log.Warn("unknown bus message", "kind", m.Kind, "from", m.From)
	return nil
}

// call sends m to node and waits for the reply, failing early when node
// stops heartbeating.
func (c *Router) call(ctx context.Context, node string, m *msg, wait time.Duration) (*msg, error) {
	unavailable := proto.Errorf(proto.CodeUnavailable, "signaling node %s, which holds the agent, is not reachable; try again", node)
	if !c.bus.Alive(node) {
		return nil, unavailable
	}
	m.Call = c.seq.Add(1)
	ch := make(chan *msg, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.calls[m.Call] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.calls, m.Call)
		c.mu.Unlock()
	}
	if !c.send(node, m) {
		forget()
		return nil, unavailable
	}
	deadline := time.NewTimer(wait + callTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(bus.HeartbeatInterval / 2)
	defer tick.Stop()
	for {
		select {
		case r, ok := <-ch:
			if !ok {
				return nil, ErrClosed
			}
			return r, nil
		case <-tick.C:
			if !c.bus.Alive(node) {
				forget()
				return nil, proto.Errorf(proto.CodeUnavailable, "signaling node %s, which holds the agent, went away; try again", node)
			}
		case <-deadline.C:
			forget()
			return nil, proto.Errorf(proto.CodeUnavailable, "signaling node %s did not answer in time; try again", node)
		case <-ctx.Done():
			forget()
			return nil, hub.ErrCanceled
		}
	}
}

// callErr is call for the calls whose reply carries only an error.
func (c *Router) callErr(ctx context.Context, node string, m *msg) error {
	r, err := c.call(ctx, node, m, 0)
	if err != nil {
		return err
	}
	if r.Err != nil {
		return r.Err
	}
	return nil
}

// publishSession records in the directory that this node owns session.
func (c *Router) publishSession(ctx context.Context, session string, expires time.Time, hashes ...[32]byte) error {
	if err := c.bus.PutSession(ctx, session, expires, hashes...); err != nil {
		c.log.Warn("session directory write failed", "session", session, "err", err)
		return proto.Errorf(proto.CodeUnavailable, "the cluster directory is unavailable; try again")
	}
	return nil
}

// sessionNode returns the live node owning session, or "" when this node
// should answer itself (it owns it, or nobody does).
func (c *Router) sessionNode(ctx context.Context, session string) string {
	node, ok, err := c.bus.SessionNode(ctx, session)
	if err != nil || !ok || node == c.bus.Node() {
		return ""
	}
	return node
}

// watch ends bridges and exchanges whose other node stopped heartbeating.
func (c *Router) watch() {
	t := time.NewTicker(bus.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		c.mu.Lock()
		var dead []bridgeEnd
		for _, b := range c.bridges {
			if !c.bus.Alive(b.peerNode()) {
				dead = append(dead, b)
			}
		}
		c.mu.Unlock()
		for _, b := range dead {
			c.log.Info("bridge peer node went away", "session", b.sessionID(), "peer", b.peerNode())
			b.lostPeer()
		}
		c.fx.watch()
	}
}

// The Sessions operations: the local hub first, the cluster next.

// OpenSession implements Sessions.
func (c *Router) OpenSession(ctx context.Context, user, agent, device string) (*proto.SessionInfo, error) {
	info, err := c.hub.OpenAgentSession(ctx, user, agent, device)
	if err == nil {
		return info, c.publishSession(ctx, info.Session, info.Expires, sha256.Sum256([]byte(info.Token)))
	}
	if !errors.Is(err, hub.ErrNotFound) && !errors.Is(err, hub.ErrAgentOffline) {
		return nil, err
	}
	p, ok, lerr := c.bus.Device(ctx, device)
	if agent != "" && lerr == nil && (!ok || p.Agent != agent) {
		// Device IDs are scoped by agent: find the agent's node itself.
		p, ok, lerr = c.agentPresence(ctx, agent)
	}
	if lerr != nil || !ok || p.Node == c.bus.Node() || (agent != "" && p.Agent != agent) {
		return nil, err
	}
	r, cerr := c.call(ctx, p.Node, &msg{Kind: kindOpen, User: user, Agent: agent, Device: device}, c.cfg.ReadyTimeout)
	if cerr != nil {
		return nil, cerr
	}
	if r.Err != nil {
		return nil, r.Err
	}
	if r.Info == nil {
		return nil, proto.Errorf(proto.CodeInternal, "empty answer from node %s", p.Node)
	}
	return r.Info, nil
}

// EndSession implements Sessions.
func (c *Router) EndSession(ctx context.Context, id, user string) error {
	return c.onSessionNode(ctx, id, c.hub.EndSession(id, user), &msg{Kind: kindEnd, Session: id, User: user})
}

// TerminateSession implements Sessions.
func (c *Router) TerminateSession(ctx context.Context, id, admin string) error {
	return c.onSessionNode(ctx, id, c.hub.TerminateSession(id, admin), &msg{Kind: kindTerminate, Session: id, User: admin})
}

// onSessionNode returns local, the result of an operation on this node's
// hub, unless this node does not hold the session and another node of the
// cluster does: then it asks that node to do m and returns its answer.
func (c *Router) onSessionNode(ctx context.Context, id string, local error, m *msg) error {
	if !errors.Is(local, hub.ErrNoSession) {
		return local
	}
	node := c.sessionNode(ctx, id)
	if node == "" {
		return local
	}
	return c.callErr(ctx, node, m)
}

// PushInventory implements Sessions.
func (c *Router) PushInventory(ctx context.Context, agent string) bool {
	if c.hub.PushInventory(ctx, agent) {
		return true
	}
	return c.agentCall(ctx, &msg{Kind: kindInventory, Agent: agent})
}

// RunDiscovery implements Sessions.
func (c *Router) RunDiscovery(ctx context.Context, agent, reason string) bool {
	if c.hub.RunDiscovery(agent, reason) {
		return true
	}
	return c.agentCall(ctx, &msg{Kind: kindDiscover, Agent: agent, Data: reason})
}

// agentCall makes call m on the node that holds m.Agent, if another one
// does, and reports its answer.
func (c *Router) agentCall(ctx context.Context, m *msg) bool {
	p, ok, err := c.agentPresence(ctx, m.Agent)
	if err != nil || !ok || p.Node == c.bus.Node() {
		return false
	}
	r, err := c.call(ctx, p.Node, m, 0)
	return err == nil && r.OK
}

// SessionLive implements Sessions.
func (c *Router) SessionLive(ctx context.Context, id string) bool {
	if c.hub.SessionLive(id) {
		return true
	}
	if node := c.sessionNode(ctx, id); node != "" {
		r, err := c.call(ctx, node, &msg{Kind: kindLive, Session: id}, 0)
		return err == nil && r.OK
	}
	return false
}

// SessionOwner implements Sessions.
func (c *Router) SessionOwner(ctx context.Context, id string) (string, time.Time, bool) {
	user, exp, ok := c.hub.SessionOwner(id)
	if ok {
		return user, exp, ok
	}
	if node := c.sessionNode(ctx, id); node != "" {
		if r, err := c.call(ctx, node, &msg{Kind: kindOwner, Session: id}, 0); err == nil && r.OK {
			return r.User, r.Expires, true
		}
	}
	return "", time.Time{}, false
}

// AddToken implements Sessions: the token is recorded in the directory so
// any node accepts it.
func (c *Router) AddToken(ctx context.Context, id string, hash [32]byte) (time.Time, error) {
	exp, err := c.hub.AddToken(id, hash)
	if err == nil {
		return exp, c.publishSession(ctx, id, exp, hash)
	}
	if node := c.sessionNode(ctx, id); node != "" {
		r, cerr := c.call(ctx, node, &msg{Kind: kindAddToken, Session: id, Hash: hash[:]}, 0)
		if cerr != nil {
			return time.Time{}, cerr
		}
		if r.Err != nil {
			return time.Time{}, r.Err
		}
		return r.Expires, nil
	}
	return exp, err
}

// BindToken implements Sessions.
func (c *Router) BindToken(ctx context.Context, ref Ref, tokenHash, bindHash [32]byte) error {
	if ref.node == "" {
		return c.hub.BindToken(ref.ID, tokenHash, bindHash)
	}
	err := c.callErr(ctx, ref.node, &msg{Kind: kindBind, Session: ref.ID, Hash: tokenHash[:], Bind: bindHash[:]})
	var pe *proto.Error
	if errors.As(err, &pe) && pe.Code == hub.ErrNoSession.Code && pe.Message == hub.ErrNoSession.Message {
		return hub.ErrNoSession
	}
	return err
}

// RevokeToken implements Sessions.
func (c *Router) RevokeToken(ctx context.Context, hash [32]byte) {
	c.hub.RevokeToken(hash)
	if _, node, ok, err := c.bus.TokenSession(ctx, hash); err == nil && ok && node != c.bus.Node() {
		c.send(node, &msg{Kind: kindRevoke, Hash: hash[:]})
	}
}

// Devices implements Sessions.
func (c *Router) Devices(ctx context.Context) []proto.DeviceStatus {
	local := c.hub.Devices()
	all, err := c.bus.Agents(ctx)
	if err != nil {
		c.log.Warn("cluster presence unavailable; listing this node's devices only", "err", err)
		return local
	}
	// Devices are scoped by agent (hub.ServeAgentAt): one entry per agent
	// and ID.
	type key struct{ agent, id string }
	seen := make(map[key]bool, len(local))
	for _, d := range local {
		seen[key{d.Agent, d.ID}] = true
	}
	for _, p := range all {
		if p.Node == c.bus.Node() {
			continue
		}
		for _, d := range p.Devices {
			if k := (key{p.Agent, d.ID}); !seen[k] {
				seen[k] = true
				local = append(local, proto.DeviceStatus{Device: d, Agent: p.Agent, Online: true})
			}
		}
	}
	sort.Slice(local, func(i, j int) bool {
		if local[i].ID != local[j].ID {
			return local[i].ID < local[j].ID
		}
		return local[i].Agent < local[j].Agent
	})
	return local
}

// OnlineAgents implements Sessions.
func (c *Router) OnlineAgents(ctx context.Context) []string {
	out := c.hub.OnlineAgents()
	all, err := c.bus.Agents(ctx)
	if err != nil {
		return out
	}
	seen := map[string]bool{}
	for _, a := range out {
		seen[a] = true
	}
	for _, p := range all {
		if !seen[p.Agent] {
			seen[p.Agent] = true
			out = append(out, p.Agent)
		}
	}
	sort.Strings(out)
	return out
}

// TokenSession implements Sessions.
func (c *Router) TokenSession(ctx context.Context, token string) (Ref, bool, error) {
	if id, ok := c.hub.SessionForToken(token); ok {
		return Ref{ID: id}, true, nil
	}
	if token == "" {
		return Ref{}, false, nil
	}
	sid, owner, found, err := c.bus.TokenSession(ctx, sha256.Sum256([]byte(token)))
	if err != nil || !found || owner == c.bus.Node() {
		return Ref{}, false, nil
	}
	r, err := c.call(ctx, owner, &msg{Kind: kindCheck, Token: token}, 0)
	if err != nil {
		return Ref{}, false, proto.Errorf(proto.CodeUnavailable, "the signaling node that owns this session went away; open a new session")
	}
	if r.Err != nil {
		return Ref{}, false, r.Err
	}
	if !r.OK || r.Session != sid {
		return Ref{}, false, nil
	}
	return Ref{ID: sid, node: owner}, true, nil
}

// ServeClient implements Sessions: a socket for a session owned by another
// node is bridged there (bridge.go).
func (c *Router) ServeClient(ws hub.Socket, ref Ref, auth hub.ClientAuth) {
	if ref.node == "" {
		c.hub.ServeClientAuth(ws, ref.ID, auth)
		return
	}
	c.serveEdge(ws, ref.ID, ref.node, auth)
}

// OpenFetch implements Sessions.
func (c *Router) OpenFetch(ctx context.Context, id string, cookie [32]byte) (*Exchange, error) {
	x, err := c.local.OpenFetch(ctx, id, cookie)
	if err != nil && errors.Is(err, hub.ErrNoSession) {
		if node := c.sessionNode(ctx, id); node != "" {
			return c.openRemoteFetch(ctx, node, id, cookie)
		}
	}
	return x, err
}

// RedeemTicket implements Sessions.
func (c *Router) RedeemTicket(ctx context.Context, id, ticket string, cookie [32]byte) (time.Time, error) {
	exp, err := c.hub.RedeemTicket(id, ticket, cookie)
	if errors.Is(err, hub.ErrNoSession) {
		if node := c.sessionNode(ctx, id); node != "" {
			r, cerr := c.call(ctx, node, &msg{Kind: kindTicket, Session: id, Token: ticket, Hash: cookie[:]}, 0)
			if cerr != nil {
				return time.Time{}, cerr
			}
			if r.Err != nil {
				return time.Time{}, r.Err
			}
			return r.Expires, nil
		}
	}
	return exp, err
}

// agentPresence finds agent's presence on any node.
func (c *Router) agentPresence(ctx context.Context, agent string) (bus.Presence, bool, error) {
	all, err := c.bus.Agents(ctx)
	if err != nil {
		return bus.Presence{}, false, err
	}
	for _, p := range all {
		if p.Agent == agent {
			return p, true, nil
		}
	}
	return bus.Presence{}, false, nil
}
