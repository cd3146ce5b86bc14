package proto

import (
	"math"
	"regexp"
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
