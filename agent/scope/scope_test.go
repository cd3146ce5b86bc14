package scope

import (
	"errors"
	"net/netip"
	"testing"
)

func mustScope(t *testing.T, cfg Config, own ...string) *Scope {
	t.Helper()
	var ps []netip.Prefix
	for _, o := range own {
		ps = append(ps, netip.MustParsePrefix(o))
	}
	s, err := New(cfg, ps)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestScopeDefaultsToOwnSubnetsAndWebPorts(t *testing.T) {
	s := mustScope(t, Config{}, "192.168.1.10/24", "10.9.0.5/16")
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"192.168.1.20", true},
		{"10.9.200.1", true},
		{"192.168.2.20", false},
		{"192.168.1.10", false}, // the agent itself
		{"192.168.1.0", false},  // network
		{"192.168.1.255", false},
		{"127.0.0.1", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:192.168.1.20", true},
		{"169.254.169.254", false},
		{"224.0.0.251", false},
		{"0.0.0.0", false},
		{"::", false},
		{"::1", false},
		{"fe80::1", false},
	} {
		err := s.CheckAddr(netip.MustParseAddr(tc.addr))
		if (err == nil) != tc.ok {
			t.Errorf("CheckAddr(%s) = %v, want ok=%v", tc.addr, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrOutOfScope) {
			t.Errorf("CheckAddr(%s): %v does not wrap ErrOutOfScope", tc.addr, err)
		}
	}
	if s.CheckPort(80) != nil || s.CheckPort(443) != nil {
		t.Error("default ports refused")
	}
	if s.CheckPort(9100) == nil {
		t.Error("9100 allowed without adoption")
	}
	if s.CheckPort(9100, 9100) != nil {
		t.Error("an adopted port is refused under default ports")
	}
	if err := s.CheckDevice(netip.MustParseAddr("192.168.1.20"), []int{80, 9100, 22}); err != nil {
		t.Errorf("device under default ports: %v", err)
	}
}

func TestScopeExplicitPortsBoundAdoption(t *testing.T) {
	s := mustScope(t, Config{CIDRs: []string{"10.1.0.0/24"}, Ports: []int{443, 80, 80, 8080}}, "10.1.0.10/24", "172.16.0.2/24")
	if err := s.CheckAddr(netip.MustParseAddr("172.16.0.3")); err == nil {
		t.Error("an own subnet that the site left out is in scope")
	}
	if err := s.CheckDevice(netip.MustParseAddr("10.1.0.20"), []int{80, 8080}); err != nil {
		t.Error(err)
	}
	if err := s.CheckDevice(netip.MustParseAddr("10.1.0.20"), []int{80, 22}); err == nil {
		t.Error("port 22 accepted outside the explicit ports")
	}
	if got := s.Ports(); len(got) != 3 {
		t.Errorf("ports %v", got)
	}
}

func TestScopeRefusesBadConfig(t *testing.T) {
	for _, c := range []Config{
		{CIDRs: []string{"127.0.0.0/8"}},
		{CIDRs: []string{"0.0.0.0/0"}},
		{CIDRs: []string{"::/0"}},
		{CIDRs: []string{"224.0.0.0/4"}},
		{CIDRs: []string{"::ffff:10.0.0.0/104"}},
		{CIDRs: []string{"10.0.0.0/33"}},
		{Ports: []int{0}},
		{Ports: []int{70000}},
	} {
		if _, err := New(c, nil); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func TestScopeControlChecksResolvedAddress(t *testing.T) {
	s := mustScope(t, Config{CIDRs: []string{"10.1.0.0/24"}}, "10.1.0.10/24")
	if err := s.Control(t.Context(), "tcp4", "10.1.0.20:80", nil); err != nil {
		t.Error(err)
	}
	for _, a := range []string{"127.0.0.1:80", "[::ffff:127.0.0.1]:80", "10.1.1.20:80", "10.1.0.10:22", "example:80"} {
		if err := s.Control(t.Context(), "tcp", a, nil); err == nil {
			t.Errorf("dial to %s allowed", a)
		}
	}
}

func TestScopeHostsResumesAndWraps(t *testing.T) {
	s := mustScope(t, Config{CIDRs: []string{"10.1.0.0/29", "10.2.0.0/30"}}, "10.1.0.1/29")
	var got []string
	_, total := s.Hosts(0, 100, func(a netip.Addr) bool { got = append(got, a.String()); return true })
	// 10.1.0.0/29: .2-.6 (.0 network, .1 own, .7 broadcast); 10.2.0.0/30: .1-.2.
	want := []string{"10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.6", "10.2.0.1", "10.2.0.2"}
	if total != 12 || len(got) != len(want) {
		t.Fatalf("total %d, got %v", total, got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	got = nil
	next, _ := s.Hosts(0, 3, func(a netip.Addr) bool { got = append(got, a.String()); return true })
	if len(got) != 3 || got[2] != "10.1.0.4" {
		t.Fatalf("first three: %v", got)
	}
	got = nil
	_, _ = s.Hosts(next, 5, func(a netip.Addr) bool { got = append(got, a.String()); return true })
	if len(got) != 5 || got[0] != "10.1.0.5" || got[4] != "10.1.0.2" {
		t.Fatalf("resumed: %v", got)
	}
	big := mustScope(t, Config{CIDRs: []string{"10.0.0.0/8"}})
	n := 0
	_, total = big.Hosts(0, 4096, func(netip.Addr) bool { n++; return true })
	if n != 4096 || total != 1<<24 {
		t.Fatalf("a /8 swept %d of %d", n, total)
	}
}

func FuzzScopeUnmap(f *testing.F) {
	s, _ := New(Config{CIDRs: []string{"10.0.0.0/8", "fd00::/8"}}, []netip.Prefix{netip.MustParsePrefix("10.0.0.1/8")})
	f.Add([]byte{10, 0, 0, 2})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		if (s.CheckAddr(a) == nil) != (s.CheckAddr(a.Unmap()) == nil) {
			t.Fatalf("%s and its unmapped form disagree", a)
		}
		if s.CheckAddr(a) == nil && (a.Unmap().IsLoopback() || a.Unmap().IsMulticast()) {
			t.Fatalf("%s in scope", a)
		}
	})
}
