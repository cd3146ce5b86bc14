package daemon

import (
	"slices"

	"github.com/porthole-dev/porthole/agent/peerconn"
	"github.com/porthole-dev/porthole/proto"
)

// reportPath tells signaling how the technician is connected.
func (a *Agent) reportPath(s *session, r pathReport) {
	if r.path != proto.PathDirect && r.path != proto.PathRelay {
		return
	}
	_ = a.send(proto.TypeSessionPath, s.id, &proto.SessionPath{Path: r.path, Local: candType(r.local), Remote: candType(r.remote),
		Relay: r.relay, Proxy: r.proxy, Site: r.site, RelayServer: r.relayServer})
}

// pathReport is the agent's account of a connected session's path.
type pathReport struct {
	path          string // proto.PathDirect or proto.PathRelay
	local, remote string // peerconn.Path descriptions
	relay         string // the agent's relay transport (udp, tcp, tls) when its end is a relay
	proxy         string // the site's proxy that relay connection went through
	site          string // a proto.Site… reason, when the agent can tell
	relayServer   string // which relay: its TURN URL, or its address
}

func newPathReport(p peerconn.Path, proxy string, localTypes, remoteTypes []string) pathReport {
	r := pathReport{path: proto.PathDirect, local: p.Local, remote: p.Remote}
	if p.Relayed {
		r.path = proto.PathRelay
	}
	if p.LocalType == "relay" {
		r.relay, r.proxy = p.Relay, proxy
		r.site = siteReason(localTypes, remoteTypes, p.Relay, proxy)
	}
	return r
}

// siteReason tells why the site needs the relay when the agent's end of
// the pair is a relay candidate. With a server-reflexive candidate UDP
// gets out; when the technician's side has one too, both reach the
// internet over UDP and the reason is a NAT on the way, which the
// technician's side can name from both sides' candidates (symmetric at
// the site, at the technician's, or both). A technician who offers only
// relay candidates forced the relay: no reason of the site's. Without a
// server-reflexive candidate, the way the agent reached the relay says
// what the site allows.
func siteReason(localTypes, remoteTypes []string, relay, proxy string) string {
	if slices.Contains(localTypes, "srflx") {
		if relay == "udp" && slices.Contains(remoteTypes, "srflx") {
			return proto.SiteNoDirect
		}
		return ""
	}
	switch {
	case proxy != "":
		return proto.SiteProxyOnly
	case relay == "tls":
		return proto.SiteTLSOnly
	case relay == "tcp":
		return proto.SiteUDPBlocked
	}
	return ""
}
