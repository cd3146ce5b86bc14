package netlab

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// Segment is a layer-2 network: a bridge inside a router's namespace (the
// internet, or a NAT's LAN side) that hosts attach to, with the router's
// address on it as the hosts' gateway.
type Segment struct {
	lab      *Lab
	name     string
	ns       string         // namespace holding the bridge
	bridge   string         // bridge interface in ns
	prefixes []netip.Prefix // subnets on the bridge
	gateways []netip.Addr   // router address in each prefix (its first host)
	used     map[netip.Addr]bool
}

// Name is the segment's role name.
func (s *Segment) Name() string { return s.name }

// Namespace is the namespace that holds the segment's bridge (its router).
func (s *Segment) Namespace() string { return s.ns }

// Prefixes are the subnets on the segment.
func (s *Segment) Prefixes() []netip.Prefix { return s.prefixes }

// Gateway returns the router's address in the subnet that holds addr
// (the zero Addr on a Switch, which has no router).
func (s *Segment) Gateway(addr netip.Addr) (netip.Addr, netip.Prefix, bool) {
	for i, p := range s.prefixes {
		if p.Contains(addr) {
			return s.gateways[i], p, true
		}
	}
	return netip.Addr{}, netip.Prefix{}, false
}

// Internet makes the "internet": a router namespace with one bridge that
// carries every prefix given (use documentation ranges: 203.0.113.0/24,
// 198.51.100.0/24, 198.18.0.0/15), the router holding the first address of
// each and forwarding between them. Hosts and NAT routers attach to it.
func (l *Lab) Internet(prefixes ...string) *Segment {
	l.t.Helper()
	if len(prefixes) == 0 {
		l.t.Fatal("netlab: Internet needs at least one prefix")
	}
	ns := l.newNamespace("inet")
	seg := &Segment{lab: l, name: "internet", ns: ns, bridge: "br0", used: map[netip.Addr]bool{}}
	l.must("ip", "-n", ns, "link", "add", seg.bridge, "type", "bridge")
	for _, s := range prefixes {
		p := l.prefix(s)
		gw := p.Addr().Next()
		seg.prefixes = append(seg.prefixes, p)
		seg.gateways = append(seg.gateways, gw)
		seg.used[gw] = true
		l.must("ip", "-n", ns, "addr", "add", fmt.Sprintf("%s/%d", gw, p.Bits()), "dev", seg.bridge)
	}
	l.must("ip", "-n", ns, "link", "set", seg.bridge, "up")
	l.routerSysctls(ns)
	return seg
}

// Switch makes a plain layer-2 segment carrying prefix: a bridge and no
// router, so hosts on it reach only each other (a data centre's private
// LAN, say). Hosts attached to it get no default route from it.
func (l *Lab) Switch(name, prefix string) *Segment {
	l.t.Helper()
	p := l.prefix(prefix)
	ns := l.newNamespace(name)
	seg := &Segment{lab: l, name: name, ns: ns, bridge: "br0", prefixes: []netip.Prefix{p},
		gateways: []netip.Addr{{}}, used: map[netip.Addr]bool{}}
	l.must("ip", "-n", ns, "link", "add", seg.bridge, "type", "bridge")
	l.must("ip", "-n", ns, "link", "set", seg.bridge, "up")
	return seg
}

// routerSysctls turns forwarding on in a router namespace and keeps
// bridged frames out of the IP firewall hooks (br_netfilter), so a LAN
// switch never filters or NATs its own traffic.
func (l *Lab) routerSysctls(ns string) {
	l.t.Helper()
	l.sysctl(ns, "net.ipv4.ip_forward=1")
	if _, err := os.Stat("/proc/sys/net/bridge/bridge-nf-call-iptables"); err == nil {
		// Best effort: the key exists per namespace only on newer kernels.
		_, _ = run("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=0")
	}
}

