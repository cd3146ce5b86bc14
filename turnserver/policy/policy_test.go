package policy

import (
	"errors"
	"net/netip"
	"testing"
)

var (
	relay4 = netip.MustParseAddr("203.0.113.10")
	relay6 = netip.MustParseAddr("2001:db8::10")
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func mustNew(t testing.TB, cfg Config) *Policy {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

func TestCheckRefusesNonPublicPeersByDefault(t *testing.T) {
	p := mustNew(t, Config{})
	tests := []struct {
		name  string
		relay netip.Addr
		peer  string
		want  error
	}{
		{"loopback", relay4, "127.0.0.1:80", ErrDeniedRange},
		{"loopback other", relay4, "127.255.0.7:80", ErrDeniedRange},
		{"unspecified v4", relay4, "0.0.0.0:80", ErrDeniedRange},
		{"this network", relay4, "0.1.2.3:80", ErrDeniedRange},
		{"rfc1918 10", relay4, "10.0.0.1:80", ErrDeniedRange},
		{"rfc1918 172.16", relay4, "172.16.5.4:80", ErrDeniedRange},
		{"rfc1918 172.31", relay4, "172.31.255.255:80", ErrDeniedRange},
		{"rfc1918 192.168", relay4, "192.168.1.1:80", ErrDeniedRange},
		{"cgnat", relay4, "100.64.0.1:80", ErrDeniedRange},
		{"link-local", relay4, "169.254.1.1:80", ErrDeniedRange},
		{"metadata", relay4, "169.254.169.254:80", ErrDeniedRange},
		{"multicast v4", relay4, "224.0.0.251:5353", ErrDeniedRange},
		{"multicast v4 high", relay4, "239.255.255.250:1900", ErrDeniedRange},
		{"broadcast", relay4, "255.255.255.255:67", ErrDeniedRange},
		{"reserved", relay4, "240.0.0.1:80", ErrDeniedRange},
		{"mapped loopback", relay4, "[::ffff:127.0.0.1]:80", ErrDeniedRange},
		{"mapped private", relay4, "[::ffff:10.0.0.1]:80", ErrDeniedRange},
		{"mapped metadata", relay4, "[::ffff:169.254.169.254]:80", ErrDeniedRange},
		{"mapped unspecified", relay4, "[::ffff:0.0.0.0]:80", ErrDeniedRange},
		{"v6 loopback", relay6, "[::1]:80", ErrDeniedRange},
		{"v6 unspecified", relay6, "[::]:80", ErrDeniedRange},
		{"v6 ipv4-compatible loopback", relay6, "[::127.0.0.1]:80", ErrDeniedRange},
		{"v6 link-local", relay6, "[fe80::1]:80", ErrDeniedRange},
		{"v6 link-local zoned", relay6, "[fe80::1%eth0]:80", ErrDeniedRange},
		{"v6 ula", relay6, "[fd00::1]:80", ErrDeniedRange},
		{"v6 multicast", relay6, "[ff02::1]:80", ErrDeniedRange},
		{"nat64 of loopback", relay6, "[64:ff9b::7f00:1]:80", ErrDeniedRange},
		{"nat64 of metadata", relay6, "[64:ff9b::a9fe:a9fe]:80", ErrDeniedRange},
		{"6to4 of private", relay6, "[2002:0a00:0001::1]:80", ErrDeniedRange},
		{"teredo server private", relay6, "[2001:0:0a00:0001::1]:80", ErrDeniedRange},
		{"teredo client loopback", relay6, "[2001:0:0808:0808:0:0:80ff:fffe]:80", ErrDeniedRange},
		{"family v6 peer on v4 relay", relay4, "[2001:db8::1]:80", ErrFamilyMismatch},
		{"family v4 peer on v6 relay", relay6, "8.8.8.8:80", ErrFamilyMismatch},
		{"family mapped public on v6 relay", relay6, "[::ffff:8.8.8.8]:80", ErrFamilyMismatch},
		{"port zero", relay4, "8.8.8.8:0", ErrInvalidPeer},
		{"public v4", relay4, "8.8.8.8:3478", nil},
		{"mapped public v4", relay4, "[::ffff:8.8.8.8]:3478", nil},
		{"public v6", relay6, "[2606:4700::1111]:443", nil},
		{"nat64 of public", relay6, "[64:ff9b::808:808]:53", nil},
		{"6to4 of public", relay6, "[2002:0808:0808::1]:53", nil},
		{"just outside 172.16/12", relay4, "172.32.0.1:80", nil},
		{"just outside cgnat", relay4, "100.128.0.1:80", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.Check(tt.relay, ap(tt.peer))
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Check(%v, %v) = %v, want %v", tt.relay, tt.peer, err, tt.want)
			}
			// The IP-level check must agree on everything but the port.
			if tt.want == ErrInvalidPeer {
				return
			}
			errIP := p.CheckIP(tt.relay, ap(tt.peer).Addr())
			if !errors.Is(errIP, tt.want) || (tt.want == nil) != (errIP == nil) {
				t.Fatalf("CheckIP(%v, %v) = %v, want %v", tt.relay, tt.peer, errIP, tt.want)
			}
		})
	}
}

