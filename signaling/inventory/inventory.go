// Package inventory keeps a site's devices across restarts of signaling:
// the devices a configurer adopted in the app (sent to their agent as
// proto.Inventory), the last declaration of every device an agent serves
// (so the devices of an offline agent are listed, offline, with when they
// were last seen), and each agent's latest discovery scan (the app's
// "Discovered" list).
//
// It trusts nothing an agent reports beyond the agent's own devices: a
// report is stored under the agent that sent it (its identity comes from
// its certificate, never from the report), and a report whose devices lie
// outside the scope the agent itself reported is refused. What an agent
// may reach is its own decision (agent/scope): the inventory only narrows
// it, and the agent answers every entry it refuses with a reason, which
// is shown beside the device.
package inventory

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/store"
)

// Manager keeps the inventory in a store. It is safe for concurrent use.
type Manager struct {
	st  store.Store
	log *slog.Logger
	now func() time.Time

	mu    sync.Mutex
	scans map[string]*partial // agent → the scan whose parts are arriving
}

// partial is a scan whose last part has not arrived yet.
type partial struct {
	d    store.Discovery
	seen map[string]bool // addresses reported so far
}

// Options configure New.
type Options struct {
	Store  store.Store
	Logger *slog.Logger     // nil discards
	Now    func() time.Time // nil means time.Now
}

// New returns a Manager on o.Store.
func New(o Options) *Manager {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Manager{st: o.Store, log: o.Logger, now: o.Now, scans: map[string]*partial{}}
}

// Declared records what agent declares now (its hello, or its answer to
// an inventory): each device's declaration and health, seen now.
func (m *Manager) Declared(ctx context.Context, agent string, devs []proto.Device) error {
	now := m.now().UTC()
	for _, dev := range devs {
		_, err := m.st.UpdateDevice(ctx, agent, dev.ID, func(d *store.Device) error {
			d.Declared, d.LastSeen = &dev, now
			return nil
		})
		if err != nil {
			return fmt.Errorf("inventory: record %s/%s: %w", agent, dev.ID, err)
		}
	}
	return nil
}

// Applied records agent's answer to an inventory: the devices it serves
// now and, beside each adopted device it refused, why.
func (m *Manager) Applied(ctx context.Context, agent string, res *proto.InventoryApplied) error {
	if err := m.Declared(ctx, agent, res.Devices); err != nil {
		return err
	}
	reasons := map[string]string{}
	for _, r := range res.Refused {
		reasons[r.ID] = r.Reason
	}
	list, err := m.st.Devices(ctx, agent)
	if err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	for _, d := range list {
		if !d.Adopted || d.Refused == reasons[d.ID] {
			continue
		}
		why := reasons[d.ID]
		if why != "" {
			m.log.Warn("the agent refused an adopted device", "agent", agent, "device", d.ID, "reason", why)
		}
		if _, err := m.st.UpdateDevice(ctx, agent, d.ID, func(d *store.Device) error { d.Refused = why; return nil }); err != nil {
			return fmt.Errorf("inventory: %w", err)
		}
	}
	return nil
}

// Inventory is what agent is sent: its adopted devices.
func (m *Manager) Inventory(ctx context.Context, agent string) (*proto.Inventory, error) {
	list, err := m.st.Devices(ctx, agent)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	inv := &proto.Inventory{Devices: []proto.InventoryDevice{}}
	for _, d := range list {
		if d.Adopted {
			inv.Devices = append(inv.Devices, proto.InventoryDevice{ID: d.ID, Name: d.Name, Addr: d.Addr,
				Services: slices.Clone(d.Services), MAC: d.MAC, Serial: d.Serial, Relaxed: d.Relaxed})
		}
	}
	return inv, nil
}

// ErrReport wraps every refusal of a discovery report.
var ErrReport = errors.New("discovery report refused")

