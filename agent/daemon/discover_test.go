package daemon

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/porthole-dev/porthole/agent/discovery"
	"github.com/porthole-dev/porthole/agent/scope"
	"github.com/porthole-dev/porthole/proto"
)

// fakeSource reports n devices of the scope's first subnet and one
// outside it.
type fakeSource struct{ n int }

func (*fakeSource) Name() string { return "fake" }

func (f *fakeSource) Discover(_ context.Context, sc *discovery.Scan) error {
	base := sc.Scope().Prefixes()[0].Masked().Addr()
	a := base.Next()
	for range f.n {
		sc.Report("fake", proto.Discovered{Addr: a.String(), Model: "Model " + a.String()})
		a = a.Next()
	}
	sc.Report("fake", proto.Discovered{Addr: "203.0.113.7", Model: "outside"})
	return nil
}

func TestDiscoveryRunReportsInParts(t *testing.T) {
	sc, err := scope.New(scope.Config{CIDRs: []string{"10.20.0.0/16"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	scanner, err := discovery.New(discovery.Config{Scope: sc, Stages: [][]discovery.Source{{&fakeSource{n: 150}}}})
	if err != nil {
		t.Fatal(err)
	}
	h := startAgent(t, nil, nil, func(c *Config) { c.Scope, c.Scanner = sc, scanner })
	h.send(proto.TypeDiscoveryRun, "", &proto.DiscoveryRun{Reason: "test"})
	var parts []proto.DiscoveryReport
	seen := map[string]bool{}
	for len(parts) == 0 || !parts[len(parts)-1].Last {
		env := h.next()
		if env.Type != proto.TypeDiscoveryReport {
			continue
		}
		var r proto.DiscoveryReport
		if err := proto.DecodeData(env, &r); err != nil {
			t.Fatal(err)
		}
		if len(parts) > 0 && r.Scan != parts[0].Scan {
			t.Fatalf("scan id changed within one scan: %s then %s", parts[0].Scan, r.Scan)
		}
		for _, d := range r.Devices {
			if seen[d.Addr] {
				t.Fatalf("%s reported twice", d.Addr)
			}
			seen[d.Addr] = true
			if !netip.MustParsePrefix("10.20.0.0/16").Contains(netip.MustParseAddr(d.Addr)) {
				t.Fatalf("out-of-scope finding reported: %s", d.Addr)
			}
		}
		parts = append(parts, r)
	}
	if len(parts) != 3 || len(seen) != 150 {
		t.Fatalf("%d parts, %d devices; want 3 parts (64+64+22) and 150", len(parts), len(seen))
	}
	if got := strings.Join(parts[0].Scope, ","); got != "10.20.0.0/16" {
		t.Fatalf("scope %q", got)
	}
}

func TestDiscoveryOffSaysSo(t *testing.T) {
	h := startAgent(t, nil, nil)
	h.send(proto.TypeDiscoveryRun, "", &proto.DiscoveryRun{})
	for {
		env := h.next()
		if env.Type != proto.TypeError {
			continue
		}
		var e proto.Error
		_ = proto.DecodeData(env, &e)
		if e.Code != proto.CodeUnsupported || !strings.Contains(e.Message, "discovery is off") {
			t.Fatalf("error %s %q", e.Code, e.Message)
		}
		return
	}
}
