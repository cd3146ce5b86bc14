// Package peerconn builds the pion/webrtc API and the peer connections that
// every Porthole Go peer uses — the on-site agent and the technician's CLI
// alike — so that the settings that matter for security and speed live in
// one place (agent/negotiate then runs a connection's offer/answer over
// signaling):
//
//   - data channels are detached (io.ReadWriteCloser per channel, read with a
//     buffer of proto.MaxFrame bytes) and advertise a small SCTP max message
//     size, proto.MaxFrame;
//   - no media: no tracks, no audio codec; one video codec only so that the
//     browser's receive-only video section (for Chromium's socket buffer)
//     is answered without anything ever being sent on it;
//   - an 8 MiB SCTP receive buffer (the default 1 MiB caps throughput at
//     window/RTT);
//   - remote candidates pointing at loopback, unspecified, link-local
//     (cloud metadata included) or multicast addresses are dropped
//     (AllowRemoteIP), remote TCP passive candidates are never dialed, and
//     remote mDNS names are never resolved (browsers' mDNS host candidates
//     still connect: pion learns them as peer-reflexive);
//   - relay-only mode uses the relay ICE policy without pion's default 2 s
//     relay acceptance wait.
//
// Typical use:
//
//	pc, err := peerconn.NewPeerConnection(peerconn.Config{ICEServers: ready.ICEServers, Logger: log})
package peerconn

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"

	"github.com/porthole-dev/porthole/agent/egress"
	"github.com/porthole-dev/porthole/proto"
)

// SCTPReceiveBuffer is the SCTP receive window each peer advertises.
const SCTPReceiveBuffer = 8 << 20

// SCTPCwndCAStep is the SCTP congestion window growth per round trip in
// congestion avoidance (pion's default: one MTU).
const SCTPCwndCAStep = 64 << 10

// ICE acceptance waits: how long the controlling peer lets checks run
// before it may nominate a pair of each type (host pairs: at once).
const (
	SrflxAcceptanceWait = 100 * time.Millisecond
	PrflxAcceptanceWait = 200 * time.Millisecond
	RelayAcceptanceWait = 500 * time.Millisecond
)

// Config configures a peer. The zero value is a safe default: STUN/TURN
// servers none, all candidate types, loopback refused.
type Config struct {
	// ICEServers as handed out by signaling (STUN and TURN with
	// short-lived credentials).
	ICEServers []proto.ICEServer
	// RelayOnly restricts ICE to relayed candidates (ICE transport policy
	// "relay"), for sites where direct paths must not be tried.
	RelayOnly bool
	// LoopbackOnly is for tests and the demo: gather only on interface
	// "lo", include loopback candidates, accept loopback remote candidates,
	// no mDNS, UDP over IPv4 only.
	LoopbackOnly bool
	// Net replaces pion's network stack (pion/transport vnet in tests).
	// Nil means the operating system's.
	Net transport.Net
	// Logger receives pion's log lines (trace and debug at Debug).
	// Nil discards them.
	Logger *slog.Logger
	// Egress, if set, carries TURN over TCP and TLS (pion's ICE proxy
	// dialer): directly, or tunnelled with CONNECT through the site's HTTP
	// proxy, where that is the only way out. Nil leaves those connections
	// to pion (direct only).
	Egress *egress.Egress
	// RelayRoots verify the certificates of TURN-over-TLS relays dialled
	// through Egress; nil means the system's roots.
	RelayRoots *x509.CertPool
	// Dials, if set, records which relay connections went through a
	// proxy (DialLog.Proxy), for path reports.
	Dials *DialLog
}

