package proto

import (
	"net"
	"net/netip"
	"slices"
	"time"
	"unicode/utf8"
)

// Discovery and the inventory: an agent finds devices in its site's scope
// and reports them; a configurer adopts one in the app; signaling keeps
// the adopted devices (the inventory) and sends the agent the ones it
// serves, at once and whenever they change.
//
//	agent → signaling   discovery.report {scan, scope, devices, last}   (one or more parts per scan)
//	signaling → agent   discovery.run {}                               (scan now)
//	signaling → agent   inventory {devices}                            (replaces the adopted devices)
//	agent → signaling   inventory.applied {applied, refused}
//
// Addresses travel in discovery.report (what the agent saw) and in
// inventory (what was adopted). The agent checks every inventory entry
// against its own scope and refuses, with a reason, any that leaves it:
// signaling can only narrow what the site allowed, never widen it.

// Discovery and inventory message types.
const (
	TypeDiscoveryReport  MsgType = "discovery.report"
	TypeDiscoveryRun     MsgType = "discovery.run"
	TypeInventory        MsgType = "inventory"
	TypeInventoryApplied MsgType = "inventory.applied"
)

// Limits of discovery and inventory messages. A report part stays well
// under MaxSignalMessage; a scan of many devices sends several parts.
const (
	MaxReportDevices    = 64   // devices in one discovery.report part
	MaxScopePrefixes    = 64   // subnets in a scope
	MaxDiscoveredPerRun = 4096 // devices one scan may report in all
	MaxInventory        = MaxDevices
	MaxShortText        = 256 // host names, models, serials, titles
)

// Discovered is one device an agent found, with what it said about itself.
// Every field but Addr is optional and comes from the sources that found
// it (Sources: "arp", "sweep", "snmp", "mdns", "ipp", "http").
type Discovered struct {
	Addr     string `json:"addr"`
	MAC      string `json:"mac,omitempty"`
	Hostname string `json:"hostname,omitempty"`
	// Type is a guess for people and icons: "printer", "web", "ssh", "".
	Type   string `json:"type,omitempty"`
	Vendor string `json:"vendor,omitempty"`
	Model  string `json:"model,omitempty"`
	Serial string `json:"serial,omitempty"`
	UUID   string `json:"uuid,omitempty"`
	// Description is SNMP sysDescr.
	Description string              `json:"description,omitempty"`
	Services    []DiscoveredService `json:"services,omitempty"`
	Sources     []string            `json:"sources,omitempty"`
}

// DiscoveredService is a port a discovered device answered on.
type DiscoveredService struct {
	Kind   ServiceKind `json:"kind"`
	Port   int         `json:"port"`
	Scheme string      `json:"scheme,omitempty"` // web only
	// Name is the protocol as found: "ipp", "_ipp._tcp", "http".
	Name string `json:"name,omitempty"`
	// Title is an HTTP page's <title>.
	Title string `json:"title,omitempty"`
}

// DiscoveryReport is one part of a scan's findings.
type DiscoveryReport struct {
	// Scan names the scan; its parts share it.
	Scan string `json:"scan"`
	// Scope is the agent's scope, so signaling can show and check it.
	Scope   []string     `json:"scope"`
	Started time.Time    `json:"started"`
	Devices []Discovered `json:"devices,omitempty"`
	// Last marks the scan's final part; Probes, Duration and Truncated
	// describe the whole scan there.
	Last       bool  `json:"last,omitempty"`
	Probes     int   `json:"probes,omitempty"`
	DurationMS int64 `json:"durationMs,omitempty"`
	Truncated  bool  `json:"truncated,omitempty"`
}

// DiscoveryRun asks the agent to scan now.
type DiscoveryRun struct {
	Reason string `json:"reason,omitempty"`
}

// InventoryDevice is an adopted device as signaling sends it to the agent
// that serves it.
type InventoryDevice struct {
	ID       string    `json:"id"`
	Name     string    `json:"name,omitempty"`
	Addr     string    `json:"addr"`
	Services []Service `json:"services"`
	// MAC and Serial are the identity recorded at adoption, checked
	// before every session unless Relaxed (a configurer's choice, with a
	// warning). Serial is read over SNMP v2c with the "public" community.
	MAC     string `json:"mac,omitempty"`
	Serial  string `json:"serial,omitempty"`
	Relaxed bool   `json:"relaxed,omitempty"`
}

// Inventory replaces the agent's adopted devices. Devices declared in the
// agent's own file are not part of it and stay.
type Inventory struct {
	Devices []InventoryDevice `json:"devices"`
}

// InventoryApplied is the agent's answer to an inventory.
type InventoryApplied struct {
	Applied []string           `json:"applied,omitempty"`
	Refused []InventoryRefusal `json:"refused,omitempty"`
	// Devices are all the agent now serves (its file's and the adopted
	// ones), declared with their health as in hello: signaling replaces
	// what the agent's hello declared with them.
	Devices []Device `json:"devices,omitempty"`
}

// InventoryRefusal says why an inventory entry was not applied.
type InventoryRefusal struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

func shortText(s string) bool { return len(s) <= MaxShortText && utf8.ValidString(s) }

