package inventory

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/store"
	"github.com/porthole-dev/porthole/signaling/store/boltstore"
)

var ctx = context.Background()

func newManager(t *testing.T) (*Manager, store.Store) {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	return New(Options{Store: st, Now: func() time.Time { return now }}), st
}

func printer(addr, mac, serial string) proto.Discovered {
	return proto.Discovered{Addr: addr, MAC: mac, Serial: serial, Hostname: "NPI4000", Model: "HP LaserJet M507", Type: "printer",
		Services: []proto.DiscoveredService{{Kind: proto.ServiceWeb, Port: 80, Scheme: "http", Title: "EWS"},
			{Kind: proto.ServiceWeb, Port: 443, Scheme: "https"}, {Kind: proto.ServiceTCP, Port: 9100}}}
}

func report(scan string, last bool, devs ...proto.Discovered) *proto.DiscoveryReport {
	return &proto.DiscoveryReport{Scan: scan, Scope: []string{"192.0.2.0/24"}, Started: time.Now(), Devices: devs, Last: last, Probes: 10}
}

func TestReportIsStoredWhenComplete(t *testing.T) {
	m, st := newManager(t)
	if d, _, err := m.Report(ctx, "ag1", report("scan-1", false, printer("192.0.2.20", "02:00:5e:10:00:01", "CNB1"))); err != nil || d != nil {
		t.Fatalf("first part: %v %v", d, err)
	}
	if _, err := st.Discovery(ctx, "ag1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a scan is stored before its last part: %v", err)
	}
	d, _, err := m.Report(ctx, "ag1", report("scan-1", true, printer("192.0.2.5", "02:00:5e:10:00:02", "")))
	if err != nil || d == nil || len(d.Devices) != 2 || d.Devices[0].Addr != "192.0.2.5" {
		t.Fatalf("last part: %+v %v", d, err)
	}
	got, err := st.Discovery(ctx, "ag1")
	if err != nil || got.Scan != "scan-1" || len(got.Devices) != 2 || got.Probes != 10 {
		t.Fatalf("stored %+v %v", got, err)
	}
}

func TestReportRefusals(t *testing.T) {
	tests := []struct {
		name  string
		parts []*proto.DiscoveryReport
		want  string
	}{
		{"device outside the reported scope", []*proto.DiscoveryReport{report("s1", true, printer("10.0.0.5", "", ""))}, "outside the scope"},
		{"scope changes within a scan", []*proto.DiscoveryReport{report("s1", false, printer("192.0.2.7", "", "")),
			{Scan: "s1", Scope: []string{"192.0.0.0/16"}, Last: true}}, "scope changed"},
		{"the same address twice", []*proto.DiscoveryReport{report("s1", false, printer("192.0.2.7", "", "")),
			report("s1", true, printer("192.0.2.7", "", ""))}, "reported twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, st := newManager(t)
			var err error
			for _, p := range tc.parts {
				if _, _, err = m.Report(ctx, "ag1", p); err != nil {
					break
				}
			}
			if !errors.Is(err, ErrReport) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if _, err := st.Discovery(ctx, "ag1"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("a refused scan was stored: %v", err)
			}
		})
	}
}