func (l *Lab) prefix(s string) netip.Prefix {
	l.t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		l.t.Fatalf("netlab: %q is not an IPv4 prefix", s)
	}
	return p.Masked()
}

func (l *Lab) addr(s string) netip.Addr {
	l.t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		l.t.Fatalf("netlab: %q is not an IPv4 address", s)
	}
	return a
}

// attach creates a veth pair between namespace ns (end named ifname, given
// addr on seg's matching subnet) and seg's bridge, and returns the prefix
// and gateway of that subnet.
func (l *Lab) attach(seg *Segment, ns, ifname string, addr netip.Addr) (netip.Prefix, netip.Addr) {
	l.t.Helper()
	gw, p, ok := seg.Gateway(addr)
	if !ok {
		l.t.Fatalf("netlab: %s is in none of %s's prefixes %v", addr, seg.name, seg.prefixes)
	}
	if seg.used[addr] {
		l.t.Fatalf("netlab: %s is already used on %s", addr, seg.name)
	}
	seg.used[addr] = true
	peer := l.nextIf()
	l.must("ip", "-n", ns, "link", "add", ifname, "type", "veth", "peer", "name", peer, "netns", seg.ns)
	l.must("ip", "-n", seg.ns, "link", "set", peer, "master", seg.bridge)
	l.must("ip", "-n", seg.ns, "link", "set", peer, "up")
	l.must("ip", "-n", ns, "addr", "add", fmt.Sprintf("%s/%d", addr, p.Bits()), "dev", ifname)
	l.must("ip", "-n", ns, "link", "set", ifname, "up")
	return p, gw
}

// Host is an end system: a namespace with one interface, eth0, on a
// segment, and a default route through the segment's router.
type Host struct {
	lab  *Lab
	name string
	ns   string
	addr netip.Addr
	seg  *Segment

	ifaces int // eth0, eth1, ...
}

// Attach gives the host a further interface (eth1, eth2, …) on seg with
// address addr. Only the subnet's route is added: the default route stays
// on eth0.
func (h *Host) Attach(seg *Segment, addr string) {
	l := h.lab
	l.t.Helper()
	a := l.addr(addr)
	name := fmt.Sprintf("eth%d", h.ifaces)
	h.ifaces++
	l.attach(seg, h.ns, name, a)
}

// Host attaches a new host called name to seg with address addr (in one of
// seg's prefixes).
func (l *Lab) Host(name string, seg *Segment, addr string) *Host {
	l.t.Helper()
	a := l.addr(addr)
	ns := l.newNamespace(name)
	_, gw := l.attach(seg, ns, "eth0", a)
	if gw.IsValid() {
		l.must("ip", "-n", ns, "route", "add", "default", "via", gw.String())
	}
	h := &Host{lab: l, name: name, ns: ns, addr: a, seg: seg, ifaces: 1}
	l.mu.Lock()
	l.hosts[name] = h
	l.mu.Unlock()
	return h
}

// Name is the host's role name.
func (h *Host) Name() string { return h.name }

// Namespace is the host's namespace name, for "ip netns exec" and
// proc.Options.Netns.
func (h *Host) Namespace() string { return h.ns }

// Addr is the host's address on its segment.
func (h *Host) Addr() netip.Addr { return h.addr }

// AddrPort is Addr with a port.
func (h *Host) AddrPort(port uint16) netip.AddrPort { return netip.AddrPortFrom(h.addr, port) }

// Segment is the segment the host is attached to.
func (h *Host) Segment() *Segment { return h.seg }

// Mapping is how a NAT picks the public port of a new flow.
type Mapping int

const (
	// EndpointIndependent keeps one public address and port for all flows
	// from one private address and port (RFC 4787 "endpoint-independent
	// mapping"): Linux masquerade, which also keeps the private port when
	// it is free. Filtering stays address- and port-dependent: only the
	// flow's own destination may answer.
	EndpointIndependent Mapping = iota
	// Symmetric gives every flow (every destination) its own random public
	// port: masquerade with "random" port selection.
	Symmetric
)

