// Package scope is the part of a customer's network an agent may ever
// reach: the site's subnets (CIDRs) and TCP ports. It is declared at the
// site — by default the subnets of the agent's own interfaces and ports
// 80 and 443 plus the ports of adopted devices — and checked by the agent
// itself, so a compromised signaling node cannot point the agent anywhere
// the site did not allow. Today discovery checks every probe against it
// (Scope.Control on each dial); the daemon's device dials and the
// inventory signaling will send are to be checked the same way.
//
// Whatever the subnets say, a scope never contains loopback, unspecified,
// multicast, broadcast or link-local addresses, nor the agent's own
// addresses (its own services are not devices).
package scope

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// DefaultPorts are the TCP ports a scope allows when the site declares
// none: the web pages of devices. Adopted devices add their own ports
// unless the site declared its ports explicitly.
var DefaultPorts = []int{80, 443}

// ErrOutOfScope is wrapped by every refusal.
var ErrOutOfScope = errors.New("outside the site's scope")

// Config declares a scope. The zero value means the defaults.
type Config struct {
	// CIDRs are the subnets the agent may reach ("192.168.1.0/24").
	// Empty: the subnets of the agent's own interfaces (Interfaces).
	CIDRs []string `json:"cidrs,omitempty"`
	// Ports are the TCP ports the agent may reach. Empty: DefaultPorts
	// plus whatever ports adopted devices declare; given: exactly these,
	// and an adopted device's other ports are refused.
	Ports []int `json:"ports,omitempty"`
}

// Scope is a validated scope. It is immutable and safe for concurrent use.
type Scope struct {
	prefixes []netip.Prefix
	ports    []int // sorted
	explicit bool  // ports declared by the site
	own      []netip.Addr
}

// Interfaces returns the agent's own addresses with their subnets, from
// the network namespace of the calling thread, leaving out loopback and
// link-local ones.
func Interfaces() ([]netip.Prefix, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list interface addresses: %w", err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		ones, bits := ipn.Mask.Size()
		if ip.Is4() && bits == 128 {
			ones -= 96
		}
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() {
			continue
		}
		out = append(out, netip.PrefixFrom(ip, ones))
	}
	return out, nil
}

// New builds a scope from cfg and the agent's own interface addresses
// (Interfaces): those are never in scope, and without cfg.CIDRs their
// subnets are the scope.
func New(cfg Config, own []netip.Prefix) (*Scope, error) {
	s := &Scope{explicit: len(cfg.Ports) > 0}
	for _, p := range own {
		s.own = append(s.own, p.Addr().Unmap())
	}
	if len(cfg.CIDRs) == 0 {
		for _, p := range own {
			s.prefixes = append(s.prefixes, p.Masked())
		}
	}
	for _, c := range cfg.CIDRs {
		p, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			return nil, fmt.Errorf("scope: cidr %q: %w", c, err)
		}
		if p.Addr().Is4In6() {
			return nil, fmt.Errorf("scope: cidr %q: write IPv4 subnets in IPv4 form", c)
		}
		if p.Addr().IsLoopback() || p.Addr().IsMulticast() || p.Addr().IsUnspecified() && p.Bits() == 0 {
			return nil, fmt.Errorf("scope: cidr %q: loopback, multicast and the whole address space are never in scope", c)
		}
		s.prefixes = append(s.prefixes, p.Masked())
	}
	s.prefixes = dedupe(s.prefixes)
	ports := cfg.Ports
	if !s.explicit {
		ports = DefaultPorts
	}
	for _, p := range ports {
		if p < 1 || p > 65535 {
			return nil, fmt.Errorf("scope: port %d out of range", p)
		}
	}
	s.ports = slices.Compact(slices.Sorted(slices.Values(ports)))
	return s, nil
}

func dedupe(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(ps)
}

// Prefixes returns the scope's subnets.
func (s *Scope) Prefixes() []netip.Prefix { return slices.Clone(s.prefixes) }

// Ports returns the TCP ports the scope allows by itself (DefaultPorts
// or the site's own list).
func (s *Scope) Ports() []int { return slices.Clone(s.ports) }

// ExplicitPorts reports whether the site declared its ports, so that
// adopted devices may add none.
func (s *Scope) ExplicitPorts() bool { return s.explicit }

// String describes the scope for logs and people.
func (s *Scope) String() string {
	var b strings.Builder
	for i, p := range s.prefixes {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.String())
	}
	b.WriteString(" ports ")
	for i, p := range s.ports {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(p))
	}
	if !s.explicit {
		b.WriteString(" (+adopted)")
	}
	return b.String()
}

