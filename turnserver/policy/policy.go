// Package policy decides which peers a TURN allocation may talk to.
//
// A TURN relay that forwards to any address is an open proxy into the network
// it runs in: loopback services, the cloud metadata endpoint, the operator's
// private LAN. Policy is deny-by-default for every range that is not globally
// routable unicast, and it is pure: no I/O, no goroutines, no clock, so it can
// be table-tested and fuzzed.
//
// TURN grants permissions per IP address (RFC 8656 §9), so a relay uses the
// policy twice:
//
//   - CheckIP when a client asks for a permission or a channel binding (pion's
//     PermissionHandler sees only the peer IP), and
//   - Check on every datagram the relay socket would send, with the full
//     transport address, so service ports and other allocations' relayed
//     addresses are decided per port.
//
// The relay host itself is a peer like no other: its own addresses (every
// interface's, the public IP behind a 1:1 NAT, its subnets' broadcast
// addresses, 0.0.0.0) reach the services bound to the host's wildcard — a
// DNS resolver, SNMP, syslog — whatever range they lie in. Those addresses
// are refused unless the port is a live allocation's relayed port, even
// when an Allow prefix covers them (Config.IsHostAddr, Config.AllowOwnHost).
//
// Every address is unmapped (::ffff:a.b.c.d becomes a.b.c.d) before anything
// else: pion hands ::ffff:127.0.0.1 to the permission handler as a 16-byte IP
// even on an IPv4 allocation, and a check without Unmap would let it through
// (coturn CVE-2026-27624).
package policy

import (
	"fmt"
	"net/netip"
)

// Config describes a relay's peer policy. The zero value denies every
// default-denied range and allows every other unicast address.
type Config struct {
	// Allow re-enables prefixes that are denied by default, e.g. 10.0.0.0/8
	// for a relay serving one private network, or 127.0.0.0/8 in tests.
	// IPv4-mapped IPv6 prefixes are converted to their IPv4 form. Allow never
	// overrides the family check or ServicePorts.
	Allow []netip.Prefix

	// ServicePorts are the relay's own sockets (STUN/TURN listeners, metrics,
	// admin). Datagrams towards them are refused even when the address is
	// otherwise allowed, so a client cannot loop the relay into itself.
	// Addresses must be concrete (expand 0.0.0.0 listeners before passing
	// them in).
	ServicePorts []netip.AddrPort

	// RelayIPs are the addresses this relay hands out as relayed addresses.
	// CheckIP allows them even in a denied range, so that two relayed peers on
	// the same relay can create permissions towards each other; which port on
	// them a datagram may reach is then decided by Check with IsRelayAddr.
	RelayIPs []netip.Addr

	// IsRelayAddr reports whether addr (unmapped) is the relayed transport
	// address of a live allocation on this relay. Check allows such peers even
	// in a denied range. It is called on every datagram, so it must be cheap
	// and safe for concurrent use. Nil means no address is a relay address.
	IsRelayAddr func(addr netip.AddrPort) bool

	// IsHostAddr reports whether ip (unmapped, zone-less) is an address of
	// the relay host itself: any interface's address, a subnet broadcast
	// address, the loopback range, or an address the host answers for behind
	// a NAT (RelayIPs are always treated as host addresses). Datagrams to a
	// host address are refused unless the port is a live allocation's, and
	// permissions towards one are refused unless it is a RelayIP. It is
	// called on every datagram, so it must be cheap and safe for concurrent
	// use. Nil means only RelayIPs, the unspecified addresses and loopback.
	IsHostAddr func(ip netip.Addr) bool

	// AllowOwnHost turns the host-address rule off, so the relay host's own
	// addresses are judged by the range rules like any other peer. Only for
	// setups where every peer runs on the relay's machine (the loopback demo
	// and tests); a relay serving real peers must never set it.
	AllowOwnHost bool
}

// Policy is an immutable peer policy built by New. It is safe for concurrent
// use.
type Policy struct {
	allow       []netip.Prefix
	service     map[netip.AddrPort]struct{}
	relayIPs    map[netip.Addr]struct{}
	isRelayAddr func(netip.AddrPort) bool
	isHostAddr  func(netip.Addr) bool
	ownHostOK   bool
}

