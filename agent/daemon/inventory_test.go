package daemon

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/agent/scope"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

// siteAddr returns a non-loopback IPv4 address of this machine and a
// scope holding its subnet (with no "own" addresses, so the test's device
// on that address counts as a device of the site).
func siteAddr(t *testing.T, ports ...int) (netip.Addr, *scope.Scope) {
	t.Helper()
	own, err := scope.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var ip netip.Prefix
	for _, p := range own {
		if p.Addr().Is4() {
			ip = p
			break
		}
	}
	testenv.Require(t, "a non-loopback IPv4 address", ip.IsValid())
	sc, err := scope.New(scope.Config{CIDRs: []string{ip.Masked().String()}, Ports: ports}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ip.Addr(), sc
}

// waitApplied returns the agent's next inventory.applied.
func (h *harness) waitApplied() *proto.InventoryApplied {
	h.t.Helper()
	for {
		env := h.next()
		if env.Type != proto.TypeInventoryApplied {
			continue // access log shipping and the like
		}
		var res proto.InventoryApplied
		if err := proto.DecodeData(env, &res); err != nil {
			h.t.Fatal(err)
		}
		return &res
	}
}

func web(port int) []proto.Service {
	return []proto.Service{{Kind: proto.ServiceWeb, Port: port, Scheme: "http"}}
}

func TestInventoryIsCheckedAgainstTheScope(t *testing.T) {
	ip, sc := siteAddr(t)
	dev := startDevice(t, net.JoinHostPort(ip.String(), "0"), "SER-9")
	h := startAgent(t, nil, nil, func(c *Config) { c.Scope = sc })
	h.send(proto.TypeInventory, "", &proto.Inventory{Devices: []proto.InventoryDevice{
		{ID: "adopted-1", Name: "Back office", Addr: ip.String(), Services: web(dev.port)},
		{ID: "loopback", Addr: "127.0.0.1", Services: web(dev.port)},
		{ID: "elsewhere", Addr: "203.0.113.9", Services: web(80)},
		{ID: "mapped", Addr: "::ffff:127.0.0.1", Services: web(80)},
		{ID: "printer-1", Addr: ip.String(), Services: web(dev.port)}, // the file's device
	}})
	res := h.waitApplied()
	if len(res.Applied) != 1 || res.Applied[0] != "adopted-1" {
		t.Fatalf("applied %v, want [adopted-1]", res.Applied)
	}
	want := map[string]string{"loopback": "never reachable", "elsewhere": "is not in", "mapped": "never reachable",
		"printer-1": "agent's own file"}
	for _, r := range res.Refused {
		if w, ok := want[r.ID]; !ok || !strings.Contains(r.Reason, w) {
			t.Errorf("refusal %s %q, want %q", r.ID, r.Reason, w)
		}
		delete(want, r.ID)
	}
	if len(want) > 0 {
		t.Errorf("not refused: %v", want)
	}
	ids := map[string]bool{}
	for _, d := range res.Devices {
		ids[d.ID] = true
	}
	if !ids["adopted-1"] || !ids["printer-1"] || len(ids) != 2 {
		t.Fatalf("declared %v, want the file's device and the adopted one", ids)
	}
	if dev.conns.Load() == 0 {
		t.Fatalf("the adopted device was never checked")
	}
	// The adopted device opens like a declared one, with no restart.
	env := h.open("sessadopt00001", "adopted-1", h.grant(validGrant("sessadopt00001", "adopted-1", time.Minute)))
	if env.Type != proto.TypeSessionReady {
		t.Fatalf("open adopted device: %s %s", env.Type, env.Data)
	}
	// Removed from the inventory: its session ends and it cannot be opened.
	h.send(proto.TypeInventory, "", &proto.Inventory{})
	for {
		env := h.next()
		if env.Type == proto.TypeSessionEnd && env.Session == "sessadopt00001" {
			break
		}
	}
	if res := h.waitApplied(); len(res.Applied) != 0 || len(res.Devices) != 1 {
		t.Fatalf("after removal: %+v", res)
	}
	wantRefusal(t, h.open("sessadopt00002", "adopted-1", h.grant(validGrant("sessadopt00002", "adopted-1", time.Minute))),
		proto.CodeDeviceNotFound, "adopted-1")
}

func TestInventoryUnderExplicitPorts(t *testing.T) {
	ip, sc := siteAddr(t, 80, 443)
	h := startAgent(t, nil, nil, func(c *Config) { c.Scope = sc })
	h.send(proto.TypeInventory, "", &proto.Inventory{Devices: []proto.InventoryDevice{
		{ID: "ssh-box", Addr: ip.String(), Services: []proto.Service{{Kind: proto.ServiceSSH, Port: 22}}},
		{ID: "web-box", Addr: ip.String(), Services: web(80)},
	}})
	res := h.waitApplied()
	if len(res.Applied) != 1 || res.Applied[0] != "web-box" || len(res.Refused) != 1 ||
		!strings.Contains(res.Refused[0].Reason, "port 22 is not among the site's ports") {
		t.Fatalf("applied %v refused %+v", res.Applied, res.Refused)
	}
}

func TestInventoryWithoutScopeRefusesAll(t *testing.T) {
	h := startAgent(t, nil, nil)
	h.send(proto.TypeInventory, "", &proto.Inventory{Devices: []proto.InventoryDevice{{ID: "x", Addr: "192.0.2.50", Services: web(80)}}})
	res := h.waitApplied()
	if len(res.Applied) != 0 || len(res.Refused) != 1 || !strings.Contains(res.Refused[0].Reason, "no scope") {
		t.Fatalf("%+v", res)
	}
}

func TestMalformedInventoryIsAnsweredWithAnError(t *testing.T) {
	h := startAgent(t, nil, nil)
	h.send(proto.TypeInventory, "", &proto.Inventory{Devices: []proto.InventoryDevice{{ID: "x", Addr: "printer.lan", Services: web(80)}}})
	for {
		env := h.next()
		if env.Type == proto.TypeError {
			var e proto.Error
			_ = proto.DecodeData(env, &e)
			if !strings.Contains(e.Message, "IP address") {
				t.Fatalf("error %q", e.Message)
			}
			return
		}
	}
}

func TestFileDevicesBoundedByADeclaredScope(t *testing.T) {
	_, sc := siteAddr(t)
	_, err := New(Config{Server: "http://x", Key: "k", Scope: sc, BoundFileDevices: true,
		Devices: []DeviceConfig{{ID: "lo", Address: "127.0.0.1", HTTPPort: 80}}})
	if err == nil || !strings.Contains(err.Error(), "never reachable") {
		t.Fatalf("New: %v", err)
	}
	// Without a declared scope the file's devices are the site's word.
	if _, err := New(Config{Server: "http://x", Key: "k", Scope: sc,
		Devices: []DeviceConfig{{ID: "lo", Address: "127.0.0.1", HTTPPort: 80}}}); err != nil {
		t.Fatal(err)
	}
}
