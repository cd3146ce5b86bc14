package turncred

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

var (
	eu1 = Relay{Region: "eu", URLs: []string{"turn:eu1:3478?transport=udp", "turns:eu1:5349?transport=tcp"}}
	eu2 = Relay{Region: "eu", URLs: []string{"turn:eu2:3478?transport=udp"}}
	us1 = Relay{Region: "us", URLs: []string{"turn:us1:3478?transport=udp"}}
	ap1 = Relay{Region: "ap", URLs: []string{"turn:ap1:3478?transport=udp"}}
)

func ok(url string, ms float64) proto.RelayProbe { return proto.RelayProbe{URL: url, RTTMS: ms} }
func failed(url string) proto.RelayProbe         { return proto.RelayProbe{URL: url, Failed: true} }

func regions(rs []Relay) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.URLs[0][5:strings.IndexByte(r.URLs[0][5:], ':')+5])
	}
	return strings.Join(out, ",")
}

func TestSelectNearestRelays(t *testing.T) {
	all := []Relay{us1, eu1, ap1, eu2}
	for _, tc := range []struct {
		name   string
		relays []Relay
		place  Place
		want   string
	}{
		{"nothing known: the first two in configuration order", all, Place{}, "us1,eu1"},
		{"the agent's region first, both relays of it", all, Place{Region: "eu"}, "eu1,eu2"},
		{"a region with one relay hands out only that one", all, Place{Region: "us"}, "us1"},
		{"a region without relays: configuration order", all, Place{Region: "sa"}, "us1,eu1"},
		{"measured round trips order the relays", all, Place{Probes: []proto.RelayProbe{
			ok("turn:us1:3478?transport=udp", 90), ok("turn:eu1:3478?transport=udp", 20),
			ok("turn:ap1:3478?transport=udp", 200), ok("turn:eu2:3478?transport=udp", 25),
		}}, "eu1,eu2"},
		{"a second relay much farther is left out", all, Place{Probes: []proto.RelayProbe{
			ok("turn:us1:3478?transport=udp", 90), ok("turn:eu1:3478?transport=udp", 20),
			ok("turn:ap1:3478?transport=udp", 200), ok("turn:eu2:3478?transport=udp", 60),
		}}, "eu1"},
		{"the fastest URL of a relay counts", all, Place{Probes: []proto.RelayProbe{
			ok("turn:us1:3478?transport=udp", 30), ok("turn:eu1:3478?transport=udp", 80), ok("turns:eu1:5349?transport=tcp", 10),
		}}, "eu1"},
		{"the region beats a faster relay elsewhere", all, Place{Region: "us", Probes: []proto.RelayProbe{
			ok("turn:us1:3478?transport=udp", 40), ok("turn:eu1:3478?transport=udp", 10),
		}}, "us1"},
		{"round trips order relays within the region", all, Place{Region: "eu", Probes: []proto.RelayProbe{
			ok("turn:eu1:3478?transport=udp", 14), ok("turn:eu2:3478?transport=udp", 10),
		}}, "eu2,eu1"},
		{"an unreachable relay of the region comes after a reachable one elsewhere", all, Place{Region: "us", Probes: []proto.RelayProbe{
			failed("turn:us1:3478?transport=udp"), ok("turn:eu1:3478?transport=udp", 90),
		}}, "eu1"},
		{"a relay with one URL failed and one answering is reachable", all, Place{Region: "eu", Probes: []proto.RelayProbe{
			failed("turn:eu1:3478?transport=udp"), ok("turns:eu1:5349?transport=tcp", 15), ok("turn:eu2:3478?transport=udp", 50),
		}}, "eu1"},
		{"a measured relay beats an unmeasured one", all, Place{Probes: []proto.RelayProbe{ok("turn:ap1:3478?transport=udp", 150)}}, "ap1"},
		{"every relay unreachable: still the nearest by region", all, Place{Region: "eu", Probes: []proto.RelayProbe{
			failed("turn:us1:3478?transport=udp"), failed("turn:eu1:3478?transport=udp"),
			failed("turn:ap1:3478?transport=udp"), failed("turn:eu2:3478?transport=udp"),
		}}, "eu1,eu2"},
		{"probes of unknown URLs are ignored", all, Place{Region: "us", Probes: []proto.RelayProbe{ok("turn:elsewhere:1", 1)}}, "us1"},
		{"one relay", []Relay{ap1}, Place{Region: "eu"}, "ap1"},
		{"no relays", nil, Place{Region: "eu"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := regions(Select(tc.relays, tc.place)); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestForPlaceHandsNearestRelaysWithCredentials(t *testing.T) {
	base, err := NewServers([]string{"stun:stun.example:3478"}, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := base.WithRelays([]Relay{us1, eu1, eu2})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Unix(1795458600, 0)
	got := s.ForPlace("abcdefgh12345678", exp, Place{Region: "eu"})
	if len(got) != 3 || got[0].URLs[0] != "stun:stun.example:3478" || got[0].Username != "" {
		t.Fatalf("ICE servers %+v", got)
	}
	user, pass := proto.MintTURN([]byte("secret"), "abcdefgh12345678", exp)
	for i, want := range []Relay{eu1, eu2} {
		g := got[i+1]
		if !slices.Equal(g.URLs, want.URLs) || g.Username != user || g.Credential != pass {
			t.Errorf("relay %d: %+v, want %v with minted credentials", i, g, want.URLs)
		}
	}
	if got := s.ProbeURLs(); len(got) != 4 || got[0] != us1.URLs[0] {
		t.Errorf("probe URLs %v", got)
	}
	// Without relays, ForPlace is ForSession.
	if got := base.ForPlace("abcdefgh12345678", exp, Place{Region: "eu"}); len(got) != 1 {
		t.Errorf("no relays configured, got %+v", got)
	}
}

func TestRelayConfigurationIsChecked(t *testing.T) {
	for _, bad := range []string{
		"turn:eu1:3478",                       // no region
		"eu=",                                 // no URL
		"EU=turn:eu1:3478",                    // bad region
		"eu=stun:eu1:3478",                    // not a relay
		"eu=turn:eu1:3478,http://x",           // bad URL
		"eu=turn:eu1:3478?transport=sctp",     // bad transport
		"eu west=turn:eu1:3478?transport=udp", // bad region
	} {
		if _, err := ParseRelay(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	r, err := ParseRelay("eu-west=turn:eu1:3478?transport=udp,turns:eu1:5349?transport=tcp")
	if err != nil || r.Region != "eu-west" || len(r.URLs) != 2 {
		t.Fatalf("parse: %+v %v", r, err)
	}
	base, _ := NewServers(nil, nil)
	if _, err := base.WithRelays([]Relay{r}); err == nil {
		t.Error("relays without a secret accepted")
	}
}

// TestForPlaceExceptLeavesTheLostRelayOut: a session that lost its relay
// gets the next nearest instead, with credentials, and the lost one again
// only when nothing else is configured.
func TestForPlaceExceptLeavesTheLostRelayOut(t *testing.T) {
	base, err := NewServers(nil, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Date(2026, 12, 7, 19, 0, 0, 0, time.UTC)
	relayURLs := func(ss []proto.ICEServer) string {
		var out []string
		for _, s := range ss {
			if s.Username == "" || s.Credential == "" {
				t.Errorf("relay without credentials: %+v", s)
			}
			out = append(out, s.URLs[0])
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		name   string
		relays []Relay
		failed []string
		want   string
	}{
		{"nothing failed: the region's relay", []Relay{eu1, us1}, nil, "turn:eu1:3478?transport=udp"},
		{"the region's relay failed: the next one", []Relay{eu1, us1}, []string{"turn:eu1:3478?transport=udp"}, "turn:us1:3478?transport=udp"},
		{"any URL of a relay names it", []Relay{eu1, us1}, []string{"turns:eu1:5349?transport=tcp"}, "turn:us1:3478?transport=udp"},
		{"an unknown URL changes nothing", []Relay{eu1, us1}, []string{"turn:elsewhere:3478"}, "turn:eu1:3478?transport=udp"},
		{"the only relay failed: it again", []Relay{eu1}, []string{"turn:eu1:3478?transport=udp"}, "turn:eu1:3478?transport=udp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := base.WithRelays(tc.relays)
			if err != nil {
				t.Fatal(err)
			}
			if got := relayURLs(s.ForPlaceExcept("s1", exp, Place{Region: "eu"}, tc.failed)); got != tc.want {
				t.Errorf("relays %q, want %q", got, tc.want)
			}
		})
	}
}
