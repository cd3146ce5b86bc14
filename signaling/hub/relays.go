package hub

import "github.com/porthole-dev/porthole/proto"

// AgentPlace is what an agent told its hub about where it is: the region
// of its configuration (hello) and its latest measurements of the relays
// (relay.rtt). Options.ICEServers chooses a session's relays from it.
type AgentPlace struct {
	Region string
	Probes []proto.RelayProbe
}

// agentRelayRTTLocked keeps an agent's measurements of the relays for the
// sessions it is offered from now on.
func (h *Hub) agentRelayRTTLocked(c *conn, env *proto.Envelope) {
	var r proto.RelayRTT
	if err := proto.DecodeData(env, &r); err != nil {
		c.refuse(env.Session, err)
		return
	}
	c.place.Probes = r.Relays
	c.log.Debug("relay round trips measured", "relays", len(r.Relays))
}
