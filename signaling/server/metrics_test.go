package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/porthole-dev/porthole/internal/promserve"
	"github.com/porthole-dev/porthole/proto"
)

// TestMetricsFollowAgentsAndSessions scrapes /metrics while an agent
// connects and a session goes through its life: every gauge and counter
// moves as the session does.
func TestMetricsFollowAgentsAndSessions(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(c *Config) { c.Metrics = reg })
	ms := httptest.NewServer(promserve.Handler(reg, e.srv.log))
	t.Cleanup(ms.Close)
	scrape := func() promserve.Samples {
		t.Helper()
		s, err := promserve.Scrape(context.Background(), ms.URL+promserve.Path)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	expect := func(s promserve.Samples, want map[string]float64) {
		t.Helper()
		for k, v := range want {
			if got, ok := s[k]; !ok || got != v {
				t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
			}
		}
	}

	expect(scrape(), map[string]float64{
		`porthole_signaling_agents_connected`:                 0,
		`porthole_signaling_sessions{state="ready"}`:          0,
		`porthole_signaling_connected_sessions{path="relay"}`: 0,
	})
	agent := e.agent(agentKey, "printer-1")
	expect(scrape(), map[string]float64{`porthole_signaling_agents_connected`: 1})

	info := e.open(agent, techToken, "printer-1")
	expect(scrape(), map[string]float64{
		`porthole_signaling_sessions_started_total`:                                1,
		`porthole_signaling_sessions{state="ready"}`:                               1,
		`porthole_signaling_sessions{state="verifying"}`:                           0,
		`porthole_signaling_session_setup_seconds_count{stage="ready"}`:            1,
		`porthole_signaling_http_requests_total{code="201",route="/v1/sessions"}`:  1,
		`porthole_signaling_http_requests_total{code="101",route="GET /v1/agent"}`: 1,
	})

	client, _ := e.client(info.Token, dialOpts{})
	agent.send(proto.TypeSessionPath, info.Session, &proto.SessionPath{Path: proto.PathRelay, Local: "relay", Remote: "host"})
	log := &proto.AccessLog{Entries: []proto.AccessEntry{
		{Seq: 1, Kind: proto.AccessHTTP, Time: time.Now().UTC(), Method: "GET", URL: "/", Port: 80, Status: 200, ReqBytes: 10, RespBytes: 1000, Stream: 1},
		{Seq: 2, Kind: proto.AccessTCP, Time: time.Now().UTC(), Port: 22, ReqBytes: 300, RespBytes: 500, Stream: 3},
	}}
	agent.send(proto.TypeAccessLog, info.Session, log)
	agent.next(proto.TypeAccessAck) // the agent's messages are handled in order: the path is known
	agent.send(proto.TypeAccessLog, info.Session, log)
	agent.next(proto.TypeAccessAck) // a resent batch is not counted twice
	expect(scrape(), map[string]float64{
		`porthole_signaling_sessions{state="ready"}`:                        0,
		`porthole_signaling_sessions{state="connected"}`:                    1,
		`porthole_signaling_connected_sessions{path="relay"}`:               1,
		`porthole_signaling_connected_sessions{path="direct"}`:              0,
		`porthole_signaling_session_connections_total{path="relay"}`:        1,
		`porthole_signaling_session_setup_seconds_count{stage="connected"}`: 1,
		`porthole_signaling_access_bytes_total{direction="request"}`:        310,
		`porthole_signaling_access_bytes_total{direction="response"}`:       1500,
	})

	if resp := e.request(http.MethodDelete, proto.PathSessions+"/"+info.Session, techToken, nil, nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE = %d", resp.StatusCode)
	}
	client.next(proto.TypeSessionPath) // the agent's path report, passed on
	client.next(proto.TypeSessionEnd)
	agent.next(proto.TypeSessionEnd)
	expect(scrape(), map[string]float64{
		`porthole_signaling_sessions{state="connected"}`:           0,
		`porthole_signaling_connected_sessions{path="relay"}`:      0,
		`porthole_signaling_sessions_ended_total{reason="client"}`: 1,
	})
	agent.close()
	e.waitLog("agent offline")
	expect(scrape(), map[string]float64{`porthole_signaling_agents_connected`: 0})
}

// TestNoMetricsWithoutARegistry: a server without Config.Metrics counts
// nothing and serves as before.
func TestNoMetricsWithoutARegistry(t *testing.T) {
	e := newEnv(t, nil)
	if e.srv.metrics != nil {
		t.Fatal("metrics without a registry")
	}
	agent := e.agent(agentKey, "printer-1")
	e.open(agent, techToken, "printer-1")
}
