package server

import (
	"net/http"
	"slices"
	"testing"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/turncred"
)

// TestSessionsGetTheRelaysNearestTheirAgent: signaling lists every relay
// URL in the agent's welcome, and hands a session the relay of its agent's
// region, then, once the agent reported round trips, the nearest measured.
func TestSessionsGetTheRelaysNearestTheirAgent(t *testing.T) {
	eu := turncred.Relay{Region: "eu", URLs: []string{"turn:10.0.0.1:3478?transport=udp"}}
	us := turncred.Relay{Region: "us", URLs: []string{"turn:10.0.0.2:3478?transport=udp", "turn:10.0.0.2:3478?transport=tcp"}}
	e := newEnv(t, func(c *Config) { c.TURNRelays = []turncred.Relay{eu, us} })
	relays := func(servers []proto.ICEServer) [][]string {
		var out [][]string
		for _, s := range servers {
			if s.URLs[0] == eu.URLs[0] || s.URLs[0] == us.URLs[0] {
				if s.Username == "" || s.Credential == "" {
					t.Errorf("relay %v without credentials", s.URLs)
				}
				out = append(out, s.URLs)
			}
		}
		return out
	}
	open := func(agent *peer) [][]string {
		t.Helper()
		done := make(chan *http.Response, 1)
		go func() {
			done <- e.request(http.MethodPost, proto.PathSessions, techToken, &proto.CreateSession{Device: "printer-1"}, nil, nil)
		}()
		var o proto.SessionOpen
		env := agent.nextData(proto.TypeSessionOpen, &o)
		agent.send(proto.TypeSessionReady, env.Session, struct{}{})
		if resp := <-done; resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST /v1/sessions = %d", resp.StatusCode)
		}
		return relays(o.ICEServers)
	}

	p, resp, err := e.dial(proto.PathAgentSocket, dialOpts{header: bearerHeader(agentKey)})
	if err != nil {
		t.Fatalf("agent dial: %v (%v)", err, status(resp))
	}
	p.send(proto.TypeHello, "", &proto.Hello{Role: proto.RoleAgent, Region: "us", Devices: []proto.Device{{ID: "printer-1", HTTPPort: 80}}})
	var w proto.Welcome
	p.nextData(proto.TypeWelcome, &w)
	if want := []string{eu.URLs[0], us.URLs[0], us.URLs[1]}; !slices.Equal(w.Relays, want) {
		t.Fatalf("welcome relays %v, want %v", w.Relays, want)
	}
	if got := open(p); len(got) != 1 || !slices.Equal(got[0], us.URLs) {
		t.Fatalf("region us: relays %v", got)
	}

	// An agent without a region is placed by its measurements.
	p2, resp, err := e.dial(proto.PathAgentSocket, dialOpts{header: bearerHeader(agentKey2)})
	if err != nil {
		t.Fatalf("agent dial: %v (%v)", err, status(resp))
	}
	p2.send(proto.TypeHello, "", &proto.Hello{Role: proto.RoleAgent, Devices: []proto.Device{{ID: "printer-2", HTTPPort: 80}}})
	p2.nextData(proto.TypeWelcome, &w)
	p2.send(proto.TypeRelayRTT, "", &proto.RelayRTT{Relays: []proto.RelayProbe{{URL: eu.URLs[0], RTTMS: 8}, {URL: us.URLs[0], RTTMS: 95}}})
	e.waitLog("relay round trips measured")
	done := make(chan *http.Response, 1)
	go func() {
		done <- e.request(http.MethodPost, proto.PathSessions, techToken, &proto.CreateSession{Device: "printer-2"}, nil, nil)
	}()
	var o proto.SessionOpen
	env := p2.nextData(proto.TypeSessionOpen, &o)
	p2.send(proto.TypeSessionReady, env.Session, struct{}{})
	<-done
	if got := relays(o.ICEServers); len(got) != 1 || !slices.Equal(got[0], eu.URLs) {
		t.Fatalf("measured: relays %v", got)
	}
}

func TestRelaysNeedATURNSecret(t *testing.T) {
	_, err := New(Config{Store: nil, TURNRelays: []turncred.Relay{{Region: "eu", URLs: []string{"turn:a:3478"}}}})
	if err == nil {
		t.Fatal("accepted")
	}
}
