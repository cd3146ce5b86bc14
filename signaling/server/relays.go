package server

import (
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/hub"
	"github.com/porthole-dev/porthole/signaling/turncred"
)

// iceServers hands each session the STUN and TURN URLs of the
// configuration and the relays nearest to its agent.
func iceServers(ice *turncred.Servers) func(string, time.Time, hub.AgentPlace) []proto.ICEServer {
	return func(session string, expires time.Time, agent hub.AgentPlace) []proto.ICEServer {
		return ice.ForPlace(session, expires, turncred.Place{Region: agent.Region, Probes: agent.Probes})
	}
}