func (m Mapping) String() string {
	if m == Symmetric {
		return "symmetric"
	}
	return "endpoint-independent"
}

// NATOption configures a NAT router: its Mapping, or firewall rules such
// as BlockOutboundUDP and AllowOnlyTCP.
type NATOption interface{ applyNAT(*natConfig) }

type natConfig struct {
	mapping   Mapping
	blockUDP  bool
	allowTCP  []tcpDest
	allowFrom []netip.Addr // LAN hosts whose TCP may leave (the site's proxy)
}

type tcpDest struct {
	addr netip.Addr // invalid: any destination
	port uint16
}

func (m Mapping) applyNAT(c *natConfig) { c.mapping = m }

type natOptionFunc func(*natConfig)

func (f natOptionFunc) applyNAT(c *natConfig) { f(c) }

// BlockOutboundUDP drops every UDP packet from the LAN to the WAN.
func BlockOutboundUDP() NATOption {
	return natOptionFunc(func(c *natConfig) { c.blockUDP = true })
}

// AllowOnlyTCP restricts traffic from the LAN to the WAN to TCP towards
// dst (an IPv4 address, or "" for any) on port; repeat it to allow more
// destinations. Everything else outbound is dropped (silently, as
// corporate firewalls do).
func AllowOnlyTCP(dst string, port uint16) NATOption {
	return natOptionFunc(func(c *natConfig) {
		d := tcpDest{port: port}
		if dst != "" {
			a, err := netip.ParseAddr(dst)
			if err != nil {
				panic(fmt.Sprintf("netlab.AllowOnlyTCP: %q is not an IP address", dst))
			}
			d.addr = a
		}
		c.allowTCP = append(c.allowTCP, d)
	})
}

// AllowOnlyTCPFrom lets TCP from the LAN host src out, and nothing else
// from the LAN: a site whose only way out is its HTTP proxy at src.
// Repeat it for more hosts; AllowOnlyTCP destinations stay open to all.
func AllowOnlyTCPFrom(src string) NATOption {
	return natOptionFunc(func(c *natConfig) {
		a, err := netip.ParseAddr(src)
		if err != nil {
			panic(fmt.Sprintf("netlab.AllowOnlyTCPFrom: %q is not an IP address", src))
		}
		c.allowFrom = append(c.allowFrom, a)
	})
}

// NAT is a NAT router with a stateful firewall: its WAN interface (wan0)
// on an upstream segment, and a LAN bridge of its own that hosts attach
// to.
type NAT struct {
	lab     *Lab
	name    string
	ns      string
	wan     netip.Addr
	lan     *Segment
	cfg     natConfig
	Ruleset string // the nftables ruleset loaded, for failure reports
}

// NAT creates a NAT router called name with WAN address wanAddr on
// upstream and a LAN lanPrefix (the router takes its first address).
// Without options it maps endpoint-independently, lets everything out and
// nothing unsolicited in.
func (l *Lab) NAT(name string, upstream *Segment, wanAddr, lanPrefix string, opts ...NATOption) *NAT {
	l.t.Helper()
	var cfg natConfig
	for _, o := range opts {
		o.applyNAT(&cfg)
	}
	wan := l.addr(wanAddr)
	p := l.prefix(lanPrefix)
	ns := l.newNamespace(name)
	_, gw := l.attach(upstream, ns, "wan0", wan)
	l.must("ip", "-n", ns, "route", "add", "default", "via", gw.String())

	lan := &Segment{lab: l, name: name + "-lan", ns: ns, bridge: "br0", used: map[netip.Addr]bool{}}
	lanGW := p.Addr().Next()
	lan.prefixes = []netip.Prefix{p}
	lan.gateways = []netip.Addr{lanGW}
	lan.used[lanGW] = true
	l.must("ip", "-n", ns, "link", "add", "br0", "type", "bridge")
	l.must("ip", "-n", ns, "addr", "add", fmt.Sprintf("%s/%d", lanGW, p.Bits()), "dev", "br0")
	l.must("ip", "-n", ns, "link", "set", "br0", "up")
	l.routerSysctls(ns)

	n := &NAT{lab: l, name: name, ns: ns, wan: wan, lan: lan, cfg: cfg}
	n.Ruleset = natRuleset(cfg)
	l.nft(ns, n.Ruleset)
	return n
}

