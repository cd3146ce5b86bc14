package server

import (
	"context"
	"crypto/sha256"
	"encoding/json"
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

// A cluster of signaling nodes shares one bus (package bus). Each node's
// hub knows only its own connections; this file routes what it cannot
// serve, as netbird's signal server does: local delivery when the peer is
// on this node, otherwise the node that holds it.
//
// A session belongs to the node its agent is connected to (the owner),
// where the hub runs it as in a single node. Another node serves the
// technician's requests for it by asking the owner (a call over the bus),
// and the technician's WebSocket by bridging it: its frames cross the bus
// to the owner, which feeds them to its hub through an in-memory WebSocket
// (bridge.go). Nothing about sessions has to be replicated.

// busMsg is the one message type between nodes.
type busMsg struct {
	Kind    string             `json:"k"`
	From    string             `json:"f"`
	Call    uint64             `json:"c,omitempty"`
	Bridge  uint64             `json:"b,omitempty"`
	ToEdge  bool               `json:"e,omitempty"` // a bridge message for the node holding the real WebSocket
	Session string             `json:"s,omitempty"`
	User    string             `json:"u,omitempty"`
	Agent   string             `json:"a,omitempty"`
	Device  string             `json:"d,omitempty"`
	Token   string             `json:"t,omitempty"`
	Hash    []byte             `json:"h,omitempty"`
	Bind    []byte             `json:"bd,omitempty"` // join, bind: SHA-256 of the client's bind cookie
	Browser bool               `json:"br,omitempty"` // join: the client is a web page (it sent an Origin)
	Data    string             `json:"x,omitempty"`
	Code    int                `json:"n,omitempty"`
	OK      bool               `json:"ok,omitempty"`
	Expires time.Time          `json:"exp,omitzero"`
	Err     *proto.Error       `json:"err,omitempty"`
	Info    *proto.SessionInfo `json:"info,omitempty"`
	FetchID uint64             `json:"fx,omitempty"` // fallback_cluster.go
}

// Kinds of busMsg.
const (
	kindReply     = "reply"
	kindOpen      = "open"      // OpenAgentSession on the agent's node
	kindCheck     = "check"     // which session a token opens
	kindLive      = "live"      // SessionLive
	kindOwner     = "owner"     // SessionOwner
	kindAddToken  = "addtoken"  // AddToken
	kindRevoke    = "revoke"    // RevokeToken
	kindBind      = "bind"      // BindToken
	kindEnd       = "end"       // EndSession
	kindTerminate = "terminate" // TerminateSession
	kindJoin      = "join"      // a bridged client WebSocket starts
	kindFrame     = "frame"     // one WebSocket message of a bridge
	kindClose     = "close"     // a bridge ends
)

// callTimeout bounds a call to another node beyond the time the call
// itself may take (ReadyTimeout for open).
const callTimeout = 5 * time.Second

type cluster struct {
	s   *Server
	bus bus.Bus
	log *slog.Logger

	seq     atomic.Uint64
	mu      sync.Mutex
	calls   map[uint64]chan *busMsg
	bridges map[bridgeKey]*bridge
	closed  bool
	fx      *fetchRelay // the fallback's exchanges across nodes (fallback_cluster.go)

	stop chan struct{}
	wg   sync.WaitGroup
}

// newCluster starts routing over b. The hub must exist.
func newCluster(s *Server, b bus.Bus) *cluster {
	c := &cluster{
		s: s, bus: b, log: s.log.With("node", b.Node()),
		calls:   map[uint64]chan *busMsg{},
		bridges: map[bridgeKey]*bridge{},
		stop:    make(chan struct{}),
	}
	c.fx = newFetchRelay(c)
	b.OnLost(func(agent string) { s.hub.DisconnectAgent(agent, "connected to another signaling node") })
	b.Start(c.deliver)
	c.wg.Go(c.watch)
	return c
}

func (c *cluster) close() {
	c.mu.Lock()
	c.closed = true
	bridges := make([]*bridge, 0, len(c.bridges))
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

func (c *cluster) send(node string, m *busMsg) bool {
	m.From = c.bus.Node()
	b, err := json.Marshal(m)
	if err != nil {
		return false
	}
	return c.bus.Send(node, b)
}

// deliver handles one message from another node. It runs on the bus's
// delivery goroutine: anything that may wait runs on its own.
func (c *cluster) deliver(raw []byte) {
	m := new(busMsg)
	if err := json.Unmarshal(raw, m); err != nil {
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
func (c *cluster) serve(m *busMsg) *busMsg {
	h := c.s.hub
	switch m.Kind {
	case kindOpen:
		ctx, cancel := context.WithTimeout(context.Background(), c.s.readyTimeout()+time.Second)
		defer cancel()
		info, err := h.OpenAgentSession(ctx, m.User, m.Agent, m.Device)
		if err == nil {
			err = c.publishSession(ctx, info.Session, info.Expires, sha256.Sum256([]byte(info.Token)))
		}
		return &busMsg{Info: info, Err: protoErr(err)}
	case kindCheck:
		id, ok := h.SessionForToken(m.Token)
		return &busMsg{Session: id, OK: ok}
	case kindLive:
		return &busMsg{OK: h.SessionLive(m.Session)}
	case kindOwner:
		user, exp, ok := h.SessionOwner(m.Session)
		return &busMsg{User: user, Expires: exp, OK: ok}
	case kindAddToken:
		if len(m.Hash) != sha256.Size {
			return &busMsg{Err: proto.Errorf(proto.CodeBadMessage, "bad token hash")}
		}
		exp, err := h.AddToken(m.Session, [32]byte(m.Hash))
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			err = c.publishSession(ctx, m.Session, exp, [32]byte(m.Hash))
			cancel()
		}
		return &busMsg{Expires: exp, Err: protoErr(err)}
	case kindRevoke:
		if len(m.Hash) == sha256.Size {
			h.RevokeToken([32]byte(m.Hash))
		}
		return nil
	case kindBind:
		if len(m.Hash) != sha256.Size || len(m.Bind) != sha256.Size {
			return &busMsg{Err: proto.Errorf(proto.CodeBadMessage, "bad token or bind hash")}
		}
		return &busMsg{Err: protoErr(h.BindToken(m.Session, [32]byte(m.Hash), [32]byte(m.Bind)))}
	case kindEnd:
		return &busMsg{Err: protoErr(h.EndSession(m.Session, m.User))}
	case kindTerminate:
		return &busMsg{Err: protoErr(h.TerminateSession(m.Session, m.User))}
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
func (c *cluster) call(ctx context.Context, node string, m *busMsg, wait time.Duration) (*busMsg, error) {
	unavailable := proto.Errorf(proto.CodeUnavailable, "signaling node %s, which holds the agent, is not reachable; try again", node)
	if !c.bus.Alive(node) {
		return nil, unavailable
	}
	m.Call = c.seq.Add(1)
	ch := make(chan *busMsg, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosedServer
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
				return nil, ErrClosedServer
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

// ErrClosedServer is what calls in flight get when the server closes.
var ErrClosedServer = &proto.Error{Code: proto.CodeUnavailable, Message: "signaling is shutting down"}

// publishSession records in the directory that this node owns session.
func (c *cluster) publishSession(ctx context.Context, session string, expires time.Time, hashes ...[32]byte) error {
	if err := c.bus.PutSession(ctx, session, expires, hashes...); err != nil {
		c.log.Warn("session directory write failed", "session", session, "err", err)
		return proto.Errorf(proto.CodeUnavailable, "the cluster directory is unavailable; try again")
	}
	return nil
}

// sessionNode returns the live node owning session, or "" when this node
// should answer itself (it owns it, or nobody does).
func (c *cluster) sessionNode(ctx context.Context, session string) string {
	node, ok, err := c.bus.SessionNode(ctx, session)
	if err != nil || !ok || node == c.bus.Node() {
		return ""
	}
	return node
}

// watch ends bridges whose other node stopped heartbeating.
func (c *cluster) watch() {
	t := time.NewTicker(bus.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		c.mu.Lock()
		var dead []*bridge
		for _, b := range c.bridges {
			if !c.bus.Alive(b.peer) {
				dead = append(dead, b)
			}
		}
		c.mu.Unlock()
		for _, b := range dead {
			c.log.Info("bridge peer node went away", "session", b.session, "peer", b.peer)
			b.lostPeer()
		}
		c.fx.watch()
	}
}

// The Server's routing helpers: the local hub first, the cluster next.

func (s *Server) readyTimeout() time.Duration {
	if s.cfg.ReadyTimeout > 0 {
		return s.cfg.ReadyTimeout
	}
	return hub.DefaultReadyTimeout
}

// openSession opens a session on device on whichever node holds its agent.
func (s *Server) openSession(ctx context.Context, user, agent, device string) (*proto.SessionInfo, error) {
	info, err := s.hub.OpenAgentSession(ctx, user, agent, device)
	c := s.cluster
	if c == nil {
		return info, err
	}
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
	r, cerr := c.call(ctx, p.Node, &busMsg{Kind: kindOpen, User: user, Agent: agent, Device: device}, s.readyTimeout())
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

// endSession is hub.EndSession on the session's node.
func (s *Server) endSession(ctx context.Context, id, user string) error {
	return s.onSessionNode(ctx, id, s.hub.EndSession(id, user), &busMsg{Kind: kindEnd, Session: id, User: user})
}

// terminateSession is hub.TerminateSession on the session's node.
func (s *Server) terminateSession(ctx context.Context, id, admin string) error {
	return s.onSessionNode(ctx, id, s.hub.TerminateSession(id, admin), &busMsg{Kind: kindTerminate, Session: id, User: admin})
}

// onSessionNode returns local, the result of an operation on this node's
// hub, unless this node does not hold the session and another node of the
// cluster does: then it asks that node to do m and returns its answer.
func (s *Server) onSessionNode(ctx context.Context, id string, local error, m *busMsg) error {
	c := s.cluster
	if c == nil || !errors.Is(local, hub.ErrNoSession) {
		return local
	}
	node := c.sessionNode(ctx, id)
	if node == "" {
		return local
	}
	r, err := c.call(ctx, node, m, 0)
	if err != nil {
		return err
	}
	if r.Err != nil {
		return r.Err
	}
	return nil
}

// sessionLive is hub.SessionLive on the session's node.
func (s *Server) sessionLive(ctx context.Context, id string) bool {
	if s.hub.SessionLive(id) {
		return true
	}
	if c := s.cluster; c != nil {
		if node := c.sessionNode(ctx, id); node != "" {
			r, err := c.call(ctx, node, &busMsg{Kind: kindLive, Session: id}, 0)
			return err == nil && r.OK
		}
	}
	return false
}

// sessionOwner is hub.SessionOwner on the session's node.
func (s *Server) sessionOwner(ctx context.Context, id string) (string, time.Time, bool) {
	user, exp, ok := s.hub.SessionOwner(id)
	if ok || s.cluster == nil {
		return user, exp, ok
	}
	c := s.cluster
	if node := c.sessionNode(ctx, id); node != "" {
		if r, err := c.call(ctx, node, &busMsg{Kind: kindOwner, Session: id}, 0); err == nil && r.OK {
			return r.User, r.Expires, true
		}
	}
	return "", time.Time{}, false
}

// addToken is hub.AddToken on the session's node, recorded in the
// directory so any node accepts the token.
func (s *Server) addToken(ctx context.Context, id string, hash [32]byte) (time.Time, error) {
	exp, err := s.hub.AddToken(id, hash)
	c := s.cluster
	if c == nil {
		return exp, err
	}
	if err == nil {
		return exp, c.publishSession(ctx, id, exp, hash)
	}
	if node := c.sessionNode(ctx, id); node != "" {
		r, cerr := c.call(ctx, node, &busMsg{Kind: kindAddToken, Session: id, Hash: hash[:]}, 0)
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

// bindToken is hub.BindToken on node, which owns session id.
func (c *cluster) bindToken(ctx context.Context, node, id string, tokenHash, bindHash [32]byte) error {
	r, err := c.call(ctx, node, &busMsg{Kind: kindBind, Session: id, Hash: tokenHash[:], Bind: bindHash[:]}, 0)
	if err != nil {
		return err
	}
	if r.Err != nil {
		if r.Err.Code == hub.ErrNoSession.Code && r.Err.Message == hub.ErrNoSession.Message {
			return hub.ErrNoSession
		}
		return r.Err
	}
	return nil
}

// revokeToken is hub.RevokeToken here and on the node of the token's
// session.
func (s *Server) revokeToken(ctx context.Context, hash [32]byte) {
	s.hub.RevokeToken(hash)
	if c := s.cluster; c != nil {
		if _, node, ok, err := c.bus.TokenSession(ctx, hash); err == nil && ok && node != c.bus.Node() {
			c.send(node, &busMsg{Kind: kindRevoke, Hash: hash[:]})
		}
	}
}

// devices lists the devices of every agent online on any node.
func (s *Server) devices(ctx context.Context) []proto.DeviceStatus {
	local := s.hub.Devices()
	c := s.cluster
	if c == nil {
		return local
	}
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

// onlineAgents lists the agents online on any node.
func (s *Server) onlineAgents(ctx context.Context) []string {
	out := s.hub.OnlineAgents()
	c := s.cluster
	if c == nil {
		return out
	}
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

// tokenSession returns the session a session token opens, and the node
// that owns it ("" for this one). err says why a session known to the
// cluster cannot be reached (its node went away).
func (s *Server) tokenSession(ctx context.Context, token string) (id, node string, ok bool, err error) {
	if id, ok := s.hub.SessionForToken(token); ok {
		return id, "", true, nil
	}
	c := s.cluster
	if c == nil || token == "" {
		return "", "", false, nil
	}
	sid, owner, found, err := c.bus.TokenSession(ctx, sha256.Sum256([]byte(token)))
	if err != nil || !found || owner == c.bus.Node() {
		return "", "", false, nil
	}
	r, err := c.call(ctx, owner, &busMsg{Kind: kindCheck, Token: token}, 0)
	if err != nil {
		return "", "", false, proto.Errorf(proto.CodeUnavailable, "the signaling node that owns this session went away; open a new session")
	}
	if !r.OK || r.Session != sid {
		return "", "", false, nil
	}
	return sid, owner, true, nil
}

// presenceHook tells the bus which agents this node holds.
func presenceHook(b bus.Bus) func(agent string, devices []proto.Device, online bool) {
	if b == nil {
		return nil
	}
	return b.SetAgent
}

// agentPresence finds agent's presence on any node.
func (c *cluster) agentPresence(ctx context.Context, agent string) (bus.Presence, bool, error) {
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
