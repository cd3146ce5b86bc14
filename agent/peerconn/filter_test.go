package peerconn_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/porthole-dev/porthole/agent/peerconn"
	"github.com/porthole-dev/porthole/internal/testenv"
)

// remoteCandidateIPs lists the addresses of the remote candidates pc knows.
func remoteCandidateIPs(pc *webrtc.PeerConnection) map[string]bool {
	ips := map[string]bool{}
	for _, s := range pc.GetStats() {
		if c, ok := s.(webrtc.ICECandidateStats); ok && c.Type == webrtc.StatsTypeRemoteCandidate {
			ips[c.IP] = true
		}
	}
	return ips
}

// answeringPeer returns a peer configured by cfg with a remote description
// applied, ready to take remote candidates.
func answeringPeer(t *testing.T, cfg peerconn.Config) *webrtc.PeerConnection {
	t.Helper()
	offerer, err := peerconn.NewPeerConnection(peerconn.Config{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = offerer.Close() })
	if _, err := offerer.CreateDataChannel("porthole", nil); err != nil {
		t.Fatal(err)
	}
	offer, err := offerer.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := offerer.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	pc, err := peerconn.NewPeerConnection(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	if err := pc.SetRemoteDescription(offer); err != nil {
		t.Fatal(err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	return pc
}

// TestPeerDropsRemoteCandidatesOnForbiddenAddresses checks SECURITY.md item
// 18 on a live peer: candidates that point at loopback, unspecified,
// link-local or multicast addresses never become remote candidates (so no
// connectivity check is ever sent there), while the same loopback candidate
// is taken when loopback is explicitly allowed (the control).
func TestPeerDropsRemoteCandidatesOnForbiddenAddresses(t *testing.T) {
	// Only addresses that stay on this host or its link, even if the filter
	// were broken and pion sent checks to them.
	forbidden := []string{
		"candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host",
		"candidate:2 1 udp 2130706431 0.0.0.0 50001 typ host",
		"candidate:3 1 udp 2130706431 224.0.0.1 50002 typ host",
		"candidate:4 1 udp 2130706431 169.254.10.10 50003 typ host",
		"candidate:5 1 udp 1694498815 127.0.0.2 50004 typ srflx raddr 0.0.0.0 rport 0",
	}
	mid := "0"
	add := func(pc *webrtc.PeerConnection, c string) {
		if err := pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: c, SDPMid: &mid}); err != nil {
			t.Fatalf("AddICECandidate(%q): %v", c, err)
		}
	}

	// Control: with loopback allowed, the loopback candidate is taken.
	control := answeringPeer(t, peerconn.Config{LoopbackOnly: true})
	add(control, forbidden[0])
	testenv.Eventually(t, 5*time.Second,
		"control: the loopback candidate to become a remote candidate (else the check below would prove nothing)",
		func() bool { return remoteCandidateIPs(control)["127.0.0.1"] })

	pc := answeringPeer(t, peerconn.Config{})
	for _, c := range forbidden {
		add(pc, c)
	}
	// Candidates are added asynchronously; the control showed how fast
	// that is, so a window many times longer is conclusive.
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		for ip := range remoteCandidateIPs(pc) {
			for _, c := range forbidden {
				if strings.Contains(c, " "+ip+" ") {
					t.Fatalf("forbidden remote candidate %s was accepted", ip)
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}
