package proto

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
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
	{"welcome-relays", TypeWelcome, &Welcome{ID: "agent-1", Node: "node-a", Relays: []string{"turn:eu.example.net:3478?transport=udp", "turns:eu.example.net:5349?transport=tcp"}}, func() any { return &Welcome{} }},
	{"relay-rtt", TypeRelayRTT, &RelayRTT{Relays: []RelayProbe{
		{URL: "turn:eu.example.net:3478?transport=udp", RTTMS: 12.5},
		{URL: "turn:us.example.net:3478?transport=udp", Failed: true},
	}}, func() any { return &RelayRTT{} }},
}

func TestGoldenRelayMessages(t *testing.T) {
	for _, tc := range goldenRelayMessages {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Encode(tc.typ, "", tc.payload)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "golden", "agent", tc.name+".json")
			if *update {
				if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run with -update to create): %v", err)
			}
			if got := string(b) + "\n"; got != string(want) {
				t.Fatalf("wire shape changed:\n got %s\nwant %s", got, want)
			}
			env, err := Decode(want)
			if err != nil {
				t.Fatal(err)
			}
			fresh := tc.fresh()
			if err := DecodeData(env, fresh); err != nil {
				t.Fatal(err)
			}
			a, _ := json.Marshal(fresh)
			c, _ := json.Marshal(tc.payload)
			if string(a) != string(c) {
				t.Fatalf("round trip:\n got %s\nwant %s", a, c)
			}
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
	} {
		if err := tc.v.Validate(); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if err := (&Hello{Role: RoleAgent, Region: "eu-west.1_b"}).Validate(); err != nil {
		t.Errorf("good region refused: %v", err)
	}
}
