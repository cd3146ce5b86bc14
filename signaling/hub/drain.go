package hub

import (
	"maps"
	"slices"
	"time"

	"github.com/gorilla/websocket"

	"github.com/porthole-dev/porthole/proto"
)

// Draining (a rolling restart). A node that is shutting down stops taking
// new work and hands its live sessions to the other nodes of the cluster
// instead of ending them:
//
//  1. Drain: no new session, client or agent is admitted any more, and
//     sessions still waiting for their agent's acceptance end (their
//     opener retries). It returns the state of every accepted session,
//     by agent, for the cluster to store where the next node finds it.
//  2. Release, once an agent's state is stored: its sessions leave this
//     hub without a session.end to anyone (their data path is peer to
//     peer and goes on), their clients and then the agent are told to
//     reconnect (proto.TypeDrain, close code 1012).
//  3. The node the agent reaches next adopts the sessions at the agent's
//     hello (Options.Adopt), with their tokens, bindings and holder: the
//     technician's client that reconnects there resumes under the same
//     rules as a reload (binding.go), and nobody else does.

// ErrDraining refuses new work on a node that is shutting down.
var ErrDraining = &proto.Error{Code: proto.CodeUnavailable,
	Message: "this signaling node is shutting down; reconnect (another node takes over)"}

// drainRetry is the retry hint drain messages carry: long enough for a load
// balancer's health check to see the node unready, short enough that the
// session's signaling is back within a second or two.
const drainRetry = 250 * time.Millisecond

// SessionState is what another node needs to go on serving an accepted
// session: everything the hub checks about who may speak for it.
type SessionState struct {
	ID, User, Device, DeviceName string
	Site, SiteName               string
	Agent                        string
	Expires                      time.Time
	TokenHash                    [32]byte
	ExtraTokens                  [][32]byte
	Bound                        map[[32]byte][32]byte // token hash → bind cookie hash
	Holder                       ClientAuth
	Held                         bool
	Approval                     *proto.GrantApproval
	Cookies                      [][32]byte // device cookies of the signaling fallback
}

// Tokens lists every token hash that opens the session.
func (st *SessionState) Tokens() [][32]byte {
	return append([][32]byte{st.TokenHash}, st.ExtraTokens...)
}

// Draining reports whether Drain was called.
func (h *Hub) Draining() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.draining
}

// Drain stops the hub taking new work and returns the state of the
// accepted sessions of every connected agent (an agent without any maps
// to none). Sessions still pending end with ErrDraining.
func (h *Hub) Drain() map[string][]SessionState {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.draining = true
	out := make(map[string][]SessionState, len(h.agents))
	for id, c := range h.agents {
		states := []SessionState{}
		for _, s := range c.sessions {
			switch s.state {
			case statePending:
				h.endLocked(s, proto.EndError, ErrDraining.Message, nil, ErrDraining)
			case stateReady:
				states = append(states, stateOf(s))
			}
		}
		out[id] = states
	}
	return out
}

func stateOf(s *session) SessionState {
	return SessionState{
		ID: s.id, User: s.user, Device: s.device, DeviceName: s.deviceName,
		Site: s.site, SiteName: s.siteName, Agent: s.agentID, Expires: s.expires,
		TokenHash: s.tokenHash, ExtraTokens: slices.Clone(s.extraTokens), Bound: maps.Clone(s.bound),
		Holder: s.holder, Held: s.held, Approval: s.approval, Cookies: slices.Clone(s.cookies),
	}
}

// Release hands agent's sessions over (their state was stored, see
// Drain): they leave this hub without ending, their clients and the agent
// are told to reconnect. It returns how many sessions left.
func (h *Hub) Release(agent string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.agents[agent]
	if c == nil {
		return 0
	}
	drain := &proto.Drain{RetryAfterMS: drainRetry.Milliseconds(), Message: "signaling node " + h.opt.Node + " is shutting down; reconnect"}
	n := 0
	for id, s := range c.sessions {
		if s.state != stateReady {
			continue
		}
		delete(c.sessions, id)
		h.detachLocked(s, drain)
		n++
	}
	c.sendMsg(proto.TypeDrain, "", drain)
	c.closeAfterFlush(websocket.CloseServiceRestart, "signaling node is shutting down; reconnect")
	c.log.Info("agent told to reconnect to another node", "sessions_handed_over", n)
	return n
}

// detachLocked removes s from this hub without ending it.
func (h *Hub) detachLocked(s *session, drain *proto.Drain) {
	delete(h.tokens, s.tokenHash)
	for _, t := range s.extraTokens {
		delete(h.tokens, t)
	}
	s.stopTimersLocked()
	for _, e := range s.fetches {
		h.abortFetchLocked(e, ErrDraining)
	}
	if cl := s.client; cl != nil {
		cl.sendMsg(proto.TypeDrain, s.id, drain)
		cl.closeAfterFlush(websocket.CloseServiceRestart, "signaling node is shutting down; reconnect")
		s.client = nil
	}
	delete(h.sessions, s.id)
	s.log.Info("session handed over to the cluster")
}

// Remaining counts the agent connections and the sessions this hub still
// holds (while draining: what is left to hand over).
func (h *Hub) Remaining() (agents, sessions int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.sessions {
		if s.state != stateEnded {
			sessions++
		}
	}
	return len(h.agents), sessions
}

// adoptStatesLocked makes the sessions another node handed over (agent
// c's, from Options.Adopt) live on this hub with c as their agent. The
// session's client gets ClientGrace to reconnect, as after a reload.
func (h *Hub) adoptStatesLocked(c *conn, states []SessionState) int {
	now := h.opt.Now()
	n := 0
	for i := range states {
		st := &states[i]
		if st.Agent != c.id || !proto.ValidSessionID(st.ID) || !now.Before(st.Expires) || h.sessions[st.ID] != nil {
			c.log.Info("handed-over session not adopted", "session", st.ID, "for_agent", st.Agent, "expired", !now.Before(st.Expires))
			continue
		}
		if _, taken := h.tokens[st.TokenHash]; taken {
			continue
		}
		s := &session{
			id: st.ID, user: st.User, device: st.Device, deviceName: st.DeviceName,
			site: st.Site, siteName: st.SiteName, agentID: st.Agent, expires: st.Expires,
			tokenHash: st.TokenHash, extraTokens: slices.Clone(st.ExtraTokens), bound: maps.Clone(st.Bound),
			holder: st.Holder, held: st.Held, approval: st.Approval, cookies: slices.Clone(st.Cookies),
			state: stateReady, agent: c, result: make(chan error, 1),
			log:     h.log.With("session", st.ID, "device", st.Device, "user", st.User, "agent", st.Agent),
			limiter: newLimiter(h.opt.Limits.SessionRate, h.opt.Limits.SessionBurst),
		}
		h.sessions[s.id] = s
		h.tokens[s.tokenHash] = s
		for _, t := range s.extraTokens {
			h.tokens[t] = s
		}
		c.sessions[s.id] = s
		s.timer = h.afterFunc(st.Expires.Sub(now), func() {
			if s.state != stateEnded {
				h.endLocked(s, proto.EndExpired, "the session's time limit was reached", nil, nil)
			}
		})
		h.startGraceLocked(s)
		s.log.Info("session adopted from a draining node")
		n++
	}
	return n
}