// Validate checks a discovered device.
func (d *Discovered) Validate() error {
	a, err := netip.ParseAddr(d.Addr)
	if err != nil || a.Zone() != "" {
		return Errorf(CodeBadMessage, "discovered: malformed address %.60q", d.Addr)
	}
	if d.MAC != "" {
		if _, err := net.ParseMAC(d.MAC); err != nil || len(d.MAC) > 32 {
			return Errorf(CodeBadMessage, "discovered %s: malformed MAC", d.Addr)
		}
	}
	for _, s := range []string{d.Hostname, d.Type, d.Vendor, d.Model, d.Serial, d.UUID} {
		if !shortText(s) {
			return Errorf(CodeTooLarge, "discovered %s: field too long or not UTF-8", d.Addr)
		}
	}
	if len(d.Description) > MaxText || !utf8.ValidString(d.Description) {
		return Errorf(CodeTooLarge, "discovered %s: description too long or not UTF-8", d.Addr)
	}
	if len(d.Services) > MaxPorts || len(d.Sources) > 16 {
		return Errorf(CodeTooLarge, "discovered %s: too many services or sources", d.Addr)
	}
	for _, s := range d.Services {
		sv := Service{Kind: s.Kind, Port: s.Port, Scheme: s.Scheme}
		if err := sv.Validate(d.Addr); err != nil {
			return err
		}
		if !shortText(s.Name) || !shortText(s.Title) {
			return Errorf(CodeTooLarge, "discovered %s: service text too long", d.Addr)
		}
	}
	for _, s := range d.Sources {
		if len(s) > 16 {
			return Errorf(CodeTooLarge, "discovered %s: source name too long", d.Addr)
		}
	}
	return nil
}

// IP returns the discovered address (valid after Validate).
func (d *Discovered) IP() netip.Addr {
	a, _ := netip.ParseAddr(d.Addr)
	return a.Unmap()
}

// Validate checks a report part.
func (r *DiscoveryReport) Validate() error {
	if !ValidID(r.Scan) {
		return Errorf(CodeBadMessage, "discovery.report: malformed scan id")
	}
	if len(r.Scope) > MaxScopePrefixes {
		return Errorf(CodeTooLarge, "discovery.report: %d scope prefixes, limit %d", len(r.Scope), MaxScopePrefixes)
	}
	for _, s := range r.Scope {
		if _, err := netip.ParsePrefix(s); err != nil {
			return Errorf(CodeBadMessage, "discovery.report: malformed scope prefix %.60q", s)
		}
	}
	if len(r.Devices) > MaxReportDevices {
		return Errorf(CodeTooLarge, "discovery.report: %d devices in one part, limit %d", len(r.Devices), MaxReportDevices)
	}
	if r.Probes < 0 || r.DurationMS < 0 {
		return Errorf(CodeBadMessage, "discovery.report: negative counters")
	}
	for i := range r.Devices {
		if err := r.Devices[i].Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks a discovery.run.
func (r *DiscoveryRun) Validate() error {
	if len(r.Reason) > MaxText {
		return Errorf(CodeTooLarge, "discovery.run: reason too long")
	}
	return nil
}

// Validate checks an inventory entry's form (the agent checks its scope).
func (d *InventoryDevice) Validate() error {
	if !ValidID(d.ID) {
		return Errorf(CodeBadMessage, "inventory: malformed device id %.40q", d.ID)
	}
	if len(d.Name) > MaxText {
		return Errorf(CodeTooLarge, "inventory %s: name too long", d.ID)
	}
	if a, err := netip.ParseAddr(d.Addr); err != nil || a.Zone() != "" {
		return Errorf(CodeBadMessage, "inventory %s: address must be an IP address", d.ID)
	}
	if len(d.Services) > MaxPorts {
		return Errorf(CodeTooLarge, "inventory %s: too many services", d.ID)
	}
	var ports []int
	webs := 0
	for i := range d.Services {
		if err := d.Services[i].Validate(d.ID); err != nil {
			return err
		}
		if slices.Contains(ports, d.Services[i].Port) {
			return Errorf(CodeBadMessage, "inventory %s: port %d twice", d.ID, d.Services[i].Port)
		}
		ports = append(ports, d.Services[i].Port)
		if d.Services[i].Kind == ServiceWeb {
			webs++
		}
	}
	if webs > 1 {
		return Errorf(CodeBadMessage, "inventory %s: more than one web service", d.ID)
	}
	if d.MAC != "" {
		if _, err := net.ParseMAC(d.MAC); err != nil || len(d.MAC) > 32 {
			return Errorf(CodeBadMessage, "inventory %s: malformed MAC", d.ID)
		}
	}
	if !shortText(d.Serial) {
		return Errorf(CodeTooLarge, "inventory %s: serial too long", d.ID)
	}
	return nil
}

// Validate checks an inventory.
func (v *Inventory) Validate() error {
	if len(v.Devices) > MaxInventory {
		return Errorf(CodeTooLarge, "inventory: %d devices, limit %d", len(v.Devices), MaxInventory)
	}
	seen := map[string]bool{}
	for i := range v.Devices {
		if err := v.Devices[i].Validate(); err != nil {
			return err
		}
		if seen[v.Devices[i].ID] {
			return Errorf(CodeBadMessage, "inventory: device %s twice", v.Devices[i].ID)
		}
		seen[v.Devices[i].ID] = true
	}
	return nil
}

// Validate checks an inventory.applied.
func (a *InventoryApplied) Validate() error {
	if len(a.Applied)+len(a.Refused) > MaxInventory {
		return Errorf(CodeTooLarge, "inventory.applied: too many entries")
	}
	for _, id := range a.Applied {
		if !ValidID(id) {
			return Errorf(CodeBadMessage, "inventory.applied: malformed id")
		}
	}
	for _, r := range a.Refused {
		if !ValidID(r.ID) || len(r.Reason) > MaxText {
			return Errorf(CodeBadMessage, "inventory.applied: malformed refusal")
		}
	}
	return validateDevices("inventory.applied", a.Devices)
}
