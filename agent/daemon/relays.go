package daemon

import (
	"context"

	"github.com/porthole-dev/porthole/agent/relayprobe"
	"github.com/porthole-dev/porthole/proto"
)

// measureRelays measures the round trip to the relays signaling listed in
// its welcome and reports it with relay.rtt, so that sessions get the
// nearest relays. It runs once per connection, a few seconds at most.
func (a *Agent) measureRelays(ctx context.Context, urls []string) {
	probes := relayprobe.Measure(ctx, urls, relayprobe.Options{})
	if ctx.Err() != nil || len(probes) == 0 {
		return
	}
	a.log.Info("relay round trips measured", "relays", len(probes), "nearest", nearest(probes))
	if err := a.send(proto.TypeRelayRTT, "", &proto.RelayRTT{Relays: probes}); err != nil {
		a.log.Debug("relay round trips not sent", "err", err)
	}
}

// nearest names the relay URL with the lowest round trip, for the log.
func nearest(probes []proto.RelayProbe) string {
	best := -1
	for i, p := range probes {
		if !p.Failed && (best < 0 || p.RTTMS < probes[best].RTTMS) {
			best = i
		}
	}
	if best < 0 {
		return "none reachable"
	}
	return probes[best].URL
}