// deniedPrefixes are never relayed to unless Config.Allow covers them.
// IPv4-mapped IPv6 (::ffff:0:0/96) is absent on purpose: addresses are
// unmapped before the lookup, so the IPv4 entries cover it.
var deniedPrefixes = [...]netip.Prefix{
	// IPv4
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network", incl. 0.0.0.0 (coturn CVE-2020-26262)
	netip.MustParsePrefix("10.0.0.0/8"),     // private (RFC 1918)
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT (RFC 6598)
	netip.MustParsePrefix("127.0.0.0/8"),    // loopback
	netip.MustParsePrefix("169.254.0.0/16"), // link-local, incl. cloud metadata 169.254.169.254
	netip.MustParsePrefix("172.16.0.0/12"),  // private (RFC 1918)
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments (RFC 6890)
	netip.MustParsePrefix("192.168.0.0/16"), // private (RFC 1918)
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking, often used for internal networks
	netip.MustParsePrefix("224.0.0.0/4"),    // multicast
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, incl. 255.255.255.255 broadcast
	// IPv6
	netip.MustParsePrefix("::/96"),          // unspecified, loopback and deprecated IPv4-compatible
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64 (RFC 8215)
	netip.MustParsePrefix("100::/64"),       // discard-only (RFC 6666)
	netip.MustParsePrefix("fc00::/7"),       // unique local
	netip.MustParsePrefix("fe80::/10"),      // link-local
	netip.MustParsePrefix("fec0::/10"),      // deprecated site-local
	netip.MustParsePrefix("ff00::/8"),       // multicast
}

var (
	nat64Prefix  = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052 well-known prefix
	sixToFour    = netip.MustParsePrefix("2002::/16")    // RFC 3056
	teredoPrefix = netip.MustParsePrefix("2001::/32")    // RFC 4380
)

// New validates cfg and builds a Policy.
func New(cfg Config) (*Policy, error) {
	p := &Policy{
		service:     make(map[netip.AddrPort]struct{}, len(cfg.ServicePorts)),
		relayIPs:    make(map[netip.Addr]struct{}, len(cfg.RelayIPs)),
		isRelayAddr: cfg.IsRelayAddr,
		isHostAddr:  cfg.IsHostAddr,
		ownHostOK:   cfg.AllowOwnHost,
	}
	for _, pr := range cfg.Allow {
		if !pr.IsValid() {
			return nil, fmt.Errorf("policy: invalid allow prefix %v", pr)
		}
		if pr.Addr().Is4In6() && pr.Bits() >= 96 {
			pr = netip.PrefixFrom(pr.Addr().Unmap(), pr.Bits()-96)
		}
		p.allow = append(p.allow, pr.Masked())
	}
	for _, ap := range cfg.ServicePorts {
		if !ap.IsValid() || ap.Addr().IsUnspecified() {
			return nil, fmt.Errorf("policy: service port %v must be a concrete address and port", ap)
		}
		p.service[normalizeAddrPort(ap)] = struct{}{}
	}
	for _, ip := range cfg.RelayIPs {
		if !ip.IsValid() || ip.Unmap().IsUnspecified() {
			return nil, fmt.Errorf("policy: relay IP %v must be a concrete address", ip)
		}
		p.relayIPs[normalize(ip)] = struct{}{}
	}
	return p, nil
}

// Check decides whether the relay, whose relayed address is relayAddr, may
// exchange a datagram with peer. It returns nil or an error wrapping one of
// the package's sentinel errors.
func (p *Policy) Check(relayAddr netip.Addr, peer netip.AddrPort) error {
	ip, err := p.family(relayAddr, peer.Addr())
	if err != nil {
		return err
	}
	if peer.Port() == 0 {
		return fmt.Errorf("peer %v: %w", peer, ErrInvalidPeer)
	}
	ap := netip.AddrPortFrom(ip, peer.Port())
	if _, ok := p.service[ap]; ok {
		return fmt.Errorf("peer %v: %w", ap, ErrServicePort)
	}
	if p.isRelayAddr != nil && p.isRelayAddr(ap) {
		return nil
	}
	if err := p.checkRange(ip); err != nil {
		return err
	}
	if p.hostAddr(ip) {
		return fmt.Errorf("peer %v: %w", ap, ErrOwnHost)
	}
	return nil
}

