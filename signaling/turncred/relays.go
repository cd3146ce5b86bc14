package turncred

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// MaxSessionRelays is how many relays one session is handed at most: the
// nearest, and a second one as near as it (see Select).
const MaxSessionRelays = 2

// Relay is one TURN relay (one porthole-turn) in a region, reachable at
// one or more URLs (turn: over UDP and TCP, turns:).
type Relay struct {
	Region string
	URLs   []string
}

// ParseRelay parses "region=URL[,URL…]", the form of porthole-signaling's
// --turn-relay flag. Every URL must be a turn: or turns: URL.
func ParseRelay(s string) (Relay, error) {
	region, urls, ok := strings.Cut(s, "=")
	if !ok || urls == "" {
		return Relay{}, fmt.Errorf("TURN relay %q: want region=turn:host:port[,URL…]", s)
	}
	r := Relay{Region: region, URLs: strings.Split(urls, ",")}
	return r, r.check()
}

func (r Relay) check() error {
	if !proto.ValidRegion(r.Region) {
		return fmt.Errorf("TURN relay region %q: want lower-case letters, digits, '.', '_' or '-'", r.Region)
	}
	if len(r.URLs) == 0 || len(r.URLs) > proto.MaxICEServers {
		return fmt.Errorf("TURN relay in %s: 1 to %d URLs", r.Region, proto.MaxICEServers)
	}
	for _, raw := range r.URLs {
		u, err := ParseURL(raw)
		if err != nil {
			return err
		}
		if !u.NeedsCredentials() {
			return fmt.Errorf("TURN relay in %s: %q is not a turn: or turns: URL", r.Region, raw)
		}
	}
	return nil
}

// Place is what signaling knows of where an agent is: the region of its
// configuration and the round trips it measured to relay URLs. The zero
// Place knows nothing, and every relay is as near as any other.
type Place struct {
	Region string
	Probes []proto.RelayProbe
}

// nearness ranks one relay for one place. Lower is nearer, compared field
// by field in this order.
type nearness struct {
	unreachable bool          // every probe of it failed
	elsewhere   bool          // the place has a region and the relay is in another
	unmeasured  bool          // no probe of it succeeded
	rtt         time.Duration // its fastest probe
	index       int           // configuration order breaks ties
}

func (r Relay) nearness(p Place, index int, rtts map[string]proto.RelayProbe) nearness {
	n := nearness{elsewhere: p.Region != "" && r.Region != p.Region, unmeasured: true, index: index}
	failed := 0
	for _, u := range r.URLs {
		pr, ok := rtts[u]
		switch {
		case !ok:
		case pr.Failed:
			failed++
		default:
			rtt := time.Duration(pr.RTTMS * float64(time.Millisecond))
			if n.unmeasured || rtt < n.rtt {
				n.rtt = rtt
			}
			n.unmeasured = false
		}
	}
	n.unreachable = failed > 0 && n.unmeasured
	return n
}