// Report takes one part of agent's scan. When the part is the scan's
// last, the scan replaces the agent's latest, adopted devices found at a
// new address follow it (see relocate), and Report returns the stored
// scan and the IDs of the devices that moved; before that it returns nil.
func (m *Manager) Report(ctx context.Context, agent string, r *proto.DiscoveryReport) (*store.Discovery, []string, error) {
	var scope []netip.Prefix
	for _, s := range r.Scope {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: scope %q: %v", ErrReport, s, err)
		}
		scope = append(scope, p)
	}
	for _, d := range r.Devices {
		ip := d.IP()
		if !slices.ContainsFunc(scope, func(p netip.Prefix) bool { return p.Contains(ip) }) {
			m.log.Warn("discovery report refused: a device outside the agent's own scope", "agent", agent, "addr", d.Addr, "scope", r.Scope)
			return nil, nil, fmt.Errorf("%w: %s is outside the scope the agent reported (%s)", ErrReport, d.Addr, strings.Join(r.Scope, ", "))
		}
	}
	m.mu.Lock()
	p := m.scans[agent]
	if p == nil || p.d.Scan != r.Scan {
		// A new scan (an unfinished one is dropped: the agent restarted).
		p = &partial{d: store.Discovery{Agent: agent, Scan: r.Scan, Scope: slices.Clone(r.Scope), Started: r.Started.UTC()}, seen: map[string]bool{}}
		m.scans[agent] = p
	} else if !slices.Equal(p.d.Scope, r.Scope) {
		delete(m.scans, agent)
		m.mu.Unlock()
		return nil, nil, fmt.Errorf("%w: the scope changed within scan %s", ErrReport, r.Scan)
	}
	if len(p.d.Devices)+len(r.Devices) > proto.MaxDiscoveredPerRun {
		delete(m.scans, agent)
		m.mu.Unlock()
		return nil, nil, fmt.Errorf("%w: scan %s reports more than %d devices", ErrReport, r.Scan, proto.MaxDiscoveredPerRun)
	}
	for _, d := range r.Devices {
		if p.seen[d.Addr] {
			delete(m.scans, agent)
			m.mu.Unlock()
			return nil, nil, fmt.Errorf("%w: %s reported twice in scan %s", ErrReport, d.Addr, r.Scan)
		}
		p.seen[d.Addr] = true
	}
	p.d.Devices = append(p.d.Devices, r.Devices...)
	if !r.Last {
		m.mu.Unlock()
		return nil, nil, nil
	}
	delete(m.scans, agent)
	m.mu.Unlock()
	d := p.d
	d.Finished, d.Probes, d.Truncated = m.now().UTC(), r.Probes, r.Truncated
	slices.SortFunc(d.Devices, func(a, b proto.Discovered) int { return a.IP().Compare(b.IP()) })
	if err := m.st.PutDiscovery(ctx, &d); err != nil {
		return nil, nil, fmt.Errorf("inventory: %w", err)
	}
	moved, err := m.relocate(ctx, &d)
	if err != nil {
		return nil, nil, err
	}
	m.log.Info("discovery scan stored", "agent", agent, "scan", d.Scan, "devices", len(d.Devices), "moved", len(moved))
	return &d, moved, nil
}