// CheckIP decides whether a permission (or channel binding) towards peer may
// be installed on an allocation whose relayed address is relayAddr. Ports are
// not known at this stage; Check decides them per datagram.
func (p *Policy) CheckIP(relayAddr, peer netip.Addr) error {
	ip, err := p.family(relayAddr, peer)
	if err != nil {
		return err
	}
	if _, ok := p.relayIPs[ip]; ok {
		return nil
	}
	if err := p.checkRange(ip); err != nil {
		return err
	}
	if p.hostAddr(ip) {
		return fmt.Errorf("peer %v: %w", ip, ErrOwnHost)
	}
	return nil
}

// hostAddr reports whether ip (unmapped, zone-less) is the relay host's own
// address and the host-address rule applies. The unspecified addresses and
// loopback always are: the kernel delivers datagrams to 0.0.0.0 and to all of
// 127/8 locally. An embedded IPv4 (NAT64, 6to4, Teredo) of a host address
// counts too: a translator would deliver it back to the host.
func (p *Policy) hostAddr(ip netip.Addr) bool {
	if p.ownHostOK {
		return false
	}
	is := func(a netip.Addr) bool {
		if a.IsUnspecified() || a.IsLoopback() {
			return true
		}
		if _, ok := p.relayIPs[a]; ok {
			return true
		}
		return p.isHostAddr != nil && p.isHostAddr(a)
	}
	if is(ip) {
		return true
	}
	for _, v4 := range embeddedIPv4(ip) {
		if is(v4) {
			return true
		}
	}
	return false
}

// family unmaps peer and checks it against the allocation's family.
func (p *Policy) family(relayAddr, peer netip.Addr) (netip.Addr, error) {
	if !peer.IsValid() {
		return netip.Addr{}, fmt.Errorf("peer %v: %w", peer, ErrInvalidPeer)
	}
	ip := normalize(peer)
	if !relayAddr.IsValid() || normalize(relayAddr).Is4() != ip.Is4() {
		return netip.Addr{}, fmt.Errorf("peer %v, relay %v: %w", peer, relayAddr, ErrFamilyMismatch)
	}
	return ip, nil
}

// checkRange applies Allow and the default-denied ranges to an unmapped,
// zone-less address.
func (p *Policy) checkRange(ip netip.Addr) error {
	if p.allowed(ip) {
		return nil
	}
	if pr, ok := denied(ip); ok {
		return fmt.Errorf("peer %v in %v: %w", ip, pr, ErrDeniedRange)
	}
	// An IPv6 address that carries an IPv4 address reaches that IPv4 host
	// through a translator or tunnel; judge the IPv4 host.
	for _, v4 := range embeddedIPv4(ip) {
		if p.allowed(v4) {
			continue
		}
		if pr, ok := denied(v4); ok {
			return fmt.Errorf("peer %v embeds %v in %v: %w", ip, v4, pr, ErrDeniedRange)
		}
	}
	return nil
}

func (p *Policy) allowed(ip netip.Addr) bool {
	for _, pr := range p.allow {
		if pr.Contains(ip) {
			return true
		}
	}
	return false
}

func denied(ip netip.Addr) (netip.Prefix, bool) {
	for _, pr := range deniedPrefixes {
		if pr.Contains(ip) {
			return pr, true
		}
	}
	return netip.Prefix{}, false
}

// embeddedIPv4 returns the IPv4 addresses an IPv6 address hands traffic to:
// the NAT64 well-known prefix, 6to4, and both ends of Teredo.
func embeddedIPv4(ip netip.Addr) []netip.Addr {
	if !ip.Is6() {
		return nil
	}
	b := ip.As16()
	switch {
	case nat64Prefix.Contains(ip):
		return []netip.Addr{netip.AddrFrom4([4]byte(b[12:16]))}
	case sixToFour.Contains(ip):
		return []netip.Addr{netip.AddrFrom4([4]byte(b[2:6]))}
	case teredoPrefix.Contains(ip):
		server := netip.AddrFrom4([4]byte(b[4:8]))
		client := netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]}) // obfuscated (RFC 4380 §4)
		return []netip.Addr{server, client}
	}
	return nil
}

// normalize unmaps ip and drops its zone: a zone never changes which host a
// non-link-local address names, and link-local is denied anyway.
func normalize(ip netip.Addr) netip.Addr {
	return ip.Unmap().WithZone("")
}

func normalizeAddrPort(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(normalize(ap.Addr()), ap.Port())
}
