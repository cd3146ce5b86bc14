package server

import (
	"context"
	"net/http"
	"testing"

	"github.com/porthole-dev/porthole/proto"
)

// TestDrainRefusesNewWork: after Drain, /readyz answers 503 (a load
// balancer's health check) while /healthz stays up, and new agent and
// session WebSockets are refused with 503 and a Retry-After hint.
func TestDrainRefusesNewWork(t *testing.T) {
	e := newEnv(t, nil)
	get := func(path, bearer string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, e.ts.URL+path, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := get(proto.PathReady, ""); r.StatusCode != http.StatusOK {
		t.Fatalf("/readyz before the drain: %d", r.StatusCode)
	}
	e.srv.Drain(context.Background())
	tests := []struct {
		name, path, bearer string
		status             int
		retry              bool
	}{
		{"readiness", proto.PathReady, "", http.StatusServiceUnavailable, false},
		{"liveness", proto.PathHealth, "", http.StatusOK, false},
		{"agent socket", proto.PathAgentSocket, agentKey, http.StatusServiceUnavailable, true},
		{"session socket", proto.PathSessionSocket, "some-session-token", http.StatusServiceUnavailable, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := get(tc.path, tc.bearer)
			if r.StatusCode != tc.status {
				t.Errorf("GET %s while draining: %d, want %d", tc.path, r.StatusCode, tc.status)
			}
			if got := r.Header.Get("Retry-After") != ""; got != tc.retry {
				t.Errorf("GET %s while draining: Retry-After %q", tc.path, r.Header.Get("Retry-After"))
			}
		})
	}
}
