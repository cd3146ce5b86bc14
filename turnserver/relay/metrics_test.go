package relay

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetricsFollowStats scrapes the registry around an allocation, a
// refused permission, a failed authentication and relayed datagrams and
// sees every counter move.
func TestMetricsFollowStats(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv := startServer(t, Config{Allow: []netip.Prefix{loopback8}, AllowOwnHost: true, Metrics: reg})
	value := func(name string, labels ...string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				ok := true
				for i, lp := range m.GetLabel() {
					if i < len(labels) && lp.GetValue() != labels[i] {
						ok = false
					}
				}
				if !ok {
					continue
				}
				if m.Gauge != nil {
					return m.GetGauge().GetValue()
				}
				return m.GetCounter().GetValue()
			}
		}
		t.Fatalf("no metric %s%v", name, labels)
		return 0
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 10 {
		t.Fatalf("%d metrics (%v), want 10", n, err)
	}
	if value("porthole_turn_allocations_active") != 0 || value("porthole_turn_allocations_total") != 0 {
		t.Fatal("allocations before any client")
	}

	bad := newRawClient(t, srv.Addrs().UDP, "1:s_bad", "d3Jvbmc=")
	bad.allocateUnauthenticated()
	user, pass := validCreds("s_metrics")
	c := newRawClient(t, srv.Addrs().UDP, user, pass)
	c.allocate()
	target := newSink(t, "127.0.0.1:0")
	c.createPermission(target.addr)
	c.send(target.addr, []byte("metered"))
	target.expect(t, []byte("metered"))
	c.createPermission(netip.MustParseAddrPort("169.254.169.254:80")) // metadata: refused
	c.barrier()

	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"porthole_turn_allocations_active", nil, 1},
		{"porthole_turn_allocations_total", nil, 1},
		{"porthole_turn_permissions_refused_total", nil, 1},
		{"porthole_turn_relayed_packets_total", []string{"to_peer"}, 1},
		{"porthole_turn_relayed_bytes_total", []string{"to_peer"}, float64(len("metered"))},
	} {
		if got := value(tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	st := srv.Stats()
	if got := value("porthole_turn_auth_failures_total"); got != float64(st.AuthFailures) {
		t.Errorf("auth failures %v, stats say %d", got, st.AuthFailures)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP porthole_turn_allocations_refused_quota_total Allocate requests refused because the credential's quota was reached.
# TYPE porthole_turn_allocations_refused_quota_total counter
porthole_turn_allocations_refused_quota_total 0
`), "porthole_turn_allocations_refused_quota_total"); err != nil {
		t.Error(err)
	}
}
