package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/gorilla/websocket"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/hub"
)

// Hand-off of a draining node's sessions (hub/drain.go): the node stores
// each agent's sessions in the cluster store (bus.PutHandoff) before it
// tells the agent to reconnect, and the node the agent reaches next takes
// them (bus.TakeHandoff, once) at the agent's hello, serves them and
// records itself as their owner in the directory. A technician's client
// that reconnects then reaches the new owner wherever it lands.

// handoffTTL bounds how long handed-over state waits for its agent: an
// agent that does not come back within it has lost its sessions anyway
// (hub.Options.AgentGrace is shorter).
const handoffTTL = 2 * time.Minute

// maxHandoff bounds the handed-over state read back for one agent.
const maxHandoff = 4 << 20

// handoff is the stored state of one agent's sessions, versioned like msg.
type handoff struct {
	V        int              `json:"v"`
	From     string           `json:"f"`
	Agent    string           `json:"a"`
	Sessions []handoffSession `json:"s"`
}

// handoffSession is hub.SessionState on the wire. Hashes are SHA-256.
type handoffSession struct {
	ID         string               `json:"id"`
	User       string               `json:"u"`
	Device     string               `json:"d"`
	DeviceName string               `json:"dn,omitempty"`
	Site       string               `json:"site,omitempty"`
	SiteName   string               `json:"sn,omitempty"`
	Expires    time.Time            `json:"exp"`
	Token      []byte               `json:"t"`
	Extra      [][]byte             `json:"xt,omitempty"`
	Bound      []boundToken         `json:"bd,omitempty"`
	Holder     *handoffHolder       `json:"hd,omitempty"`
	Approval   *proto.GrantApproval `json:"ap,omitempty"`
	Cookies    [][]byte             `json:"ck,omitempty"`
}

type boundToken struct {
	Token []byte `json:"t"`
	Bind  []byte `json:"b"`
}

type handoffHolder struct {
	Token   []byte `json:"t,omitempty"`
	Bind    []byte `json:"b,omitempty"`
	Browser bool   `json:"br,omitempty"`
}

func encodeHandoff(from, agent string, states []hub.SessionState) ([]byte, error) {
	h := handoff{V: Version, From: from, Agent: agent, Sessions: make([]handoffSession, 0, len(states))}
	for _, st := range states {
		w := handoffSession{ID: st.ID, User: st.User, Device: st.Device, DeviceName: st.DeviceName, Site: st.Site, SiteName: st.SiteName,
			Expires: st.Expires, Token: st.TokenHash[:], Approval: st.Approval}
		for _, t := range st.ExtraTokens {
			w.Extra = append(w.Extra, t[:])
		}
		for _, t := range slices.SortedFunc(maps.Keys(st.Bound), func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) }) {
			b := st.Bound[t]
			w.Bound = append(w.Bound, boundToken{Token: t[:], Bind: b[:]})
		}
		if st.Held {
			w.Holder = &handoffHolder{Browser: st.Holder.Browser}
			if st.Holder.TokenHash != ([32]byte{}) {
				w.Holder.Token = st.Holder.TokenHash[:]
			}
			if st.Holder.BindHash != ([32]byte{}) {
				w.Holder.Bind = st.Holder.BindHash[:]
			}
		}
		for _, c := range st.Cookies {
			w.Cookies = append(w.Cookies, c[:])
		}
		h.Sessions = append(h.Sessions, w)
	}
	return json.Marshal(&h)
}

// hash32 converts a stored hash; nil and a wrong length are errors, except
// that optional hashes (empty ok) may be absent.
func hash32(b []byte, optional bool) ([32]byte, error) {
	if len(b) == 0 && optional {
		return [32]byte{}, nil
	}
	if len(b) != sha256.Size {
		return [32]byte{}, fmt.Errorf("hash of %d bytes", len(b))
	}
	return [32]byte(b), nil
}

// decodeHandoff checks stored state for agent and converts it. A session
// that does not check out is left out, with the reason in the error list.
func decodeHandoff(raw []byte, agent string) ([]hub.SessionState, []error, error) {
	if len(raw) > maxHandoff {
		return nil, nil, fmt.Errorf("handed-over state of %d bytes, over the bound of %d", len(raw), maxHandoff)
	}
	var h handoff
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, nil, fmt.Errorf("handed-over state: %w", err)
	}
	if h.V != Version {
		return nil, nil, fmt.Errorf("%w: handed-over state of version %d from node %q", errVersion, h.V, h.From)
	}
	if h.Agent != agent {
		return nil, nil, fmt.Errorf("handed-over state names agent %q, not %q", h.Agent, agent)
	}
	var out []hub.SessionState
	var bad []error
	for _, w := range h.Sessions {
		st, err := w.state(agent)
		if err != nil {
			bad = append(bad, fmt.Errorf("session %q: %w", w.ID, err))
			continue
		}
		out = append(out, st)
	}
	return out, bad, nil
}