func TestCheckAllowListReenablesRangesExplicitly(t *testing.T) {
	// Loopback is always the relay host itself: allowing it takes
	// AllowOwnHost as well as the prefix (the all-on-one-machine setup).
	p := mustNew(t, Config{AllowOwnHost: true, Allow: []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::ffff:10.1.0.0/112"), // mapped form is converted to 10.1.0.0/16
	}})
	tests := []struct {
		peer string
		want error
	}{
		{"127.0.0.1:9", nil},
		{"[::ffff:127.0.0.1]:9", nil},
		{"10.1.2.3:9", nil},
		{"[::ffff:10.1.2.3]:9", nil},
		{"10.2.0.1:9", ErrDeniedRange},
		{"169.254.169.254:80", ErrDeniedRange},
		{"[::1]:9", ErrFamilyMismatch}, // Allow never overrides the family rule
	}
	for _, tt := range tests {
		t.Run(tt.peer, func(t *testing.T) {
			if err := p.Check(relay4, ap(tt.peer)); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Check(%v) = %v, want %v", tt.peer, err, tt.want)
			}
		})
	}
}

func TestCheckRefusesServicePortsEvenWhenAllowed(t *testing.T) {
	p := mustNew(t, Config{
		Allow:        []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		AllowOwnHost: true, // service ports stay refused even then
		ServicePorts: []netip.AddrPort{ap("203.0.113.10:3478"), ap("127.0.0.1:9090"), ap("[::ffff:198.51.100.1]:443")},
	})
	tests := []struct {
		peer string
		want error
	}{
		{"203.0.113.10:3478", ErrServicePort},
		{"[::ffff:203.0.113.10]:3478", ErrServicePort},
		{"127.0.0.1:9090", ErrServicePort},
		{"198.51.100.1:443", ErrServicePort},
		{"203.0.113.10:3479", nil},
		{"127.0.0.1:9091", nil},
	}
	for _, tt := range tests {
		t.Run(tt.peer, func(t *testing.T) {
			if err := p.Check(relay4, ap(tt.peer)); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Check(%v) = %v, want %v", tt.peer, err, tt.want)
			}
		})
	}
	// Permissions are per IP: the relay's service IP stays permitted.
	if err := p.CheckIP(relay4, netip.MustParseAddr("203.0.113.10")); err != nil {
		t.Fatalf("CheckIP(service IP) = %v, want nil", err)
	}
}

