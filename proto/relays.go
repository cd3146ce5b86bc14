package proto

import (
	"math"
	"regexp"
	"time"
)

// Choosing TURN relays: signaling hands each session the relays nearest to
// its agent. An agent says where it is in two ways, both optional:
//
//   - Hello.Region, the region named in its configuration ("eu-west");
//   - relay.rtt, the round-trip times it measured, with a STUN binding
//     request, to the relay URLs listed in its welcome (Welcome.Relays).
//
// An agent sends relay.rtt after welcome, and again whenever it measures
// anew; each report replaces the previous one.

// TypeRelayRTT is agent → signaling: RelayRTT.
const TypeRelayRTT MsgType = "relay.rtt"

// Limits of relay selection.
const (
	MaxRelayURLs  = 32     // relay URLs in a welcome or a relay.rtt
	MaxRegion     = 64     // bytes in a region name
	MaxRelayRTTMS = 60_000 // a measured round trip, in milliseconds
)

// RelayRTT is the body of relay.rtt.
type RelayRTT struct {
	Relays []RelayProbe `json:"relays"`
}

// RelayProbe is one measurement of one relay URL: its round-trip time, or
// Failed when no answer came back in time.
type RelayProbe struct {
	URL    string  `json:"url"`
	RTTMS  float64 `json:"rttMs,omitempty"`
	Failed bool    `json:"failed,omitempty"`
}

var regionPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// ValidRegion reports whether s is acceptable as a region name: lower-case
// letters, digits, '.', '_' and '-', at most MaxRegion bytes.
func ValidRegion(s string) bool { return len(s) <= MaxRegion && regionPattern.MatchString(s) }

// Validate checks a relay.rtt report.
func (r *RelayRTT) Validate() error {
	if len(r.Relays) > MaxRelayURLs {
		return Errorf(CodeTooLarge, "relay.rtt: %d relays, limit %d", len(r.Relays), MaxRelayURLs)
	}
	for _, p := range r.Relays {
		switch {
		case p.URL == "" || len(p.URL) > MaxText:
			return Errorf(CodeBadMessage, "relay.rtt: bad relay URL")
		case math.IsNaN(p.RTTMS) || p.RTTMS < 0 || p.RTTMS > MaxRelayRTTMS:
			return Errorf(CodeBadMessage, "relay.rtt: round trip out of range")
		case p.Failed && p.RTTMS != 0:
			return Errorf(CodeBadMessage, "relay.rtt: a failed probe has no round trip")
		}
	}
	return nil
}

func validateRelayURLs(urls []string) error {
	if len(urls) > MaxRelayURLs {
		return Errorf(CodeTooLarge, "welcome: %d relays, limit %d", len(urls), MaxRelayURLs)
	}
	for _, u := range urls {
		if u == "" || len(u) > MaxText {
			return Errorf(CodeBadMessage, "welcome: bad relay URL")
		}
	}
	return nil
}

// Moving a session to another relay. A peer whose relayed path broke (ICE
// disconnected or failed on a relayed pair) asks signaling for the
// session's relays anew with ice.refresh, naming the relay it lost; the
// answer, ice.servers, goes to both peers of the session (the agent first,
// so it holds the new servers before the restart offer reaches it), and
// the asker restarts ICE with them.
//
//	client or agent → signaling   ice.refresh {failed: [relay URL…]}
//	signaling → agent and client  ice.servers {iceServers, relays}
//
// Signaling answers only on the connection that holds the session (the
// session's agent, or the client holding its token), so no one gets
// credentials for a session it does not hold, and only MaxICERefreshes
// times per session, at most one per ICERefreshInterval: a flapping path
// cannot turn into a storm.
const (
	TypeICERefresh MsgType = "ice.refresh"
	TypeICEServers MsgType = "ice.servers"
)

// Bounds of ice.refresh.
const (
	MaxICERefreshes = 20
	MaxFailedRelays = 4 // relay URLs named in one ice.refresh
)

// ICERefreshInterval is the least time between two ice.refresh answers of
// one session; a request sooner gets rate_limited (retry after it).
const ICERefreshInterval = time.Second

// ICERefresh is the body of ice.refresh: the TURN URLs of the relays the
// asker lost (the URL its relay candidate came from), to be left out of the
// answer when another relay is configured.
type ICERefresh struct {
	Failed []string `json:"failed,omitempty"`
}

// Validate checks an ice.refresh.
func (r *ICERefresh) Validate() error {
	if len(r.Failed) > MaxFailedRelays {
		return Errorf(CodeTooLarge, "ice.refresh: %d failed relays, limit %d", len(r.Failed), MaxFailedRelays)
	}
	for _, u := range r.Failed {
		if u == "" || len(u) > MaxText || !(hasPrefix(u, "turn:") || hasPrefix(u, "turns:")) {
			return Errorf(CodeBadMessage, "ice.refresh: a failed relay must be a turn: or turns: URL")
		}
	}
	return nil
}

// ICEServersUpdate is the body of ice.servers: the session's ICE servers
// now (credentials minted anew), and the relay URLs among them, nearest
// first, for logs and the user's "reconnecting through …" line.
type ICEServersUpdate struct {
	ICEServers []ICEServer `json:"iceServers"`
	Relays     []string    `json:"relays,omitempty"`
}

// Validate checks an ice.servers.
func (u *ICEServersUpdate) Validate() error {
	if len(u.Relays) > MaxRelayURLs {
		return Errorf(CodeTooLarge, "ice.servers: %d relays, limit %d", len(u.Relays), MaxRelayURLs)
	}
	for _, r := range u.Relays {
		if r == "" || len(r) > MaxText {
			return Errorf(CodeBadMessage, "ice.servers: bad relay URL")
		}
	}
	return validateICEServers(u.ICEServers)
}
