package daemon

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"slices"

	"github.com/porthole-dev/porthole/agent/deviceid"
	"github.com/porthole-dev/porthole/agent/deviceproxy"
	"github.com/porthole-dev/porthole/agent/scope"
	"github.com/porthole-dev/porthole/proto"
)

// The inventory: the devices a configurer adopted in the app. Signaling
// sends the agent the whole list (proto.Inventory) when it connects and
// whenever it changes; the agent serves each entry that passes its own
// checks, from the next session on, without a restart. Signaling can only
// narrow what the site allowed: every entry is checked against the
// agent's scope (an IP address in the site's subnets, never loopback or
// the agent's own; ports the site allows), and every dial to an adopted
// device is checked again at connect(2) (DeviceConfig.control). An entry
// that names a device of the agent's own file is refused: the site's
// declaration wins.
//
// A live session keeps the device it was opened on: an edit (new
// address, ports, identity) applies from the next session and drops none;
// removing a device ends its sessions, since the configurer wants it out
// of reach.

// device returns the device id, file-declared or adopted.
func (a *Agent) device(id string) (*device, bool) {
	a.devMu.RLock()
	defer a.devMu.RUnlock()
	d, ok := a.devices[id]
	return d, ok
}

// deviceList returns every device, sorted by id.
func (a *Agent) deviceList() []*device {
	a.devMu.RLock()
	out := make([]*device, 0, len(a.devices))
	for _, d := range a.devices {
		out = append(out, d)
	}
	a.devMu.RUnlock()
	slices.SortFunc(out, func(x, y *device) int { return cmp.Compare(x.cfg.ID, y.cfg.ID) })
	return out
}

func (a *Agent) deviceCount() int {
	a.devMu.RLock()
	defer a.devMu.RUnlock()
	return len(a.devices)
}

// checkScope checks a normalized declaration against sc: its address and
// ports. An adopted device must have an IP address (signaling must not
// make the agent resolve names it chose); a host name in the agent's own
// file is checked on every dial instead, after resolution
// (DeviceConfig.control).
func checkScope(sc *scope.Scope, d DeviceConfig, names bool) error {
	ip, err := netip.ParseAddr(d.Address)
	if err != nil && names {
		for _, p := range d.Ports {
			if err := sc.CheckPort(p, d.Ports...); err != nil {
				return err
			}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: address %q is not an IP address", scope.ErrOutOfScope, d.Address)
	}
	return sc.CheckDevice(ip, d.Ports)
}

// adoptedConfig turns an inventory entry into a checked declaration.
func (a *Agent) adoptedConfig(e proto.InventoryDevice) (DeviceConfig, error) {
	if a.cfg.Scope == nil {
		return DeviceConfig{}, fmt.Errorf("%w: this agent has no scope, so it serves only the devices of its own file", scope.ErrOutOfScope)
	}
	dc := DeviceConfig{ID: e.ID, Name: e.Name, Address: e.Addr, Services: slices.Clone(e.Services)}
	if !e.Relaxed {
		dc.Expect = deviceid.Expect{MAC: e.MAC, Serial: e.Serial}
		if e.Serial != "" {
			dc.Expect.SNMP = &deviceid.SNMP{} // v2c "public", Printer-MIB serial: what discovery read
		}
	}
	d, err := dc.normalize()
	if err != nil {
		return d, err
	}
	if err := checkScope(a.cfg.Scope, d, false); err != nil {
		return d, err
	}
	d.scope = a.cfg.Scope
	return d, nil
}

// applyInventory replaces the adopted devices with inv's entries that
// pass, ends the sessions of devices no longer served, and answers
// signaling with what was applied, what was refused and why, and the
// declarations of every device as in hello.
func (a *Agent) applyInventory(ctx context.Context, inv *proto.Inventory) {
	res := &proto.InventoryApplied{}
	refuse := func(id string, err error) {
		a.log.Warn("inventory entry refused", "device", id, "err", err)
		res.Refused = append(res.Refused, proto.InventoryRefusal{ID: id, Reason: truncate(err.Error(), proto.MaxText)})
	}
	type built struct {
		cfg DeviceConfig
		old *device
	}
	a.devMu.RLock()
	cur := a.devices
	a.devMu.RUnlock()
	var want []built
	for _, e := range inv.Devices {
		if old, ok := cur[e.ID]; ok && !old.adopted {
			refuse(e.ID, fmt.Errorf("device %s is declared in the agent's own file, which wins", e.ID))
			continue
		}
		dc, err := a.adoptedConfig(e)
		if err != nil {
			refuse(e.ID, err)
			continue
		}
		want = append(want, built{cfg: dc, old: cur[e.ID]})
	}
	next := map[string]*device{}
	for _, b := range want {
		if b.old != nil && reflect.DeepEqual(b.old.cfg, b.cfg) {
			next[b.cfg.ID] = b.old // unchanged: same proxy, nothing to redo
			continue
		}
		p, err := deviceproxy.New(b.cfg.proxyDevice(), a.log.With("device", b.cfg.ID))
		if err != nil {
			refuse(b.cfg.ID, err)
			continue
		}
		next[b.cfg.ID] = &device{cfg: b.cfg, proxy: p, adopted: true}
	}
	a.devMu.Lock()
	devices := make(map[string]*device, len(next)+len(a.devices))
	var removed []string
	for id, d := range a.devices {
		switch {
		case !d.adopted:
			devices[id] = d
		case next[id] == nil:
			removed = append(removed, id)
		}
	}
	for id, d := range next {
		if _, file := devices[id]; !file {
			devices[id] = d
			res.Applied = append(res.Applied, id)
		}
	}
	a.devices = devices
	a.devMu.Unlock()
	slices.Sort(res.Applied)
	for _, id := range removed {
		a.endDeviceSessions(id, "the device was removed from the site's inventory")
	}
	a.log.Info("inventory applied", "applied", len(res.Applied), "refused", len(res.Refused), "removed", len(removed))
	res.Devices = a.declare(ctx, a.deviceList())
	if err := a.send(proto.TypeInventoryApplied, "", res); err != nil {
		a.log.Info("cannot answer the inventory; the next connection sends it again", "err", err)
	}
}

// endDeviceSessions ends the live sessions on device id.
func (a *Agent) endDeviceSessions(id, why string) {
	a.mu.Lock()
	var ss []*session
	for _, s := range a.sessions {
		if s.device.cfg.ID == id {
			ss = append(ss, s)
		}
	}
	a.mu.Unlock()
	for _, s := range ss {
		a.endSession(s, proto.EndByAgent, why)
	}
}
