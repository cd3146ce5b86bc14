// Package metrics exports signaling's Prometheus metrics: connected agents,
// sessions by state and by path (direct or relayed), how long sessions take
// to set up, the bytes their access logs account for, and the HTTP API's
// requests by route and status.
//
// Everything is registered on the registry the caller passes (no default
// registerer, no package state). The session metrics follow the hub's
// lifecycle events (hub.Event), so they cost one map update per state
// change and nothing per message.
package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/hub"
)

// Session states of porthole_signaling_sessions.
var sessionStates = []string{hub.EventVerifying, hub.EventReady, hub.EventConnected}

// Setup stages of porthole_signaling_session_setup_seconds.
const (
	StageReady     = "ready"     // requested → the agent accepted
	StageConnected = "connected" // requested → the peers first connected
)

// Metrics is signaling's set of metrics. The zero of a *Metrics (nil) is
// valid and records nothing.
type Metrics struct {
	sessions  *prometheus.GaugeVec     // state
	paths     *prometheus.GaugeVec     // path, of connected sessions
	started   prometheus.Counter       //
	ended     *prometheus.CounterVec   // reason
	connected *prometheus.CounterVec   // path: every time a session connects or changes path
	setup     *prometheus.HistogramVec // stage
	bytes     *prometheus.CounterVec   // direction
	requests  *prometheus.CounterVec   // route, code

	mu   sync.Mutex
	live map[string]*liveSession
}

// liveSession is what the metrics keep of a session until it ends.
type liveSession struct {
	state     string
	path      string
	requested time.Time
	connected bool   // has connected once
	seq       uint64 // highest access-log sequence number counted
}

// New registers signaling's metrics on reg. agents reports how many agents
// are connected to this node, read at scrape time.
func New(reg prometheus.Registerer, agents func() int) (*Metrics, error) {
	m := &Metrics{
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "porthole_signaling_sessions",
			Help: "Live sessions on this node by state: verifying (the agent checks the device), ready (waiting for the technician's peer), connected.",
		}, []string{"state"}),
		paths: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "porthole_signaling_connected_sessions",
			Help: "Connected sessions on this node by path: direct (peer to peer) or relay (through TURN).",
		}, []string{"path"}),
		started: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "porthole_signaling_sessions_started_total",
			Help: "Sessions requested on this node.",
		}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "porthole_signaling_sessions_ended_total",
			Help: "Sessions ended on this node, by reason.",
		}, []string{"reason"}),
		connected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "porthole_signaling_session_connections_total",
			Help: "Times a session's peers connected or changed path, by the path they took.",
		}, []string{"path"}),
		setup: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "porthole_signaling_session_setup_seconds",
			Help:    "Time from a session's request until the agent accepted it (stage ready) and until its peers first connected (stage connected).",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60},
		}, []string{"stage"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "porthole_signaling_access_bytes_total",
			Help: "Bytes of device traffic in the agents' access logs, by direction (request: towards the device; response: from it).",
		}, []string{"direction"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "porthole_signaling_http_requests_total",
			Help: "HTTP requests by route pattern and status code (101 for WebSocket upgrades).",
		}, []string{"route", "code"}),
		live: map[string]*liveSession{},
	}
	agentsGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "porthole_signaling_agents_connected",
		Help: "Agents connected to this node.",
	}, func() float64 { return float64(agents()) })
	for _, c := range []prometheus.Collector{agentsGauge, m.sessions, m.paths, m.started, m.ended, m.connected, m.setup, m.bytes, m.requests} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Export every state and path at zero from the start, so a dashboard
	// need not guess whether a missing series means zero.
	for _, s := range sessionStates {
		m.sessions.WithLabelValues(s)
	}
	for _, p := range []string{proto.PathDirect, proto.PathRelay} {
		m.paths.WithLabelValues(p)
		m.connected.WithLabelValues(p)
	}
	for _, st := range []string{StageReady, StageConnected} {
		m.setup.WithLabelValues(st)
	}
	for _, d := range []string{"request", "response"} {
		m.bytes.WithLabelValues(d)
	}
	return m, nil
}

// Event follows one step of a session's life (hub.Options.Events). It does
// not block.
func (m *Metrics) Event(e hub.Event) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.live[e.Session]
	if s == nil {
		if e.State != hub.EventRequested {
			return // a session this node did not see begin (an orphan end)
		}
		s = &liveSession{requested: e.Time}
		m.live[e.Session] = s
		m.started.Inc()
	}
	switch e.State {
	case hub.EventVerifying, hub.EventReady:
		m.moveLocked(s, e.State, "")
		if e.State == hub.EventReady {
			m.setup.WithLabelValues(StageReady).Observe(e.Time.Sub(s.requested).Seconds())
		}
	case hub.EventConnected:
		path := e.Path
		if path != proto.PathDirect && path != proto.PathRelay {
			path = proto.PathDirect
		}
		m.moveLocked(s, hub.EventConnected, path)
		m.connected.WithLabelValues(path).Inc()
		if !s.connected {
			s.connected = true
			m.setup.WithLabelValues(StageConnected).Observe(e.Time.Sub(s.requested).Seconds())
		}
	case hub.EventEnded:
		m.moveLocked(s, "", "")
		delete(m.live, e.Session)
		m.ended.WithLabelValues(reasonLabel(e.Reason)).Inc()
	}
}

// moveLocked moves s to state (and path, when connected), keeping the
// gauges in step.
func (m *Metrics) moveLocked(s *liveSession, state, path string) {
	if s.state != "" {
		m.sessions.WithLabelValues(s.state).Dec()
	}
	if s.path != "" {
		m.paths.WithLabelValues(s.path).Dec()
	}
	s.state, s.path = state, path
	if state != "" {
		m.sessions.WithLabelValues(state).Inc()
	}
	if path != "" {
		m.paths.WithLabelValues(path).Inc()
	}
}

// reasonLabel keeps the reason label's values to the known end reasons.
func reasonLabel(r string) string {
	switch proto.EndReason(r) {
	case proto.EndExpired, proto.EndByClient, proto.EndByAgent, proto.EndByAdmin,
		proto.EndAgentLost, proto.EndClientLost, proto.EndError:
		return r
	}
	if r == hub.ReasonVerificationFailed {
		return r
	}
	return "other"
}

// AccessLog counts the bytes of a batch of session's access log once it
// is stored. Entries already counted (an agent resending after a
// reconnect) are skipped.
func (m *Metrics) AccessLog(session string, l *proto.AccessLog) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.live[session]
	var req, resp int64
	for _, e := range l.Entries {
		if s != nil {
			if e.Seq <= s.seq {
				continue
			}
			s.seq = e.Seq
		}
		req += e.ReqBytes
		resp += e.RespBytes
	}
	m.bytes.WithLabelValues("request").Add(float64(max(req, 0)))
	m.bytes.WithLabelValues("response").Add(float64(max(resp, 0)))
}
