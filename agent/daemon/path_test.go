package daemon

import (
	"testing"

	"github.com/porthole-dev/porthole/agent/peerconn"
	"github.com/porthole-dev/porthole/proto"
)

// TestPathReportNamesEachRung: the agent's report for each rung of the
// ladder — direct, TURN/UDP, TURN/TCP, TURN/TLS, TURN through the site's
// proxy — with the reason the site needed the relay.
func TestPathReportNamesEachRung(t *testing.T) {
	relay := func(transport string) peerconn.Path {
		return peerconn.Path{Relayed: true, LocalType: "relay", Relay: transport,
			Local: "relay udp 203.0.113.30:40000 related 192.168.1.10:51000", Remote: "prflx udp 198.51.100.20:5000"}
	}
	for _, tc := range []struct {
		name       string
		path       peerconn.Path
		proxy      string
		localTypes []string
		remote     []string // the technician's candidate types (srflx and relay if nil)
		want       proto.SessionPath
	}{
		{"direct", peerconn.Path{LocalType: "srflx", Local: "srflx udp 203.0.113.20:4000", Remote: "srflx udp 198.51.100.20:5000"}, "",
			[]string{"host", "srflx"}, nil, proto.SessionPath{Path: "direct", Local: "srflx", Remote: "srflx"}},
		{"TURN/UDP: the NATs let no direct path through", relay("udp"), "", []string{"host", "relay", "srflx"}, nil,
			proto.SessionPath{Path: "relay", Local: "relay", Remote: "prflx", Relay: "udp", Site: proto.SiteNoDirect}},
		{"TURN/UDP forced by the technician (relay candidates only)", relay("udp"), "", []string{"host", "relay", "srflx"}, []string{"relay"},
			proto.SessionPath{Path: "relay", Local: "relay", Remote: "prflx", Relay: "udp"}},
		{"TURN/UDP, UDP blocked on the technician's side", relay("udp"), "", []string{"host", "relay", "srflx"}, []string{"host", "relay"},
			proto.SessionPath{Path: "relay", Local: "relay", Remote: "prflx", Relay: "udp"}},
		{"TURN/TCP: UDP blocked", relay("tcp"), "", []string{"host", "relay"}, nil,
			proto.SessionPath{Path: "relay", Local: "relay", Remote: "prflx", Relay: "tcp", Site: proto.SiteUDPBlocked}},
		{"TURN/TLS: only TLS gets out", relay("tls"), "", []string{"host", "relay"}, nil,
			proto.SessionPath{Path: "relay", Local: "relay", Remote: "prflx", Relay: "tls", Site: proto.SiteTLSOnly}},
		{"TURN/TLS through the proxy", relay("tls"), "192.168.1.1:3128", []string{"host", "relay"}, nil,
			proto.SessionPath{Path: "relay", Local: "relay", Remote: "prflx", Relay: "tls", Proxy: "192.168.1.1:3128", Site: proto.SiteProxyOnly}},
		{"the technician's end relayed only", peerconn.Path{Relayed: true, LocalType: "host", Local: "host udp 192.168.1.10:4000", Remote: "relay udp 203.0.113.30:41000"}, "",
			[]string{"host"}, nil, proto.SessionPath{Path: "relay", Local: "host", Remote: "relay"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			remote := tc.remote
			if remote == nil {
				remote = []string{"host", "prflx", "relay", "srflx"}
			}
			r := newPathReport(tc.path, tc.proxy, tc.localTypes, remote)
			got := proto.SessionPath{Path: r.path, Local: candType(r.local), Remote: candType(r.remote), Relay: r.relay, Proxy: r.proxy, Site: r.site}
			if got != tc.want {
				t.Errorf("report %+v, want %+v", got, tc.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("the report does not validate: %v", err)
			}
		})
	}
}
