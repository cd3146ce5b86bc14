package hub

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// TestAgentPlaceReachesICEServers: the agent is asked to measure the
// relays in its welcome, and every session is offered ICE servers chosen
// for the region of its hello and the round trips of its latest relay.rtt,
// on both the agent's and the client's side.
func TestAgentPlaceReachesICEServers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var places []AgentPlace
		b := newBubble(t, Options{
			Relays: []string{"turn:eu:3478", "turn:us:3478"},
			ICEServers: func(_ string, _ time.Time, p AgentPlace) []proto.ICEServer {
				places = append(places, p) // under the hub's lock
				return []proto.ICEServer{{URLs: []string{"turn:" + p.Region + ":3478"}}}
			},
		})
		agent := b.dial("/agent")
		send(t, agent, proto.TypeHello, "", &proto.Hello{Role: proto.RoleAgent, Region: "eu", Devices: []proto.Device{{ID: "printer-1"}}})
		var w proto.Welcome
		recv(t, agent, proto.TypeWelcome, &w)
		if !slices.Equal(w.Relays, []string{"turn:eu:3478", "turn:us:3478"}) {
			t.Fatalf("welcome relays %v", w.Relays)
		}
		probes := []proto.RelayProbe{{URL: "turn:eu:3478", RTTMS: 12}, {URL: "turn:us:3478", Failed: true}}
		send(t, agent, proto.TypeRelayRTT, "", &proto.RelayRTT{Relays: probes})
		synctest.Wait()

		res := make(chan *proto.SessionInfo, 1)
		go func() {
			info, err := b.hub.OpenSession(t.Context(), "alice", "printer-1")
			if err != nil {
				t.Error(err)
			}
			res <- info
		}()
		var open proto.SessionOpen
		env := recv(t, agent, proto.TypeSessionOpen, &open)
		if len(open.ICEServers) != 1 || open.ICEServers[0].URLs[0] != "turn:eu:3478" {
			t.Fatalf("agent's ICE servers %+v", open.ICEServers)
		}
		send(t, agent, proto.TypeSessionReady, env.Session, struct{}{})
		info := <-res
		client := b.dial("/client?session=" + info.Session)
		send(t, client, proto.TypeHello, "", &proto.Hello{Role: proto.RoleClient})
		recv(t, client, proto.TypeWelcome, nil)
		var ready proto.SessionReady
		recv(t, client, proto.TypeSessionReady, &ready)
		if len(ready.ICEServers) != 1 || ready.ICEServers[0].URLs[0] != "turn:eu:3478" {
			t.Fatalf("client's ICE servers %+v", ready.ICEServers)
		}
		if len(places) != 2 {
			t.Fatalf("ICEServers called %d times", len(places))
		}
		for _, p := range places {
			if p.Region != "eu" || !slices.Equal(p.Probes, probes) {
				t.Errorf("place %+v", p)
			}
		}
	})
}

// TestClientsCannotReportRelayRTT: relay.rtt is the agent's to send.
func TestClientsCannotReportRelayRTT(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, Options{})
		agent := b.dial("/agent")
		send(t, agent, proto.TypeHello, "", &proto.Hello{Role: proto.RoleAgent, Devices: []proto.Device{{ID: "printer-1"}}})
		recv(t, agent, proto.TypeWelcome, nil)
		res := make(chan *proto.SessionInfo, 1)
		go func() {
			info, _ := b.hub.OpenSession(t.Context(), "alice", "printer-1")
			res <- info
		}()
		env := recv(t, agent, proto.TypeSessionOpen, nil)
		send(t, agent, proto.TypeSessionReady, env.Session, struct{}{})
		info := <-res
		client := b.dial("/client?session=" + info.Session)
		send(t, client, proto.TypeHello, "", &proto.Hello{Role: proto.RoleClient})
		recv(t, client, proto.TypeWelcome, nil)
		recv(t, client, proto.TypeSessionReady, nil)
		send(t, client, proto.TypeRelayRTT, "", &proto.RelayRTT{})
		var e proto.Error
		recv(t, client, proto.TypeError, &e)
		if e.Code != proto.CodeBadMessage {
			t.Errorf("code %s", e.Code)
		}
	})
}
