package relay

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"
)

// hostAddrRefresh is how often the relay re-reads its host's interface
// addresses. An address added to an interface (a DHCP lease, a second IP)
// is refused as a peer at most this long after it appears.
const hostAddrRefresh = 2 * time.Second

// hostAddrs is the set of addresses at which the relay host itself receives
// datagrams, read from its interfaces and swapped atomically, so the policy
// can ask it on every datagram without a lock.
type hostAddrs struct {
	set atomic.Pointer[hostAddrSet]
	log *slog.Logger
}

type hostAddrSet struct {
	addrs    map[netip.Addr]struct{}
	prefixes []netip.Prefix // whole prefixes local to the host (addresses on a loopback interface)
}

func (h *hostAddrs) contains(ip netip.Addr) bool {
	s := h.set.Load()
	if s == nil {
		return false
	}
	if _, ok := s.addrs[ip]; ok {
		return true
	}
	for _, p := range s.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// refresh re-reads the interfaces; it keeps the previous set when they
// cannot be read.
func (h *hostAddrs) refresh() {
	ifs, err := net.Interfaces()
	if err != nil {
		h.log.Warn("reading interface addresses for the host-address rule", "err", err)
		return
	}
	s := &hostAddrSet{addrs: map[netip.Addr]struct{}{}}
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			h.log.Warn("reading interface addresses", "interface", ifc.Name, "err", err)
			continue
		}
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
			ones, _ := ipn.Mask.Size()
			s.addrs[ip] = struct{}{}
			pfx := netip.PrefixFrom(ip, ones).Masked()
			// Linux makes a loopback interface's whole prefix local
			// (127.0.0.0/8 from 127.0.0.1/8).
			if ifc.Flags&net.FlagLoopback != 0 {
				s.prefixes = append(s.prefixes, pfx)
				continue
			}
			// The subnet's broadcast address reaches the host itself (and
			// its neighbours): Go sockets are SO_BROADCAST by default.
			if ip.Is4() && ones < 31 {
				b := pfx.Addr().As4()
				for i := range 4 {
					b[i] |= ^ipn.Mask[len(ipn.Mask)-4+i]
				}
				s.addrs[netip.AddrFrom4(b)] = struct{}{}
			}
		}
	}
	old := h.set.Swap(s)
	if old == nil || !sameSet(old, s) {
		h.log.Info("relay host addresses (refused as peers)", "addrs", s.list())
	}
}

func (s *hostAddrSet) list() []string {
	out := make([]string, 0, len(s.addrs)+len(s.prefixes))
	for a := range s.addrs {
		out = append(out, a.String())
	}
	for _, p := range s.prefixes {
		out = append(out, p.String())
	}
	slices.Sort(out)
	return out
}

func sameSet(a, b *hostAddrSet) bool { return slices.Equal(a.list(), b.list()) }

// watch refreshes the set every hostAddrRefresh until ctx ends.
func (h *hostAddrs) watch(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(hostAddrRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.refresh()
		}
	}
}
