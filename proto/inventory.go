package proto

import "time"

// MaxSignalingRoute bounds DeviceHealth.Signaling ("via proxy " and a
// host:port).
const MaxSignalingRoute = 300

// DeviceHealth is what an agent found when it last contacted a device: at
// connect time, for its inventory in hello, and later when it changes.
// Devices omit it when the agent has not checked.
type DeviceHealth struct {
	Reachable bool      `json:"reachable"`
	Checked   time.Time `json:"checked,omitzero"`
	// Problem says, for people, why the device is unreachable or failed its
	// identity check ("MAC address is 02:00:00:00:00:02, expected …").
	Problem string `json:"problem,omitempty"`
	// Unconfirmed says the device answered none of the agent's probes,
	// which never touch its services: it has no web page, MAC or SNMP to
	// check and drops the agent's datagram. Sessions are not refused for
	// it (their own connection tells); Reachable is false.
	Unconfirmed bool `json:"unconfirmed,omitempty"`
	// Signaling is how the device's agent reaches signaling: "direct",
	// or "via proxy HOST:PORT" at a site whose only way out is an HTTP
	// proxy. Empty from agents that do not say.
	Signaling string `json:"signaling,omitempty"`
}

// Validate checks a health report.
func (h *DeviceHealth) Validate() error {
	if len(h.Problem) > MaxText {
		return Errorf(CodeTooLarge, "device health: problem too long")
	}
	if len(h.Signaling) > MaxSignalingRoute {
		return Errorf(CodeTooLarge, "device health: signaling route too long")
	}
	return nil
}
