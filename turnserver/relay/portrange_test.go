package relay

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
)

// freeRange finds n consecutive UDP ports that are free on relayIP now.
func freeRange(t *testing.T, n int) (uint16, uint16) {
	t.Helper()
	for range 50 {
		base := 40000 + rand.IntN(20000)
		ok := true
		var held []net.PacketConn
		for p := base; p < base+n; p++ {
			c, err := net.ListenPacket("udp4", fmt.Sprintf("%s:%d", relayIP, p))
			if err != nil {
				ok = false
				break
			}
			held = append(held, c)
		}
		for _, c := range held {
			c.Close()
		}
		if ok {
			return uint16(base), uint16(base + n - 1)
		}
	}
	t.Fatal("no free port range found")
	return 0, 0
}

// TestRelayPortRange: with RelayPortMin/Max every relayed address is in
// the range (so a firewall rule for it suffices), a full range refuses the
// next allocation (pion answers 508 Insufficient Capacity), and a freed
// port is used again.
func TestRelayPortRange(t *testing.T) {
	lo, hi := freeRange(t, 3)
	srv := startServer(t, Config{RelayPortMin: lo, RelayPortMax: hi})
	server := srv.Addrs().UDP
	seen := map[uint16]bool{}
	var relays []net.PacketConn
	for i := range 3 {
		user, pass := validCreds(fmt.Sprintf("range-%d", i))
		rc := allocate(t, newPionClient(t, server, user, pass))
		ap := rc.LocalAddr().(*net.UDPAddr).AddrPort()
		if ap.Port() < lo || ap.Port() > hi || ap.Addr() != relayIP {
			t.Fatalf("relayed address %s outside %s:%d-%d", ap, relayIP, lo, hi)
		}
		if seen[ap.Port()] {
			t.Fatalf("port %d handed out twice", ap.Port())
		}
		seen[ap.Port()] = true
		relays = append(relays, rc)
	}
	user, pass := validCreds("range-full")
	full := newPionClient(t, server, user, pass)
	if rc, err := full.Allocate(); err == nil {
		rc.Close()
		t.Fatalf("a fourth allocation got %s from a range of three ports", rc.LocalAddr())
	} else if code := turnErrorCode(err); code != 508 {
		t.Errorf("full range answered %v (code %d), want 508", err, code)
	}
	relays[0].Close()
	waitFor(t, "the freed allocation to close", func() bool { return srv.Stats().AllocationsActive == 2 })
	user, pass = validCreds("range-again")
	rc := allocate(t, newPionClient(t, server, user, pass))
	if p := rc.LocalAddr().(*net.UDPAddr).AddrPort().Port(); p < lo || p > hi {
		t.Fatalf("port %d outside the range after a free", p)
	}
}

func TestRelayPortRangeRefusesRequestedPortsOutside(t *testing.T) {
	s := &Server{cfg: Config{PublicIP: relayIP, RelayBindIP: relayIP, RelayPortMin: 40000, RelayPortMax: 40009}}
	g, err := newRelayGenerator(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.listen("udp4", 50000); !errors.Is(err, ErrPortOutsideRange) {
		t.Fatalf("requested port outside the range: %v", err)
	}
}
