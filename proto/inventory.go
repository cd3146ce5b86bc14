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
	// TLS is set when the device's web port needs legacy TLS.
	TLS *LegacyTLS `json:"tls,omitempty"`
}

// Validate checks a health report.
func (h *DeviceHealth) Validate() error {
	if len(h.Problem) > MaxText {
		return Errorf(CodeTooLarge, "device health: problem too long")
	}
	if len(h.Signaling) > MaxSignalingRoute {
		return Errorf(CodeTooLarge, "device health: signaling route too long")
	}
	return h.TLS.Validate()
}

// LegacyTLS says that a device is reached only with TLS the agent does not
// use by default: an old protocol version, RSA key exchange, a CBC, 3DES or
// RC4 cipher suite. The agent reports it in the device's health and in the
// head of every response that came over such a connection, so the session's
// toolbar can say so. Devices on modern TLS (1.2 or 1.3 with ECDHE and an
// AEAD suite) carry none.
type LegacyTLS struct {
	// Version is the negotiated protocol version: "TLS 1.0", "TLS 1.1",
	// "TLS 1.2".
	Version string `json:"version"`
	// Cipher is the IANA name of the negotiated cipher suite.
	Cipher string `json:"cipher"`
	// Needs lists what the device needed beyond the default, in words
	// ("TLS 1.0", "RSA key exchange", "3DES"); at most MaxLegacyNeeds.
	Needs []string `json:"needs,omitempty"`
	// Note is the sentence people see ("This device only speaks TLS 1.0 …").
	Note string `json:"note"`
}

// MaxLegacyNeeds bounds LegacyTLS.Needs.
const MaxLegacyNeeds = 8

// Validate checks a legacy TLS report.
func (l *LegacyTLS) Validate() error {
	if l == nil {
		return nil
	}
	if len(l.Version) > 32 || len(l.Cipher) > 128 || len(l.Note) > MaxText || len(l.Needs) > MaxLegacyNeeds {
		return Errorf(CodeTooLarge, "legacy TLS report too long")
	}
	for _, n := range l.Needs {
		if len(n) > 64 {
			return Errorf(CodeTooLarge, "legacy TLS report too long")
		}
	}
	if !validFieldValue(l.Version) || !validFieldValue(l.Cipher) || !validFieldValue(l.Note) {
		return Errorf(CodeBadMessage, "legacy TLS report with control characters")
	}
	return nil
}
