package server

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/bus"
)

// TestAnotherSitesAgentCannotTakeADevice: agent-1 (site a) declares
// printer-1; then agent-2 (site b) declares the same ID. Site a's
// configurer and technician still see, change and open their printer-1 on
// agent-1, site b's technician gets their own, and an admin who sees both
// must name the agent.
func TestAnotherSitesAgentCannotTakeADevice(t *testing.T) {
	e := newAuthEnv(t, nil)
	ctx := context.Background()
	agentA := e.agent(agentKey, "printer-1") // agent-1, site-a
	for _, a := range []string{"agent-1", "agent-2"} {
		if _, err := e.srv.accounts.SetDeviceEnabled(ctx, "test", a, "printer-1", "", true); err != nil {
			t.Fatal(err)
		}
	}
	agentB := e.agent(agentKey2, "printer-1") // agent-2, site-b: the same ID
	cookies := map[string]string{}
	for _, u := range []string{"user-a", "conf-a", "user-b", "admin"} {
		cookies[u] = e.login(u)
	}

	var list proto.DeviceList
	if r := e.as(cookies["user-a"], http.MethodGet, proto.PathDevices, nil, &list); r.StatusCode != 200 {
		t.Fatalf("list as user-a = %d", r.StatusCode)
	}
	if len(list.Devices) != 1 || list.Devices[0].Agent != "agent-1" || !list.Devices[0].Online {
		t.Fatalf("user-a sees %+v, want printer-1 on agent-1, online", list.Devices)
	}
	var view proto.DeviceView
	if r := e.as(cookies["conf-a"], http.MethodPatch, "/v1/devices/printer-1", &proto.DeviceUpdate{Enabled: ptr(true)}, &view); r.StatusCode != 200 || view.Agent != "agent-1" {
		t.Fatalf("conf-a PATCH printer-1 = %d %+v, want 200 on agent-1", r.StatusCode, view)
	}
	if info := e.openAs(agentA, cookies["user-a"], "printer-1"); info.Device != "printer-1" {
		t.Fatalf("user-a session %+v", info)
	}
	if info := e.openAs(agentB, cookies["user-b"], "printer-1"); info.Device != "printer-1" {
		t.Fatalf("user-b session %+v", info)
	}

	// An admin sees both, so must say which.
	var perr proto.Error
	r := e.as(cookies["admin"], http.MethodPost, proto.PathSessions, &proto.CreateSession{Device: "printer-1"}, &perr)
	if r.StatusCode != http.StatusBadRequest || !strings.Contains(perr.Message, "several agents") {
		t.Fatalf("admin without agent = %d %+v, want 400 naming the agents", r.StatusCode, perr)
	}
	// Admins configure but do not open; naming the agent picks site b's.
	if r := e.as(cookies["admin"], http.MethodPatch, "/v1/devices/printer-1?agent=agent-2", &proto.DeviceUpdate{Enabled: ptr(false)}, &view); r.StatusCode != 200 || view.Agent != "agent-2" || view.Enabled {
		t.Fatalf("admin PATCH printer-1 on agent-2 = %d %+v", r.StatusCode, view)
	}
	if r := e.as(cookies["admin"], http.MethodPatch, "/v1/devices/printer-1", &proto.DeviceUpdate{Enabled: ptr(false)}, &perr); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("admin PATCH without agent = %d, want 400", r.StatusCode)
	}
	// Site a's device kept its setting.
	if r := e.as(cookies["user-a"], http.MethodGet, proto.PathDevices, nil, &list); r.StatusCode != 200 || len(list.Devices) != 1 || list.Devices[0].Agent != "agent-1" {
		t.Fatalf("user-a after the admin's change: %d %+v", r.StatusCode, list.Devices)
	}
	e.openAs(agentA, cookies["user-a"], "printer-1")
}

// TestAnotherSitesAgentCannotTakeADeviceAcrossNodes is the same attack in a
// cluster: site a's agent-1 declares printer-1 on node n2, then site b's
// agent-2 declares the same ID on node n3 (the newest declaration in the
// cluster's presence). A technician of site a, signed in on n1, still sees
// and opens printer-1 on agent-1 across the bus, and site b's technician
// gets agent-2's.
func TestAnotherSitesAgentCannotTakeADeviceAcrossNodes(t *testing.T) {
	network := bus.NewNetwork()
	join := func(node string) func(*Config) {
		return func(c *Config) {
			c.Node, c.Bus = node, network.Join(node)
			t.Cleanup(func() { _ = c.Bus.Close() })
		}
	}
	e := newAuthEnv(t, join("n1"))
	node := func(name string) *env {
		return newEnv(t, func(c *Config) {
			join(name)(c)
			c.Store, c.Now = e.srv.store, e.clock.Now
		})
	}
	n2, n3 := node("n2"), node("n3")
	agentA := n2.agent(agentKey, "printer-1")  // agent-1, site-a, on n2
	agentB := n3.agent(agentKey2, "printer-1") // agent-2, site-b, on n3: the same ID, declared last
	ctx := context.Background()
	for _, a := range []string{"agent-1", "agent-2"} {
		if _, err := e.srv.accounts.SetDeviceEnabled(ctx, "test", a, "printer-1", "", true); err != nil {
			t.Fatal(err)
		}
	}
	userA, userB := e.login("user-a"), e.login("user-b")
	var list proto.DeviceList
	if r := e.as(userA, http.MethodGet, proto.PathDevices, nil, &list); r.StatusCode != 200 {
		t.Fatalf("list as user-a on n1 = %d", r.StatusCode)
	}
	if len(list.Devices) != 1 || list.Devices[0].Agent != "agent-1" || !list.Devices[0].Online {
		t.Fatalf("user-a on n1 sees %+v, want printer-1 on agent-1, online", list.Devices)
	}
	if info := e.openAs(agentA, userA, "printer-1"); info.Device != "printer-1" {
		t.Fatalf("user-a session %+v", info)
	}
	if info := e.openAs(agentB, userB, "printer-1"); info.Device != "printer-1" {
		t.Fatalf("user-b session %+v", info)
	}
}
