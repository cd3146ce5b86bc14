package policy

import (
	"errors"
	"net/netip"
	"testing"
)

// sentinel maps an error to the sentinel it wraps, so two decisions can be
// compared regardless of the message text.
func sentinel(err error) error {
	for _, s := range []error{ErrInvalidPeer, ErrFamilyMismatch, ErrDeniedRange, ErrServicePort, ErrOwnHost} {
		if errors.Is(err, s) {
			return s
		}
	}
	return err
}

// FuzzPolicyUnmapInvariant asserts that an IPv4-mapped IPv6 address is judged
// exactly like its IPv4 form, by both checks, and that no mapped spelling of a
// default-denied IPv4 address, nor of the relay host's own addresses, is
// ever allowed. The seeds run in plain go test.
func FuzzPolicyUnmapInvariant(f *testing.F) {
	seeds := []string{
		"::ffff:127.0.0.1", "::ffff:0.0.0.0", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
		"::ffff:192.168.1.1", "::ffff:100.64.0.1", "::ffff:255.255.255.255", "::ffff:224.0.0.1",
		"::ffff:127.0.0.2", "::ffff:8.8.8.8", "::ffff:203.0.113.10", "::1", "::", "fe80::1",
		"64:ff9b::7f00:1", "2002:7f00:1::", "2001:db8::1", "127.0.0.1", "8.8.8.8",
		"::ffff:198.51.100.7", "198.51.100.7", "64:ff9b::c633:6407",
	}
	for _, s := range seeds {
		a := netip.MustParseAddr(s).As16()
		f.Add(a[:], uint16(3478), true)
		f.Add(a[:], uint16(50000), false)
	}
	relayIP := netip.MustParseAddr("127.0.0.2")
	hostIP := netip.MustParseAddr("198.51.100.7") // another interface of the relay host
	p := mustNew(f, Config{
		Allow:        []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")},
		ServicePorts: []netip.AddrPort{ap("203.0.113.10:3478"), ap("127.0.0.1:3478")},
		RelayIPs:     []netip.Addr{relayIP},
		IsRelayAddr:  func(a netip.AddrPort) bool { return a == ap("127.0.0.2:50000") },
		IsHostAddr:   func(a netip.Addr) bool { return a == hostIP },
	})
	f.Fuzz(func(t *testing.T, b []byte, port uint16, v4relay bool) {
		if len(b) != 16 {
			return
		}
		x := netip.AddrFrom16([16]byte(b))
		relay := relayIP
		if !v4relay {
			relay = relay6
		}
		got := sentinel(p.Check(relay, netip.AddrPortFrom(x, port)))
		want := sentinel(p.Check(relay, netip.AddrPortFrom(x.Unmap(), port)))
		if got != want {
			t.Fatalf("Check(%v:%d) = %v but Check(%v:%d) = %v", x, port, got, x.Unmap(), port, want)
		}
		gotIP := sentinel(p.CheckIP(relay, x))
		wantIP := sentinel(p.CheckIP(relay, x.Unmap()))
		if gotIP != wantIP {
			t.Fatalf("CheckIP(%v) = %v but CheckIP(%v) = %v", x, gotIP, x.Unmap(), wantIP)
		}
		if u := x.Unmap(); u.Is4() && v4relay {
			_, isDenied := denied(u)
			allowedExplicitly := netip.MustParsePrefix("10.1.0.0/16").Contains(u) || u == relayIP
			if isDenied && !allowedExplicitly && gotIP == nil {
				t.Fatalf("CheckIP allowed denied address %v", x)
			}
			if (u == hostIP || u.IsLoopback() || u.IsUnspecified()) && got == nil && port != 50000 {
				t.Fatalf("Check allowed the relay host's own %v:%d", x, port)
			}
		}
	})
}