// CheckAddr refuses an address outside the scope's subnets, or one that
// is never in scope (loopback, link-local, multicast, broadcast,
// unspecified, the agent's own). IPv4-mapped IPv6 is checked as IPv4.
func (s *Scope) CheckAddr(ip netip.Addr) error {
	ip = ip.Unmap().WithZone("")
	switch {
	case !ip.IsValid():
		return fmt.Errorf("%w: no address", ErrOutOfScope)
	case ip.IsLoopback(), ip.IsUnspecified(), ip.IsMulticast(), ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(),
		ip.IsInterfaceLocalMulticast(), ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("%w: %s is never reachable through the agent", ErrOutOfScope, ip)
	case slices.Contains(s.own, ip):
		return fmt.Errorf("%w: %s is the agent's own address", ErrOutOfScope, ip)
	}
	for _, p := range s.prefixes {
		if p.Contains(ip) {
			if ip.Is4() && p.Bits() < 31 && (ip == p.Addr() || ip == lastAddr(p)) {
				return fmt.Errorf("%w: %s is the network or broadcast address of %s", ErrOutOfScope, ip, p)
			}
			return nil
		}
	}
	return fmt.Errorf("%w: %s is not in %s", ErrOutOfScope, ip, s.prefixString())
}

func (s *Scope) prefixString() string {
	if len(s.prefixes) == 0 {
		return "any subnet (the scope is empty)"
	}
	parts := make([]string, len(s.prefixes))
	for i, p := range s.prefixes {
		parts[i] = p.String()
	}
	return strings.Join(parts, ", ")
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// CheckPort refuses a TCP port the scope does not allow. adopted are the
// ports of adopted devices, which count only when the site declared no
// ports of its own.
func (s *Scope) CheckPort(port int, adopted ...int) error {
	if port < 1 || port > 65535 {
		return fmt.Errorf("%w: port %d out of range", ErrOutOfScope, port)
	}
	if slices.Contains(s.ports, port) || (!s.explicit && slices.Contains(adopted, port)) {
		return nil
	}
	return fmt.Errorf("%w: port %d is not among the site's ports %v", ErrOutOfScope, port, s.ports)
}

// CheckDevice checks an inventory entry: its address (an IP address; a
// host name is resolved by the caller and each answer checked) and every
// port it declares. Under default ports a device may declare any port
// (adoption adds it); under explicit ports each must be listed.
func (s *Scope) CheckDevice(ip netip.Addr, ports []int) error {
	if err := s.CheckAddr(ip); err != nil {
		return err
	}
	for _, p := range ports {
		if err := s.CheckPort(p, ports...); err != nil {
			return err
		}
	}
	return nil
}

// Control is a net.Dialer.ControlContext that refuses, at the last
// moment before connect(2), any address outside the scope's subnets —
// after name resolution, so a host name that resolves elsewhere on a
// second lookup is refused too. Ports are the caller's to check (they
// depend on the device).
func (s *Scope) Control(_ context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %q is not an address", ErrOutOfScope, address)
	}
	return s.CheckAddr(ap.Addr())
}

// Hosts calls fn for addresses of the scope's IPv4 subnets in order,
// starting at index from (a sweep that resumes where the last one
// stopped, wrapping around), at most max of them, leaving out addresses
// CheckAddr refuses; fn returning false stops early. It returns the index
// to resume from and the size of the address space (at most 1<<24).
// IPv6 subnets are too large to sweep: their devices are found by mDNS
// and the neighbour table.
func (s *Scope) Hosts(from, max int, fn func(netip.Addr) bool) (next, total int) {
	const capTotal = 1 << 24
	type block struct{ base, size uint32 }
	var blocks []block
	for _, p := range s.prefixes {
		if !p.Addr().Is4() || total >= capTotal {
			continue
		}
		b := p.Masked().Addr().As4()
		size := min(1<<(32-p.Bits()), capTotal-total)
		blocks = append(blocks, block{uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), uint32(size)}) //nolint:gosec // size ≤ 1<<24
		total += size
	}
	if total == 0 {
		return 0, 0
	}
	idx := ((from % total) + total) % total
	for visited, n := 0, 0; visited < total && n < max; visited++ {
		off := uint32(idx) //nolint:gosec // idx < total ≤ 1<<24
		var v uint32
		for _, b := range blocks {
			if off < b.size {
				v = b.base + off
				break
			}
			off -= b.size
		}
		idx = (idx + 1) % total
		a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		if s.CheckAddr(a) != nil {
			continue
		}
		n++
		if !fn(a) {
			break
		}
	}
	return idx, total
}
