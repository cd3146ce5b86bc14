// Package turncred hands out ICE servers with TURN credentials (minted by
// proto.MintTURN) in the TURN REST API style
// (draft-uberti-behave-turn-rest): the username is "<expiry>:<session>" with
// expiry in Unix seconds and the password is base64(HMAC-SHA1(secret,
// username)). This is exactly what porthole-turn verifies with pion/turn's
// LongTermTURNRESTAuthHandler, so signaling and the relay share nothing but
// the secret.
package turncred

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// URL is one checked ICE server URL.
type URL struct {
	Scheme    string // stun, turn or turns
	Host      string // host:port
	Transport string // "udp", "tcp" or "" (turn and turns only)
	raw       string
}

// String returns the URL as configured.
func (u URL) String() string { return u.raw }

// NeedsCredentials reports whether the URL is a TURN relay.
func (u URL) NeedsCredentials() bool { return u.Scheme == "turn" || u.Scheme == "turns" }

// ParseURL checks an ICE server URL of the forms stun:host:port,
// turn:host:port?transport=udp|tcp and turns:host:port?transport=tcp (RFC 7064,
// RFC 7065). The port may be omitted.
func ParseURL(raw string) (URL, error) {
	if len(raw) > proto.MaxText {
		return URL{}, fmt.Errorf("ICE URL too long")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return URL{}, fmt.Errorf("ICE URL %q: %w", raw, err)
	}
	out := URL{Scheme: u.Scheme, Host: u.Opaque, raw: raw}
	switch u.Scheme {
	case "stun", "turn", "turns":
	default:
		return URL{}, fmt.Errorf("ICE URL %q: scheme must be stun, turn or turns", raw)
	}
	if out.Host == "" || u.User != nil || u.Fragment != "" || strings.ContainsAny(out.Host, "/@") {
		return URL{}, fmt.Errorf("ICE URL %q: want %s:host[:port]", raw, u.Scheme)
	}
	host := out.Host
	if h, port, err := net.SplitHostPort(out.Host); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return URL{}, fmt.Errorf("ICE URL %q: bad port", raw)
		}
		host = h
	}
	if host == "" || strings.ContainsAny(host, "[]") {
		return URL{}, fmt.Errorf("ICE URL %q: bad host", raw)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return URL{}, fmt.Errorf("ICE URL %q: %w", raw, err)
	}
	for k, v := range q {
		if k != "transport" || len(v) != 1 || u.Scheme == "stun" {
			return URL{}, fmt.Errorf("ICE URL %q: only turn(s) URLs take ?transport=", raw)
		}
		switch v[0] {
		case "udp", "tcp":
		default:
			return URL{}, fmt.Errorf("ICE URL %q: transport must be udp or tcp", raw)
		}
		out.Transport = v[0]
	}
	return out, nil
}

// Servers is a checked list of ICE URLs that builds per-session
// proto.ICEServer lists.
type Servers struct {
	stun, turn []string
	secret     []byte
	relays     []Relay // chosen per session (relays.go)
}

// NewServers checks urls and returns the list. TURN URLs need a secret.
func NewServers(urls []string, secret []byte) (*Servers, error) {
	s := &Servers{secret: append([]byte(nil), secret...)}
	for _, raw := range urls {
		u, err := ParseURL(raw)
		if err != nil {
			return nil, err
		}
		if u.NeedsCredentials() {
			s.turn = append(s.turn, raw)
		} else {
			s.stun = append(s.stun, raw)
		}
	}
	if len(s.turn) > 0 && len(secret) == 0 {
		return nil, fmt.Errorf("TURN URLs configured without a TURN secret")
	}
	if len(s.stun) > proto.MaxICEServers || len(s.turn) > proto.MaxICEServers {
		return nil, fmt.Errorf("at most %d STUN and %d TURN URLs", proto.MaxICEServers, proto.MaxICEServers)
	}
	return s, nil
}

// ForSession returns the ICE servers for one session: the STUN URLs without
// credentials and the TURN URLs with credentials that expire with the
// session. It returns nil when no URLs are configured.
func (s *Servers) ForSession(session string, expires time.Time) []proto.ICEServer {
	if s == nil {
		return nil
	}
	var out []proto.ICEServer
	if len(s.stun) > 0 {
		out = append(out, proto.ICEServer{URLs: append([]string(nil), s.stun...)})
	}
	if len(s.turn) > 0 {
		user, pass := proto.MintTURN(s.secret, session, expires)
		out = append(out, proto.ICEServer{URLs: append([]string(nil), s.turn...), Username: user, Credential: pass})
	}
	return out
}
