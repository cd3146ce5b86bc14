package proto

import "time"

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
}

// Validate checks a health report.
func (h *DeviceHealth) Validate() error {
	if len(h.Problem) > MaxText {
		return Errorf(CodeTooLarge, "device health: problem too long")
	}
	return nil
}