// NewAPI returns a pion API configured as described in the package comment.
func NewAPI(cfg Config) (*webrtc.API, error) {
	var se webrtc.SettingEngine
	se.DetachDataChannels()
	se.SetSCTPMaxMessageSize(proto.MaxFrame)
	se.SetSCTPMaxReceiveBufferSize(SCTPReceiveBuffer)
	// Congestion avoidance grows the window by SCTPCwndCAStep per round
	// trip instead of one MTU, so one loss at 50 ms RTT does not cost
	// seconds of throughput (measured: 87 → 127 Mbps tunnel, 90 → 179
	// Mbps bare channel at 50 ms RTT).
	se.SetSCTPCwndCAStep(SCTPCwndCAStep)
	// SCTP SNAP (sctp-init in the SDP) skips the 2-RTT INIT handshake
	// when both peers offer it and falls back silently otherwise.
	se.EnableSctpSnap(true)
	// No HelloVerifyRequest when we are the DTLS server: ICE's
	// credentialed connectivity check already proved the peer's address,
	// so the cookie round trip protects nothing (browsers skip it too).
	se.SetDTLSInsecureSkipHelloVerify(true)
	// ICE acceptance waits: pion's defaults (srflx 0.5 s, prflx 1 s,
	// relay 2 s) delay every NAT-traversing session by a second or two.
	// Shorter waits keep the order of preference — a direct pair that
	// validates within the wait still wins over a relayed one.
	se.SetSrflxAcceptanceMinWait(SrflxAcceptanceWait)
	se.SetPrflxAcceptanceMinWait(PrflxAcceptanceWait)
	se.SetRelayAcceptanceMinWait(RelayAcceptanceWait)
	se.DisableActiveTCP(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	allowLoopback := cfg.LoopbackOnly
	se.SetRemoteIPFilter(func(ip net.IP) bool { return AllowRemoteIP(ip, allowLoopback) })
	if cfg.RelayOnly {
		se.SetRelayAcceptanceMinWait(0)
	}
	if cfg.LoopbackOnly {
		se.SetIncludeLoopbackCandidate(true)
		se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	}
	if cfg.Net != nil {
		se.SetNet(cfg.Net)
	} else if n, err := newBufferedNet(); err == nil {
		se.SetNet(n)
	}
	if cfg.Egress != nil && cfg.Net == nil {
		se.SetICEProxyDialer(newRelayDialer(cfg))
	}
	se.LoggerFactory = loggerFactory{cfg.Logger}
	// One video codec and no audio codec: Porthole carries no media. The
	// browser offers a receive-only video section only so that Chromium
	// gives the connection's UDP socket its video receive buffer
	// (web/session/tunnel.js prime); Chromium does so only if the section
	// is answered, not rejected (measured: rejected, a 32 MiB download fell
	// back to 4.8 MB/s with 1,000–2,600 datagrams dropped). It is answered
	// with VP8 alone and no track, so nothing is ever sent on it; any audio
	// section, and video without VP8, is rejected (port 0).
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
		PayloadType:        96,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, fmt.Errorf("peerconn: register VP8: %w", err)
	}
	return webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me)), nil
}

// NewPeerConnection returns a peer connection built by NewAPI(cfg) with
// cfg's ICE servers and policy. The caller owns it and must Close it.
func NewPeerConnection(cfg Config) (*webrtc.PeerConnection, error) {
	api, err := NewAPI(cfg)
	if err != nil {
		return nil, err
	}
	servers, err := ICEServers(cfg.ICEServers)
	if err != nil {
		return nil, err
	}
	policy := webrtc.ICETransportPolicyAll
	if cfg.RelayOnly {
		policy = webrtc.ICETransportPolicyRelay
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{
		ICEServers:         servers,
		ICETransportPolicy: policy,
	})
	if err != nil {
		return nil, fmt.Errorf("new peer connection: %w", err)
	}
	return pc, nil
}

// ICEServers converts signaling's ICE servers to pion's. URLs must be
// stun:, turn: or turns: URIs; credentials are passwords (TURN REST API
// style), never OAuth.
func ICEServers(in []proto.ICEServer) ([]webrtc.ICEServer, error) {
	if len(in) > proto.MaxICEServers {
		return nil, proto.Errorf(proto.CodeTooLarge, "%d ICE servers, limit %d", len(in), proto.MaxICEServers)
	}
	out := make([]webrtc.ICEServer, 0, len(in))
	for _, s := range in {
		if len(s.URLs) == 0 {
			return nil, proto.Errorf(proto.CodeBadMessage, "ICE server without URLs")
		}
		for _, u := range s.URLs {
			scheme, _, _ := strings.Cut(u, ":")
			switch scheme {
			case "stun", "stuns", "turn", "turns":
			default:
				return nil, proto.Errorf(proto.CodeBadMessage, "ICE server URL %.80q is not stun: or turn:", u)
			}
		}
		ws := webrtc.ICEServer{URLs: append([]string(nil), s.URLs...), Username: s.Username}
		if s.Credential != "" {
			ws.Credential = s.Credential
			ws.CredentialType = webrtc.ICECredentialTypePassword
		}
		out = append(out, ws)
	}
	return out, nil
}

// metadata is the cloud instance metadata address (inside 169.254/16, but
// named separately because it is the classic target).
var metadata = net.IPv4(169, 254, 169, 254)

