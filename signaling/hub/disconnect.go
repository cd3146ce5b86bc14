package hub

import (
	"github.com/gorilla/websocket"
	"github.com/porthole-dev/porthole/proto"
)

// DisconnectAgent drops every connection of agent at once (a revoked
// agent), including one that has not said hello yet; its sessions end with
// agent_lost. It reports whether there was one.
func (h *Hub) DisconnectAgent(agent, reason string) bool {
	h.mu.Lock()
	var drop []*conn
	for c := range h.conns {
		if c.role == proto.RoleAgent && c.id == agent {
			c.revoked = true
			drop = append(drop, c)
		}
	}
	h.mu.Unlock()
	for _, c := range drop {
		c.log.Info("agent disconnected", "reason", reason)
		c.stop(websocket.ClosePolicyViolation, reason)
		// Do not wait for the write pump: close the socket now, so nothing
		// more is read from or written to the agent.
		c.ws.Close()
	}
	return len(drop) > 0
}
