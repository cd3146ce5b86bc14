package peerconn

import (
	"fmt"
	"net"
	"slices"

	"github.com/pion/stun/v3"
	"github.com/pion/webrtc/v4"

	"github.com/porthole-dev/porthole/proto"
)

// RelayURL names the relay that a local relay candidate at addr (the
// relay's IP, Path.RelayAddr) came from: the TURN URLs among servers whose
// host is that address, or nil when none is (a relay named by host name,
// or one whose relayed address differs from the one it listens on). Pion
// does not record which server a candidate came from, so the address is
// what there is to go on.
func RelayURL(servers []proto.ICEServer, addr string) []string {
	ip := net.ParseIP(addr)
	if ip == nil {
		return nil
	}
	var out []string
	for _, s := range servers {
		for _, raw := range s.URLs {
			u, err := stun.ParseURI(raw)
			if err != nil || (u.Scheme != stun.SchemeTypeTURN && u.Scheme != stun.SchemeTypeTURNS) {
				continue
			}
			if h := net.ParseIP(u.Host); h != nil && h.Equal(ip) {
				out = append(out, raw)
			}
		}
	}
	return out
}

// SetICEServers replaces pc's ICE servers (signaling's ice.servers): pion
// gathers with them at the next ICE restart, while the current path
// carries on.
func SetICEServers(pc *webrtc.PeerConnection, in []proto.ICEServer) error {
	servers, err := ICEServers(in)
	if err != nil {
		return err
	}
	cfg := pc.GetConfiguration()
	cfg.ICEServers = servers
	if err := pc.SetConfiguration(cfg); err != nil {
		return fmt.Errorf("set ICE servers: %w", err)
	}
	return nil
}

// RelayHosts is the host:port of each TURN URL of servers, for logs and
// the user's "reconnecting through …" line.
func RelayHosts(servers []proto.ICEServer) []string {
	var out []string
	for _, s := range servers {
		for _, raw := range s.URLs {
			if u, err := stun.ParseURI(raw); err == nil && (u.Scheme == stun.SchemeTypeTURN || u.Scheme == stun.SchemeTypeTURNS) {
				h := net.JoinHostPort(u.Host, fmt.Sprint(u.Port))
				if !slices.Contains(out, h) {
					out = append(out, h)
				}
			}
		}
	}
	return out
}