func TestCheckAllowsOtherAllocationsOnTheSameRelay(t *testing.T) {
	relayIP := netip.MustParseAddr("127.0.0.2")
	live := ap("127.0.0.2:50000")
	p := mustNew(t, Config{
		RelayIPs:     []netip.Addr{relayIP},
		ServicePorts: []netip.AddrPort{ap("127.0.0.2:3478")},
		IsRelayAddr:  func(a netip.AddrPort) bool { return a == live },
	})
	tests := []struct {
		name string
		peer string
		want error
	}{
		{"live allocation", "127.0.0.2:50000", nil},
		{"live allocation mapped", "[::ffff:127.0.0.2]:50000", nil},
		{"other port on relay IP", "127.0.0.2:50001", ErrDeniedRange},
		{"service port on relay IP", "127.0.0.2:3478", ErrServicePort},
		{"other loopback", "127.0.0.1:50000", ErrDeniedRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := p.Check(relayIP, ap(tt.peer)); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Check(%v) = %v, want %v", tt.peer, err, tt.want)
			}
		})
	}
	if err := p.CheckIP(relayIP, netip.MustParseAddr("::ffff:127.0.0.2")); err != nil {
		t.Fatalf("CheckIP(relay IP) = %v, want nil", err)
	}
	if err := p.CheckIP(relayIP, netip.MustParseAddr("127.0.0.1")); !errors.Is(err, ErrDeniedRange) {
		t.Fatalf("CheckIP(127.0.0.1) = %v, want ErrDeniedRange", err)
	}
}

// TestCheckRefusesTheRelayHostItself: with an ordinary public relay IP
// (where the range rules allow everything), every address of the relay host
// is refused on every port but live allocations', in every spelling, and even
// when an Allow prefix covers it; other hosts of the same public subnet stay
// reachable.
func TestCheckRefusesTheRelayHostItself(t *testing.T) {
	public := netip.MustParseAddr("203.0.113.5")
	second := netip.MustParseAddr("198.51.100.7")           // another interface, also public
	host := map[netip.Addr]bool{public: true, second: true, // interface addresses
		netip.MustParseAddr("203.0.113.255"): true, // eth0's subnet broadcast
		netip.MustParseAddr("10.20.0.1"):     true} // a private leg
	live := netip.AddrPortFrom(public, 50000)
	cfg := Config{
		Allow:       []netip.Prefix{netip.MustParsePrefix("10.20.0.0/24")},
		RelayIPs:    []netip.Addr{public},
		IsRelayAddr: func(a netip.AddrPort) bool { return a == live },
		IsHostAddr:  func(a netip.Addr) bool { return host[a] },
	}
	p := mustNew(t, cfg)
	tests := []struct {
		peer string
		want error
	}{
		{"203.0.113.5:53", ErrOwnHost},
		{"[::ffff:203.0.113.5]:53", ErrOwnHost},
		{"203.0.113.5:50001", ErrOwnHost},
		{"198.51.100.7:161", ErrOwnHost},
		{"[::ffff:198.51.100.7]:161", ErrOwnHost},
		{"203.0.113.255:514", ErrOwnHost},
		{"10.20.0.1:53", ErrOwnHost},   // Allow covers it; the host rule still holds
		{"0.0.0.0:53", ErrDeniedRange}, // denied ranges keep their own reason
		{"[::ffff:0.0.0.0]:53", ErrDeniedRange},
		{"127.0.0.1:53", ErrDeniedRange},
		{"203.0.113.5:50000", nil}, // a live allocation: two relayed peers meet
		{"[::ffff:203.0.113.5]:50000", nil},
		{"203.0.113.6:53", nil},   // a neighbour on the same public subnet
		{"10.20.0.5:53", nil},     // allowed explicitly, not the host
		{"198.51.100.8:161", nil}, // a neighbour on the second subnet
	}
	for _, tt := range tests {
		t.Run(tt.peer, func(t *testing.T) {
			if err := p.Check(public, ap(tt.peer)); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Check(%v) = %v, want %v", tt.peer, err, tt.want)
			}
		})
	}
	v6 := mustNew(t, Config{IsHostAddr: func(a netip.Addr) bool { return a == netip.MustParseAddr("2001:db8::5") || host[a] }})
	for _, peer := range []string{"[2001:db8::5]:53", "[64:ff9b::cb00:7105]:53", "[2002:cb00:7105::1]:53"} {
		if err := v6.Check(relay6, ap(peer)); !errors.Is(err, ErrOwnHost) {
			t.Errorf("Check(%v) on a v6 relay = %v, want ErrOwnHost", peer, err)
		}
	}
	for ip, want := range map[string]error{
		"203.0.113.5": nil, "::ffff:203.0.113.5": nil, // the relay IP: per-port decisions follow
		"198.51.100.7": ErrOwnHost, "::ffff:198.51.100.7": ErrOwnHost, "203.0.113.255": ErrOwnHost,
		"10.20.0.1": ErrOwnHost, "0.0.0.0": ErrDeniedRange, "203.0.113.6": nil,
	} {
		if err := p.CheckIP(public, netip.MustParseAddr(ip)); !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Errorf("CheckIP(%v) = %v, want %v", ip, err, want)
		}
	}
	// Loopback allowed explicitly is still the host.
	lo := mustNew(t, Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	for _, peer := range []string{"127.0.0.1:53", "127.1.2.3:53", "[::ffff:127.0.0.1]:53"} {
		if err := lo.Check(public, ap(peer)); !errors.Is(err, ErrOwnHost) {
			t.Errorf("with 127/8 allowed, Check(%v) = %v, want ErrOwnHost", peer, err)
		}
	}
	cfg.AllowOwnHost = true
	if err := mustNew(t, cfg).Check(public, ap("198.51.100.7:161")); err != nil {
		t.Errorf("with AllowOwnHost, Check(second interface) = %v, want nil", err)
	}
}

func TestNewRefusesInvalidConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"invalid prefix", Config{Allow: []netip.Prefix{{}}}},
		{"unspecified service port", Config{ServicePorts: []netip.AddrPort{ap("0.0.0.0:3478")}}},
		{"invalid service port", Config{ServicePorts: []netip.AddrPort{{}}}},
		{"unspecified relay IP", Config{RelayIPs: []netip.Addr{netip.IPv4Unspecified()}}},
		{"mapped unspecified relay IP", Config{RelayIPs: []netip.Addr{netip.MustParseAddr("::ffff:0.0.0.0")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil {
				t.Fatal("New succeeded, want error")
			}
		})
	}
}

func TestCheckRefusesInvalidAddresses(t *testing.T) {
	p := mustNew(t, Config{})
	if err := p.Check(relay4, netip.AddrPort{}); !errors.Is(err, ErrInvalidPeer) {
		t.Fatalf("Check(zero) = %v, want ErrInvalidPeer", err)
	}
	if err := p.Check(netip.Addr{}, ap("8.8.8.8:53")); !errors.Is(err, ErrFamilyMismatch) {
		t.Fatalf("Check(zero relay) = %v, want ErrFamilyMismatch", err)
	}
}

// BenchmarkCheck is the per-datagram cost of the policy with a host-address
// hook like the relay's (a map lookup).
func BenchmarkCheck(b *testing.B) {
	host := map[netip.Addr]struct{}{netip.MustParseAddr("198.51.100.7"): {}, netip.MustParseAddr("203.0.113.5"): {}}
	p := mustNew(b, Config{
		RelayIPs:    []netip.Addr{netip.MustParseAddr("203.0.113.5")},
		IsRelayAddr: func(netip.AddrPort) bool { return false },
		IsHostAddr:  func(a netip.Addr) bool { _, ok := host[a]; return ok },
	})
	relay, peer := netip.MustParseAddr("203.0.113.5"), ap("8.8.8.8:3478")
	for b.Loop() {
		if p.Check(relay, peer) != nil {
			b.Fatal("refused")
		}
	}
}