func (w *handoffSession) state(agent string) (hub.SessionState, error) {
	st := hub.SessionState{ID: w.ID, User: w.User, Device: w.Device, DeviceName: w.DeviceName, Site: w.Site, SiteName: w.SiteName,
		Agent: agent, Expires: w.Expires, Approval: w.Approval}
	var err error
	if !proto.ValidSessionID(w.ID) {
		return st, fmt.Errorf("bad session id")
	}
	if st.TokenHash, err = hash32(w.Token, false); err != nil {
		return st, fmt.Errorf("token: %w", err)
	}
	for _, x := range w.Extra {
		t, err := hash32(x, false)
		if err != nil {
			return st, fmt.Errorf("extra token: %w", err)
		}
		st.ExtraTokens = append(st.ExtraTokens, t)
	}
	for _, b := range w.Bound {
		t, err1 := hash32(b.Token, false)
		bd, err2 := hash32(b.Bind, false)
		if err1 != nil || err2 != nil {
			return st, fmt.Errorf("binding: bad hash")
		}
		if st.Bound == nil {
			st.Bound = map[[32]byte][32]byte{}
		}
		st.Bound[t] = bd
	}
	if w.Holder != nil {
		st.Held = true
		st.Holder.Browser = w.Holder.Browser
		if st.Holder.TokenHash, err = hash32(w.Holder.Token, true); err != nil {
			return st, fmt.Errorf("holder: %w", err)
		}
		if st.Holder.BindHash, err = hash32(w.Holder.Bind, true); err != nil {
			return st, fmt.Errorf("holder: %w", err)
		}
	}
	for _, c := range w.Cookies {
		h, err := hash32(c, false)
		if err != nil {
			return st, fmt.Errorf("cookie: %w", err)
		}
		st.Cookies = append(st.Cookies, h)
	}
	return st, nil
}

// Drain stops this node taking new work and hands its sessions over: each
// agent's sessions are stored for the node the agent reaches next, then
// the agent and their clients are told to reconnect (hub.Drain,
// hub.Release). An agent whose state cannot be stored is not told: it
// and its sessions stay until the node closes, which ends them. It
// returns the sessions handed over.
func (c *Router) Drain(ctx context.Context) int {
	n := 0
	for agent, states := range c.hub.Drain() {
		if len(states) > 0 {
			raw, err := encodeHandoff(c.bus.Node(), agent, states)
			if err == nil {
				err = c.bus.PutHandoff(ctx, agent, raw, handoffTTL)
			}
			if err != nil {
				// Not released: they end when the node closes, as without a
				// drain, rather than vanish without an end in their jobs.
				c.log.Warn("sessions could not be handed over; they end with this node", "agent", agent, "sessions", len(states), "err", err)
				continue
			}
		}
		c.mu.Lock()
		c.handedOver = append(c.handedOver, agent)
		c.mu.Unlock()
		n += c.hub.Release(agent)
	}
	c.drainEdges()
	return n
}

// Unadopted counts the agents whose handed-over sessions no node has taken
// yet (Drain). Until one does, the directory still names this node as
// their owner, so a draining node that waits for none to be left exits
// after the cluster knows where each session went. A store error counts
// the agent as taken: the drain's timeout bounds the wait anyway.
func (c *Router) Unadopted(ctx context.Context) int {
	c.mu.Lock()
	agents := slices.Clone(c.handedOver)
	c.mu.Unlock()
	left := agents[:0]
	for _, a := range agents {
		if ok, err := c.bus.HasHandoff(ctx, a); err == nil && ok {
			left = append(left, a)
		}
	}
	c.mu.Lock()
	c.handedOver = left
	c.mu.Unlock()
	return len(left)
}

// drainEdges tells the technicians whose sockets this node holds for
// sessions of other nodes to reconnect (to another node: their sessions
// stay where they are).
func (c *Router) drainEdges() {
	c.mu.Lock()
	var edges []*edgeBridge
	for _, b := range c.bridges {
		if e, ok := b.(*edgeBridge); ok {
			edges = append(edges, e)
		}
	}
	c.mu.Unlock()
	for _, e := range edges {
		if data, err := proto.Encode(proto.TypeDrain, e.session, &proto.Drain{Message: "signaling node " + c.bus.Node() + " is shutting down; reconnect"}); err == nil {
			select {
			case e.out <- data:
			default:
			}
		}
		e.end(websocket.CloseServiceRestart, "signaling node is shutting down; reconnect", true)
	}
	if len(edges) > 0 {
		c.log.Info("technicians of other nodes' sessions told to reconnect", "sockets", len(edges))
	}
}

// Adopt is hub.Options.Adopt for a node of a cluster: the sessions a
// draining node handed over for agent, now owned by this node.
func (c *Router) Adopt(agent string) []hub.SessionState {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	raw, ok, err := c.bus.TakeHandoff(ctx, agent)
	if err != nil {
		c.log.Warn("handed-over sessions unreadable", "agent", agent, "err", err)
		return nil
	}
	if !ok {
		return nil
	}
	states, bad, err := decodeHandoff(raw, agent)
	if err != nil {
		c.log.Warn("handed-over sessions refused", "agent", agent, "err", err)
		return nil
	}
	for _, e := range bad {
		c.log.Warn("handed-over session refused", "agent", agent, "err", e)
	}
	for _, st := range states {
		// The directory first: a client that reconnects as soon as the
		// agent's hello is through finds this node.
		_ = c.publishSession(ctx, st.ID, st.Expires, st.Tokens()...)
	}
	return states
}