func TestReportIsBounded(t *testing.T) {
	m, _ := newManager(t)
	big := &proto.DiscoveryReport{Scan: "s1", Scope: []string{"10.0.0.0/8"}}
	n := 0
	var err error
	for err == nil && n <= proto.MaxDiscoveredPerRun {
		big.Devices = big.Devices[:0]
		for range proto.MaxReportDevices {
			n++
			big.Devices = append(big.Devices, proto.Discovered{Addr: "10.0." + itoa(n/256) + "." + itoa(n%256)})
		}
		_, _, err = m.Report(ctx, "ag1", big)
	}
	if !errors.Is(err, ErrReport) || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("after %d devices: %v", n, err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func adoptScan(t *testing.T, m *Manager) {
	t.Helper()
	if _, _, err := m.Report(ctx, "ag1", report("scan-1", true, printer("192.0.2.20", "02:00:5e:10:00:01", "CNB1"),
		proto.Discovered{Addr: "192.0.2.30"})); err != nil {
		t.Fatal(err)
	}
}

func TestAdoptRecordsIdentityAndIsSentToTheAgent(t *testing.T) {
	m, st := newManager(t)
	adoptScan(t, m)
	d, err := m.Adopt(ctx, Adoption{Agent: "ag1", Addr: "192.0.2.20", Name: "Front desk printer", By: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != "front-desk-printer-20" || !d.Adopted || d.Enabled || d.MAC != "02:00:5e:10:00:01" || d.Serial != "CNB1" ||
		d.Type != "printer" || d.Model != "HP LaserJet M507" {
		t.Fatalf("adopted %+v", d)
	}
	// One web page; the second web port stays reachable as TCP.
	if len(d.Services) != 3 || d.Services[0].Kind != proto.ServiceWeb || d.Services[1].Kind != proto.ServiceTCP {
		t.Fatalf("services %+v", d.Services)
	}
	inv, err := m.Inventory(ctx, "ag1")
	if err != nil || len(inv.Devices) != 1 || inv.Devices[0].Serial != "CNB1" || inv.Devices[0].Relaxed {
		t.Fatalf("inventory %+v %v", inv, err)
	}
	if err := inv.Validate(); err != nil {
		t.Fatalf("the inventory sent does not validate: %v", err)
	}
	if _, err := m.Adopt(ctx, Adoption{Agent: "ag1", Addr: "192.0.2.20", Name: "Front desk printer"}); proto.CodeOf(err) != proto.CodeExists {
		t.Fatalf("adopting twice: %v", err)
	}
	if _, err := m.Adopt(ctx, Adoption{Agent: "ag1", Addr: "192.0.2.99"}); proto.CodeOf(err) != proto.CodeNotFound {
		t.Fatalf("adopting what the scan did not find: %v", err)
	}
	if _, err := m.Adopt(ctx, Adoption{Agent: "ag1", Addr: "192.0.2.30"}); err == nil || !strings.Contains(err.Error(), "no service") {
		t.Fatalf("adopting a device with no service: %v", err)
	}
	if _, err := m.Adopt(ctx, Adoption{Agent: "ag2", Addr: "192.0.2.20"}); proto.CodeOf(err) != proto.CodeNotFound {
		t.Fatalf("another agent adopts from ag1's scan: %v", err)
	}
	relaxed, err := m.Edit(ctx, "ag1", d.ID, func(d *store.Device) error { d.Relaxed = true; return nil })
	if err != nil || !relaxed.Relaxed {
		t.Fatalf("relax: %+v %v", relaxed, err)
	}
	if inv, _ := m.Inventory(ctx, "ag1"); !inv.Devices[0].Relaxed {
		t.Fatal("a relaxed device is sent with its identity check")
	}
	must(t, m.Remove(ctx, "ag1", d.ID))
	if inv, _ := m.Inventory(ctx, "ag1"); len(inv.Devices) != 0 {
		t.Fatalf("removed device still sent: %+v", inv)
	}
	if _, err := st.Device(ctx, "ag1", d.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("removed device kept: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestFileDevicesCannotBeEditedOrRemoved(t *testing.T) {
	m, _ := newManager(t)
	must(t, m.Declared(ctx, "ag1", []proto.Device{{ID: "printer-1", HTTPPort: 80}}))
	if _, err := m.Edit(ctx, "ag1", "printer-1", func(*store.Device) error { return nil }); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("edit: %v", err)
	}
	if err := m.Remove(ctx, "ag1", "printer-1"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("remove: %v", err)
	}
	if err := m.Remove(ctx, "ag1", "nothing"); proto.CodeOf(err) != proto.CodeNotFound {
		t.Fatalf("remove unknown: %v", err)
	}
}

func TestListShowsOfflineDevicesWithLastSeen(t *testing.T) {
	m, _ := newManager(t)
	must(t, m.Declared(ctx, "ag1", []proto.Device{{ID: "printer-1", Name: "Lobby", HTTPPort: 80,
		Health: &proto.DeviceHealth{Reachable: true}}}))
	adoptScan(t, m)
	if _, err := m.Adopt(ctx, Adoption{Agent: "ag1", Addr: "192.0.2.20", ID: "ews", Name: "EWS"}); err != nil {
		t.Fatal(err)
	}
	// The agent is offline: nothing live.
	list, err := m.List(ctx, []string{"ag1"}, nil)
	must(t, err)
	if len(list) != 2 {
		t.Fatalf("list %+v", list)
	}
	byID := map[string]proto.DeviceStatus{}
	for _, d := range list {
		byID[d.ID] = d
	}
	if p := byID["printer-1"]; p.Online || p.Name != "Lobby" || p.LastSeen.IsZero() || p.Adopted {
		t.Fatalf("offline file device %+v", p)
	}
	if e := byID["ews"]; e.Online || !e.Adopted || e.Model != "HP LaserJet M507" || e.Name != "EWS" || len(e.Services) != 3 {
		t.Fatalf("adopted, never declared %+v", e)
	}
	// Live: the hub's view wins, enriched by the inventory.
	live := []proto.DeviceStatus{{Device: proto.Device{ID: "ews", HTTPPort: 80}, Agent: "ag1", Online: true}}
	list, err = m.List(ctx, []string{"ag1"}, live)
	must(t, err)
	if len(list) != 2 || list[0].ID != "ews" || !list[0].Online || list[0].Serial != "CNB1" || list[0].Name != "EWS" {
		t.Fatalf("merged %+v", list)
	}
	// Another agent's records are not listed unless asked for.
	if list, _ := m.List(ctx, []string{"ag2"}, nil); len(list) != 0 {
		t.Fatalf("ag2: %+v", list)
	}
}

func TestAppliedRecordsRefusals(t *testing.T) {
	m, st := newManager(t)
	adoptScan(t, m)
	if _, err := m.Adopt(ctx, Adoption{Agent: "ag1", Addr: "192.0.2.20", ID: "ews"}); err != nil {
		t.Fatal(err)
	}
	must(t, m.Applied(ctx, "ag1", &proto.InventoryApplied{Refused: []proto.InventoryRefusal{{ID: "ews", Reason: "outside the site's scope: port 9100"}}}))
	d, _ := st.Device(ctx, "ag1", "ews")
	if d.Refused == "" {
		t.Fatal("refusal not recorded")
	}
	must(t, m.Applied(ctx, "ag1", &proto.InventoryApplied{Applied: []string{"ews"}, Devices: []proto.Device{{ID: "ews", HTTPPort: 80}}}))
	d, _ = st.Device(ctx, "ag1", "ews")
	if d.Refused != "" || d.Declared == nil {
		t.Fatalf("after applying: %+v", d)
	}
}

func TestDHCPMoveIsFollowed(t *testing.T) {
	tests := []struct {
		name  string
		found []proto.Discovered
		moved bool
	}{
		{"same MAC and serial at a new address", []proto.Discovered{printer("192.0.2.31", "02:00:5e:10:00:01", "CNB1")}, true},
		{"same MAC, no serial read", []proto.Discovered{printer("192.0.2.31", "02:00:5e:10:00:01", "")}, true},
		{"same MAC, another serial", []proto.Discovered{printer("192.0.2.31", "02:00:5e:10:00:01", "OTHER")}, false},
		{"the MAC at two addresses", []proto.Discovered{printer("192.0.2.31", "02:00:5e:10:00:01", ""),
			printer("192.0.2.32", "02:00:5e:10:00:01", "")}, false},
		{"still where it was", []proto.Discovered{printer("192.0.2.20", "02:00:5e:10:00:01", "CNB1")}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, st := newManager(t)
			adoptScan(t, m)
			if _, err := m.Adopt(ctx, Adoption{Agent: "ag1", Addr: "192.0.2.20", ID: "ews"}); err != nil {
				t.Fatal(err)
			}
			_, moved, err := m.Report(ctx, "ag1", report("scan-2", true, tc.found...))
			must(t, err)
			d, _ := st.Device(ctx, "ag1", "ews")
			if tc.moved != (len(moved) == 1) || tc.moved != (d.Addr == "192.0.2.31") {
				t.Fatalf("moved %v, device at %s (%q)", moved, d.Addr, d.Moved)
			}
			if tc.moved && d.Moved != "192.0.2.20 → 192.0.2.31" {
				t.Fatalf("moved note %q", d.Moved)
			}
		})
	}
}

func TestDeriveID(t *testing.T) {
	for _, tc := range []struct{ name, addr, want string }{
		{"Front desk printer", "192.0.2.20", "front-desk-printer-20"},
		{"  ÄÖ--HP  LaserJet!! ", "192.0.2.7", "hp-laserjet-7"},
		{"", "2001:db8::1:2", "device-b812"},
		{strings.Repeat("x", 300), "192.0.2.1", strings.Repeat("x", 40) + "-1"},
	} {
		if got := deriveID(tc.name, mustAddr(tc.addr)); got != tc.want || !proto.ValidID(got) {
			t.Errorf("deriveID(%q, %s) = %q, want %q", tc.name, tc.addr, got, tc.want)
		}
	}
}
