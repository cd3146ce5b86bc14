package peerconn_test

import (
	"net"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"github.com/porthole-dev/porthole/agent/peerconn"
	"github.com/porthole-dev/porthole/agent/tunnel"
	"github.com/porthole-dev/porthole/agent/tunnel/tunneltest"
	"github.com/porthole-dev/porthole/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestAllowRemoteIP(t *testing.T) {
	tests := []struct {
		ip            string
		allow         bool // with loopback refused
		allowLoopback bool // with loopback allowed (tests, demo)
	}{
		{"127.0.0.1", false, true},
		{"127.8.9.10", false, true},
		{"::1", false, true},
		{"::ffff:127.0.0.1", false, true},
		{"0.0.0.0", false, false},
		{"0.1.2.3", false, false},
		{"::", false, false},
		{"::ffff:0.0.0.0", false, false},
		{"fe80::1", false, false},
		{"169.254.169.254", false, false},
		{"169.254.1.1", false, false},
		{"::ffff:169.254.169.254", false, false},
		{"224.0.0.1", false, false},
		{"239.255.255.250", false, false},
		{"ff02::1", false, false},
		{"ff05::2", false, false},
		{"255.255.255.255", false, false},
		{"192.168.1.20", true, true},
		{"10.0.0.5", true, true},
		{"172.16.4.4", true, true},
		{"fd00::1", true, true},
		{"100.64.0.1", true, true},
		{"8.8.8.8", true, true},
		{"203.0.113.7", true, true},
		{"2001:db8::1", true, true},
		{"::ffff:8.8.8.8", true, true},
	}
	for _, tc := range tests {
		ip := net.ParseIP(tc.ip)
		if ip == nil {
			t.Fatalf("bad test IP %s", tc.ip)
		}
		if got := peerconn.AllowRemoteIP(ip, false); got != tc.allow {
			t.Errorf("AllowRemoteIP(%s, false) = %v, want %v", tc.ip, got, tc.allow)
		}
		if got := peerconn.AllowRemoteIP(ip, true); got != tc.allowLoopback {
			t.Errorf("AllowRemoteIP(%s, true) = %v, want %v", tc.ip, got, tc.allowLoopback)
		}
		if v4 := ip.To4(); v4 != nil {
			if peerconn.AllowRemoteIP(v4, false) != peerconn.AllowRemoteIP(ip.To16(), false) {
				t.Errorf("%s: 4-byte and 16-byte forms disagree", tc.ip)
			}
		}
	}
	if peerconn.AllowRemoteIP(nil, true) || peerconn.AllowRemoteIP(net.IP{1, 2, 3}, true) {
		t.Error("malformed IPs must be refused")
	}
}

func TestICEServers(t *testing.T) {
	got, err := peerconn.ICEServers([]proto.ICEServer{
		{URLs: []string{"stun:turn.example:3478"}},
		{URLs: []string{"turn:turn.example:3478?transport=udp", "turns:turn.example:5349"}, Username: "1700000000:s1", Credential: "secret"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].Username != "1700000000:s1" || got[1].Credential != "secret" ||
		got[1].CredentialType != webrtc.ICECredentialTypePassword || len(got[1].URLs) != 2 {
		t.Fatalf("converted: %+v", got)
	}
	for _, bad := range [][]proto.ICEServer{
		{{URLs: nil}},
		{{URLs: []string{"http://evil.example/"}}},
		make([]proto.ICEServer, proto.MaxICEServers+1),
	} {
		if _, err := peerconn.ICEServers(bad); err == nil {
			t.Errorf("ICEServers(%+v) accepted", bad)
		}
	}
}

func TestNewPeerConnectionRelayOnly(t *testing.T) {
	pc, err := peerconn.NewPeerConnection(peerconn.Config{
		RelayOnly:  true,
		ICEServers: []proto.ICEServer{{URLs: []string{"turn:127.0.0.1:3478"}, Username: "u", Credential: "p"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if got := pc.GetConfiguration().ICETransportPolicy; got != webrtc.ICETransportPolicyRelay {
		t.Fatalf("policy %v, want relay", got)
	}
}

func TestPathInfoDirectLoopback(t *testing.T) {
	p := tunneltest.NewPair(t, &tunnel.Server{})
	for _, pc := range []*webrtc.PeerConnection{p.ClientPC, p.AgentPC} {
		path, err := peerconn.PathInfo(pc)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("path: %+v", path)
		if path.Relayed {
			t.Error("loopback path reported as relayed")
		}
		if !strings.HasPrefix(path.Local, "host udp 127.0.0.1:") || !strings.Contains(path.Remote, "127.0.0.1:") {
			t.Errorf("path %+v", path)
		}
	}
	// The offer advertises the small max message size.
	if sdp := p.ClientPC.LocalDescription().SDP; !strings.Contains(sdp, "a=max-message-size:32769") {
		t.Errorf("offer does not advertise max-message-size %d", proto.MaxFrame)
	}
}

func TestPathInfoBeforeConnect(t *testing.T) {
	pc, err := peerconn.NewPeerConnection(peerconn.Config{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := peerconn.PathInfo(pc); err == nil {
		t.Fatal("PathInfo before connecting returned no error")
	}
}
