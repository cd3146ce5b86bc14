package proto

import (
	"time"
)

// The HTTP API of signaling used by technician clients (the CLI and the web
// app). Errors are answered as JSON Error bodies with a matching HTTP status.

// API paths.
const (
	PathAgentSocket   = "/v1/agent"    // WebSocket, agents (agent credentials)
	PathSessionSocket = "/v1/session"  // WebSocket, technician clients (session token)
	PathDevices       = "/v1/devices"  // GET, technician credentials
	PathSessions      = "/v1/sessions" // POST to create; DELETE /v1/sessions/{id} to end
	PathHealth        = "/healthz"
)

// SessionTokenProtocolPrefix carries a session token in the WebSocket
// subprotocol list, because browsers cannot set an Authorization header on a
// WebSocket: Sec-WebSocket-Protocol: porthole.v1, porthole.token.<token>.
// Signaling answers with SocketProtocol only, never echoing the token.
const (
	SocketProtocol             = "porthole.v1"
	SessionTokenProtocolPrefix = "porthole.token."
)

// DeviceStatus is one device in a device list.
type DeviceStatus struct {
	Device
	Agent  string `json:"agent"`
	Online bool   `json:"online"`
	// The inventory (signaling/inventory): what the app shows beyond the
	// agent's declaration. LastSeen is when the agent last declared the
	// device (set while it is offline); Adopted says a configurer adopted
	// it in the app (else the agent's own file declares it); Refused is
	// the agent's reason for not serving an adopted device; Moved says
	// discovery found the device at a new address and the inventory
	// followed it ("192.0.2.20 → 192.0.2.31").
	LastSeen time.Time `json:"lastSeen,omitzero"`
	Adopted  bool      `json:"adopted,omitempty"`
	Type     string    `json:"type,omitempty"`
	Model    string    `json:"model,omitempty"`
	Serial   string    `json:"serial,omitempty"`
	Refused  string    `json:"refused,omitempty"`
	Moved    string    `json:"moved,omitempty"`
}

// DeviceList answers GET /v1/devices.
type DeviceList struct {
	Devices []DeviceStatus `json:"devices"`
}

// CreateSession is the body of POST /v1/sessions.
type CreateSession struct {
	Device string `json:"device"`
	// Agent names the agent of the device, needed only when the caller can
	// see several devices with this ID (device IDs are unique per site).
	Agent string `json:"agent,omitempty"`
}

// Validate checks a session request.
func (c *CreateSession) Validate() error {
	if !ValidID(c.Device) {
		return Errorf(CodeBadMessage, "malformed device id")
	}
	if c.Agent != "" && !ValidID(c.Agent) {
		return Errorf(CodeBadMessage, "malformed agent id")
	}
	return nil
}

// SessionInfo answers POST /v1/sessions. Token is good for this one session
// only, on PathSessionSocket, until Expires.
type SessionInfo struct {
	Session string    `json:"session"`
	Device  string    `json:"device"`
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
	// ShellOrigin is where a browser opens the session window
	// (https://shell-<session>.<sessions-domain>, ShellHostPrefix); empty
	// if no sessions domain is configured.
	ShellOrigin string `json:"shellOrigin,omitempty"`
	// DeviceOrigin is the origin the device's pages run on inside that
	// window (https://<session>.<sessions-domain>). It holds nothing
	// secret and serves no session window: open ShellOrigin, not this.
	DeviceOrigin string `json:"deviceOrigin,omitempty"`
}