// relocate follows adopted devices that scan found at another address:
// the same MAC (the agent's neighbour table) and, where both are known,
// the same serial. A device whose MAC shows up at two addresses is left
// alone (something spoofs it), and so is one whose old address still
// answers with it.
func (m *Manager) relocate(ctx context.Context, scan *store.Discovery) ([]string, error) {
	list, err := m.st.Devices(ctx, scan.Agent)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	var moved []string
	for _, dev := range list {
		if !dev.Adopted || dev.MAC == "" {
			continue
		}
		var at []proto.Discovered
		for _, c := range scan.Devices {
			if strings.EqualFold(c.MAC, dev.MAC) && (dev.Serial == "" || c.Serial == "" || c.Serial == dev.Serial) {
				at = append(at, c)
			}
		}
		if len(at) != 1 || at[0].Addr == dev.Addr {
			if len(at) > 1 {
				m.log.Warn("a device's MAC answers at several addresses; its address is left as it is", "agent", scan.Agent, "device", dev.ID, "mac", dev.MAC)
			}
			continue
		}
		to := at[0].Addr
		from := dev.Addr
		_, err := m.st.UpdateDevice(ctx, scan.Agent, dev.ID, func(d *store.Device) error {
			d.Addr, d.Moved, d.MovedAt = to, from+" → "+to, m.now().UTC()
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("inventory: %w", err)
		}
		m.log.Info("adopted device found at a new address", "agent", scan.Agent, "device", dev.ID, "from", from, "to", to)
		moved = append(moved, dev.ID)
	}
	return moved, nil
}

// Adoption asks to adopt a device of an agent's latest scan.
type Adoption struct {
	Agent string
	// Addr names the candidate in the agent's latest scan.
	Addr string
	// ID and Name of the new device; an empty ID is derived from the
	// name, the host name or the model.
	ID, Name string
	// Services to reach; nil means every service the scan found.
	Services []proto.Service
	// Type overrides discovery's guess.
	Type string
	// Relaxed skips the identity check (MAC and serial) before sessions;
	// the app asks the configurer to confirm it.
	Relaxed bool
	// By is who adopts (a user ID).
	By string
}

// Adopt adopts a candidate of the agent's latest scan, recording the
// identity the scan saw (MAC and serial), so every later session checks
// it unless Relaxed. The new device starts disabled, like any other.
func (m *Manager) Adopt(ctx context.Context, a Adoption) (*store.Device, error) {
	scan, err := m.st.Discovery(ctx, a.Agent)
	if errors.Is(err, store.ErrNotFound) {
		return nil, proto.Errorf(proto.CodeNotFound, "agent %s has reported no scan yet: scan the site first", a.Agent)
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	i := slices.IndexFunc(scan.Devices, func(c proto.Discovered) bool { return c.Addr == a.Addr })
	if i < 0 {
		return nil, proto.Errorf(proto.CodeNotFound, "no device at %s in the agent's latest scan: scan the site again", a.Addr)
	}
	c := scan.Devices[i]
	services := a.Services
	if services == nil {
		services = servicesOf(c)
	}
	if len(services) == 0 {
		return nil, proto.Errorf(proto.CodeBadMessage, "the scan found no service on %s: give the ports to reach", a.Addr)
	}
	inv := proto.InventoryDevice{ID: a.ID, Name: a.Name, Addr: c.Addr, Services: services, MAC: c.MAC, Serial: c.Serial, Relaxed: a.Relaxed}
	if inv.ID == "" {
		inv.ID = deriveID(cmp.Or(a.Name, c.Hostname, c.Model, "device"), c.IP())
	}
	if err := inv.Validate(); err != nil {
		return nil, err
	}
	typ := cmp.Or(a.Type, c.Type)
	var out *store.Device
	out, err = m.st.UpdateDevice(ctx, a.Agent, inv.ID, func(d *store.Device) error {
		if d.Adopted || d.Declared != nil {
			return proto.Errorf(proto.CodeExists, "a device named %s exists already on this agent: choose another ID", inv.ID)
		}
		*d = store.Device{Agent: a.Agent, ID: inv.ID, Adopted: true, AdoptedBy: a.By, Name: a.Name, Addr: inv.Addr,
			Services: slices.Clone(services), MAC: inv.MAC, Serial: inv.Serial, Relaxed: a.Relaxed,
			Type: typ, Vendor: c.Vendor, Model: c.Model, UpdatedBy: a.By, Updated: m.now().UTC()}
		return nil
	})
	if err != nil {
		return nil, err
	}
	m.log.Info("device adopted", "agent", a.Agent, "device", inv.ID, "addr", inv.Addr, "by", a.By, "relaxed", a.Relaxed)
	return out, nil
}

// servicesOf turns what a scan found into services to reach.
func servicesOf(c proto.Discovered) []proto.Service {
	var out []proto.Service
	web := false
	for _, s := range c.Services {
		if slices.ContainsFunc(out, func(x proto.Service) bool { return x.Port == s.Port }) {
			continue
		}
		sv := proto.Service{Kind: s.Kind, Port: s.Port}
		if s.Kind == proto.ServiceWeb {
			if web {
				sv.Kind = proto.ServiceTCP // one web page per device; the others stay reachable
			} else {
				web, sv.Scheme = true, cmp.Or(s.Scheme, "http")
			}
		}
		out = append(out, sv)
	}
	return out
}

// deriveID makes a device ID from a name and the address's last part:
// "Front desk printer" at 192.0.2.20 → "front-desk-printer-20".
func deriveID(name string, ip netip.Addr) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= 40 {
			break
		}
	}
	id := strings.Trim(b.String(), "-")
	if id == "" {
		id = "device"
	}
	last := ip.String()
	if ip.Is4() {
		last = fmt.Sprint(ip.As4()[3])
	} else {
		last = strings.ReplaceAll(last, ":", "")
		last = last[max(0, len(last)-4):]
	}
	return id + "-" + last
}