func (a nearness) compare(b nearness) int {
	return cmp.Or(
		cmpBool(a.unreachable, b.unreachable),
		cmpBool(a.elsewhere, b.elsewhere),
		cmpBool(a.unmeasured, b.unmeasured),
		cmp.Compare(a.rtt, b.rtt),
		cmp.Compare(a.index, b.index),
	)
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// asNear reports whether a relay ranked b is as near as the nearest, a: in
// the same reachability and region class, and, when both were measured,
// no more than half again as far (plus 5 ms of jitter). Peers built on
// pion give candidates of every relay the same priority, so a second
// relay handed out must be one they may use as well as the first.
func (a nearness) asNear(b nearness) bool {
	if a.unreachable != b.unreachable || a.elsewhere != b.elsewhere || a.unmeasured != b.unmeasured {
		return false
	}
	return a.unmeasured || b.rtt <= a.rtt+a.rtt/2+5*time.Millisecond
}

// Select returns the relays nearest to place, nearest first, at most
// MaxSessionRelays: the nearest, and the next only if it is as near (see
// asNear), so a session never leans on a far relay while a near one is up.
//
// Nearness is decided in this order: a relay the agent could not reach at
// all comes last; a relay in the agent's configured region beats one
// elsewhere (an operator's region is a decision, a measurement a hint); a
// measured relay beats an unmeasured one; then the lower round trip; then
// configuration order.
func Select(relays []Relay, place Place) []Relay {
	if len(relays) == 0 {
		return nil
	}
	rtts := make(map[string]proto.RelayProbe, len(place.Probes))
	for _, p := range place.Probes {
		rtts[p.URL] = p
	}
	type ranked struct {
		r Relay
		n nearness
	}
	all := make([]ranked, len(relays))
	for i, r := range relays {
		all[i] = ranked{r, r.nearness(place, i, rtts)}
	}
	slices.SortFunc(all, func(a, b ranked) int { return a.n.compare(b.n) })
	out := []Relay{all[0].r}
	for _, c := range all[1:] {
		if len(out) == MaxSessionRelays || !all[0].n.asNear(c.n) {
			break
		}
		out = append(out, c.r)
	}
	return out
}

// WithRelays returns a copy of s that also hands out relays, chosen per
// session by ForPlace. Relays need a TURN secret.
func (s *Servers) WithRelays(relays []Relay) (*Servers, error) {
	out := &Servers{}
	if s != nil {
		*out = *s
	}
	for _, r := range relays {
		if err := r.check(); err != nil {
			return nil, err
		}
	}
	if len(relays) > 0 && len(out.secret) == 0 {
		return nil, fmt.Errorf("TURN relays configured without a TURN secret")
	}
	if n := len(out.probeURLs(relays)); n > proto.MaxRelayURLs {
		return nil, fmt.Errorf("%d relay URLs, at most %d", n, proto.MaxRelayURLs)
	}
	out.relays = slices.Clone(relays)
	return out, nil
}

// ProbeURLs lists the URLs of every relay, once each, for agents to
// measure (proto.Welcome.Relays).
func (s *Servers) ProbeURLs() []string {
	if s == nil {
		return nil
	}
	return s.probeURLs(s.relays)
}

func (s *Servers) probeURLs(relays []Relay) []string {
	var out []string
	for _, r := range relays {
		for _, u := range r.URLs {
			if !slices.Contains(out, u) {
				out = append(out, u)
			}
		}
	}
	return out
}

// ForPlace is ForSession plus the relays nearest to place (Select), nearest
// first, each as its own ICE server with the session's credentials.
func (s *Servers) ForPlace(session string, expires time.Time, place Place) []proto.ICEServer {
	out := s.ForSession(session, expires)
	if s == nil || len(s.relays) == 0 {
		return out
	}
	user, pass := proto.MintTURN(s.secret, session, expires)
	for _, r := range Select(s.relays, place) {
		out = append(out, proto.ICEServer{URLs: slices.Clone(r.URLs), Username: user, Credential: pass})
	}
	return out
}

// ForPlaceExcept is ForPlace for a session that lost a relay: the relays
// with a URL in failed are left out of the choice — unless no other relay
// is configured, when the choice is ForPlace's (a relay that restarts in
// place is better than none). Signaling keeps no health of its own for the
// relays beyond the agents' probes, so the peers' word is what it goes on;
// it affects only their own session.
func (s *Servers) ForPlaceExcept(session string, expires time.Time, place Place, failed []string) []proto.ICEServer {
	if s == nil || len(s.relays) == 0 || len(failed) == 0 {
		return s.ForPlace(session, expires, place)
	}
	var rest []Relay
	for _, r := range s.relays {
		if !slices.ContainsFunc(r.URLs, func(u string) bool { return slices.Contains(failed, u) }) {
			rest = append(rest, r)
		}
	}
	if len(rest) == 0 {
		return s.ForPlace(session, expires, place)
	}
	out := s.ForSession(session, expires)
	user, pass := proto.MintTURN(s.secret, session, expires)
	for _, r := range Select(rest, place) {
		out = append(out, proto.ICEServer{URLs: slices.Clone(r.URLs), Username: user, Credential: pass})
	}
	return out
}
