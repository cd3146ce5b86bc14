package hub

import "github.com/porthole-dev/porthole/proto"

// dispatch routes one decoded message from a connection that has said
// hello. It runs on c's read goroutine.
func (h *Hub) dispatch(c *conn, env *proto.Envelope) {
	if c.role == proto.RoleAgent && env.Type == proto.TypeAccessLog {
		h.agentAccessLog(c, env) // store I/O: not under h.mu
		return
	}
	if c.role == proto.RoleAgent && env.Type == proto.TypeRecording {
		h.agentRecording(c, env) // store I/O: not under h.mu
		return
	}
	if c.role == proto.RoleAgent && (env.Type == proto.TypeDiscoveryReport || env.Type == proto.TypeInventoryApplied) {
		h.agentInventory(c, env) // store I/O: not under h.mu
		return
	}
	if proto.IsFetch(env.Type) {
		h.fetchMessage(c, env) // fetch.go
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	if env.Type == proto.TypeHello {
		c.refuse(env.Session, proto.Errorf(proto.CodeBadMessage, "hello was already sent"))
		return
	}
	if c.role == proto.RoleAgent {
		h.agentMessage(c, env)
	} else {
		h.clientMessage(c, env)
	}
}

// connClosed forgets c once its read loop ended. An agent's sessions end
// with agent_lost; a client's session waits ClientGrace for a new client.
// Only c itself is removed: a newer connection that replaced it stays.
func (h *Hub) connClosed(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.conns, c)
	switch c.role {
	case proto.RoleAgent:
		if h.agents[c.id] == c {
			delete(h.agents, c.id)
			c.log.Info("agent offline")
			if h.opt.Presence != nil {
				h.opt.Presence(c.id, nil, false)
			}
		}
		h.abortConnFetchesLocked(c)
		h.agentGoneLocked(c)
	case proto.RoleClient:
		s := h.sessions[c.session]
		if s == nil || s.client != c {
			return
		}
		s.client = nil
		if s.state == stateReady && !h.closed {
			s.log.Info("client disconnected; waiting for it to rejoin", "grace", h.opt.ClientGrace)
			h.startGraceLocked(s)
		}
	}
}
