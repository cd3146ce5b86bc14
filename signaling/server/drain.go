package server

import (
	"context"
	"fmt"
	"net/http"

	"github.com/porthole-dev/porthole/signaling/hub"
)

// Drain is the first step of a graceful shutdown (a rolling restart): the
// node stops taking new work — GET /readyz answers 503 so a load balancer
// sends nobody new, and new agent and session WebSockets are refused with
// 503 and Retry-After — and, in a cluster, hands its sessions to the other
// nodes (cluster.Router.Drain: their agents are told to reconnect
// elsewhere at once, their clients follow). It returns the sessions handed
// over. Close the server once Remaining reaches zero or the drain's time
// is up.
func (s *Server) Drain(ctx context.Context) int {
	s.draining.Store(true)
	if s.router == nil {
		s.hub.Drain() // one node: nobody to hand over to; Close ends them
		return 0
	}
	return s.router.Drain(ctx)
}

// Remaining counts the agent connections and sessions this node still
// holds, and (in a cluster, after Drain) the agents whose handed-over
// sessions no other node has taken yet.
func (s *Server) Remaining(ctx context.Context) (agents, sessions, unadopted int) {
	agents, sessions = s.hub.Remaining()
	if s.router != nil && s.draining.Load() {
		unadopted = s.router.Unadopted(ctx)
	}
	return agents, sessions, unadopted
}

// adopt is the hub's Options.Adopt: the router's, in a cluster.
func (s *Server) adopt(agent string) []hub.SessionState {
	if s.router == nil {
		return nil
	}
	return s.router.Adopt(agent)
}

// refuseDraining answers a new WebSocket on a draining node: 503 with a
// retry hint, so the client reconnects (through the load balancer, to
// another node).
func (s *Server) refuseDraining(w http.ResponseWriter) bool {
	if !s.draining.Load() {
		return false
	}
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable, hub.ErrDraining)
	return true
}

func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if s.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "draining")
		return
	}
	fmt.Fprintln(w, "ready")
}
