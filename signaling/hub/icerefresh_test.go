package hub

import (
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// TestICERefresh: a client that lost its relay gets the session's relays
// anew, without the one it lost, and so does the agent (first); a second
// request within proto.ICERefreshInterval, or from a connection of another
// session, gets none; after MaxICERefreshes the session gets no more.
func TestICERefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		relayA := proto.ICEServer{URLs: []string{"turn:a:3478"}, Username: "u", Credential: "p"}
		relayB := proto.ICEServer{URLs: []string{"turn:b:3478"}, Username: "u", Credential: "p"}
		var asked [][]string
		// The hub's clock, moved by hand: fake time also jumps whenever
		// every goroutine waits on the pipes.
		var mu sync.Mutex
		clock := time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC)
		tick := func() { mu.Lock(); clock = clock.Add(proto.ICERefreshInterval); mu.Unlock() }
		b := newBubble(t, Options{
			Now:        func() time.Time { mu.Lock(); defer mu.Unlock(); return clock },
			ICEServers: func(string, time.Time, AgentPlace) []proto.ICEServer { return []proto.ICEServer{relayA} },
			RefreshICEServers: func(_ string, _ time.Time, _ AgentPlace, failed []string) []proto.ICEServer {
				asked = append(asked, failed)
				if slices.Contains(failed, "turn:a:3478") {
					return []proto.ICEServer{relayB}
				}
				return []proto.ICEServer{relayA}
			},
		})
		agent := helloAgent(t, b)
		info, client := openReady(t, b, agent)
		send(t, client, proto.TypeICERefresh, info.Session, &proto.ICERefresh{Failed: []string{"turn:a:3478"}})
		var toAgent, toClient proto.ICEServersUpdate
		recv(t, agent, proto.TypeICEServers, &toAgent)
		recv(t, client, proto.TypeICEServers, &toClient)
		for _, got := range []proto.ICEServersUpdate{toAgent, toClient} {
			if len(got.ICEServers) != 1 || got.ICEServers[0].URLs[0] != "turn:b:3478" || !slices.Equal(got.Relays, []string{"turn:b:3478"}) {
				t.Errorf("ice.servers %+v, want relay b only", got)
			}
		}
		// The agent noticed the same break a moment later: refused, it
		// has the answer already.
		send(t, agent, proto.TypeICERefresh, info.Session, &proto.ICERefresh{})
		var e proto.Error
		recv(t, agent, proto.TypeError, &e)
		if e.Code != proto.CodeRateLimited {
			t.Errorf("second refresh within the interval: %+v, want rate_limited", e)
		}
		// A connection asks only for its own session: the client's and
		// the agent's for a session they do not hold are refused.
		tick()
		for _, p := range []*peer{client, agent} {
			send(t, p, proto.TypeICERefresh, "otherotherother1", &proto.ICERefresh{})
			recv(t, p, proto.TypeError, &e)
			if e.Code != proto.CodeSessionNotFound {
				t.Errorf("refresh of another session: %+v, want session_not_found", e)
			}
		}
		// Bounded: MaxICERefreshes answers a session, then no more.
		for i := 1; i < proto.MaxICERefreshes; i++ {
			tick()
			send(t, agent, proto.TypeICERefresh, info.Session, &proto.ICERefresh{})
			recv(t, agent, proto.TypeICEServers, nil)
			recv(t, client, proto.TypeICEServers, nil)
		}
		tick()
		send(t, client, proto.TypeICERefresh, info.Session, &proto.ICERefresh{})
		recv(t, client, proto.TypeError, &e)
		if e.Code != proto.CodeRateLimited {
			t.Errorf("refresh %d: %+v, want rate_limited", proto.MaxICERefreshes+1, e)
		}
		if len(asked) != proto.MaxICERefreshes {
			t.Errorf("%d refreshes computed, want %d", len(asked), proto.MaxICERefreshes)
		}
	})
}
