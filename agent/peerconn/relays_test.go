package peerconn

import (
	"slices"
	"testing"

	"github.com/porthole-dev/porthole/proto"
)

// TestRelayURLNamesTheRelayOfACandidate: a relay candidate's address names
// the session's relay it came from (every URL of it), and nothing else.
func TestRelayURLNamesTheRelayOfACandidate(t *testing.T) {
	servers := []proto.ICEServer{
		{URLs: []string{"stun:203.0.113.30:3478"}},
		{URLs: []string{"turn:203.0.113.30:3478?transport=udp", "turns:203.0.113.30:443?transport=tcp"}, Username: "u", Credential: "p"},
		{URLs: []string{"turn:203.0.113.31:3478?transport=udp"}, Username: "u", Credential: "p"},
		{URLs: []string{"turn:relay.example:3478"}, Username: "u", Credential: "p"},
	}
	for _, tc := range []struct {
		addr string
		want []string
	}{
		{"203.0.113.30", []string{"turn:203.0.113.30:3478?transport=udp", "turns:203.0.113.30:443?transport=tcp"}},
		{"203.0.113.31", []string{"turn:203.0.113.31:3478?transport=udp"}},
		{"198.51.100.9", nil},  // not one of the session's relays
		{"relay.example", nil}, // candidates carry addresses, not names
		{"", nil},
	} {
		if got := RelayURL(servers, tc.addr); !slices.Equal(got, tc.want) {
			t.Errorf("RelayURL(%q) = %q, want %q", tc.addr, got, tc.want)
		}
	}
	if got, want := RelayHosts(servers), []string{"203.0.113.30:3478", "203.0.113.30:443", "203.0.113.31:3478", "relay.example:3478"}; !slices.Equal(got, want) {
		t.Errorf("RelayHosts = %q, want %q", got, want)
	}
}
