package relay

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// statsCollector exports Stats as Prometheus metrics, read at scrape time
// from the same counters Stats reads: the relay's hot paths do no more
// work for metrics than they already do.
type statsCollector struct {
	s     *Server
	descs map[string]*prometheus.Desc
}

// Metric names, each prefixed with porthole_turn_.
var turnMetrics = []struct {
	name, help string
	labels     []string
}{
	{"allocations_active", "Live TURN allocations.", nil},
	{"allocations_total", "TURN allocations ever created.", nil},
	{"allocations_refused_quota_total", "Allocate requests refused because the credential's quota was reached.", nil},
	{"auth_failures_total", "Requests refused for their credentials.", nil},
	{"permissions_refused_total", "CreatePermission and ChannelBind peers refused by the peer policy.", nil},
	{"datagrams_refused_total", "Datagrams towards a refused peer, dropped.", nil},
	{"relayed_packets_total", "Datagrams relayed, by direction (to_peer: from a client to a peer; from_peer: received from peers).", []string{"direction"}},
	{"relayed_bytes_total", "Bytes relayed, by direction.", []string{"direction"}},
}

func newStatsCollector(s *Server) *statsCollector {
	c := &statsCollector{s: s, descs: map[string]*prometheus.Desc{}}
	for _, m := range turnMetrics {
		c.descs[m.name] = prometheus.NewDesc("porthole_turn_"+m.name, m.help, m.labels, nil)
	}
	return c
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	gauge := func(name string, v float64) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.GaugeValue, v)
	}
	counter := func(name string, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.CounterValue, float64(v), labels...)
	}
	gauge("allocations_active", float64(st.AllocationsActive))
	counter("allocations_total", st.AllocationsTotal)
	counter("allocations_refused_quota_total", st.AllocationsRefusedQuota)
	counter("auth_failures_total", st.AuthFailures)
	counter("permissions_refused_total", st.PermissionsRefused)
	counter("datagrams_refused_total", st.DatagramsRefused)
	counter("relayed_packets_total", st.PacketsToPeers, "to_peer")
	counter("relayed_packets_total", st.PacketsFromPeers, "from_peer")
	counter("relayed_bytes_total", st.BytesToPeers, "to_peer")
	counter("relayed_bytes_total", st.BytesFromPeers, "from_peer")
}

// registerMetrics registers the server's metrics on reg, if any.
func (s *Server) registerMetrics(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	if err := reg.Register(newStatsCollector(s)); err != nil {
		return fmt.Errorf("%w: metrics: %w", ErrInvalidConfig, err)
	}
	return nil
}