// natRuleset renders the NAT's nftables rules: masquerade on wan0, no new
// connections in from wan0 (to the router or through it), and the egress
// policy.
func natRuleset(c natConfig) string {
	var egress []string
	if c.blockUDP {
		egress = append(egress, `oifname "wan0" meta l4proto udp drop`)
	}
	if len(c.allowTCP) > 0 || len(c.allowFrom) > 0 {
		for _, d := range c.allowTCP {
			if d.addr.IsValid() {
				egress = append(egress, fmt.Sprintf(`oifname "wan0" ip daddr %s tcp dport %d accept`, d.addr, d.port))
			} else {
				egress = append(egress, fmt.Sprintf(`oifname "wan0" tcp dport %d accept`, d.port))
			}
		}
		for _, a := range c.allowFrom {
			egress = append(egress, fmt.Sprintf(`oifname "wan0" ip saddr %s meta l4proto tcp accept`, a))
		}
		egress = append(egress, `oifname "wan0" drop`)
	}
	masq := "masquerade"
	if c.mapping == Symmetric {
		masq = "masquerade random"
	}
	return fmt.Sprintf(`table ip netlab {
	chain forward {
		type filter hook forward priority filter; policy accept;
		ct state established,related accept
		ct state invalid drop
		iifname "wan0" drop
		%s
	}
	chain input {
		type filter hook input priority filter; policy accept;
		ct state established,related accept
		iifname "wan0" drop
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wan0" %s
	}
}
`, strings.Join(egress, "\n\t\t"), masq)
}

// Name is the NAT's role name.
func (n *NAT) Name() string { return n.name }

// Namespace is the router's namespace.
func (n *NAT) Namespace() string { return n.ns }

// WAN is the NAT's public address: what the internet sees its LAN hosts as.
func (n *NAT) WAN() netip.Addr { return n.wan }

// LAN is the NAT's LAN segment, for Lab.Host.
func (n *NAT) LAN() *Segment { return n.lan }

// Mapping is the NAT's mapping behaviour.
func (n *NAT) Mapping() Mapping { return n.cfg.mapping }

// Readdress moves the host's eth0 to addr, another address on its segment
// — a DHCP lease that changed: the old address disappears at once, and
// with it every socket bound to it (UDP and TCP alike, whose peers learn
// nothing), and the default route is put back through the same gateway.
// It returns the old address.
func (h *Host) Readdress(addr string) netip.Addr {
	l := h.lab
	l.t.Helper()
	a := l.addr(addr)
	gw, p, ok := h.seg.Gateway(a)
	if !ok || !p.Contains(h.addr) {
		l.t.Fatalf("netlab: %s is not on %s's subnet %v", a, h.name, p)
	}
	if h.seg.used[a] {
		l.t.Fatalf("netlab: %s is already used on %s", a, h.seg.name)
	}
	old := h.addr
	// Delete first: deleting a primary address would take a secondary
	// one of the same subnet with it.
	l.must("ip", "-n", h.ns, "addr", "del", fmt.Sprintf("%s/%d", old, p.Bits()), "dev", "eth0")
	l.must("ip", "-n", h.ns, "addr", "add", fmt.Sprintf("%s/%d", a, p.Bits()), "dev", "eth0")
	if gw.IsValid() {
		l.must("ip", "-n", h.ns, "route", "replace", "default", "via", gw.String())
	}
	h.seg.used[a] = true
	delete(h.seg.used, old)
	h.addr = a
	return old
}
