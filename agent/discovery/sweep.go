package discovery

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"sync"
	"syscall"

	"github.com/porthole-dev/porthole/proto"
)

// Sweep finds hosts by connecting to the scope's TCP ports (80 and 443 by
// default) on each address of its IPv4 subnets: a host that accepts or
// refuses is there. A connection that opens is closed at once, before a
// byte is sent. Each attempt also makes the kernel resolve the address on
// the link, which fills the neighbour table for Neighbors. At most
// Config.MaxHosts addresses per scan; the next scan resumes after the
// last one.
type Sweep struct{}

// Name implements Source.
func (*Sweep) Name() string { return "sweep" }

// Discover implements Source.
func (w *Sweep) Discover(ctx context.Context, sc *Scan) error {
	var addrs []netip.Addr
	next, total := sc.Scope().Hosts(sc.s.cursor, sc.s.cfg.MaxHosts, func(a netip.Addr) bool {
		addrs = append(addrs, a)
		return true
	})
	sc.s.cursor = next
	ports := sc.Scope().Ports()
	sc.Logger().Debug("discovery sweep", "addresses", len(addrs), "of", total, "ports", ports)
	var mu sync.Mutex
	sc.Each(ctx, addrs, func(ctx context.Context, a netip.Addr) {
		var found []proto.DiscoveredService
		alive := false
		for _, p := range ports {
			if sc.Wait(ctx) != nil {
				return
			}
			open, up := probeTCP(ctx, sc, netip.AddrPortFrom(a, uint16(p))) //nolint:gosec // scope ports are in range
			alive = alive || up
			if open {
				found = append(found, serviceForPort(p))
			}
		}
		if alive {
			mu.Lock()
			defer mu.Unlock()
			sc.Report(w.Name(), proto.Discovered{Addr: a.String(), Services: found})
		}
	})
	return nil
}

// probeTCP says whether ap accepted a connection (open) and whether
// anything answered at all (up: accepted or refused).
func probeTCP(ctx context.Context, sc *Scan, ap netip.AddrPort) (open, up bool) {
	ctx, cancel := context.WithTimeout(ctx, sc.Timeout())
	defer cancel()
	c, err := sc.Dial(ctx, "tcp", ap.String())
	if err == nil {
		_ = c.Close()
		return true, true
	}
	return false, errors.Is(err, syscall.ECONNREFUSED)
}

// serviceForPort names what a port usually is.
func serviceForPort(p int) proto.DiscoveredService {
	switch p {
	case 80, 8080:
		return proto.DiscoveredService{Kind: proto.ServiceWeb, Port: p, Scheme: "http", Name: "http"}
	case 443, 8443:
		return proto.DiscoveredService{Kind: proto.ServiceWeb, Port: p, Scheme: "https", Name: "https"}
	case 22:
		return proto.DiscoveredService{Kind: proto.ServiceSSH, Port: p, Name: "ssh"}
	case 5900:
		return proto.DiscoveredService{Kind: proto.ServiceVNC, Port: p, Name: "vnc"}
	case 631:
		return proto.DiscoveredService{Kind: proto.ServiceTCP, Port: p, Name: "ipp"}
	case 9100:
		return proto.DiscoveredService{Kind: proto.ServiceTCP, Port: p, Name: "raw printing"}
	}
	return proto.DiscoveredService{Kind: proto.ServiceTCP, Port: p, Name: "tcp/" + strconv.Itoa(p)}
}
