package proto

import (
	"math"
	"path/filepath"
	"testing"
	"time"
)

// goldenRelayMessages freezes the wire shape of relay selection: the
// agent's region in hello, the relays to measure in welcome, and the
// measurements.
var goldenRelayMessages = []struct {
	name    string
	typ     MsgType
	payload any
	fresh   func() any
}{
	{"hello-agent-region", TypeHello, &Hello{Role: RoleAgent, Software: "porthole-agent/dev", Region: "eu-west"}, func() any { return &Hello{} }},
	{"hello-agent-proxy", TypeHello, &Hello{Role: RoleAgent, Software: "porthole-agent/dev", Devices: []Device{{ID: "printer-1", HTTPPort: 80,
		Health: &DeviceHealth{Reachable: true, Checked: time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC), Signaling: "via proxy 192.168.1.1:3128"}}}}, func() any { return &Hello{} }},
	{"welcome-relays", TypeWelcome, &Welcome{ID: "agent-1", Node: "node-a", Relays: []string{"turn:eu.example.net:3478?transport=udp", "turns:eu.example.net:5349?transport=tcp"}}, func() any { return &Welcome{} }},
	{"relay-rtt", TypeRelayRTT, &RelayRTT{Relays: []RelayProbe{
		{URL: "turn:eu.example.net:3478?transport=udp", RTTMS: 12.5},
		{URL: "turn:us.example.net:3478?transport=udp", Failed: true},
	}}, func() any { return &RelayRTT{} }},
}

func TestGoldenRelayMessages(t *testing.T) {
	for _, tc := range goldenRelayMessages {
		t.Run(tc.name, func(t *testing.T) {
			// Under agent/: messages between agents and signaling only, which
			// the browser's tests (reading golden/*.json) do not speak.
			checkGolden(t, filepath.Join("testdata", "golden", "agent", tc.name+".json"), tc.typ, "", tc.payload, tc.fresh())
		})
	}
}

// goldenICERefresh freezes moving a session to another relay, which the
// browser speaks too (so under golden/ itself).
var goldenICERefresh = []struct {
	name    string
	typ     MsgType
	payload any
	fresh   func() any
}{
	{"ice-refresh", TypeICERefresh, &ICERefresh{Failed: []string{"turn:203.0.113.5:3478?transport=udp"}}, func() any { return &ICERefresh{} }},
	{"ice-servers", TypeICEServers, &ICEServersUpdate{
		ICEServers: []ICEServer{{URLs: []string{"turn:203.0.113.6:3478?transport=udp"}, Username: "1765130400:s_abcdefgh12345678", Credential: "c2VjcmV0"}},
		Relays:     []string{"turn:203.0.113.6:3478?transport=udp"},
	}, func() any { return &ICEServersUpdate{} }},
}

func TestGoldenICERefresh(t *testing.T) {
	for _, tc := range goldenICERefresh {
		t.Run(tc.name, func(t *testing.T) {
			checkGolden(t, filepath.Join("testdata", "golden", tc.name+".json"), tc.typ, "abcdefgh12345678", tc.payload, tc.fresh())
		})
	}
}

func TestRelayMessagesRefuseBadFields(t *testing.T) {
	many := make([]RelayProbe, MaxRelayURLs+1)
	for i := range many {
		many[i] = RelayProbe{URL: "turn:x", RTTMS: 1}
	}
	for _, tc := range []struct {
		name string
		v    Validator
	}{
		{"region with upper case", &Hello{Role: RoleAgent, Region: "EU"}},
		{"region with a space", &Hello{Role: RoleAgent, Region: "eu west"}},
		{"region too long", &Hello{Role: RoleAgent, Region: string(make([]byte, MaxRegion+1))}},
		{"negative rtt", &RelayRTT{Relays: []RelayProbe{{URL: "turn:x", RTTMS: -1}}}},
		{"NaN rtt", &RelayRTT{Relays: []RelayProbe{{URL: "turn:x", RTTMS: math.NaN()}}}},
		{"huge rtt", &RelayRTT{Relays: []RelayProbe{{URL: "turn:x", RTTMS: MaxRelayRTTMS + 1}}}},
		{"failed with rtt", &RelayRTT{Relays: []RelayProbe{{URL: "turn:x", RTTMS: 3, Failed: true}}}},
		{"empty url", &RelayRTT{Relays: []RelayProbe{{RTTMS: 3}}}},
		{"too many probes", &RelayRTT{Relays: many}},
		{"empty welcome relay", &Welcome{ID: "a", Relays: []string{""}}},
		{"failed relay not a TURN URL", &ICERefresh{Failed: []string{"stun:x:3478"}}},
		{"too many failed relays", &ICERefresh{Failed: []string{"turn:a", "turn:b", "turn:c", "turn:d", "turn:e"}}},
		{"ice.servers with a bad server", &ICEServersUpdate{ICEServers: []ICEServer{{URLs: []string{"http://x"}}}}},
		{"ice.servers with an empty relay", &ICEServersUpdate{Relays: []string{""}}},
	} {
		if err := tc.v.Validate(); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if err := (&Hello{Role: RoleAgent, Region: "eu-west.1_b"}).Validate(); err != nil {
		t.Errorf("good region refused: %v", err)
	}
}
