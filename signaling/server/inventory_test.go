package server

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/store"
)

// TestInventoryStaysWithinTheSite: a configurer of site a sees and adopts
// what site a's agent discovered; a technician of site a may not adopt;
// a configurer of site b cannot see site a's scan, adopt from its agent,
// or remove or rename its adopted device (they do not exist for it).
func TestInventoryStaysWithinTheSite(t *testing.T) {
	e := newAuthEnv(t, nil)
	ctx := context.Background()
	if err := e.srv.store.PutDiscovery(ctx, &store.Discovery{Agent: "agent-1", Scan: "scan-1", Scope: []string{"192.0.2.0/24"},
		Started: time.Unix(1_800_000_000, 0), Devices: []proto.Discovered{{Addr: "192.0.2.20", MAC: "02:00:5e:10:00:01",
			Services: []proto.DiscoveredService{{Kind: proto.ServiceWeb, Port: 80, Scheme: "http"}}}}}); err != nil {
		t.Fatal(err)
	}
	cookie := map[string]string{}
	for _, u := range []string{"conf-a", "user-a", "conf-b"} {
		cookie[u] = e.login(u)
	}
	adopt := &proto.Adopt{Agent: "agent-1", Addr: "192.0.2.20", Name: "Front desk"}
	tests := []struct {
		user, method, path string
		body               any
		want               int
	}{
		{"conf-b", http.MethodGet, "/v1/sites/site-a/discovered", nil, http.StatusNotFound},
		{"conf-b", http.MethodPost, "/v1/sites/site-a/discover", nil, http.StatusNotFound},
		{"conf-b", http.MethodPost, proto.PathAdopt, adopt, http.StatusNotFound},
		{"user-a", http.MethodGet, "/v1/sites/site-a/discovered", nil, http.StatusForbidden},
		{"user-a", http.MethodPost, proto.PathAdopt, adopt, http.StatusForbidden},
		{"conf-a", http.MethodGet, "/v1/sites/site-a/discovered", nil, http.StatusOK},
		{"conf-a", http.MethodPost, proto.PathAdopt, adopt, http.StatusCreated},
		{"conf-a", http.MethodPost, proto.PathAdopt, adopt, http.StatusConflict}, // adopted already
		{"conf-b", http.MethodDelete, "/v1/devices/front-desk-20?agent=agent-1", nil, http.StatusNotFound},
		{"conf-b", http.MethodPatch, "/v1/devices/front-desk-20?agent=agent-1", &proto.DeviceUpdate{Name: ptr("mine")}, http.StatusNotFound},
		{"user-a", http.MethodDelete, "/v1/devices/front-desk-20?agent=agent-1", nil, http.StatusForbidden},
		{"conf-a", http.MethodDelete, "/v1/devices/front-desk-20?agent=agent-1", nil, http.StatusNoContent},
	}
	for _, tc := range tests {
		if r := e.as(cookie[tc.user], tc.method, tc.path, tc.body, nil); r.StatusCode != tc.want {
			t.Errorf("%s %s %s = %d, want %d", tc.user, tc.method, tc.path, r.StatusCode, tc.want)
		}
	}
	if d, err := e.srv.store.Device(ctx, "agent-1", "front-desk-20"); err == nil {
		t.Fatalf("the removed device is still stored: %+v", d)
	}
}