// Edit changes an adopted device; ErrConflict for a device of the
// agent's own file, which the site declares.
func (m *Manager) Edit(ctx context.Context, agent, id string, fn func(*store.Device) error) (*store.Device, error) {
	return m.st.UpdateDevice(ctx, agent, id, func(d *store.Device) error {
		if !d.Adopted {
			return m.notAdopted(d, id)
		}
		if err := fn(d); err != nil {
			return err
		}
		d.Updated = m.now().UTC()
		return nil
	})
}

func (m *Manager) notAdopted(d *store.Device, id string) error {
	if d.Declared != nil {
		return fmt.Errorf("device %s is declared in its agent's file, which only the site changes: %w", id, store.ErrConflict)
	}
	return proto.Errorf(proto.CodeNotFound, "no such device")
}

// Remove forgets an adopted device: its agent stops serving it once sent
// the new inventory.
func (m *Manager) Remove(ctx context.Context, agent, id string) error {
	d, err := m.st.Device(ctx, agent, id)
	if errors.Is(err, store.ErrNotFound) {
		return proto.Errorf(proto.CodeNotFound, "no such device")
	}
	if err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	if !d.Adopted {
		return m.notAdopted(d, id)
	}
	return m.st.DeleteDevice(ctx, agent, id)
}

// Forget drops the record of a device its agent no longer declares and
// nobody adopted (a device removed from the agent's file).
func (m *Manager) Forget(ctx context.Context, agent string, declared []proto.Device) error {
	list, err := m.st.Devices(ctx, agent)
	if err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	for _, d := range list {
		if d.Adopted || d.Declared == nil || slices.ContainsFunc(declared, func(x proto.Device) bool { return x.ID == d.ID }) {
			continue
		}
		// Keep the settings (the enabled switch) but not the declaration.
		if _, err := m.st.UpdateDevice(ctx, agent, d.ID, func(d *store.Device) error { d.Declared = nil; return nil }); err != nil {
			return fmt.Errorf("inventory: %w", err)
		}
	}
	return nil
}

// List merges live devices (declared by connected agents, from the hub or
// the cluster) with the stored inventory of agents: a stored device that
// is not live is listed offline with when it was last seen, and every
// device carries what the inventory knows (adopted, type, model, serial,
// refusal, move).
func (m *Manager) List(ctx context.Context, agents []string, live []proto.DeviceStatus) ([]proto.DeviceStatus, error) {
	type key struct{ agent, id string }
	out := make([]proto.DeviceStatus, 0, len(live))
	index := map[key]int{}
	for _, d := range live {
		index[key{d.Agent, d.ID}] = len(out)
		out = append(out, d)
	}
	for _, agent := range agents {
		list, err := m.st.Devices(ctx, agent)
		if err != nil {
			return nil, fmt.Errorf("inventory: %w", err)
		}
		for _, rec := range list {
			i, ok := index[key{agent, rec.ID}]
			if !ok {
				if !rec.Adopted && rec.Declared == nil {
					continue // settings of a device never declared
				}
				st := proto.DeviceStatus{Agent: agent, LastSeen: rec.LastSeen}
				if rec.Declared != nil {
					st.Device = *rec.Declared
				} else {
					st.Device = proto.Device{ID: rec.ID, Services: slices.Clone(rec.Services)}
				}
				index[key{agent, rec.ID}] = len(out)
				i = len(out)
				out = append(out, st)
			}
			d := &out[i]
			d.Adopted, d.Type, d.Model, d.Serial, d.Refused, d.Moved = rec.Adopted, rec.Type, rec.Model, rec.Serial, rec.Refused, rec.Moved
			if rec.Name != "" {
				d.Name = rec.Name
			}
		}
	}
	slices.SortFunc(out, func(a, b proto.DeviceStatus) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Agent, b.Agent))
	})
	return out, nil
}