// AllowRemoteIP reports whether a remote ICE candidate at ip may be used
// (SECURITY.md item 18). It refuses unspecified, link-local (unicast and
// multicast, so 169.254.169.254 too), multicast, broadcast and — unless
// allowLoopback — loopback addresses, including IPv4-mapped IPv6 forms.
// Private LAN and public addresses are allowed: a technician on site is
// legitimate, and connectivity checks carry only STUN and DTLS.
func AllowRemoteIP(ip net.IP, allowLoopback bool) bool {
	if ip == nil || (len(ip) != net.IPv4len && len(ip) != net.IPv6len) {
		return false
	}
	if v4 := ip.To4(); v4 != nil {
		ip = v4 // ::ffff:a.b.c.d is judged as a.b.c.d
		if v4.Equal(net.IPv4bcast) || v4[0] == 0 {
			return false // 0.0.0.0/8 and broadcast
		}
	}
	switch {
	case ip.IsUnspecified(), ip.IsMulticast(),
		ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast(),
		ip.Equal(metadata):
		return false
	case ip.IsLoopback():
		return allowLoopback
	}
	return true
}

// Path describes the candidate pair a connected peer connection uses.
type Path struct {
	Relayed bool          // either end is a relay candidate
	Local   string        // "host udp 127.0.0.1:50000", "relay udp 203.0.113.30:40000 related 192.168.1.10:51000"
	Remote  string        // "relay udp 198.51.100.7:3478"
	RTT     time.Duration // current round-trip time, 0 if unknown
	// LocalType is the local candidate's type (host, srflx, prflx,
	// relay); for a relay, Relay is how this peer reaches the relay (udp,
	// tcp or tls) and LocalRelated the local address of that connection.
	LocalType    string
	Relay        string
	LocalRelated string
	// RelayAddr is, for a local relay candidate, its address: the TURN
	// relay's own IP (RelayURL finds which configured relay that is);
	// RemoteRelayAddr the same of a remote relay candidate (the other
	// peer's relay, which is one of the session's too).
	RelayAddr, RemoteRelayAddr string
}

// String describes the path on one line: "direct (host udp A <-> srflx
// udp B)" or "relayed (…)".
func (p Path) String() string {
	kind := "direct"
	if p.Relayed {
		kind = "relayed"
	}
	return fmt.Sprintf("%s (%s <-> %s)", kind, p.Local, p.Remote)
}

// ErrNoPath is returned by PathInfo before ICE selected a candidate pair.
var ErrNoPath = errors.New("peerconn: no selected candidate pair")

// PathInfo reports the selected candidate pair of pc.
func PathInfo(pc *webrtc.PeerConnection) (Path, error) {
	sctp := pc.SCTP()
	if sctp == nil || sctp.Transport() == nil || sctp.Transport().ICETransport() == nil {
		return Path{}, ErrNoPath
	}
	it := sctp.Transport().ICETransport()
	pair, err := it.GetSelectedCandidatePair()
	if err != nil {
		return Path{}, fmt.Errorf("selected candidate pair: %w", err)
	}
	if pair == nil || pair.Local == nil || pair.Remote == nil {
		return Path{}, ErrNoPath
	}
	p := Path{
		Relayed:   pair.Local.Typ == webrtc.ICECandidateTypeRelay || pair.Remote.Typ == webrtc.ICECandidateTypeRelay,
		Local:     describe(pair.Local),
		Remote:    describe(pair.Remote),
		LocalType: pair.Local.Typ.String(),
	}
	st, ok := it.GetSelectedCandidatePairStats()
	if ok && st.CurrentRoundTripTime > 0 {
		p.RTT = time.Duration(st.CurrentRoundTripTime * float64(time.Second))
	}
	if pair.Remote.Typ == webrtc.ICECandidateTypeRelay {
		p.RemoteRelayAddr = pair.Remote.Address
	}
	if pair.Local.Typ == webrtc.ICECandidateTypeRelay {
		p.LocalRelated = net.JoinHostPort(pair.Local.RelatedAddress, fmt.Sprint(pair.Local.RelatedPort))
		p.RelayAddr = pair.Local.Address
		if ok {
			// Remote candidates carry no relay protocol; local ones do, in
			// the stats.
			if cs, found := pc.GetStats()[st.LocalCandidateID].(webrtc.ICECandidateStats); found {
				p.Relay = cs.RelayProtocol
			}
		}
	}
	return p, nil
}

func describe(c *webrtc.ICECandidate) string {
	d := fmt.Sprintf("%s %s %s", c.Typ, c.Protocol, net.JoinHostPort(c.Address, fmt.Sprint(c.Port)))
	if c.RelatedAddress != "" && c.Typ != webrtc.ICECandidateTypeHost {
		// For a relay candidate, the local socket that reached the relay:
		// 0.0.0.0 for TURN over UDP, the TCP connection's address otherwise.
		d += " related " + net.JoinHostPort(c.RelatedAddress, fmt.Sprint(c.RelatedPort))
	}
	return d
}
