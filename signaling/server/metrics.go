package server

import (
	"context"
	"net/http"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/hub"
	"github.com/porthole-dev/porthole/signaling/metrics"
)

// sessionEvent hands each step of a session's life to the job recorder and
// the metrics. It runs under the hub's lock and does not block.
func (s *Server) sessionEvent(e hub.Event) {
	s.recorder.Event(e)
	s.metrics.Event(e)
	s.sessionWebhook(e)
}

// storeAccessLog stores a batch of an agent's access log and counts its
// bytes once stored.
func (s *Server) storeAccessLog(ctx context.Context, agent, session string, l *proto.AccessLog) (uint64, error) {
	ack, err := s.recorder.AccessLog(ctx, agent, session, l)
	if err == nil {
		s.metrics.AccessLog(session, l)
	}
	return ack, err
}

// connectedAgents counts the agents connected to this node.
func (s *Server) connectedAgents() int { return len(s.hub.OnlineAgents()) }

// routeLabel labels requests the mux never routes: those of session
// origins.
func (s *Server) routeLabel(r *http.Request) string {
	if _, ok := s.sessionHost(r.Host); ok {
		return metrics.RouteSessionOrigin
	}
	return ""
}
